//! The embedded default, as a newcomer meets it: the real binary started in
//! an empty directory with no configuration at all (only `--dev` for a key,
//! and port 0 so tests can run side by side). It must create and migrate
//! `invited.db`, use the templates built into the binary, write mail as
//! `.eml` files into `./outbox`, and refuse a second process on the same
//! SQLite file.

mod support;

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::db::TempDir;

/// `invited serve --dev` in `dir`, with nothing set but the listen port.
fn serve_dev(dir: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_invited"))
        .args(["serve", "--dev"])
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("INVITED_API__LISTEN", "127.0.0.1:0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the invited binary")
}

/// Waits (30 s at most) for a process that must stop by itself, and returns
/// how it ended and what it wrote on stderr; `still_running` is the failure
/// if it does not stop.
async fn exit_of(child: Child, still_running: &str) -> (std::process::ExitStatus, String) {
    // Held as `Running` so that a process that never stops is killed when
    // the wait fails.
    let mut running = Running {
        child,
        log: Arc::default(),
    };
    let status = support::wait::eventually(
        Duration::from_secs(30),
        "the process stopping by itself",
        || {
            std::future::ready(
                running
                    .child
                    .try_wait()
                    .unwrap()
                    .ok_or_else(|| still_running.to_string()),
            )
        },
    )
    .await;
    let mut stderr = String::new();
    running
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status, stderr)
}

/// Kills the child when the test ends, whatever happens.
struct Running {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the daemon and reads the key (stdout) and the bound address (the
/// "invited is serving" log line on stderr).
async fn start(dir: &Path) -> (Running, String, String) {
    let mut child = serve_dev(dir);
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(key) = line.strip_prefix("development API key (shown once): ") {
                    let _ = tx.send(("key", key.trim().to_string()));
                }
            }
        });
    }
    {
        let log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("invited is serving")
                    && let Some(start) = line.find("\"addr\":\"")
                {
                    let rest = &line[start + 8..];
                    let _ = tx.send(("addr", rest[..rest.find('"').unwrap()].to_string()));
                }
                log.lock().unwrap().push(line);
            }
        });
    }
    let running = Running { child, log };
    let (mut key, mut addr) = (None, None);
    while key.is_none() || addr.is_none() {
        match tokio::time::timeout(Duration::from_secs(60), rx.recv()).await {
            Ok(Some(("key", k))) => key = Some(k),
            Ok(Some((_, a))) => addr = Some(a),
            _ => panic!(
                "the daemon did not start:\n{}",
                running.log.lock().unwrap().join("\n")
            ),
        }
    }
    (running, key.unwrap(), format!("http://{}", addr.unwrap()))
}

