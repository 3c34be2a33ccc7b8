//! docs/ stays true to the daemon. Each test reads a document and the code
//! (or the built binary) it describes and fails when they part:
//!
//! - docs/configuration.md: its table of keys against what
//!   `invited check-config` prints and what the loader accepts;
//! - docs/rules.md: every rule number cited in the repository has its heading;
//! - docs/api.md: every route of the router is there;
//! - docs/operations.md: every metric the daemon exports is there.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(relative: &str) -> String {
    let path = Path::new(ROOT).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

// ---------------------------------------------------------------------------
// docs/configuration.md

/// One row of the table of keys.
#[derive(Debug)]
struct DocRow {
    key: String,
    /// The `INVITED_*` variables named in the row (none for file-only keys).
    env: Vec<String>,
    /// The TOML value `check-config` prints, or `None` for *unset* / *none*.
    default: Option<String>,
}

/// The text between the first pair of backticks, if any.
fn first_code(cell: &str) -> Option<&str> {
    let start = cell.find('`')? + 1;
    let len = cell[start..].find('`')?;
    Some(&cell[start..start + len])
}

/// The rows of the table headed `| Key | Environment | Default | Meaning |`.
fn documented_keys() -> Vec<DocRow> {
    let text = read("docs/configuration.md");
    let mut rows = Vec::new();
    let mut in_table = false;
    for line in text.lines() {
        if line.starts_with("| Key | Environment | Default |") {
            in_table = true;
            continue;
        }
        if !in_table || line.starts_with("|---") {
            continue;
        }
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").collect();
        assert!(cells.len() >= 4, "a row of four cells: {line}");
        let key = first_code(cells[0]).unwrap_or_else(|| panic!("no key in {line}"));
        let env = cells[1]
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|name| name.starts_with("INVITED_"))
            .map(str::to_owned)
            .collect();
        let default = first_code(cells[2]).map(str::to_owned);
        if default.is_none() {
            assert!(
                cells[2].contains("*unset*") || cells[2].contains("*none*"),
                "{key}: the default is a `value`, *unset* or *none*: {line}"
            );
        }
        rows.push(DocRow {
            key: key.to_owned(),
            env,
            default,
        });
    }
    assert!(
        rows.len() >= 30,
        "the table of keys was not found: {rows:?}"
    );
    rows
}

/// `invited check-config` in an empty directory, with no setting inherited
/// from this process's environment.
fn check_config(file: Option<&str>, env: &[(String, String)]) -> Result<String, String> {
    let dir = std::env::temp_dir().join(format!("invited-docs-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_invited"));
    command.current_dir(&dir).arg("check-config");
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().to_string();
        if name.to_ascii_uppercase().starts_with("INVITED_") || name == "DATABASE_URL" {
            command.env_remove(name);
        }
    }
    if let Some(text) = file {
        let path: PathBuf = dir.join("invited.toml");
        std::fs::write(&path, text).unwrap();
        command.arg("--config").arg(&path);
    }
    command.envs(env.iter().map(|(k, v)| (k, v)));
    let output = command.output().expect("invited runs");
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if output.status.success() {
        Ok(stdout)
    } else {
        Err(format!("{stderr}{stdout}"))
    }
}

/// The keys of `check-config`'s output with their values as printed:
/// `section.key` for `[section]`, `webhooks[].key` under `[[webhooks]]`; a
/// list written over several lines (`keys = [` … `]`) is one value.
fn printed_keys(text: &str) -> BTreeMap<String, String> {
    let mut keys = BTreeMap::new();
    let mut section = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix("[[").and_then(|l| l.strip_suffix("]]")) {
            section = format!("{name}[]");
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let (key, value) = line
            .split_once(" = ")
            .unwrap_or_else(|| panic!("not `key = value`: {line}"));
        let mut value = value.to_owned();
        if value == "[" {
            for more in lines.by_ref() {
                value.push_str(more.trim());
                if more.trim() == "]" {
                    break;
                }
            }
        }
        keys.insert(format!("{section}.{key}"), value);
    }
    keys
}

