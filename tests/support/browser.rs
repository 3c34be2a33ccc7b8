//! A real browser for tests: Debian's `chromium`, headless, driven over
//! WebDriver by Debian's `chromedriver` through `fantoccini`
//! (scripts/services installs both).
//!
//! One chromedriver serves a whole test binary (started on first use, on a
//! free loopback port); each [`Browser`] is one Chromium session on it, so a
//! binary's tests can run in parallel, each with its own browser. A test
//! reuses its session for everything it looks at: a session costs about a
//! second, a page with its checks and screenshot about a tenth of one.
//!
//! ```ignore
//! let browser = Browser::start("console_sign_in").await;
//! browser.set_viewport(1280, 900).await;
//! browser.goto(&daemon.url("/console")).await;
//! browser.find("input[name=key]").await.send_keys("admin-key").await.unwrap();
//! browser.find("button[type=submit]").await.click().await.unwrap();
//! browser.wait_for("[data-page=search]").await;
//! browser.screenshot("search").await;
//! browser.close().await;
//! ```
//!
//! Screenshots (and pages given as HTML) go to
//! `<target dir>/test-output/<test>/`, emptied when the test starts: under
//! the target directory, so never committed (see .gitignore), and kept after
//! the run for a person to look at. Waiting is always for a condition, with
//! a deadline ([`WAIT`]).

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// How long any wait (chromedriver starting, an element appearing, a
/// condition holding) may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(15);

/// How often [`Browser::wait_for`] looks for its element again (the other
/// waits poll through [`super::wait`]).
const POLL: Duration = Duration::from_millis(25);

/// Chromium's flags. Tests run as root in containers: Chromium refuses to
/// start as root with its sandbox (`--no-sandbox`), a container's /dev/shm
/// is often 64 MB, too small for its shared memory (`--disable-dev-shm-usage`),
/// and there is no GPU. `--headless=new` is the real browser without a
/// window, not the old separate headless shell.
const CHROMIUM_ARGS: [&str; 8] = [
    "--headless=new",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    // Scrollbars that take no room, as on a phone: the layout is as wide as
    // the viewport set, whether or not the page is taller than it.
    "--hide-scrollbars",
    // Nothing to download, nobody to ask: no first-run UI, no network
    // traffic of its own during a test.
    "--no-first-run",
    "--disable-background-networking",
    "--disable-extensions",
];

/// The chromedriver of this test binary.
struct Driver {
    port: u16,
    /// The shell that runs chromedriver, in a process group of its own. It
    /// kills that group (chromedriver and every Chromium it started) when
    /// its stdin closes, which happens when this test process ends however
    /// it ends (a static is never dropped, a panic may abort, a test binary
    /// may be killed): the kernel closes our end of the pipe.
    _watchdog: Mutex<(Child, ChildStdin)>,
}

fn driver() -> &'static Driver {
    static DRIVER: OnceLock<Driver> = OnceLock::new();
    DRIVER.get_or_init(Driver::start)
}

