//! A real SMTP server on 127.0.0.1 (port 0) for tests: accepts or rejects each
//! message per a script and keeps what it received, parsed on demand.
//!
//! Built on `mailin-embedded`, which serves on its own blocking threads; the
//! server has no shutdown API, so each sink's threads live until the test
//! process exits (one idle thread per sink, harmless).

#![allow(dead_code)] // each test binary uses a different part of this API

use std::collections::VecDeque;
use std::io;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use mail_parser::{MessageParser, MimeHeaders, PartType};
use mailin_embedded::{Action, Handler, Response, Server, SslConfig, response};
use tokio::sync::watch;

/// The sink's answer at the end of one message's DATA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// 250
    Ok,
    /// 451 4.3.0
    Transient,
    /// 550 5.7.1
    Permanent,
}

pub struct SmtpSink {
    port: u16,
    shared: Arc<Shared>,
}

struct Shared {
    script: Mutex<VecDeque<Reply>>,
    accepted: Mutex<Vec<ReceivedMail>>,
    rejected: Mutex<Vec<ReceivedMail>>,
    /// Number of accepted messages; `wait_for` awaits it instead of polling.
    accepted_count: watch::Sender<usize>,
    /// How long the server takes at the end of DATA before answering: a slow
    /// server keeps sends in flight.
    delay: Duration,
    /// Messages between DATA and the answer right now, and the most at once.
    in_data: AtomicUsize,
    max_in_data: AtomicUsize,
    /// Close the connection right after each 250 at the end of DATA (a
    /// server that drops connections after a message, or a reset between
    /// two messages): the client's next use of the connection fails.
    close_after_ok: AtomicBool,
    /// While set, every MAIL FROM is answered with this reply: a session the
    /// server refuses (530 "authentication required", 535 "credentials
    /// invalid"). `fix` clears it.
    refuse_sessions: Mutex<Option<(u16, String)>>,
    /// MAIL FROMs refused so far.
    refused: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not hide what the sink received.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SmtpSink {
    /// A sink that accepts every message with 250.
    pub fn start() -> SmtpSink {
        SmtpSink::start_with(Vec::new())
    }

    /// A sink that answers the end of each message's DATA with the next reply
    /// of `script`, then with 250 once the script is used up. Rejected messages
    /// are kept apart (`rejected()`), not in `messages()`.
    pub fn start_with(script: Vec<Reply>) -> SmtpSink {
        SmtpSink::start_opts(script, Duration::ZERO, 0)
    }

    /// A sink that waits `delay` at the end of each message before its 250.
    pub fn start_slow(delay: Duration) -> SmtpSink {
        SmtpSink::start_opts(Vec::new(), delay, 0)
    }

    /// A port on 127.0.0.1 with nothing listening on it (connections are
    /// refused), for a sink started there later with `start_on`.
    pub fn closed_port() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.local_addr().expect("local address").port()
    }

    /// A sink that accepts every message, on a given port.
    pub fn start_on(port: u16) -> SmtpSink {
        SmtpSink::start_opts(Vec::new(), Duration::ZERO, port)
    }

    fn start_opts(script: Vec<Reply>, delay: Duration, port: u16) -> SmtpSink {
        let shared = Arc::new(Shared {
            script: Mutex::new(script.into()),
            accepted: Mutex::new(Vec::new()),
            rejected: Mutex::new(Vec::new()),
            accepted_count: watch::Sender::new(0),
            delay,
            in_data: AtomicUsize::new(0),
            max_in_data: AtomicUsize::new(0),
            close_after_ok: AtomicBool::new(false),
            refuse_sessions: Mutex::new(None),
            refused: AtomicUsize::new(0),
        });
        let listener =
            TcpListener::bind(("127.0.0.1", port)).expect("bind the SMTP sink on 127.0.0.1");
        let port = listener.local_addr().expect("sink local address").port();
        let mut server = Server::new(SinkHandler::new(shared.clone()));
        server
            .with_name("sink.test")
            .with_num_threads(16)
            .with_ssl(SslConfig::None)
            .expect("SslConfig::None always works")
            .with_tcp_listener(listener);
        std::thread::Builder::new()
            .name(format!("smtp-sink-{port}"))
            .spawn(move || {
                // `serve` only returns on a listener error; its Error is !Send.
                if let Err(e) = server.serve() {
                    eprintln!("smtp sink on port {port} stopped: {e}");
                }
            })
            .expect("spawn the SMTP sink thread");
        SmtpSink { port, shared }
    }

    /// A sink that accepts every message with 250 and closes the connection
    /// right after that reply.
    pub fn start_closing_after_ok() -> SmtpSink {
        let sink = SmtpSink::start();
        sink.shared.close_after_ok.store(true, Ordering::SeqCst);
        sink
    }