/// What a TOML value printed by `check-config` is in the environment:
/// strings unquoted, lists comma-separated.
fn env_form(toml_value: &str) -> String {
    let unquote = |s: &str| s.trim().trim_matches('"').to_owned();
    match toml_value
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
    {
        Some(items) => items
            .split(',')
            .map(unquote)
            .filter(|item| !item.is_empty())
            .collect::<Vec<_>>()
            .join(","),
        None => unquote(toml_value),
    }
}

/// The variable of a key: `INVITED_<SECTION>__<KEY>`.
fn env_name(key: &str) -> String {
    format!("INVITED_{}", key.replace('.', "__").to_ascii_uppercase())
}

/// Values for the keys that have no default, to show that the loader takes
/// them. A key documented as *unset* or *none* needs one here.
fn sample(key: &str) -> Option<&'static str> {
    Some(match key {
        "smtp.url" => "[smtp]\nurl = \"smtp://relay.example.com:2525\"\n",
        "nats.url" => "[nats]\nurl = \"nats://127.0.0.1:4222\"\n",
        // One `[mail]` table for both: TOML refuses a table twice.
        "mail.support_address" | "mail.return_path" => concat!(
            "[mail]\nsupport_address = \"help@example.com\"\n",
            "return_path = \"bounces+{id}@bounces.example.com\"\n"
        ),
        "mail.dkim.domain" | "mail.dkim.selector" | "mail.dkim.private_key_file" => concat!(
            "[mail.dkim]\ndomain = \"example.com\"\nselector = \"s1\"\nprivate_key_file = \"",
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/dkim-ed25519-sample.pem\"\n"
        ),
        // One `[feedback]` table (with its subtables) for all of them.
        "feedback.smtp_listen"
        | "feedback.postmark.username"
        | "feedback.postmark.password"
        | "feedback.sendgrid.public_key"
        | "feedback.mailgun.signing_key"
        | "feedback.resend.secret" => concat!(
            "[feedback]\nsmtp_listen = \"127.0.0.1:2525\"\n",
            "postmark = { username = \"postmark\", password = \"s3cret\" }\n",
            "sendgrid = { public_key = \"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA==\" }\n",
            "mailgun = { signing_key = \"key-0123456789abcdef\" }\n",
            "resend = { secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\" }\n",
        ),
        "domains.resolver" => "[domains]\nresolver = \"127.0.0.1:5353\"\n",
        "webhooks.endpoints[].url" | "webhooks.endpoints[].secret" => {
            "[[webhooks.endpoints]]\nurl = \"https://hooks.example.com/invited\"\nsecret = \"0123456789abcdef\"\n"
        }
        _ => return None,
    })
}