impl Driver {
    fn start() -> Driver {
        let chromedriver = on_path("chromedriver");
        let out = test_output_root();
        std::fs::create_dir_all(&out).expect("create the test output directory");
        let log = out.join(format!("chromedriver-{}.log", binary_name()));
        // Chromium's profiles and temporary files (its shared memory, with
        // --disable-dev-shm-usage) go to a directory of this process, and
        // those of earlier runs that are gone are emptied: a browser killed
        // with its test would leave them behind. Under the system's temporary
        // directory, not the target directory: Chromium puts a Unix socket
        // in its profile, and a socket's path is limited to 107 bytes, which
        // a deep target directory (`~/.cache/…/target/test-output/…`) passes.
        let tmp = chromium_tmp();
        // A free port: the kernel picks one, we let it go, chromedriver binds
        // it (only loopback connections are accepted, its default). Another
        // process may take it in between; then chromedriver stops and we
        // try another.
        for _attempt in 0..3 {
            let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .and_then(|l| l.local_addr())
                .expect("a free loopback port")
                .port();
            let mut child = Command::new("sh")
                .arg("-c")
                // The reader kills the group when our end of the pipe closes;
                // the group also goes when chromedriver stops by itself, so
                // that `try_wait` below sees it. (A background list reads
                // /dev/null unless told otherwise, hence fd 3.)
                .arg(concat!(
                    r#"exec 3<&0; (read -r _line <&3; kill -KILL 0) & "#,
                    r#""$1" --port="$2" --log-path="$3" </dev/null >/dev/null 2>&1; kill -KILL 0"#,
                ))
                .arg("sh")
                .arg(&chromedriver)
                .arg(port.to_string())
                .arg(&log)
                // Its own group, so that `kill 0` reaches chromedriver and
                // its browsers and never this test process or cargo.
                .process_group(0)
                .env("TMPDIR", &tmp)
                .stdin(Stdio::piped())
                .spawn()
                .expect("start chromedriver");
            let stdin = child.stdin.take().expect("piped stdin");
            // `true` once it is ready, `false` if it stopped first (then
            // another port).
            let ready = super::wait::eventually_blocking(
                WAIT,
                &format!("chromedriver answering on 127.0.0.1:{port}"),
                || {
                    let status = http_raw(port, "GET", "/status");
                    if status
                        .as_deref()
                        .is_some_and(|s| s.contains(r#""ready":true"#))
                    {
                        return Ok(true);
                    }
                    if let Ok(Some(_)) = child.try_wait() {
                        return Ok(false);
                    }
                    Err(format!(
                        "/status answered {status:?}; its log: {}",
                        log.display()
                    ))
                },
            );
            if ready {
                return Driver {
                    port,
                    _watchdog: Mutex::new((child, stdin)),
                };
            }
        }
        panic!(
            "chromedriver stopped three times before answering; its log: {}",
            log.display()
        );
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// One headless Chromium session. [`Browser::close`] ends it; dropping it
/// (a failed test) ends it too.
pub struct Browser {
    client: Client,
    session: String,
    port: u16,
    out: PathBuf,
    http: reqwest::Client,
    closed: bool,
}

impl Browser {
    /// Opens a session for the test named `test` (its screenshots go to
    /// `test-output/<test>/`, emptied first). Starts this binary's
    /// chromedriver if it is not running yet.
    pub async fn start(test: &str) -> Browser {
        let driver = driver();
        let out = test_output_root().join(test);
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out).expect("create the test's output directory");

        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), "chrome".into());
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": on_path("chromium"), "args": CHROMIUM_ARGS }),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&driver.url())
            .await
            .unwrap_or_else(|e| panic!("open a Chromium session through chromedriver: {e}"));
        let session = client
            .session_id()
            .await
            .expect("the session id")
            .expect("a session");
        Browser {
            client,
            session,
            port: driver.port,
            out,
            http: reqwest::Client::new(),
            closed: false,
        }
    }

    /// The WebDriver client, for what the helpers below do not cover
    /// (forms, cookies, keys, windows).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Where this test's screenshots and pages go.
    pub fn output_dir(&self) -> &Path {
        &self.out
    }

    /// Makes the page's viewport (`innerWidth` × `innerHeight`) exactly
    /// `width` × `height` CSS pixels at one device pixel per CSS pixel, for
    /// this tab and the pages it opens next. Through DevTools' device
    /// metrics (what Puppeteer's `setViewport` does), not the window: a
    /// window is larger than its viewport by a frame whose size headless
    /// Chromium does not promise, and a resize lands asynchronously.
    pub async fn set_viewport(&self, width: u32, height: u32) {
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({
                "width": width,
                "height": height,
                "deviceScaleFactor": 1,
                "mobile": false,
            }),
        )
        .await;
        self.wait_until(
            &format!("a {width}×{height} viewport"),
            &format!("innerWidth === {width} && innerHeight === {height}"),
        )
        .await;
    }

    /// Opens `url` and waits until the page has loaded (WebDriver's normal
    /// page load strategy).
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// Writes `html` to `<output dir>/<name>.html` and opens it (a
    /// `file://` URL), so the page looked at stays beside its screenshot.
    /// `name` may contain `/` (subdirectories).
    pub async fn open_html(&self, name: &str, html: &str) -> PathBuf {
        let path = self.out.join(format!("{name}.html"));
        write_file(&path, html.as_bytes());
        let url = url::Url::from_file_path(&path).expect("an absolute path");
        self.goto(url.as_str()).await;
        path
    }

    /// Runs `script` (a function body: `arguments[0]`… are `args`, `return`
    /// gives the value) and reads its result as `T`.
    pub async fn js<T: DeserializeOwned>(
        &self,
        script: &str,
        args: impl IntoIterator<Item = Value>,
    ) -> T {
        let value = self
            .client
            .execute(script, args.into_iter().collect())
            .await
            .unwrap_or_else(|e| panic!("run script {script:?}: {e}"));
        serde_json::from_value(value.clone())
            .unwrap_or_else(|e| panic!("script {script:?} returned {value}: {e}"))
    }

