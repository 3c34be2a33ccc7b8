//! Email templates: loading `templates/<locale>/`, locale fallback and rendering
//! one email into its subject, text and HTML parts (R25, R30).
//!
//! Layout on disk, per locale directory: `<name>.subject.txt`, `<name>.txt`,
//! `<name>.html`, and a `base.html` layout that HTML templates extend. Only
//! `.html` files are HTML-escaped; text parts and subjects show user text as
//! typed, and subjects are then squeezed onto one line so user text can never
//! start a header.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use minijinja::syntax::SyntaxConfig;
use minijinja::{AutoEscape, Environment, Output, State, UndefinedBehavior, Value};
use serde_json::json;

use super::date::format_date;
use super::one_line;

/// The emails this daemon sends. The string form is the file stem on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TemplateName {
    MemberInvitation,
    InvitationAccepted,
}

impl TemplateName {
    pub const ALL: [TemplateName; 2] = [
        TemplateName::MemberInvitation,
        TemplateName::InvitationAccepted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TemplateName::MemberInvitation => "member_invitation",
            TemplateName::InvitationAccepted => "invitation_accepted",
        }
    }

    /// A context with every key the template expects, for `Templates::check`
    /// and tests. The keys are the contract with the callers that build contexts.
    pub fn sample_context(self) -> serde_json::Value {
        match self {
            TemplateName::MemberInvitation => json!({
                "inviter_name": "Ada Lovelace",
                "business_name": "Analytical Engines Ltd",
                "role": "manager",
                "message": "Looking forward to working with you!\nSee you on Monday.",
                "accept_url": "https://app.example.test/invitations/accept?token=sample",
                "expires_at": "2026-11-29T10:00:00Z",
                "recipient_email": "charles@example.test",
            }),
            TemplateName::InvitationAccepted => json!({
                "inviter_name": "Ada Lovelace",
                "business_name": "Analytical Engines Ltd",
                "accepted_by_name": "Charles Babbage",
                "accepted_by_email": "charles@example.test",
                "role": "manager",
            }),
        }
    }
}

impl fmt::Display for TemplateName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TemplateName {
    type Err = TemplateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TemplateName::ALL
            .into_iter()
            .find(|name| name.as_str() == s)
            .ok_or_else(|| TemplateError::UnknownTemplate(s.to_owned()))
    }
}

/// One rendered email, ready for `build_message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// One line, trimmed, without control characters.
    pub subject: String,
    pub text: String,
    pub html: String,
    /// The locale whose templates were used, after fallback (R25).
    pub locale: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    // The underlying errors are part of the message (not `#[source]`) so that a
    // plain `error = %e` log line already says which file and what went wrong.
    #[error("cannot read template directory {}: {error}", dir.display())]
    Io { dir: PathBuf, error: std::io::Error },
    #[error("default locale {locale:?} has no template directory under {}", dir.display())]
    MissingDefaultLocale { locale: String, dir: PathBuf },
    #[error("unknown template name {0:?}")]
    UnknownTemplate(String),
    #[error("the context for template {template} must be a JSON object")]
    ContextNotObject { template: TemplateName },
    #[error("cannot render {file}: {error:#}")]
    Render {
        file: String,
        error: minijinja::Error,
    },
}

/// The loaded template set. Cheap to share behind an `Arc`; rendering takes `&self`.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
    /// Names of the locale directories found at load time, as spelled on disk.
    locales: BTreeSet<String>,
    default_locale: String,
}