    /// A sink that refuses every session at MAIL FROM with `code text`
    /// (e.g. `535 5.7.8 Authentication credentials invalid`) until `fix`.
    ///
    /// mailin only offers AUTH over TLS, so the refusal an SMTP server gives
    /// to a wrong password (or to no password) at AUTH comes at MAIL FROM
    /// here: the same reply, one command later.
    pub fn start_refusing(code: u16, text: &str) -> SmtpSink {
        let sink = SmtpSink::start();
        sink.refuse(code, text);
        sink
    }

    /// From now on, refuses every session at MAIL FROM as `start_refusing`
    /// does, until `fix`.
    pub fn refuse(&self, code: u16, text: &str) {
        *lock(&self.shared.refuse_sessions) = Some((code, text.to_owned()));
    }

    /// The server's configuration is fixed: sessions are accepted again.
    pub fn fix(&self) {
        *lock(&self.shared.refuse_sessions) = None;
    }

    /// How many sessions were refused at MAIL FROM.
    pub fn refused_sessions(&self) -> usize {
        self.shared.refused.load(Ordering::SeqCst)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `smtp://127.0.0.1:PORT`: plaintext, as `Mailer` expects for tests.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The messages accepted so far, in order.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        lock(&self.shared.accepted).clone()
    }

    /// The most messages that were between DATA and the server's answer at
    /// the same time: a bound on concurrent SMTP transactions.
    pub fn max_concurrent(&self) -> usize {
        self.shared.max_in_data.load(Ordering::SeqCst)
    }

    /// Messages between DATA and the server's answer right now.
    pub fn in_flight(&self) -> usize {
        self.shared.in_data.load(Ordering::SeqCst)
    }

    /// The Message-IDs of the accepted messages, in order (with repeats).
    pub fn message_ids(&self) -> Vec<String> {
        self.messages()
            .iter()
            .map(|m| m.header("Message-ID").expect("a Message-ID"))
            .collect()
    }

    /// The messages answered with a scripted 4xx/5xx, in order.
    pub fn rejected(&self) -> Vec<ReceivedMail> {
        lock(&self.shared.rejected).clone()
    }

    /// Waits until at least `n` messages were accepted and returns them all.
    /// Panics if that takes longer than `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let mut count = self.shared.accepted_count.subscribe();
        let reached = tokio::time::timeout(timeout, count.wait_for(|c| *c >= n)).await;
        if reached.is_err() {
            panic!(
                "SMTP sink on port {}: expected {n} accepted message(s) within {timeout:?}, got {} (and {} rejected)",
                self.port,
                lock(&self.shared.accepted).len(),
                lock(&self.shared.rejected).len(),
            );
        }
        self.messages()
    }
}

/// One message as the sink received it.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    /// The message as sent after DATA (dot-unstuffed), CRLF line ends.
    pub raw: String,
    /// `MAIL FROM` address.
    pub from: String,
    /// `RCPT TO` addresses, in order.
    pub to: Vec<String>,
}