/// The text of a quoted-printable part, soft line breaks joined.
fn unquote(eml: &str) -> String {
    let joined = eml.replace("\r\n", "\n").replace("=\n", "");
    let mut out = String::new();
    let mut rest = joined.as_str();
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match u8::from_str_radix(rest.get(i + 1..i + 3).unwrap_or("zz"), 16) {
            Ok(byte) => {
                out.push(byte as char);
                rest = &rest[i + 3..];
            }
            Err(_) => {
                out.push('=');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn an_empty_directory_serves_writes_eml_and_the_link_works() {
    let dir = TempDir::new("invited-empty");
    let (mut running, key, base) = start(&dir.0).await;
    let client = reqwest::Client::new();
    let call = |req: reqwest::RequestBuilder| {
        let key = key.clone();
        async move {
            let resp = req.bearer_auth(key).send().await.unwrap();
            let status = resp.status();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            (status, body)
        }
    };

    let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    assert!(
        dir.0.join("invited.db").is_file(),
        "the database is created"
    );

    let (status, body) = call(
        client
            .put(format!("{base}/v1/users/ada"))
            .json(&json!({"email": "ada@example.com", "display_name": "Ada", "locale": "en-US"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, business) = call(
        client
            .post(format!("{base}/v1/businesses"))
            .json(&json!({"name": "Analytical Engines", "owner_user_id": "ada"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{business}");
    let b = business["id"].as_str().unwrap();
    let (status, body) = call(
        client
            .post(format!("{base}/v1/businesses/{b}/invitations"))
            .json(&json!({"actor_user_id": "ada",
                          "invitees": [{"email": "charles@example.com", "role": "manager"}]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // The invitation email lands in ./outbox as one .eml file.
    let outbox = dir.0.join("outbox");
    let eml = support::wait::eventually(
        Duration::from_secs(30),
        "the invitation email in ./outbox",
        || async {
            let found = std::fs::read_dir(&outbox).ok().and_then(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .find(|p| p.extension().is_some_and(|x| x == "eml"))
            });
            let Some(path) = found else {
                return Err(format!(
                    "no .eml in {}:\n{}",
                    outbox.display(),
                    running.log.lock().unwrap().join("\n")
                ));
            };
            let mut text = String::new();
            std::fs::File::open(path)
                .unwrap()
                .read_to_string(&mut text)
                .unwrap();
            Ok(text)
        },
    )
    .await;
    assert!(eml.contains("To: charles@example.com"), "{eml}");
    let text = unquote(&eml);
    let token = support::daemon::token_from(&text);
    assert!(
        text.contains("http://localhost:3000/invitations/accept?token="),
        "{text}"
    );

    // Its link works: accept with the token.
    let (status, body) = call(client.put(format!("{base}/v1/users/charles")).json(
        &json!({"email": "charles@example.com", "display_name": "Charles", "locale": "en-US"}),
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = call(
        client
            .post(format!("{base}/v1/invitations/accept"))
            .json(&json!({"token": token, "user_id": "charles"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, members) = call(client.get(format!(
        "{base}/v1/businesses/{b}/members?actor_user_id=ada"
    )))
    .await;
    assert_eq!(status, StatusCode::OK, "{members}");
    assert!(
        members["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["user_id"] == "charles" && m["role"] == "manager"),
        "{members}"
    );
    let log = running.log.lock().unwrap().join("\n");
    assert!(
        log.contains(".eml file into ./outbox"),
        "the log says where mail goes:\n{log}"
    );

    // A second process on the same SQLite file is refused, with the reason.
    let second = serve_dev(&dir.0).wait_with_output().unwrap();
    assert!(
        !second.status.success(),
        "the second process must exit non-zero"
    );
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("another invited process is already using the SQLite database"),
        "{stderr}"
    );
    assert!(
        running.child.try_wait().unwrap().is_none(),
        "the first keeps serving"
    );
}

/// Issue 12, item 11: the guard that keeps a second process off the SQLite
/// file cannot be deleted by accident. Deleting `invited.db.lock` (where an
/// earlier build held it) while the first process runs still leaves the
/// second refused, and the first serving.
#[tokio::test]
async fn a_second_process_is_refused_even_after_the_lock_file_is_deleted() {
    let dir = TempDir::new("invited-lock");
    let (mut running, _key, base) = start(&dir.0).await;
    let lock_file = dir.0.join("invited.db.lock");
    if lock_file.exists() {
        std::fs::remove_file(&lock_file).unwrap();
    }
    let (status, stderr) = exit_of(
        serve_dev(&dir.0),
        "a second process serves the same SQLite file",
    )
    .await;
    assert!(!status.success(), "the second process must exit non-zero");
    assert!(
        stderr.contains("another invited process is already using the SQLite database"),
        "{stderr}"
    );
    assert!(
        running.child.try_wait().unwrap().is_none(),
        "the first keeps serving"
    );
    let ready = reqwest::get(format!("{base}/readyz")).await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
}

/// A template that `invited templates check` rejects keeps `serve` from
/// starting, with the check's own message: it would otherwise fail every
/// email of its locale while the others go out.
#[tokio::test]
async fn serve_refuses_to_start_with_a_template_the_check_rejects() {
    let dir = TempDir::new("invited-bad-template");
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    for locale in std::fs::read_dir(&shipped).unwrap() {
        let locale = locale.unwrap().path();
        let copy = dir.0.join("templates").join(locale.file_name().unwrap());
        std::fs::create_dir_all(&copy).unwrap();
        for file in std::fs::read_dir(&locale).unwrap() {
            let file = file.unwrap().path();
            std::fs::copy(&file, copy.join(file.file_name().unwrap())).unwrap();
        }
    }
    // A variable no context has: strict undefined fails the render.
    let broken = dir.0.join("templates/fr-FR/member_invitation.html");
    let html = std::fs::read_to_string(&broken).unwrap();
    std::fs::write(&broken, format!("{html}{{{{ no_such_variable }}}}")).unwrap();

    let (status, stderr) = exit_of(
        serve_dev(&dir.0),
        "serve started with a template the check rejects",
    )
    .await;
    assert!(!status.success(), "serve must exit non-zero: {stderr}");
    assert!(
        stderr.contains("the templates do not pass the check")
            && stderr.contains("fr-FR")
            && stderr.contains("member_invitation")
            && stderr.contains("template problem(s) in"),
        "{stderr}"
    );
}
