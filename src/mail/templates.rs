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

use super::contexts::{Brand, EmailContent};
use super::date::{format_date, format_datetime, zone_named};
use super::one_line;
use minijinja::syntax::SyntaxConfig;
use minijinja::{AutoEscape, Environment, Output, State, UndefinedBehavior, Value};

pub use crate::domain::TemplateName;

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

/// The locales R25 ships, each a directory under `templates/` holding every
/// template. Their order is also the order in which a language picks its
/// locale when a tag has no directory of its own (`fr-BE` -> `fr-FR`, see
/// `Templates::resolve_locale`).
pub const SHIPPED_LOCALES: [&str; 5] = ["en-US", "en-GB", "fr-FR", "fr-CA", "zh-TW"];

/// Files every locale directory needs besides the templates: the HTML layout,
/// the helper macros (`as_role`; French `de`) the templates import, and the
/// footer every email includes (the product and the support address, R41).
pub const SUPPORT_FILES: [&str; 4] = ["base.html", "helpers.txt", "footer.html", "footer.txt"];

/// Regions whose English is written the British way (spelling, day-first
/// dates): Britain itself, and those whose tags take `en-GB` before the
/// language's first locale (CLDR puts them under `en-001`, which follows
/// British usage). The `date` filter uses the same list.
pub(super) const BRITISH_ENGLISH_REGIONS: [&str; 9] =
    ["GB", "AU", "NZ", "IE", "ZA", "IN", "SG", "MT", "150"];

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    // The underlying errors are part of the message (not `#[source]`) so that a
    // plain `error = %e` log line already says which file and what went wrong.
    #[error("cannot read template directory {}: {error}", dir.display())]
    Io { dir: PathBuf, error: std::io::Error },
    #[error("default locale {locale:?} has no template directory under {}", dir.display())]
    MissingDefaultLocale { locale: String, dir: PathBuf },
    #[error("shipped locale {locale} has no template directory under {}", dir.display())]
    MissingLocale { locale: String, dir: PathBuf },
    #[error("locale {locale} has no {file} (every locale directory needs every template)")]
    MissingTemplate { locale: String, file: String },
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

/// What [`Templates::render_with_fallback`] rendered, and the locales that
/// failed before it, each with its error.
#[derive(Debug)]
pub struct Fallback {
    pub rendered: Rendered,
    pub failed: Vec<(String, String)>,
}