impl ReceivedMail {
    fn parsed(&self) -> mail_parser::Message<'_> {
        MessageParser::default()
            .parse(self.raw.as_bytes())
            .unwrap_or_else(|| panic!("sink received an unparsable message:\n{}", self.raw))
    }

    /// The top-level header block, unparsed.
    pub fn header_block(&self) -> &str {
        let end = self.raw.find("\r\n\r\n").unwrap_or(self.raw.len());
        &self.raw[..end]
    }

    /// Top-level header fields as (name, raw unfolded value), in order.
    fn fields(&self) -> Vec<(String, String)> {
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in self.header_block().split("\r\n") {
            if line.starts_with([' ', '\t']) {
                // Continuation of a folded header: unfold (RFC 5322 3.2.2).
                if let Some((_, value)) = fields.last_mut() {
                    value.push_str(line);
                }
            } else if let Some((name, value)) = line.split_once(':') {
                fields.push((name.to_owned(), value.trim_start().to_owned()));
            } else {
                // Not a header line: keep it visible to `header_names`.
                fields.push((line.to_owned(), String::new()));
            }
        }
        fields
    }

    /// Names of the top-level header fields, in order, as sent.
    pub fn header_names(&self) -> Vec<String> {
        self.fields().into_iter().map(|(name, _)| name).collect()
    }

    /// The first top-level header `name` (case-insensitive), unfolded, with
    /// RFC 2047 encoded-words decoded.
    pub fn header(&self, name: &str) -> Option<String> {
        let (_, value) = self
            .fields()
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))?;
        Some(decode_words(&value))
    }

    /// Content types of the leaf parts, in order (e.g. `text/plain`, `text/html`).
    pub fn part_types(&self) -> Vec<String> {
        let parsed = self.parsed();
        parsed
            .parts
            .iter()
            .filter(|part| !matches!(part.body, PartType::Multipart(_)))
            .map(|part| {
                part.content_type()
                    .map(|ct| format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or("")))
                    .unwrap_or_else(|| "text/plain".to_owned())
                    .to_ascii_lowercase()
            })
            .collect()
    }

    /// The decoded text/plain part. Panics if there is none.
    pub fn text_body(&self) -> String {
        self.leaf(|body| match body {
            PartType::Text(text) => Some(text.to_string()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no text/plain part in:\n{}", self.raw))
    }

    /// The decoded text/html part. Panics if there is none.
    pub fn html_body(&self) -> String {
        self.leaf(|body| match body {
            PartType::Html(html) => Some(html.to_string()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no text/html part in:\n{}", self.raw))
    }

    fn leaf(&self, pick: impl Fn(&PartType<'_>) -> Option<String>) -> Option<String> {
        let parsed = self.parsed();
        parsed.parts.iter().find_map(|part| pick(&part.body))
    }
}

/// Decodes RFC 2047 encoded-words by letting mail-parser read the value as an
/// unstructured header (it handles B/Q encodings, charsets and the whitespace
/// rules between adjacent words).
fn decode_words(value: &str) -> String {
    if !value.contains("=?") {
        return value.to_owned();
    }
    let synthetic = format!("Subject: {value}\r\n\r\n");
    MessageParser::default()
        .parse(synthetic.as_bytes())
        .and_then(|m| m.subject().map(str::to_owned))
        .unwrap_or_else(|| value.to_owned())
}

/// Per-connection state; mailin clones the prototype for each connection.
#[derive(Clone)]
struct SinkHandler {
    shared: Arc<Shared>,
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
    /// Set after a rejected DATA: see `data`.
    ended: bool,
}

impl SinkHandler {
    fn new(shared: Arc<Shared>) -> SinkHandler {
        SinkHandler {
            shared,
            from: String::new(),
            to: Vec::new(),
            data: Vec::new(),
            ended: false,
        }
    }
}

impl Handler for SinkHandler {
    fn mail(&mut self, _ip: std::net::IpAddr, _domain: &str, _from: &str) -> Response {
        match lock(&self.shared.refuse_sessions).as_ref() {
            Some((code, text)) => {
                self.shared.refused.fetch_add(1, Ordering::SeqCst);
                Response::custom(*code, text.clone())
            }
            None => response::OK,
        }
    }

    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.from = from.to_owned();
        self.to = to.to_vec();
        self.data.clear();
        let now = self.shared.in_data.fetch_add(1, Ordering::SeqCst) + 1;
        self.shared.max_in_data.fetch_max(now, Ordering::SeqCst);
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        // mailin stays in its DATA state after a 4xx/5xx at the end of DATA,
        // so the client's next command (lettre sends QUIT, then closes) would
        // be taken as message text and never answered: lettre's QUIT waits
        // for a reply with no timeout, so the send would hang until mailin's
        // five-minute read timeout (measured: 310 s). Failing here makes mailin
        // answer 554 to the QUIT instead.
        if self.ended {
            return Err(io::Error::other(
                "transaction ended by a scripted rejection",
            ));
        }
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        if !self.shared.delay.is_zero() {
            std::thread::sleep(self.shared.delay);
        }
        self.shared.in_data.fetch_sub(1, Ordering::SeqCst);
        let mail = ReceivedMail {
            raw: String::from_utf8_lossy(&std::mem::take(&mut self.data)).into_owned(),
            from: std::mem::take(&mut self.from),
            to: std::mem::take(&mut self.to),
        };
        let reply = lock(&self.shared.script).pop_front().unwrap_or(Reply::Ok);
        match reply {
            Reply::Ok => {
                lock(&self.shared.accepted).push(mail);
                self.shared.accepted_count.send_modify(|c| *c += 1);
                if self.shared.close_after_ok.load(Ordering::SeqCst) {
                    let mut ok = Response::custom(250, "2.0.0 OK, closing".to_owned());
                    ok.action = Action::Close;
                    ok
                } else {
                    response::OK
                }
            }
            Reply::Transient | Reply::Permanent => {
                lock(&self.shared.rejected).push(mail);
                self.ended = true;
                if reply == Reply::Transient {
                    Response::custom(451, "4.3.0 Temporary failure (scripted)".to_owned())
                } else {
                    Response::custom(550, "5.7.1 Message rejected (scripted)".to_owned())
                }
            }
        }
    }
}

/// The mails among `mails` addressed to `addr`, in order.
pub fn to(mails: &[ReceivedMail], addr: &str) -> Vec<ReceivedMail> {
    mails
        .iter()
        .filter(|m| m.to.iter().any(|t| t == addr))
        .cloned()
        .collect()
}