#[test]
fn docs_configuration_lists_every_key_with_its_real_default() {
    let rows = documented_keys();
    let defaults = printed_keys(&check_config(None, &[]).expect("the defaults load"));

    // Every key `check-config` prints, including those that only appear once
    // set, is documented, and no key is documented twice.
    let mut all_samples = String::new();
    for row in &rows {
        if let Some(text) = sample(&row.key)
            && !all_samples.contains(text)
        {
            all_samples.push_str(text);
        }
    }
    let with_samples =
        printed_keys(&check_config(Some(&all_samples), &[]).expect("the samples load"));
    let printed: BTreeSet<&String> = defaults.keys().chain(with_samples.keys()).collect();
    let documented: BTreeSet<&String> = rows.iter().map(|row| &row.key).collect();
    assert_eq!(documented.len(), rows.len(), "a key is documented twice");
    let undocumented: Vec<_> = printed.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "keys of the configuration missing from docs/configuration.md: {undocumented:?}"
    );

    // Every documented default is the real one.
    for row in &rows {
        match &row.default {
            Some(default) => assert_eq!(
                defaults.get(&row.key),
                Some(default),
                "docs/configuration.md: the default of {}",
                row.key
            ),
            None => {
                assert!(
                    !defaults.contains_key(&row.key),
                    "docs/configuration.md says {} has no default, but check-config prints {:?}",
                    row.key,
                    defaults[&row.key]
                );
                assert!(
                    sample(&row.key).is_some(),
                    "{}: add a sample value to tests/docs.rs",
                    row.key
                );
            }
        }
    }

    // Every documented key is one the loader takes (an unknown key stops
    // it), in the file: each default written out loads as the defaults...
    let mut file = String::new();
    let mut section = "";
    for row in &rows {
        let (Some(default), Some((sec, key))) = (&row.default, row.key.split_once('.')) else {
            continue;
        };
        if sec != section {
            file.push_str(&format!("[{sec}]\n"));
            section = sec;
        }
        file.push_str(&format!("{key} = {default}\n"));
    }
    let from_file = check_config(Some(&file), &[])
        .unwrap_or_else(|e| panic!("docs/configuration.md's defaults as a file: {e}\n{file}"));
    assert_eq!(printed_keys(&from_file), defaults, "{file}");

    // ...and in the environment, under the documented variable names.
    let mut env = Vec::new();
    for row in &rows {
        if row.key.contains("[]") {
            assert!(row.env.is_empty(), "{}: lists have no variable", row.key);
            continue;
        }
        assert_eq!(
            row.env.first(),
            Some(&env_name(&row.key)),
            "docs/configuration.md: the variable of {}",
            row.key
        );
        if let Some(default) = &row.default {
            env.push((env_name(&row.key), env_form(default)));
        }
    }
    let from_env = check_config(None, &env)
        .unwrap_or_else(|e| panic!("docs/configuration.md's defaults as variables: {e}"));
    assert_eq!(printed_keys(&from_env), defaults, "{env:?}");

    // The loader does refuse what it does not know, so the above means
    // something.
    assert!(check_config(Some("[smtp]\nno_such_key = 1\n"), &[]).is_err());
    assert!(check_config(None, &[("INVITED_SMTP__NO_SUCH_KEY".into(), "1".into())]).is_err());
}

// ---------------------------------------------------------------------------
// docs/rules.md