/// The loaded template set. Cheap to share behind an `Arc`; rendering takes `&self`.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
    dir: PathBuf,
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
        Templates::build(dir, locales, default_locale, Some(dir))
    }

    /// The templates built into the binary (`templates/` at compile time),
    /// for a daemon started where no template directory exists.
    pub fn embedded(default_locale: &str) -> Result<Templates, TemplateError> {
        let locales = EMBEDDED_TEMPLATES
            .iter()
            .filter_map(|(name, _)| name.split_once('/').map(|(l, _)| l.to_owned()))
            .collect();
        Templates::build(Path::new(EMBEDDED_DIR), locales, default_locale, None)
    }

    /// `dir` when it exists, else the built-in templates.
    pub fn load_or_embedded(dir: &Path, default_locale: &str) -> Result<Templates, TemplateError> {
        if dir.exists() {
            Templates::load(dir, default_locale)
        } else {
            Templates::embedded(default_locale)
        }
    }

    /// Whether these are the built-in templates.
    pub fn is_embedded(&self) -> bool {
        self.dir == Path::new(EMBEDDED_DIR)
    }

    fn build(
        dir: &Path,
        locales: BTreeSet<String>,
        default_locale: &str,
        on_disk: Option<&Path>,
    ) -> Result<Templates, TemplateError> {
        let default_locale = find_locale(&locales, default_locale)
            .ok_or_else(|| TemplateError::MissingDefaultLocale {
                locale: default_locale.to_owned(),
                dir: dir.to_owned(),
            })?
            .to_owned();

        let mut env = Environment::new();
        match on_disk {
            Some(dir) => env.set_loader(minijinja::path_loader(dir)),
            None => env.set_loader(|name: &str| {
                Ok(EMBEDDED_TEMPLATES
                    .iter()
                    .find(|(file, _)| *file == name)
                    .map(|(_, text)| (*text).to_owned()))
            }),
        }
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
        env.add_filter("datetime", datetime_filter);
        env.add_filter("quote", quote_filter);

        Ok(Templates {
            env,
            dir: dir.to_owned(),
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

    /// The locale whose templates are used for `requested` (R25's
    /// `fr-CA -> fr -> en-US`), in this order:
    ///
    /// 1. the tag itself, then the tag shortened one subtag at a time down to
    ///    its language (RFC 4647 lookup): `fr-CA`, then a `fr` directory if
    ///    there is one; `en-GB-oxendict` finds `en-GB`;
    /// 2. for English of a region that writes British English (`en-AU`,
    ///    `en-IE`, `en-IN`, ...): `en-GB`;
    /// 3. another locale of the same language and a compatible script: the
    ///    default locale if it is one, else the first in `SHIPPED_LOCALES`
    ///    order (`en` -> `en-US`, `fr-BE` -> `fr-FR`, `zh`/`zh-HK`/`zh-Hant`
    ///    -> `zh-TW`), else the first other directory alphabetically. Chinese
    ///    tags marked Simplified (`zh-CN`, `zh-SG`, `zh-Hans`) never get the
    ///    Traditional `zh-TW`: they are a different script, so CLDR does not
    ///    fall back between them either;
    /// 4. the default locale.
    ///
    /// Matching ignores case and accepts `_` for `-`. Only locales with a
    /// directory count, so a requested tag never reaches the file system.
    pub fn resolve_locale(&self, requested: &str) -> &str {
        let tag = requested.trim().replace('_', "-");
        let wanted = Subtags::parse(&tag);
        if wanted.language.is_empty() {
            return &self.default_locale;
        }
        // 1. Lookup by truncation; a singleton (`x` in `fr-x-foo`) goes with
        //    the subtag after it.
        let mut prefix = tag.as_str();
        loop {
            if let Some(found) = find_locale(&self.locales, prefix) {
                return found;
            }
            match prefix.rsplit_once('-') {
                Some((rest, _)) => {
                    prefix = match rest.rsplit_once('-') {
                        Some((before, last)) if last.len() == 1 => before,
                        _ if rest.len() == 1 => return &self.default_locale,
                        _ => rest,
                    }
                }
                None => break,
            }
        }
        // 2. British English regions.
        if wanted.language.eq_ignore_ascii_case("en")
            && wanted.region.is_some_and(|r| {
                BRITISH_ENGLISH_REGIONS
                    .iter()
                    .any(|b| b.eq_ignore_ascii_case(r))
            })
            && let Some(found) = find_locale(&self.locales, "en-GB")
        {
            return found;
        }
        // 3. A sibling of the same language and script.
        let sibling = |locale: &str| {
            let have = Subtags::parse(locale);
            have.language.eq_ignore_ascii_case(wanted.language)
                && match (wanted.script(), have.script()) {
                    (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                    _ => true,
                }
        };
        if sibling(&self.default_locale) {
            return &self.default_locale;
        }
        SHIPPED_LOCALES
            .iter()
            .filter_map(|l| find_locale(&self.locales, l))
            .chain(self.locales.iter().map(String::as_str))
            .find(|l| sibling(l))
            .unwrap_or(&self.default_locale)
    }

    /// Renders `name` for `locale` (after fallback). `ctx` must be a JSON object
    /// with the keys the template expects (see `mail::contexts`);
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

    /// The locales [`Templates::render_with_fallback`] tries for
    /// `requested`, in order and each once: the locale `resolve_locale`
    /// picks, the one it picks for the tag's language alone (`fr-CA`, then
    /// `fr-FR`), then the default locale.
    pub fn fallback_chain(&self, requested: &str) -> Vec<&str> {
        let tag = requested.trim().replace('_', "-");
        let language = tag.split('-').next().unwrap_or_default();
        let mut chain: Vec<&str> = Vec::with_capacity(3);
        for locale in [
            self.resolve_locale(requested),
            self.resolve_locale(language),
            self.default_locale.as_str(),
        ] {
            if !chain.contains(&locale) {
                chain.push(locale);
            }
        }
        chain
    }

    /// [`Templates::render`] that survives a template failing at run time
    /// (issue 12): when the locale's template fails for this context, the
    /// next locale of [`Templates::fallback_chain`] is tried. The answer
    /// names the failures that came before the one that rendered; only when
    /// every locale of the chain fails is the error the last failure's.
    pub fn render_with_fallback(
        &self,
        name: TemplateName,
        locale: &str,
        ctx: &serde_json::Value,
    ) -> Result<Fallback, TemplateError> {
        let mut failed = Vec::new();
        let mut last = None;
        for candidate in self.fallback_chain(locale) {
            match self.render(name, candidate, ctx) {
                Ok(rendered) => return Ok(Fallback { rendered, failed }),
                // A context that is not an object fails in every locale.
                Err(e @ TemplateError::ContextNotObject { .. }) => return Err(e),
                Err(e) => {
                    failed.push((candidate.to_owned(), e.to_string()));
                    last = Some(e);
                }
            }
        }
        Err(last.expect("the chain holds at least the default locale"))
    }

    /// Renders every template with its sample contexts in each of `locales`
    /// (after fallback), so a broken template fails at deploy time rather
    /// than on the first invitation.
    pub fn check(&self, locales: &[&str]) -> Result<(), TemplateError> {
        for locale in locales {
            for name in TemplateName::ALL {
                for content in EmailContent::samples(name) {
                    let context = content.render_context(&Brand::sample());
                    self.render(content.template(), locale, &context)?;
                }
            }
        }
        Ok(())
    }

    /// Where these templates come from, as `templates check` and `serve`
    /// name it.
    pub fn source(&self) -> String {
        if self.is_embedded() {
            "the templates built into the binary".to_string()
        } else {
            self.dir.display().to_string()
        }
    }

    /// [`Templates::check_all`] as one message: each problem on its line, then
    /// their count and [`Templates::source`]. `invited templates check` prints
    /// it, and `invited serve` refuses to start with it, so a template the
    /// check rejects never reaches an invitee.
    pub fn check_report(&self) -> Result<(), String> {
        let problems = self.check_all();
        if problems.is_empty() {
            return Ok(());
        }
        let mut report: Vec<String> = problems.iter().map(ToString::to_string).collect();
        report.push(format!(
            "{} template problem(s) in {}",
            problems.len(),
            self.source()
        ));
        Err(report.join("\n"))
    }

    /// What `invited templates check` runs: every locale of
    /// `SHIPPED_LOCALES` has its own directory, every locale directory has
    /// every template file (`<name>.subject.txt`, `.txt`, `.html`) and the
    /// `SUPPORT_FILES`, and every template renders with each of its sample
    /// contexts under strict undefined (a variable the contexts lack fails).
    /// The samples are values of the structs the service fills
    /// (`mail::contexts`), so this covers what is sent.
    /// Returns every problem found, not only the first; empty means good.
    pub fn check_all(&self) -> Vec<TemplateError> {
        let mut problems = Vec::new();
        for locale in SHIPPED_LOCALES {
            if find_locale(&self.locales, locale).is_none() {
                problems.push(TemplateError::MissingLocale {
                    locale: locale.to_owned(),
                    dir: self.dir.clone(),
                });
            }
        }
        for locale in &self.locales {
            let files = TemplateName::ALL
                .iter()
                .flat_map(|name| {
                    ["subject.txt", "txt", "html"].map(|suffix| format!("{name}.{suffix}"))
                })
                .chain(SUPPORT_FILES.map(String::from));
            let mut complete = true;
            for file in files {
                let present = if self.is_embedded() {
                    let name = format!("{locale}/{file}");
                    EMBEDDED_TEMPLATES.iter().any(|(f, _)| *f == name)
                } else {
                    self.dir.join(locale).join(&file).is_file()
                };
                if !present {
                    complete = false;
                    problems.push(TemplateError::MissingTemplate {
                        locale: locale.clone(),
                        file,
                    });
                }
            }
            if complete && let Err(e) = self.check(&[locale]) {
                problems.push(e);
            }
        }
        problems
    }
}

include!(concat!(env!("OUT_DIR"), "/embedded_templates.rs"));

/// How the built-in templates are named in messages.
const EMBEDDED_DIR: &str = "<built-in templates>";

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

/// The subtags of a language tag that locale fallback looks at.
#[derive(Debug, Clone, Copy)]
struct Subtags<'a> {
    language: &'a str,
    script: Option<&'a str>,
    region: Option<&'a str>,
}

impl<'a> Subtags<'a> {
    fn parse(tag: &'a str) -> Subtags<'a> {
        let mut parts = tag.split('-');
        let language = parts.next().unwrap_or_default();
        let (mut script, mut region) = (None, None);
        for part in parts {
            let alpha = part.chars().all(|c| c.is_ascii_alphabetic());
            let digits = part.chars().all(|c| c.is_ascii_digit());
            if part.len() == 4 && alpha && script.is_none() && region.is_none() {
                script = Some(part);
            } else if region.is_none()
                && ((part.len() == 2 && alpha) || (part.len() == 3 && digits))
            {
                region = Some(part);
            } else {
                break;
            }
        }
        Subtags {
            language,
            script,
            region,
        }
    }

    /// The script: explicit (`zh-Hant`), or implied by the region for Chinese
    /// (`zh-TW`, `zh-HK`, `zh-MO` are Traditional; `zh-CN`, `zh-SG`, `zh-MY`
    /// Simplified). `None` when the tag does not say.
    fn script(&self) -> Option<&'a str> {
        if self.script.is_some() || !self.language.eq_ignore_ascii_case("zh") {
            return self.script;
        }
        let region = self.region?.to_ascii_uppercase();
        match region.as_str() {
            "TW" | "HK" | "MO" => Some("Hant"),
            "CN" | "SG" | "MY" => Some("Hans"),
            _ => None,
        }
    }
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

/// `{{ expires_at|datetime }}`: an RFC 3339 string as date and time in the
/// reader's zone, named (R41). The locale and the zone come from the
/// context (`locale`, which rendering adds, and `time_zone`); a missing,
/// `null` or unknown `time_zone` writes UTC and says so.
fn datetime_filter(state: &State, value: &str) -> Result<String, minijinja::Error> {
    let locale = state
        .lookup("locale")
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let zone = state
        .lookup("time_zone")
        .and_then(|v| v.as_str().and_then(zone_named));
    format_datetime(value, &locale, zone).map_err(|e| {
        minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("datetime filter: {value:?} is not an RFC 3339 timestamp: {e}"),
        )
    })
}

/// `{{ message|quote }}`: the text with every line prefixed by `> `, as mail
/// quotes (R40). In a text part a personal message is otherwise
/// indistinguishable from the email's own words, so a line in it such as
/// "Accept here: https://..." could pass for the real link. Every character
/// a mail client may show as a line break (CR, LF, CRLF, VT, FF, NEL, U+2028,
/// U+2029) starts a new quoted line, so no line escapes the quote.
fn quote_filter(value: &str) -> String {
    const BREAKS: [char; 7] = [
        '\r', '\n', '\u{0b}', '\u{0c}', '\u{85}', '\u{2028}', '\u{2029}',
    ];
    value
        .replace("\r\n", "\n")
        .trim_end()
        .split(BREAKS)
        // `>` alone on an empty line, as mail clients write it.
        .map(|line| match line.trim_end() {
            "" => ">".to_string(),
            line => format!("> {line}"),
        })
        .collect::<Vec<_>>()
        .join("\n")
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
    use serde_json::json;

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

    fn shipped() -> Templates {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        Templates::load(&dir, "en-US").unwrap()
    }

    /// `invited templates check` passes on the shipped tree: the five R25
    /// locales, each with every template, rendering every sample context.
    #[test]
    fn every_shipped_locale_has_every_template_and_renders() {
        let t = shipped();
        let problems: Vec<String> = t.check_all().iter().map(|e| e.to_string()).collect();
        assert!(problems.is_empty(), "{problems:#?}");
        assert_eq!(
            t.locales().collect::<BTreeSet<_>>(),
            SHIPPED_LOCALES.into_iter().collect::<BTreeSet<_>>()
        );
        for locale in SHIPPED_LOCALES {
            assert_eq!(t.resolve_locale(locale), locale);
        }
    }

    #[test]
    fn check_all_names_missing_locales_and_templates() {
        // Only invitation_accepted and base.html, only two locales.
        let tree = TempTree::new(&["en-US", "fr-FR"]);
        let t = Templates::load(&tree.0, "en-US").unwrap();
        let problems: Vec<String> = t.check_all().iter().map(|e| e.to_string()).collect();
        for locale in ["en-GB", "fr-CA", "zh-TW"] {
            assert!(
                problems
                    .iter()
                    .any(|p| p.starts_with(&format!("shipped locale {locale} "))),
                "{problems:#?}"
            );
        }
        assert!(
            problems.contains(&"locale fr-FR has no partner_request.subject.txt (every locale directory needs every template)".to_owned()),
            "{problems:#?}"
        );
        assert!(
            problems.contains(
                &"locale en-US has no helpers.txt (every locale directory needs every template)"
                    .to_owned()
            ),
            "{problems:#?}"
        );
    }

    #[test]
    fn r25_subjects_are_exact_in_every_locale() {
        let t = shipped();
        let table = [
            (
                "en-US",
                "You have a new partner request!",
                "Invitation accepted",
            ),
            (
                "en-GB",
                "You have a new partner request!",
                "Invitation accepted",
            ),
            (
                "fr-FR",
                "Vous avez une nouvelle demande de partenariat !",
                "Invitation acceptée",
            ),
            (
                "fr-CA",
                "Vous avez une nouvelle demande de partenariat !",
                "Invitation acceptée",
            ),
            ("zh-TW", "您有一項新的合作夥伴請求!", "已接受邀請"),
        ];
        for (locale, partner, accepted) in table {
            for name in [
                TemplateName::PartnerInvitation,
                TemplateName::PartnerRequest,
            ] {
                for ctx in name.sample_contexts() {
                    let r = t.render(name, locale, &ctx).unwrap();
                    assert_eq!(r.locale, locale);
                    assert_eq!(r.subject, partner, "{name} in {locale}");
                }
            }
            for ctx in TemplateName::InvitationAccepted.sample_contexts() {
                let r = t
                    .render(TemplateName::InvitationAccepted, locale, &ctx)
                    .unwrap();
                assert_eq!(r.subject, accepted, "{locale}");
            }
        }
    }

    #[test]
    fn other_subjects_read_naturally_per_locale() {
        let t = shipped();
        let subject = |name: TemplateName, locale| {
            t.render(name, locale, &name.sample_context())
                .unwrap()
                .subject
        };
        let member = TemplateName::MemberInvitation;
        let reminder = TemplateName::Reminder;
        assert_eq!(
            subject(member, "en-GB"),
            "Ada Lovelace invited you to join Analytical Engines Ltd"
        );
        assert_eq!(
            subject(member, "fr-FR"),
            "Ada Lovelace vous invite à rejoindre Analytical Engines Ltd"
        );
        assert_eq!(
            subject(member, "fr-CA"),
            "Ada Lovelace vous invite à vous joindre à Analytical Engines Ltd"
        );
        assert_eq!(
            subject(member, "zh-TW"),
            "Ada Lovelace邀請您加入「Analytical Engines Ltd」"
        );
        assert_eq!(
            subject(reminder, "fr-FR"),
            "Rappel : Ada Lovelace vous invite à rejoindre Analytical Engines Ltd"
        );
        assert_eq!(
            subject(reminder, "zh-TW"),
            "提醒：Ada Lovelace邀請您加入「Analytical Engines Ltd」"
        );
    }

    /// Every email with an expiry writes it the way its locale writes dates
    /// and times, in the recipient's zone, in both parts (R41).
    #[test]
    fn dates_are_written_the_locale_way() {
        let t = shipped();
        // The member samples are for Los Angeles, the partner ones for Paris.
        let expected = [
            (
                "en-US",
                "November 29, 2026 at 2:00 AM PST",
                "November 29, 2026 at 11:00 AM CET",
            ),
            (
                "en-GB",
                "29 November 2026 at 02:00 PST",
                "29 November 2026 at 11:00 CET",
            ),
            (
                "fr-FR",
                "29\u{a0}novembre 2026 à 2\u{a0}h\u{a0}00\u{a0}UTC\u{2212}8",
                "29\u{a0}novembre 2026 à 11\u{a0}h\u{a0}00\u{a0}UTC+1",
            ),
            (
                "fr-CA",
                "29\u{a0}novembre 2026 à 2\u{a0}h\u{a0}00\u{a0}UTC\u{2212}8",
                "29\u{a0}novembre 2026 à 11\u{a0}h\u{a0}00\u{a0}UTC+1",
            ),
            (
                "zh-TW",
                "2026年11月29日 上午2:00（UTC\u{2212}8）",
                "2026年11月29日 上午11:00（UTC+1）",
            ),
        ];
        for (locale, member, partner) in expected {
            for (name, date) in [
                (TemplateName::MemberInvitation, member),
                (TemplateName::Reminder, member),
                (TemplateName::PartnerInvitation, partner),
                (TemplateName::PartnerRequest, partner),
            ] {
                let r = t.render(name, locale, &name.sample_context()).unwrap();
                assert!(r.text.contains(date), "{name} {locale}:\n{}", r.text);
                assert!(r.html.contains(date), "{name} {locale}:\n{}", r.html);
            }
        }
        let mut ctx = TemplateName::PartnerRequest.sample_context();
        ctx["expires_at"] = "2026-12-01T08:00:00Z".into();
        let r = t
            .render(TemplateName::PartnerRequest, "fr-CA", &ctx)
            .unwrap();
        assert!(
            r.text
                .contains("Elle expire le 1er\u{a0}décembre 2026 à 9\u{a0}h\u{a0}00\u{a0}UTC+1."),
            "{}",
            r.text
        );
    }

    /// Issue 13's case: an invitation expiring 2026-12-09 03:39 UTC stops
    /// working on December 8 at 19:39 in Los Angeles, and says so; without
    /// a zone (`null`, or a row queued before the key existed) it says UTC.
    #[test]
    fn the_expiry_is_in_the_recipients_zone_or_says_utc() {
        let t = shipped();
        let name = TemplateName::MemberInvitation;
        let mut ctx = name.sample_context();
        ctx["expires_at"] = "2026-12-09T03:39:00+00:00".into();
        ctx["time_zone"] = "America/Los_Angeles".into();
        let r = t.render(name, "en-US", &ctx).unwrap();
        assert!(
            r.text
                .contains("This invitation expires on December 8, 2026 at 7:39 PM PST."),
            "{}",
            r.text
        );
        ctx["time_zone"] = serde_json::Value::Null;
        let utc = "This invitation expires on December 9, 2026 at 3:39 AM UTC.";
        let r = t.render(name, "en-US", &ctx).unwrap();
        assert!(r.text.contains(utc), "{}", r.text);
        assert!(r.html.contains(utc), "{}", r.html);
        ctx.as_object_mut().unwrap().remove("time_zone");
        let r = t.render(name, "en-US", &ctx).unwrap();
        assert!(r.text.contains(utc), "{}", r.text);
    }

    /// R40: the decline link besides the accept button, the partner button,
    /// the personal message quoted line by line in the text part; R41: the
    /// product in the body and the footer, the support address in the
    /// footer; in every locale.
    #[test]
    fn every_email_leads_somewhere_and_names_the_product() {
        let t = shipped();
        for locale in SHIPPED_LOCALES {
            for name in [TemplateName::MemberInvitation, TemplateName::Reminder] {
                let r = t.render(name, locale, &name.sample_context()).unwrap();
                let decline = "https://app.example.test/invitations/decline?token=sample";
                assert!(
                    r.text.contains(&format!("\n{decline}\n")),
                    "{name} {locale}:\n{}",
                    r.text
                );
                assert!(
                    r.html.contains(&format!("href=\"{decline}\"")),
                    "{name} {locale}:\n{}",
                    r.html
                );
                assert!(
                    r.text.contains(
                        "\n> Looking forward to working with you!\n> See you on Monday.\n"
                    ),
                    "{name} {locale}:\n{}",
                    r.text
                );
                assert!(r.html.contains("<blockquote"), "{name} {locale}");
            }
            for name in [
                TemplateName::PartnerInvitation,
                TemplateName::PartnerRequest,
            ] {
                let r = t.render(name, locale, &name.sample_context()).unwrap();
                let url = "https://app.example.test/partners/invitations/0190aaaa-0000-7000-8000-000000000000";
                assert!(
                    r.text.contains(&format!("\n{url}\n")),
                    "{name} {locale}:\n{}",
                    r.text
                );
                assert!(
                    r.html.contains(&format!("<a href=\"{url}\"")),
                    "{name} {locale}:\n{}",
                    r.html
                );
                assert!(
                    r.text
                        .contains("\n> We would love to work with your team on our profiles.\n"),
                    "{name} {locale}:\n{}",
                    r.text
                );
            }
            for name in TemplateName::ALL {
                let r = t.render(name, locale, &name.sample_context()).unwrap();
                for part in [&r.text, &r.html] {
                    assert!(
                        part.contains("Analytical Invitations"),
                        "{name} {locale}:\n{part}"
                    );
                    assert!(
                        part.contains("help@example.test"),
                        "{name} {locale}:\n{part}"
                    );
                }
                assert!(
                    r.html.contains("href=\"mailto:help@example.test\""),
                    "{name} {locale}"
                );
                assert!(r.text.contains("\n-- \n"), "{name} {locale}:\n{}", r.text);
                // Without a support address, no support line.
                let mut ctx = name.sample_context();
                ctx["support_address"] = serde_json::Value::Null;
                let r = t.render(name, locale, &ctx).unwrap();
                assert!(!r.text.contains("help@example.test"), "{name} {locale}");
                assert!(!r.html.contains("mailto:"), "{name} {locale}");
            }
            // The product is named in the body, not only in the footer.
            for name in TemplateName::ALL {
                for ctx in name.sample_contexts() {
                    let r = t.render(name, locale, &ctx).unwrap();
                    let body = r.text.split("\n-- \n").next().unwrap();
                    assert!(
                        body.contains("Analytical Invitations"),
                        "{name} {locale}:\n{body}"
                    );
                    let body = r.html.split("font-size:13px").next().unwrap();
                    assert!(
                        body.contains("Analytical Invitations"),
                        "{name} {locale}:\n{body}"
                    );
                }
            }
        }
    }

    /// A copy of the shipped templates whose `locales`' member invitation
    /// fails at run time for one business ("Boom Corp") only: it passes
    /// `check`, whose samples name another business.
    fn booby_trapped(locales: &[&str]) -> TempTree {
        let tree =
            TempTree(std::env::temp_dir().join(format!("invited-tpl-{}", uuid::Uuid::now_v7())));
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        for locale in SHIPPED_LOCALES {
            std::fs::create_dir_all(tree.0.join(locale)).unwrap();
            for entry in std::fs::read_dir(shipped.join(locale)).unwrap() {
                let entry = entry.unwrap();
                std::fs::copy(entry.path(), tree.0.join(locale).join(entry.file_name())).unwrap();
            }
        }
        for locale in locales {
            let file = tree.0.join(locale).join("member_invitation.txt");
            let text = std::fs::read_to_string(&file).unwrap();
            std::fs::write(
                &file,
                format!("{{% if business_name == \"Boom Corp\" %}}{{{{ no_such_key }}}}{{% endif %}}{text}"),
            )
            .unwrap();
        }
        tree
    }

    /// Issue 12: a template that fails at run time falls back along the
    /// locale chain; only when every locale fails is it an error.
    #[test]
    fn a_template_failing_at_run_time_falls_back_along_the_chain() {
        let tree = booby_trapped(&["fr-FR"]);
        let t = Templates::load(&tree.0, "en-US").unwrap();
        assert!(t.check_all().is_empty());
        assert_eq!(t.fallback_chain("fr-FR"), ["fr-FR", "en-US"]);
        assert_eq!(t.fallback_chain("fr-CA"), ["fr-CA", "fr-FR", "en-US"]);
        assert_eq!(t.fallback_chain("de"), ["en-US"]);
        let name = TemplateName::MemberInvitation;
        let mut ctx = name.sample_context();
        ctx["business_name"] = "Boom Corp".into();
        assert!(t.render(name, "fr-FR", &ctx).is_err());
        let done = t.render_with_fallback(name, "fr-FR", &ctx).unwrap();
        assert_eq!(done.rendered.locale, "en-US");
        assert_eq!(done.failed.len(), 1);
        assert_eq!(done.failed[0].0, "fr-FR");
        assert!(
            done.failed[0].1.contains("fr-FR/member_invitation.txt"),
            "{:?}",
            done.failed
        );
        assert!(done.rendered.text.contains("invited you to join Boom Corp"));
        // No failure, no fallback.
        let done = t
            .render_with_fallback(name, "fr-FR", &name.sample_context())
            .unwrap();
        assert_eq!(done.rendered.locale, "fr-FR");
        assert!(done.failed.is_empty());

        let tree = booby_trapped(&["fr-FR", "en-US"]);
        let t = Templates::load(&tree.0, "en-US").unwrap();
        let err = t.render_with_fallback(name, "fr-FR", &ctx).unwrap_err();
        assert!(
            err.to_string().contains("en-US/member_invitation.txt"),
            "{err}"
        );
    }

    /// Rows queued before R40/R41 (no `inviter_email`, `time_zone` or
    /// `partner_request`) still render after `prepare`, the expiry in UTC.
    #[test]
    fn rows_queued_before_r41_still_render() {
        let t = shipped();
        for name in TemplateName::ALL {
            for mut ctx in name.sample_contexts() {
                let map = ctx.as_object_mut().unwrap();
                for key in ["inviter_email", "time_zone", "partner_request"] {
                    map.remove(key);
                }
                let has_expiry = map.contains_key("expires_at");
                for locale in SHIPPED_LOCALES {
                    let r = t.render(name, locale, &ctx).unwrap();
                    if has_expiry {
                        assert!(r.text.contains("UTC"), "{name} {locale}:\n{}", r.text);
                    }
                }
            }
        }
    }

    /// A line of the personal message cannot pass for the email's own
    /// words: whatever breaks the line, the next line is quoted too.
    #[test]
    fn quote_prefixes_every_line() {
        assert_eq!(quote_filter("one"), "> one");
        assert_eq!(quote_filter("a\r\n\r\nb\n"), "> a\n>\n> b");
        assert_eq!(
            quote_filter("x\rAccept here: https://evil.test\u{2028}y\u{85}z\u{0b}w"),
            "> x\n> Accept here: https://evil.test\n> y\n> z\n> w"
        );
    }

    /// The review's wording fixes: the en-US reminder says "as a manager";
    /// every reminder and invitation names the role with its article.
    #[test]
    fn reminders_name_the_role_with_its_article() {
        let t = shipped();
        for (locale, phrase) in [
            ("en-US", " as a manager "),
            ("en-GB", " as a manager "),
            ("fr-FR", " en tant que gestionnaire "),
            ("fr-CA", " en tant que gestionnaire "),
            ("zh-TW", "以管理者身分"),
        ] {
            for name in [TemplateName::Reminder, TemplateName::MemberInvitation] {
                let r = t.render(name, locale, &name.sample_context()).unwrap();
                assert!(r.text.contains(phrase), "{name} {locale}:\n{}", r.text);
                assert!(r.html.contains(phrase), "{name} {locale}:\n{}", r.html);
            }
        }
    }

    #[test]
    fn fallback_chain_with_the_shipped_locales() {
        let t = shipped();
        for (requested, resolved) in [
            ("fr-CA", "fr-CA"),
            ("FR_ca", "fr-CA"),
            ("fr", "fr-FR"),
            ("fr-BE", "fr-FR"),
            ("fr-CH", "fr-FR"),
            ("fr-CA-x-quebec", "fr-CA"),
            ("fr-x-foo", "fr-FR"),
            ("en", "en-US"),
            ("en-CA", "en-US"),
            ("en-AU", "en-GB"),
            ("en-IE", "en-GB"),
            ("en-IN", "en-GB"),
            ("en-GB-oxendict", "en-GB"),
            ("zh", "zh-TW"),
            ("zh-HK", "zh-TW"),
            ("zh-Hant", "zh-TW"),
            ("zh-Hant-HK", "zh-TW"),
            ("zh-CN", "en-US"),
            ("zh-Hans", "en-US"),
            ("zh-SG", "en-US"),
            ("de-DE", "en-US"),
            ("x-private", "en-US"),
            ("", "en-US"),
            ("../etc", "en-US"),
        ] {
            assert_eq!(t.resolve_locale(requested), resolved, "{requested}");
        }
        // The configured default wins among the locales of its own language.
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        let gb = Templates::load(&dir, "en-GB").unwrap();
        assert_eq!(gb.resolve_locale("en"), "en-GB");
        assert_eq!(gb.resolve_locale("en-CA"), "en-GB");
        assert_eq!(gb.resolve_locale("en-US"), "en-US");
        assert_eq!(gb.resolve_locale("de"), "en-GB");
        assert_eq!(gb.resolve_locale("fr-BE"), "fr-FR");
    }

    #[test]
    fn invitation_accepted_names_the_role_or_the_partner() {
        let t = shipped();
        let name = TemplateName::InvitationAccepted;
        let [member, partner, request] =
            <[serde_json::Value; 3]>::try_from(name.sample_contexts()).unwrap();
        let r = t.render(name, "en-US", &member).unwrap();
        assert!(
            r.text
                .contains("joined Analytical Engines Ltd as a manager on Analytical Invitations."),
            "{}",
            r.text
        );
        let r = t.render(name, "fr-FR", &member).unwrap();
        assert!(
            r.text
                .contains("a rejoint Analytical Engines Ltd en tant que gestionnaire sur Analytical Invitations."),
            "{}",
            r.text
        );
        let r = t.render(name, "zh-TW", &member).unwrap();
        assert!(
            r.text.contains(
                "並透過「Analytical Invitations」以管理者身分加入「Analytical Engines Ltd」。"
            ),
            "{}",
            r.text
        );
        for locale in SHIPPED_LOCALES {
            let r = t.render(name, locale, &partner).unwrap();
            for part in [&r.text, &r.html] {
                assert!(part.contains("Compiler Agency"), "{locale}:\n{part}");
                for role in ["manager", "gestionnaire", "管理者"] {
                    assert!(!part.contains(role), "{locale}:\n{part}");
                }
            }
        }
        // An accepted partner request is called a request, an accepted
        // partner invitation an invitation, in every locale (issue 13).
        for (locale, invitation, request_words) in [
            ("en-US", "your partner invitation", "your partner request"),
            ("en-GB", "your partner invitation", "your partner request"),
            (
                "fr-FR",
                "votre invitation de partenariat",
                "votre demande de partenariat",
            ),
            (
                "fr-CA",
                "votre invitation de partenariat",
                "votre demande de partenariat",
            ),
            ("zh-TW", "您的合作夥伴邀請", "您的合作夥伴請求"),
        ] {
            let r = t.render(name, locale, &partner).unwrap();
            assert!(r.text.contains(invitation), "{locale}:\n{}", r.text);
            assert!(r.html.contains(invitation), "{locale}:\n{}", r.html);
            let r = t.render(name, locale, &request).unwrap();
            for part in [&r.text, &r.html] {
                assert!(part.contains(request_words), "{locale}:\n{part}");
                assert!(!part.contains(invitation), "{locale}:\n{part}");
            }
            // Rows queued before `partner_request` existed: an invitation.
            let mut legacy = partner.clone();
            legacy.as_object_mut().unwrap().remove("partner_request");
            assert_eq!(
                t.render(name, locale, &legacy).unwrap(),
                t.render(name, locale, &partner).unwrap()
            );
        }
        // Rows queued before `partner_business_name` existed still render.
        let mut legacy = member.clone();
        legacy
            .as_object_mut()
            .unwrap()
            .remove("partner_business_name");
        for locale in SHIPPED_LOCALES {
            assert_eq!(
                t.render(name, locale, &legacy).unwrap(),
                t.render(name, locale, &member).unwrap()
            );
        }
        // A role outside the presets shows by its key.
        let mut custom = member;
        custom["role"] = "campaign_lead".into();
        let r = t.render(name, "fr-CA", &custom).unwrap();
        assert!(
            r.text.contains(
                "fait maintenant partie d’Analytical Engines Ltd avec le rôle «\u{a0}campaign_lead\u{a0}» sur Analytical Invitations."
            ),
            "{}",
            r.text
        );
    }

    /// R30 in another locale than en-US: the personal message is escaped in
    /// the HTML part and as typed in the text part.
    #[test]
    fn personal_message_is_escaped_in_html_and_typed_in_text() {
        let t = shipped();
        let evil = "<script>alert('x')</script> & co";
        for (name, locale) in [
            (TemplateName::PartnerRequest, "zh-TW"),
            (TemplateName::PartnerInvitation, "fr-FR"),
            (TemplateName::MemberInvitation, "fr-CA"),
            (TemplateName::Reminder, "en-GB"),
        ] {
            let mut ctx = name.sample_context();
            ctx["message"] = evil.into();
            ctx["inviter_name"] = "<b>Eve</b>".into();
            let r = t.render(name, locale, &ctx).unwrap();
            assert!(r.text.contains(evil), "{name} {locale}:\n{}", r.text);
            assert!(
                r.html
                    .contains("&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; co"),
                "{name} {locale}:\n{}",
                r.html
            );
            assert!(!r.html.contains("<script"), "{name} {locale}");
            assert!(!r.html.contains("<b>Eve"), "{name} {locale}");
        }
    }
}
