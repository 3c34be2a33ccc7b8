//! The files in deploy/ stay true to the daemon: every metric a Grafana query
//! or an alert rule names is one the daemon exports (names in src/metrics.rs);
//! the image's build stage copies every file the build reads; every
//! environment and configuration file a deployment sets is one the daemon
//! accepts (unknown `INVITED_*` variables and bad values stop it at start).

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use invited::config::Config;

/// Every `invited_*` identifier in a text.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find("invited_") {
        let start = i + pos;
        let preceded_by_ident =
            start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let end = text[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(text.len(), |e| start + e);
        if !preceded_by_ident {
            names.insert(text[start..end].to_string());
        }
        i = end;
    }
    names
}

fn exported() -> BTreeSet<String> {
    metric_names(include_str!("../src/metrics.rs"))
}

/// A histogram is queried through its `_bucket`, `_sum` and `_count` series.
fn base_name(name: &str) -> &str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            return base;
        }
    }
    name
}

#[test]
fn every_dashboard_query_names_an_exported_metric() {
    let exported = exported();
    assert!(exported.len() >= 15, "{exported:?}");
    let dashboard: serde_json::Value =
        serde_json::from_str(include_str!("../deploy/grafana/invited.json")).unwrap();
    let mut queried = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let names = metric_names(expr);
            assert!(!names.is_empty(), "query names no metric: {expr}");
            for name in names {
                assert!(
                    exported.contains(base_name(&name)),
                    "{name} in {expr:?} is not exported"
                );
                queried += 1;
            }
        }
    }
    assert!(queried >= 15);
}

#[test]
fn every_alert_names_an_exported_metric() {
    let exported = exported();
    let rules = include_str!("../deploy/prometheus/alerts.yaml");
    let names = metric_names(rules);
    assert!(names.len() >= 5, "{names:?}");
    for name in names {
        assert!(
            exported.contains(base_name(&name)),
            "{name} in alerts.yaml is not exported"
        );
    }
}

#[test]
fn the_metric_name_scanner_sees_what_it_should() {
    let names = metric_names("sum(rate(invited_email_send_seconds_bucket[5m])) / not_invited_x");
    assert_eq!(
        names,
        BTreeSet::from(["invited_email_send_seconds_bucket".to_string()])
    );
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `path` relative to the repository, `.` and `..` resolved; `None` if it
/// leaves the repository.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Normal(p) => out.push(p),
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// The string literals that follow `marker` (e.g. `include_str!(`) in `text`.
fn literals_after<'a>(text: &'a str, marker: &str) -> Vec<&'a str> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(marker) {
        rest = &rest[at + marker.len()..];
        let trimmed = rest.trim_start();
        if let Some(literal) = trimmed.strip_prefix('"')
            && let Some(end) = literal.find('"')
        {
            found.push(&literal[..end]);
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every path (relative to the repository) that `cargo build` reads: the
/// manifest and lock file, the build script and what it declares with
/// `rerun-if-changed`, the targets' sources, and whatever the non-test code
/// embeds with `include_str!`, `include_bytes!` or `sqlx::migrate!`. A test
/// module (from `#[cfg(test)]` to the end of a file, or a `tests.rs`) is not
/// part of a release build.
fn build_inputs() -> BTreeSet<PathBuf> {
    let mut inputs: BTreeSet<PathBuf> = ["Cargo.toml", "Cargo.lock", "src"]
        .into_iter()
        .map(PathBuf::from)
        .collect();
    let manifest = read("Cargo.toml");
    for line in manifest.lines() {
        let line = line.trim();
        for key in ["path = ", "build = "] {
            if let Some(value) = line.strip_prefix(key) {
                inputs.insert(PathBuf::from(value.trim_matches('"')));
            }
        }
    }
    if !manifest.contains("build = ") && repo().join("build.rs").exists() {
        inputs.insert(PathBuf::from("build.rs"));
    }
    if inputs.contains(Path::new("build.rs")) {
        // The folders it reads, as it tells cargo: each file is printed
        // with `{}` too, but under a folder printed as a literal
        // (`"cargo:rerun-if-changed=templates"`).
        for line in read("build.rs").lines() {
            if let Some(rest) = line.split("cargo:rerun-if-changed=").nth(1) {
                let path = rest.split(['"', '{']).next().unwrap();
                if !path.is_empty() {
                    inputs.insert(PathBuf::from(path));
                }
            }
        }
    }
    let mut files = Vec::new();
    rust_files(&repo().join("src"), &mut files);
    for file in files {
        if file.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap();
        let dir = file.parent().unwrap().strip_prefix(repo()).unwrap();
        for marker in ["include_str!(", "include_bytes!("] {
            for path in literals_after(code, marker) {
                let path = normalize(&dir.join(path))
                    .unwrap_or_else(|| panic!("{} embeds {path} from outside", file.display()));
                inputs.insert(path);
            }
        }
        // sqlx resolves `migrate!` paths from the manifest's directory.
        for path in literals_after(code, "sqlx::migrate!(") {
            inputs.insert(normalize(Path::new(path)).unwrap());
        }
    }
    inputs
}

/// The paths the Dockerfile's build stage copies into its work directory,
/// each checked to land under its own name there.
fn copied_by_build_stage(dockerfile: &str) -> Vec<PathBuf> {
    let mut copied = Vec::new();
    let mut stages = 0;
    for line in dockerfile.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.first().copied() {
            Some("FROM") => stages += 1,
            Some("COPY") if stages == 1 => {
                assert!(
                    !words.iter().any(|w| w.starts_with("--from")),
                    "the build stage copies from another stage: {line}"
                );
                let (dest, sources) = words[1..].split_last().expect("COPY <src>... <dest>");
                for source in sources {
                    let name = source.trim_end_matches('/');
                    if sources.len() > 1 || dest.ends_with('/') {
                        assert!(
                            *dest == "./" || *dest == ".",
                            "{line}: sources must land in the work directory"
                        );
                    } else {
                        assert!(
                            dest.trim_start_matches("./").trim_end_matches('/') == name,
                            "{line}: {source} must keep its path"
                        );
                    }
                    copied.push(PathBuf::from(name));
                }
            }
            _ => {}
        }
    }
    copied
}