    /// The first element matching the CSS selector, now.
    pub async fn find(&self, css: &str) -> Element {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("find {css:?}: {e}"))
    }

    /// Every element matching the CSS selector, now (maybe none).
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        self.client
            .find_all(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("find all {css:?}: {e}"))
    }

    /// The first element matching the CSS selector once there is one, at
    /// most [`WAIT`].
    pub async fn wait_for(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(WAIT)
            .every(POLL)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css:?} within {WAIT:?}: {e}"))
    }

    /// Waits until the JavaScript expression `condition` is truthy, at most
    /// [`WAIT`]; `what` names it in the failure.
    pub async fn wait_until(&self, what: &str, condition: &str) {
        let script = format!("return !!({condition});");
        super::wait::eventually(WAIT, what, || async {
            if self.js::<bool>(&script, []).await {
                Ok(())
            } else {
                Err(format!("`{condition}` still false"))
            }
        })
        .await;
    }

    /// Sends a Chrome DevTools Protocol command through chromedriver, for
    /// what WebDriver has no command for; returns its result.
    pub async fn cdp(&self, method: &str, params: Value) -> Value {
        let url = format!(
            "http://127.0.0.1:{}/session/{}/goog/cdp/execute",
            self.port, self.session
        );
        let response = self
            .http
            .post(&url)
            .json(&json!({ "cmd": method, "params": params }))
            .send()
            .await
            .unwrap_or_else(|e| panic!("CDP {method}: {e}"));
        let status = response.status();
        let body: Value = response.json().await.expect("a JSON answer");
        assert!(status.is_success(), "CDP {method}: {status} {body}");
        body["value"].clone()
    }

    /// A PNG of the whole page (beyond the viewport, at the viewport's
    /// width) as `<output dir>/<name>.png`; returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let shot = self
            .cdp(
                "Page.captureScreenshot",
                json!({ "format": "png", "captureBeyondViewport": true }),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("base64 PNG");
        let path = self.out.join(format!("{name}.png"));
        write_file(&path, &png);
        path
    }

    /// Ends the session (Chromium quits, its profile is removed).
    pub async fn close(mut self) {
        self.closed = true;
        self.client
            .clone()
            .close()
            .await
            .expect("close the browser session");
    }
}

/// A test that fails drops its browser without `close`: the session is
/// ended here, synchronously (the test's runtime may be going away), so no
/// Chromium outlives its test.
impl Drop for Browser {
    fn drop(&mut self) {
        if !self.closed {
            let _ = http_raw(self.port, "DELETE", &format!("/session/{}", self.session));
        }
    }
}

/// `<target dir>/test-output`. A test binary lives in
/// `<target dir>/<profile>/deps/`, so this follows `CARGO_TARGET_DIR` (and
/// `build.target-dir`) wherever it points.
pub fn test_output_root() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let deps = exe.parent().expect("the binary's directory");
    match deps.parent().and_then(Path::parent) {
        Some(target) if deps.ends_with("deps") => target.join("test-output"),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-output"),
    }
}

/// This test binary's name without cargo's hash (`email_html`).
fn binary_name() -> String {
    let exe = std::env::current_exe().expect("the test binary's path");
    let stem = exe.file_stem().and_then(|s| s.to_str()).unwrap_or("tests");
    match stem.rsplit_once('-') {
        Some((name, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => name.to_owned(),
        _ => stem.to_owned(),
    }
}

fn on_path(program: &str) -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!("{program} is not on the PATH: the browser tests need Debian's chromium and chromium-driver (scripts/services installs them)")
        })
}

fn write_file(path: &Path, bytes: &[u8]) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("create the output directory");
    }
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// One request to chromedriver without an async runtime (its start and
/// `Drop` happen outside one); the answer's text, or `None` if it did not
/// answer.
fn http_raw(port: u16, method: &str, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).ok()?;
    stream.set_read_timeout(Some(WAIT)).ok()?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    // chromedriver keeps the connection open despite `Connection: close`,
    // so the answer ends where its Content-Length says.
    let mut answer = Vec::new();
    let mut chunk = [0; 4096];
    loop {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&answer);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse::<usize>().ok());
            if length.is_none_or(|length| body.len() >= length) {
                break;
            }
        }
    }
    Some(String::from_utf8_lossy(&answer).into_owned())
}

/// This process's directory for Chromium's temporary files, made empty;
/// those of earlier runs of this test binary whose process is gone are
/// removed.
fn chromium_tmp() -> PathBuf {
    let prefix = format!("invited-chromium-{}-", binary_name());
    let base = std::env::temp_dir();
    for entry in std::fs::read_dir(&base).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix(&prefix)
            && !Path::new("/proc").join(pid).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let tmp = base.join(format!("{prefix}{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).expect("create Chromium's temporary directory");
    tmp
}