impl Templates {
    /// Loads templates from `dir` (one subdirectory per locale). Templates are
    /// compiled lazily on first use and then cached for the life of the process.
    /// Fails if `dir` cannot be read or has no directory for `default_locale`.
    pub fn load(dir: &Path, default_locale: &str) -> Result<Templates, TemplateError> {
        let locales = read_locale_dirs(dir)?;
        let default_locale = find_locale(&locales, default_locale)
            .ok_or_else(|| TemplateError::MissingDefaultLocale {
                locale: default_locale.to_owned(),
                dir: dir.to_owned(),
            })?
            .to_owned();

        let mut env = Environment::new();
        env.set_loader(minijinja::path_loader(dir));
        // Templates ship with the binary's release; re-statting files on every
        // render would only cost syscalls.
        env.set_auto_reload(false);
        // A typo in a template must fail the render (and `check`), not send an
        // email with a hole in it.
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html") {
                AutoEscape::Html
            } else {
                AutoEscape::None
            }
        });
        env.set_formatter(html_formatter);
        env.set_syntax(
            SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()
                .expect("the default delimiters are valid"),
        );
        // `{% extends "base.html" %}` means the base.html of the same locale.
        env.set_path_join_callback(join_sibling);
        env.add_filter("date", date_filter);

        Ok(Templates {
            env,
            locales,
            default_locale,
        })
    }

    /// The locale directories found at load time.
    pub fn locales(&self) -> impl Iterator<Item = &str> {
        self.locales.iter().map(String::as_str)
    }

    pub fn default_locale(&self) -> &str {
        &self.default_locale
    }

    /// The locale whose templates are used for `requested`: the exact tag
    /// (`fr-CA`), then its language (`fr`), then the default locale (R25).
    /// Matching ignores case and accepts `_` for `-`. Only locales with a
    /// directory count, so a requested tag never reaches the file system.
    pub fn resolve_locale(&self, requested: &str) -> &str {
        let tag = requested.trim().replace('_', "-");
        let language = tag.split('-').next().unwrap_or_default();
        find_locale(&self.locales, &tag)
            .or_else(|| find_locale(&self.locales, language))
            .unwrap_or(&self.default_locale)
    }

    /// Renders `name` for `locale` (after fallback). `ctx` must be a JSON object
    /// with the keys the template expects (see `TemplateName::sample_context`);
    /// the key `locale` is added (the resolved locale) for the `date` filter and
    /// the HTML `lang` attribute.
    pub fn render(
        &self,
        name: TemplateName,
        locale: &str,
        ctx: &serde_json::Value,
    ) -> Result<Rendered, TemplateError> {
        let locale = self.resolve_locale(locale);
        let mut vars = ctx
            .as_object()
            .cloned()
            .ok_or(TemplateError::ContextNotObject { template: name })?;
        vars.insert("locale".to_owned(), locale.into());
        let vars = Value::from(minijinja::value::Serde(&vars));

        let render = |suffix: &str| -> Result<String, TemplateError> {
            let file = format!("{locale}/{}.{suffix}", name.as_str());
            self.env
                .get_template(&file)
                .and_then(|template| template.render(vars.clone()))
                .map_err(|error| TemplateError::Render { file, error })
        };

        Ok(Rendered {
            subject: one_line(&render("subject.txt")?),
            text: render("txt")?,
            html: render("html")?,
            locale: locale.to_owned(),
        })
    }

    /// Renders every template with its sample context in each of `locales`
    /// (after fallback), so a broken or missing template fails at deploy time
    /// rather than on the first invitation.
    pub fn check(&self, locales: &[&str]) -> Result<(), TemplateError> {
        for locale in locales {
            for name in TemplateName::ALL {
                self.render(name, locale, &name.sample_context())?;
            }
        }
        Ok(())
    }
}

fn read_locale_dirs(dir: &Path) -> Result<BTreeSet<String>, TemplateError> {
    let io_err = |error| TemplateError::Io {
        dir: dir.to_owned(),
        error,
    };
    let mut locales = BTreeSet::new();
    for entry in std::fs::read_dir(dir).map_err(io_err)? {
        let entry = entry.map_err(io_err)?;
        if entry.file_type().map_err(io_err)?.is_dir()
            && let Some(name) = entry.file_name().to_str()
            && !name.starts_with('.')
        {
            locales.insert(name.to_owned());
        }
    }
    Ok(locales)
}

fn find_locale<'a>(locales: &'a BTreeSet<String>, tag: &str) -> Option<&'a str> {
    if tag.is_empty() {
        return None;
    }
    locales
        .iter()
        .find(|l| l.eq_ignore_ascii_case(tag))
        .map(String::as_str)
}