#[test]
fn the_image_build_copies_everything_the_build_reads() {
    let inputs = build_inputs();
    for needed in [
        "build.rs",
        "migrations",
        "migrations-sqlite",
        "templates",
        "src",
    ] {
        assert!(
            inputs.contains(Path::new(needed)),
            "{needed} not seen in {inputs:?}"
        );
    }
    let dockerfile = read("deploy/docker/Dockerfile");
    let copied = copied_by_build_stage(&dockerfile);
    let ignored: Vec<PathBuf> = read("deploy/docker/Dockerfile.dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(PathBuf::from)
        .collect();
    for input in &inputs {
        assert!(
            repo().join(input).exists(),
            "{} does not exist",
            input.display()
        );
        assert!(
            copied.iter().any(|c| input.starts_with(c)),
            "deploy/docker/Dockerfile does not copy {} (copies {copied:?})",
            input.display()
        );
        assert!(
            !ignored.iter().any(|i| input.starts_with(i)),
            "Dockerfile.dockerignore leaves out {}",
            input.display()
        );
    }
}

#[test]
fn the_build_input_scanners_see_what_they_should() {
    let code = r#"include_str!("../x.sql"); include_bytes!( "y.bin")"#;
    assert_eq!(literals_after(code, "include_str!("), ["../x.sql"]);
    assert_eq!(literals_after(code, "include_bytes!("), ["y.bin"]);
    assert_eq!(
        normalize(Path::new("src/mail/../../templates/en")),
        Some(PathBuf::from("templates/en"))
    );
    assert_eq!(normalize(Path::new("src/../../elsewhere")), None);
    let stage = "FROM rust AS build\nCOPY Cargo.toml build.rs ./\nCOPY src ./src\n\
                 FROM debian\nCOPY --from=build /src/templates /usr/share/t\n";
    assert_eq!(
        copied_by_build_stage(stage),
        ["Cargo.toml", "build.rs", "src"].map(PathBuf::from)
    );
    let renamed = std::panic::catch_unwind(|| {
        copied_by_build_stage("FROM rust\nCOPY migrations-sqlite ./migrations\n")
    });
    assert!(renamed.is_err(), "a folder copied under another name");
}

/// `NAME=value` pairs of the Dockerfile's final `ENV` (with `\` continuations).
fn dockerfile_env(dockerfile: &str) -> Vec<(String, String)> {
    let joined = dockerfile.replace("\\\n", " ");
    let mut env = Vec::new();
    for line in joined.lines() {
        if let Some(rest) = line.trim().strip_prefix("ENV ") {
            for pair in rest.split_whitespace() {
                let (name, value) = pair.split_once('=').expect("ENV NAME=value");
                env.push((name.to_string(), value.to_string()));
            }
        }
    }
    env
}

/// `NAME: value` lines naming settings (`INVITED_*`, `DATABASE_URL`) in a
/// YAML file, in order.
fn yaml_settings(yaml: &str) -> Vec<(String, String)> {
    yaml.lines()
        .filter_map(|line| {
            let (name, value) = line.trim().split_once(": ")?;
            (name.starts_with("INVITED_") || name == "DATABASE_URL")
                .then(|| (name.to_string(), value.trim().to_string()))
        })
        .collect()
}

/// The configuration a deployment gives the daemon: `toml` as its file (if
/// any) and `env` as its environment.
fn load(toml: Option<&str>, env: Vec<(String, String)>) -> Result<Config, String> {
    let file = toml.map(|text| {
        let path =
            std::env::temp_dir().join(format!("invited-deploy-{}.toml", uuid::Uuid::now_v7()));
        std::fs::write(&path, text).unwrap();
        path
    });
    let config = Config::load_from(file.as_deref(), env).map_err(|e| e.to_string());
    if let Some(path) = file {
        let _ = std::fs::remove_file(path);
    }
    config
}

#[test]
fn the_compose_stack_configures_the_daemon_it_builds() {
    let image = dockerfile_env(&read("deploy/docker/Dockerfile"));
    assert!(image.len() >= 3, "{image:?}");
    let compose = read("deploy/docker/compose.yaml");
    let service = compose
        .split("\n  invited:\n")
        .nth(1)
        .and_then(|s| s.split("\n  prometheus:\n").next())
        .expect("an invited service before prometheus");
    let env = yaml_settings(service);
    assert!(env.len() >= 3, "{env:?}");
    let config = load(None, image.into_iter().chain(env).collect()).unwrap();
    assert_eq!(config.api.listen.port(), 8080);
    assert!(compose.contains(&format!("\"{0}:{0}\"", config.api.listen.port())));
    assert!(config.smtp.url.is_some() && !config.api.keys.is_empty());
}

#[test]
fn the_kubernetes_manifests_configure_the_daemon_they_run() {
    let configmap = read("deploy/kubernetes/configmap.yaml");
    let (key, toml) = configmap
        .split_once("\ndata:\n  ")
        .and_then(|(_, data)| data.split_once(": |\n"))
        .expect("a ConfigMap with one file");
    let toml: String = toml
        .lines()
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect();
    let deployment = read("deploy/kubernetes/deployment.yaml");
    let mount = deployment
        .lines()
        .find(|l| l.contains("name: config, mountPath: "))
        .and_then(|l| l.split("mountPath: ").nth(1))
        .and_then(|l| l.split(',').next())
        .expect("the ConfigMap's mount");
    assert!(
        deployment.contains(&format!("\"--config\", \"{mount}/{key}\"")),
        "the container reads {mount}/{key}"
    );
    // The image's environment, then the Secret's (envFrom).
    let env = dockerfile_env(&read("deploy/docker/Dockerfile"))
        .into_iter()
        .chain(yaml_settings(&read(
            "deploy/kubernetes/secret.example.yaml",
        )))
        .collect();
    let config = load(Some(&toml), env).unwrap();
    assert!(
        deployment.contains(&format!("containerPort: {}", config.api.listen.port())),
        "the container port is api.listen's"
    );
    assert!(config.smtp.url.is_some() && !config.api.keys.is_empty());
}

#[test]
fn the_systemd_unit_sets_only_settings_the_daemon_knows() {
    let unit = read("deploy/systemd/invited.service");
    let env: Vec<(String, String)> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("Environment="))
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap();
            (name.to_string(), value.to_string())
        })
        .collect();
    assert!(env.len() >= 2, "{env:?}");
    load(None, env).unwrap();
}

#[test]
fn a_stale_setting_is_refused() {
    let stale = vec![("INVITED_SMTP__HOST".to_string(), "smtp".to_string())];
    assert!(load(None, stale).is_err());
}
