//! The real `invited` binary as a child process, configured only through
//! `INVITED_*` variables and `DATABASE_URL`, for tests of what only a process
//! shows: SIGTERM, `kill -9`, several replicas on one database.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const API_KEY: &str = "proc-key-0123456789abcdef";

pub struct DaemonProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl DaemonProcess {
    /// Starts `invited serve` against `db_url`, sending mail to `smtp_url`, and
    /// waits until it serves HTTP. `env` overrides or adds settings.
    pub async fn start(db_url: &str, smtp_url: &str, env: &[(&str, &str)]) -> DaemonProcess {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_invited"));
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", db_url)
            .env("INVITED_API__KEYS", format!("proc:{API_KEY}"))
            .env("INVITED_API__LISTEN", "127.0.0.1:0")
            .env("INVITED_SMTP__URL", smtp_url)
            .env("INVITED_SMTP__TIMEOUT", "10s")
            .env(
                "INVITED_TEMPLATES__DIR",
                concat!(env!("CARGO_MANIFEST_DIR"), "/templates"),
            )
            .env(
                "INVITED_MAIL__FROM",
                "Invitations <pinbot@info.example.test>",
            )
            .env("INVITED_LOG__FORMAT", "json")
            .env("INVITED_LOG__FILTER", "info")
            .env("INVITED_DELIVERY__POLL_INTERVAL", "200ms")
            .env("INVITED_DELIVERY__INITIAL_BACKOFF", "1s")
            .env("INVITED_DELIVERY__MAX_BACKOFF", "2s")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn the invited binary");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
        {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut addr_tx = Some(addr_tx);
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if line.contains("invited is serving")
                        && let Some(addr) = field(&line, "addr")
                        && let Some(tx) = addr_tx.take()
                    {
                        let _ = tx.send(addr);
                    }
                    log.lock().unwrap().push(line);
                }
            });
        }
        let addr = match tokio::time::timeout(Duration::from_secs(60), addr_rx).await {
            Ok(Ok(addr)) => addr,
            _ => {
                let _ = child.kill();
                panic!(
                    "the daemon did not start serving:\n{}",
                    log.lock().unwrap().join("\n")
                );
            }
        };
        DaemonProcess {
            child,
            base: format!("http://{addr}"),
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no shutdown path runs.
    pub fn kill_9(&mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }

    /// SIGTERM, the service manager's stop.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// The exit status if the process has exited.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    /// Waits for the process to exit, at most `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let (child, log) = (&mut self.child, &self.log);
        super::wait::eventually(timeout, "the daemon exiting", || {
            std::future::ready(
                child
                    .try_wait()
                    .expect("try_wait")
                    .ok_or_else(|| format!("still running:\n{}", log.lock().unwrap().join("\n"))),
            )
        })
        .await
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A string field of a JSON log line (`"name":"value"`).
fn field(line: &str, name: &str) -> Option<String> {
    let key = format!("\"{name}\":\"");
    let start = line.find(&key)? + key.len();
    let end = line[start..].find('"')? + start;
    Some(line[start..end].to_string())
}