/// Resolves a bare file name used in `{% extends %}`/`{% include %}` against the
/// directory of the template that uses it; names with a `/` stay rooted at the
/// templates directory.
fn join_sibling<'s>(name: &'s str, parent: &'s str) -> Cow<'s, str> {
    match parent.rsplit_once('/') {
        Some((dir, _)) if !name.contains('/') => Cow::Owned(format!("{dir}/{name}")),
        _ => Cow::Borrowed(name),
    }
}

/// `{{ expires_at|date(locale) }}`: an RFC 3339 string as a calendar date.
fn date_filter(value: &str, locale: &str) -> Result<String, minijinja::Error> {
    format_date(value, locale).map_err(|e| {
        minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("date filter: {value:?} is not an RFC 3339 timestamp: {e}"),
        )
    })
}

/// minijinja's HTML escaping also escapes `/` (as `&#x2f;`), which mangles every
/// URL in the source of our emails (and in the accept link some clients show).
/// `/` needs no escaping in element content or quoted attributes, so strings are
/// escaped for `& < > " '` only; everything else goes to the default formatter
/// (strict-undefined checks happen before a formatter is called).
fn html_formatter(
    out: &mut Output,
    state: &mut State,
    value: &Value,
) -> Result<(), minijinja::Error> {
    if *state.auto_escape() == AutoEscape::Html
        && !value.is_safe()
        && let Some(s) = value.as_str()
    {
        let mut escaped = String::with_capacity(s.len() + 16);
        for c in s.chars() {
            match c {
                '&' => escaped.push_str("&amp;"),
                '<' => escaped.push_str("&lt;"),
                '>' => escaped.push_str("&gt;"),
                '"' => escaped.push_str("&quot;"),
                '\'' => escaped.push_str("&#x27;"),
                c => escaped.push(c),
            }
        }
        return out
            .write_str(&escaped)
            .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::WriteFailure, e.to_string()));
    }
    minijinja::escape_formatter(out, state, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A throwaway template tree; removed on drop.
    struct TempTree(PathBuf);

    impl TempTree {
        fn new(locales: &[&str]) -> TempTree {
            let root = std::env::temp_dir().join(format!("invited-tpl-{}", uuid::Uuid::now_v7()));
            for locale in locales {
                let dir = root.join(locale);
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(
                    dir.join("base.html"),
                    "<p>{% block content %}{% endblock %}</p>",
                )
                .unwrap();
                std::fs::write(
                    dir.join("invitation_accepted.subject.txt"),
                    format!("[{locale}] {{{{ accepted_by_name }}}}\n  accepted\n"),
                )
                .unwrap();
                std::fs::write(
                    dir.join("invitation_accepted.txt"),
                    "{{ accepted_by_name }} <{{ accepted_by_email }}>",
                )
                .unwrap();
                std::fs::write(
                    dir.join("invitation_accepted.html"),
                    "{% extends \"base.html\" %}{% block content %}{{ accepted_by_name }}/{{ locale }}{% endblock %}",
                )
                .unwrap();
            }
            TempTree(root)
        }
    }

    impl Drop for TempTree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn accepted_ctx(name: &str) -> serde_json::Value {
        let mut ctx = TemplateName::InvitationAccepted.sample_context();
        ctx["accepted_by_name"] = name.into();
        ctx
    }

    #[test]
    fn templates_are_shareable_across_tasks() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<Templates>();
    }

    #[test]
    fn template_names_round_trip() {
        for name in TemplateName::ALL {
            assert_eq!(name.as_str().parse::<TemplateName>().unwrap(), name);
        }
        assert!("nope".parse::<TemplateName>().is_err());
    }

    #[test]
    fn locale_fallback_goes_exact_then_language_then_default() {
        let tree = TempTree::new(&["en-US", "fr", "fr-FR", "zh-TW"]);
        let t = Templates::load(&tree.0, "en-US").unwrap();
        assert_eq!(t.resolve_locale("fr-FR"), "fr-FR");
        assert_eq!(t.resolve_locale("fr-CA"), "fr");
        assert_eq!(t.resolve_locale("fr_ca"), "fr");
        assert_eq!(t.resolve_locale("zh-tw"), "zh-TW");
        assert_eq!(t.resolve_locale("zh-CN"), "en-US");
        assert_eq!(t.resolve_locale("de"), "en-US");
        assert_eq!(t.resolve_locale(""), "en-US");
        // A tag can never walk out of the templates directory.
        assert_eq!(t.resolve_locale("../etc"), "en-US");
        let r = t
            .render(
                TemplateName::InvitationAccepted,
                "fr-CA",
                &accepted_ctx("Zoé"),
            )
            .unwrap();
        assert_eq!(r.locale, "fr");
        assert_eq!(r.subject, "[fr] Zoé accepted");
        assert_eq!(r.html, "<p>Zoé/fr</p>");
    }

    #[test]
    fn missing_default_locale_is_an_error() {
        let tree = TempTree::new(&["fr-FR"]);
        let err = Templates::load(&tree.0, "en-US").unwrap_err();
        assert!(
            matches!(err, TemplateError::MissingDefaultLocale { .. }),
            "{err}"
        );
    }

    #[test]
    fn subject_is_one_line_and_html_is_escaped() {
        let tree = TempTree::new(&["en-US"]);
        let t = Templates::load(&tree.0, "en-US").unwrap();
        let r = t
            .render(
                TemplateName::InvitationAccepted,
                "en-US",
                &accepted_ctx("Eve\r\nBcc: evil@x.test <b>"),
            )
            .unwrap();
        assert_eq!(r.subject, "[en-US] Eve Bcc: evil@x.test <b> accepted");
        assert!(!r.subject.contains(['\r', '\n']));
        assert!(
            r.text.starts_with("Eve\r\nBcc: evil@x.test <b>"),
            "{}",
            r.text
        );
        assert_eq!(r.html, "<p>Eve\r\nBcc: evil@x.test &lt;b&gt;/en-US</p>");
    }

    #[test]
    fn strict_undefined_catches_missing_keys() {
        let tree = TempTree::new(&["en-US"]);
        let t = Templates::load(&tree.0, "en-US").unwrap();
        let mut ctx = accepted_ctx("Eve");
        ctx.as_object_mut().unwrap().remove("accepted_by_email");
        let err = t
            .render(TemplateName::InvitationAccepted, "en-US", &ctx)
            .unwrap_err();
        assert!(matches!(err, TemplateError::Render { .. }), "{err}");
        assert!(err.to_string().contains("invitation_accepted.txt"), "{err}");
        let err = t
            .render(TemplateName::InvitationAccepted, "en-US", &json!("x"))
            .unwrap_err();
        assert!(
            matches!(err, TemplateError::ContextNotObject { .. }),
            "{err}"
        );
    }

    #[test]
    fn html_escaping_keeps_slashes() {
        let tree = TempTree::new(&["en-US"]);
        let t = Templates::load(&tree.0, "en-US").unwrap();
        let r = t
            .render(
                TemplateName::InvitationAccepted,
                "en-US",
                &accepted_ctx("https://a.test/x?a=1&b='2'"),
            )
            .unwrap();
        assert_eq!(
            r.html,
            "<p>https://a.test/x?a=1&amp;b=&#x27;2&#x27;/en-US</p>"
        );
    }

    /// The shipped templates render in every locale with their sample contexts.
    #[test]
    fn shipped_templates_pass_check() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        let t = Templates::load(&dir, "en-US").unwrap();
        let locales: Vec<&str> = t.locales().collect();
        t.check(&locales).unwrap();
        let r = t
            .render(
                TemplateName::MemberInvitation,
                "en-US",
                &TemplateName::MemberInvitation.sample_context(),
            )
            .unwrap();
        assert_eq!(
            r.subject,
            "Ada Lovelace invited you to join Analytical Engines Ltd"
        );
        assert!(r.text.contains("November 29, 2026"), "{}", r.text);
        assert!(r.html.contains("November 29, 2026"), "{}", r.html);
        let r = t
            .render(
                TemplateName::InvitationAccepted,
                "en-US",
                &TemplateName::InvitationAccepted.sample_context(),
            )
            .unwrap();
        assert_eq!(r.subject, "Invitation accepted");
    }
}