/// Every `R<n>` in a text.
fn rule_numbers(text: &str) -> BTreeSet<u32> {
    let bytes = text.as_bytes();
    let mut found = BTreeSet::new();
    for (i, _) in text.match_indices('R') {
        let before_ok = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        let digits: String = text[i + 1..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        let after = text[i + 1 + digits.len()..].chars().next();
        let after_ok = after.is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
        if before_ok && after_ok && (1..=2).contains(&digits.len()) {
            found.insert(digits.parse().unwrap());
        }
    }
    found
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn docs_rules_has_a_heading_for_every_rule_the_repository_cites() {
    let rules = read("docs/rules.md");
    let headings: BTreeSet<u32> = rules
        .lines()
        .filter_map(|line| line.strip_prefix("## R"))
        .filter_map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .collect();
    // Every rule is either built (a heading) or listed as not yet built,
    // never both: building one moves it from the list to a heading.
    let listed: BTreeSet<u32> = rules
        .split("## Not yet built")
        .nth(1)
        .expect("docs/rules.md has a `## Not yet built` section")
        .lines()
        .filter_map(|line| line.strip_prefix("- R"))
        .filter_map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .collect();
    assert!(
        headings.is_disjoint(&listed),
        "docs/rules.md: built and still listed as not built: {:?}",
        headings.intersection(&listed).collect::<Vec<_>>()
    );
    assert_eq!(
        headings.union(&listed).copied().collect::<BTreeSet<u32>>(),
        (1..=53).collect::<BTreeSet<u32>>(),
        "docs/rules.md: one `## R<n> — …` heading per rule the daemon enforces, \
         the others in the `## Not yet built` list"
    );

    let mut files = Vec::new();
    for dir in [
        "src",
        "tests",
        "migrations",
        "migrations-sqlite",
        "deploy",
        "templates",
    ] {
        files_under(&Path::new(ROOT).join(dir), &mut files);
    }
    for name in ["README.md", "ARCHITECTURE.md", "BENCHMARKS.md", "build.rs"] {
        files.push(Path::new(ROOT).join(name));
    }
    let not_yet_built = rules
        .split("## Not yet built")
        .nth(1)
        .expect("docs/rules.md has a `## Not yet built` section");
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for n in rule_numbers(&text) {
            assert!(
                headings.contains(&n) || not_yet_built.contains(&format!("R{n}")),
                "{} cites R{n}, which docs/rules.md does not describe",
                file.display()
            );
        }
    }
}

// ---------------------------------------------------------------------------
// docs/api.md

/// `(METHOD, /path)` of every route in src/http/mod.rs.
fn routes() -> BTreeSet<(String, String)> {
    let text = read("src/http/mod.rs");
    let mut routes = BTreeSet::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find(".route(") {
        let call = &rest[start + ".route(".len()..];
        let open = call.find('"').unwrap() + 1;
        let close = open + call[open..].find('"').unwrap();
        let path = &call[open..close];
        // The call's arguments, up to its closing parenthesis.
        let mut depth = 1;
        let end = call
            .char_indices()
            .find(|&(_, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                depth == 0
            })
            .map_or(call.len(), |(i, _)| i);
        let prefix = if path.starts_with("/healthz")
            || path.starts_with("/readyz")
            || path.starts_with("/metrics")
            || path.starts_with("/feedback/")
        {
            ""
        } else {
            "/v1"
        };
        for method in ["get", "post", "put", "patch", "delete"] {
            let handler = call[..end].contains(&format!("{method}("))
                || call[..end].contains(&format!("routing::{method}("));
            if handler {
                routes.insert((method.to_ascii_uppercase(), format!("{prefix}{path}")));
            }
        }
        rest = &call[close..];
    }
    routes
}

#[test]
fn docs_api_describes_every_route() {
    let api = read("docs/api.md");
    let routes = routes();
    assert!(routes.len() >= 33, "{routes:?}");
    for (method, path) in &routes {
        assert!(
            api.contains(&format!("### `{method} {path}`")),
            "docs/api.md has no `### `{method} {path}`` section"
        );
    }
}

// ---------------------------------------------------------------------------
// docs/operations.md

#[test]
fn docs_operations_names_every_metric() {
    let metrics = read("src/metrics.rs");
    let operations = read("docs/operations.md");
    let mut names = BTreeSet::new();
    for (i, _) in metrics.match_indices("\"invited_") {
        let name: String = metrics[i + 1..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        names.insert(name);
    }
    assert!(names.len() >= 15, "{names:?}");
    for name in names {
        assert!(
            operations.contains(&format!("`{name}`")),
            "docs/operations.md does not describe the metric {name}"
        );
    }
}

/// R49: the console's HTML routes (src/http/console/mod.rs) are not part of
/// the JSON API, but docs/api.md lists each of them with its method.
#[test]
fn docs_api_lists_every_console_route() {
    let api = read("docs/api.md");
    let source = read("src/http/console/mod.rs");
    let mut found = 0;
    let mut rest = source.as_str();
    while let Some(start) = rest.find(".route(") {
        let call = &rest[start + ".route(".len()..];
        let open = call.find('"').unwrap() + 1;
        let close = open + call[open..].find('"').unwrap();
        let path = &call[open..close];
        // The method router: up to the next route.
        let end = call.find(".route(").unwrap_or(call.len());
        for method in ["get", "post"] {
            if call[close..end].contains(&format!("{method}(")) {
                let heading = format!("### `{} {path}", method.to_ascii_uppercase());
                let documented = api.match_indices(&heading).any(|(i, _)| {
                    matches!(api[i + heading.len()..].chars().next(), Some('`' | '?'))
                });
                assert!(documented, "docs/api.md has no {heading}` section");
                found += 1;
            }
        }
        rest = &call[close..];
    }
    assert!(found >= 15, "only {found} console routes found");
}
