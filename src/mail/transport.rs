//! Delivery of built messages: pooled SMTP (lettre) or one `.eml` file per
//! message, and the transient/permanent classification of failures that the
//! outbox retries on (R27).
//!
//! lettre's own `is_transient`/`is_permanent` only cover SMTP replies: a refused
//! connection or a timeout is neither. The daemon needs every failure on one
//! side, so `classify` decides: 4xx and anything about the connection is
//! transient, a reply about the session rather than the message
//! (authentication, TLS, the sender) is a configuration fault, other 5xx and
//! messages the server can never take are permanent.
//!
//! Failures of the transport as a whole (connection, TLS, configuration
//! faults, 421) open the circuit breaker (`breaker.rs`); any answer about a
//! message closes it. A connection that saw an I/O error or a timeout is
//! never used again.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

use super::breaker::{Admission, Breaker};
use super::message::MessageError;

/// How to deliver mail. With `smtp_url` unset, messages are written as `.eml`
/// files into `outbox_dir` instead (development, and a way to look at exactly
/// what would be sent).
#[derive(Clone)]
pub struct MailerConfig {
    /// `smtp://host:port` (no TLS), `smtp://host:port?tls=required` (STARTTLS),
    /// `smtp://host?tls=opportunistic`, `smtps://host:port` (implicit TLS);
    /// optional `user:password@` (percent-encoded).
    pub smtp_url: Option<String>,
    /// At most this many SMTP exchanges run at once (a semaphore shared by
    /// every clone), and lettre keeps as many idle connections (R28).
    pub pool_size: u32,
    /// Bounds one send attempt: the TCP connect, and the whole attempt from
    /// taking a connection to the server's final reply.
    pub timeout: Duration,
    /// `smtp.probe_interval`: while the transport is down, one email per
    /// interval goes through as a probe (`breaker.rs`).
    pub probe_interval: Duration,
    pub outbox_dir: PathBuf,
}

impl fmt::Debug for MailerConfig {
    // Hand-written so a password in the URL never reaches a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailerConfig")
            .field("smtp_url", &self.smtp_url.as_deref().map(redact_url))
            .field("pool_size", &self.pool_size)
            .field("timeout", &self.timeout)
            .field("probe_interval", &self.probe_interval)
            .field("outbox_dir", &self.outbox_dir)
            .finish()
    }
}

/// The server's reply to a delivered message (or, for the file transport, a
/// synthetic 250 naming the file). Recorded on the delivery attempt (R34).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmtpReply {
    pub code: u16,
    pub text: String,
}

impl fmt::Display for SmtpReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.text)
    }
}

/// What went wrong: a reply from the server, or a failure described in words
/// (connection refused, timeout, TLS, I/O, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Reply(SmtpReply),
    Other(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Reply(reply) => write!(f, "SMTP {reply}"),
            Failure::Other(text) => f.write_str(text),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    /// Worth retrying later: 4xx replies, connection, timeout, TLS and I/O errors.
    #[error("transient mail failure: {0}")]
    Transient(Failure),
    /// Retrying the same message cannot help: 5xx replies, unbuildable messages,
    /// an unusable configuration.
    #[error("permanent mail failure: {0}")]
    Permanent(Failure),
    /// The server refused the session, not the message: authentication
    /// (530, 535, ...), TLS, or the sender. Every email would fail the same
    /// way until the configuration (ours or the server's) is fixed, so it is
    /// retried like a transient failure, and loudly.
    #[error("SMTP configuration fault: {0}")]
    Config(Failure),
}

impl MailError {
    /// `"transient"` or `"permanent"`, for metric labels, attempt rows and
    /// event payloads. A configuration fault is retried, so `"transient"`.
    pub fn kind(&self) -> &'static str {
        match self {
            MailError::Transient(_) | MailError::Config(_) => "transient",
            MailError::Permanent(_) => "permanent",
        }
    }

    /// Worth trying again later (configuration faults included).
    pub fn is_transient(&self) -> bool {
        !matches!(self, MailError::Permanent(_))
    }

    pub fn is_config(&self) -> bool {
        matches!(self, MailError::Config(_))
    }

    /// The transport as a whole failed, not this message: no connection, a
    /// timeout, an I/O or TLS error, `421` (the service is closing), or a
    /// configuration fault. Opens the circuit breaker.
    pub fn is_transport_fault(&self) -> bool {
        match self {
            MailError::Config(_) => true,
            MailError::Transient(Failure::Other(_)) => true,
            MailError::Transient(Failure::Reply(reply)) => reply.code == 421,
            MailError::Permanent(_) => false,
        }
    }

    pub fn failure(&self) -> &Failure {
        match self {
            MailError::Transient(failure)
            | MailError::Permanent(failure)
            | MailError::Config(failure) => failure,
        }
    }

    /// The SMTP reply, when the server gave one.
    pub fn reply(&self) -> Option<&SmtpReply> {
        match self.failure() {
            Failure::Reply(reply) => Some(reply),
            Failure::Other(_) => None,
        }
    }

    pub fn code(&self) -> Option<u16> {
        self.reply().map(|r| r.code)
    }
}

impl From<MessageError> for MailError {
    fn from(e: MessageError) -> Self {
        MailError::Permanent(Failure::Other(e.to_string()))
    }
}

/// The result of one delivery attempt, as actors pass it around.
pub type SendOutcome = Result<SmtpReply, MailError>;

/// Sends messages. Cloning is cheap and clones share the SMTP connection pool.
#[derive(Clone)]
pub struct Mailer {
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    Smtp {
        /// lettre's pooled transport (TLS, credentials). Replaced by a new
        /// one (a new pool) after an I/O error or a timeout: lettre puts a
        /// connection whose send was cut off by our deadline back into its
        /// pool mid-exchange, where the next email would read the previous
        /// one's reply.
        transport: Arc<std::sync::Mutex<Arc<AsyncSmtpTransport<Tokio1Executor>>>>,
        /// What builds `transport` again (the URL, with its credentials).
        rebuild: Arc<dyn Fn() -> Arc<AsyncSmtpTransport<Tokio1Executor>> + Send + Sync>,
        /// The URL without password, for logs.
        target: String,
        breaker: Arc<Breaker>,
        /// lettre's async transport only times out the TCP connect: a server
        /// that stops answering mid-conversation would hold a send forever.
        deadline: Duration,
        /// `smtp.pool_size` permits: lettre's pool only caps idle
        /// connections, so this is what bounds open connections (R28).
        connections: Arc<Semaphore>,
        /// Plain `smtp://host:port` (no TLS, no credentials): our own pool of
        /// lettre connections over sockets with TCP_NODELAY. lettre's own
        /// connect leaves Nagle on, and it writes the message and the final
        /// `.` in two writes: the `.` then waits for the server's delayed
        /// ACK (~40 ms on Linux) on every message, which capped a
        /// connection at ~22 messages/s (BENCHMARKS.md).
        direct: Option<Arc<DirectPool>>,
    },
    Files {
        dir: PathBuf,
    },
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailer")
            .field("target", &self.target())
            .finish()
    }
}

impl Mailer {
    /// Builds the transport; no connection is made until the first send. Fails
    /// (permanently) on an unusable URL or an outbox directory that cannot be
    /// created. Call it inside a Tokio runtime: the SMTP pool spawns its idle
    /// cleanup task here.
    pub fn new(cfg: MailerConfig) -> Result<Mailer, MailError> {
        let inner = match cfg.smtp_url.as_deref() {
            Some(url) => {
                let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| {
                        // lettre's messages name the scheme or parse problem,
                        // never the credentials.
                        MailError::Permanent(Failure::Other(format!("invalid smtp_url: {e}")))
                    })?
                    .timeout(Some(cfg.timeout))
                    .pool_config(PoolConfig::new().max_size(cfg.pool_size.max(1)));
                let rebuild = move || Arc::new(builder.clone().build());
                Inner::Smtp {
                    transport: Arc::new(std::sync::Mutex::new(rebuild())),
                    rebuild: Arc::new(rebuild),
                    target: redact_url(url),
                    breaker: Arc::new(Breaker::new(cfg.probe_interval)),
                    deadline: cfg.timeout,
                    connections: Arc::new(Semaphore::new(cfg.pool_size.max(1) as usize)),
                    direct: DirectPool::for_url(url).map(Arc::new),
                }
            }
            None => {
                std::fs::create_dir_all(&cfg.outbox_dir).map_err(|e| {
                    MailError::Permanent(Failure::Other(format!(
                        "cannot create outbox directory {}: {e}",
                        cfg.outbox_dir.display()
                    )))
                })?;
                Inner::Files {
                    dir: cfg.outbox_dir,
                }
            }
        };
        Ok(Mailer { inner })
    }

    /// Where mail goes, safe to log: the SMTP URL without password, or
    /// `file://<dir>`.
    pub fn target(&self) -> String {
        match &self.inner {
            Inner::Smtp { target, .. } => target.clone(),
            Inner::Files { dir } => format!("file://{}", dir.display()),
        }
    }

    /// Whether the dispatcher may claim mail now (the circuit breaker; the
    /// file transport is always open for business).
    pub fn admit(&self) -> Admission {
        match &self.inner {
            Inner::Smtp { breaker, .. } => breaker.admit(),
            Inner::Files { .. } => Admission::Send,
        }
    }

    /// The circuit breaker is open: mail is held back.
    pub fn is_holding(&self) -> bool {
        matches!(&self.inner, Inner::Smtp { breaker, .. } if breaker.is_open())
    }

    /// A probe's email needed no SMTP exchange: the next one may probe now.
    pub fn probe_unused(&self) {
        if let Inner::Smtp { breaker, .. } = &self.inner {
            breaker.probe_unused();
        }
    }

    /// `smtp.probe_interval`: how long a transport fault holds mail back.
    pub fn probe_interval(&self) -> Option<Duration> {
        match &self.inner {
            Inner::Smtp { breaker, .. } => Some(breaker.interval()),
            Inner::Files { .. } => None,
        }
    }

    /// Delivers `msg` to the recipients of its envelope.
    ///
    /// An attempt that exceeds the deadline is transient. It may still have
    /// been delivered (the reply can be lost after the server took it); the
    /// retry then sends a duplicate with the same Message-ID, which is what
    /// at-least-once delivery allows (R27).
    pub async fn send(&self, msg: &Message) -> Result<SmtpReply, MailError> {
        self.send_from(msg, None).await
    }

    /// Like [`Mailer::send`], with `sender` (the VERP return path of the
    /// email, `mail.return_path`) as the envelope sender (MAIL FROM) instead
    /// of the `From` address. The file transport has no envelope.
    pub async fn send_from(
        &self,
        msg: &Message,
        sender: Option<&lettre::Address>,
    ) -> Result<SmtpReply, MailError> {
        let envelope = match sender {
            Some(sender) => {
                lettre::address::Envelope::new(Some(sender.clone()), msg.envelope().to().to_vec())
                    .map_err(|e| {
                    MailError::Permanent(Failure::Other(format!("invalid envelope: {e}")))
                })?
            }
            None => msg.envelope().clone(),
        };
        match &self.inner {
            Inner::Smtp {
                target, breaker, ..
            } => {
                let sent = self.send_smtp(msg, &envelope).await;
                match &sent {
                    Err(error) if error.is_transport_fault() => {
                        if error.is_config() {
                            crate::metrics::smtp_config_fault();
                            tracing::error!(smtp = %target, %error,
                                "the SMTP server refuses the session: fix the configuration (smtp.url, mail.from) or the server; mail is held and retried");
                        }
                        if breaker.failed() {
                            crate::metrics::smtp_breaker_open(true);
                            tracing::warn!(smtp = %target, %error, probe_interval = ?breaker.interval(),
                                "SMTP transport failing: mail is held, one probe per interval");
                        }
                    }
                    // Any answer about the message: the transport works.
                    _ => {
                        if breaker.succeeded() {
                            crate::metrics::smtp_breaker_open(false);
                            tracing::info!(smtp = %target, "SMTP transport answers again: mail flows");
                        }
                    }
                }
                sent
            }
            Inner::Files { dir } => write_eml(dir, msg).await,
        }
    }

    async fn send_smtp(
        &self,
        msg: &Message,
        envelope: &lettre::address::Envelope,
    ) -> Result<SmtpReply, MailError> {
        match &self.inner {
            Inner::Smtp {
                transport,
                rebuild,
                deadline,
                connections,
                direct,
                ..
            } => {
                // Waiting for a connection is not part of the attempt's deadline.
                let _permit = connections
                    .acquire()
                    .await
                    .map_err(|_| MailError::Transient(Failure::Other("mailer closed".into())))?;
                let raw = msg.formatted();
                let timed_out = || {
                    MailError::Transient(Failure::Other(format!(
                        "SMTP send did not finish within {deadline:?}"
                    )))
                };
                let response = match direct {
                    Some(pool) => tokio::time::timeout(*deadline, pool.send(envelope, &raw))
                        .await
                        .map_err(|_| timed_out())??,
                    None => {
                        let current = lock(transport).clone();
                        let sent =
                            tokio::time::timeout(*deadline, current.send_raw(envelope, &raw))
                                .await
                                .map_err(|_| timed_out())
                                .and_then(|sent| sent.map_err(classify));
                        if let Err(error) = &sent
                            && error.reply().is_none()
                        {
                            // Drop every pooled connection: the one cut off
                            // went back into lettre's pool mid-exchange. Once
                            // per failed pool: a concurrent failure may have
                            // replaced it already.
                            let mut slot = lock(transport);
                            if Arc::ptr_eq(&slot, &current) {
                                *slot = rebuild();
                                drop(slot);
                                tokio::spawn(async move { current.shutdown().await });
                            }
                        }
                        sent?
                    }
                };
                Ok(SmtpReply {
                    code: response.code().into(),
                    text: response.message().collect::<Vec<_>>().join(" "),
                })
            }
            Inner::Files { dir } => write_eml(dir, msg).await,
        }
    }

    /// Closes pooled SMTP connections (QUIT). Part of the shutdown path; later
    /// sends fail as transient.
    pub async fn shutdown(&self) {
        if let Inner::Smtp {
            transport, direct, ..
        } = &self.inner
        {
            let current = lock(transport).clone();
            current.shutdown().await;
            if let Some(pool) = direct {
                pool.shutdown().await;
            }
        }
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Idle connections of a plain `smtp://` server, each opened with
/// TCP_NODELAY. The mailer's semaphore bounds how many are checked out, so at
/// most `smtp.pool_size` are open.
pub(crate) struct DirectPool {
    host: String,
    port: u16,
    hello: ClientId,
    idle: std::sync::Mutex<Vec<(AsyncSmtpConnection, std::time::Instant)>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reuse {
    Pooled,
    Fresh,
}

/// A connection idle longer than this is tested with NOOP before it is used
/// (as lettre's pool does on every checkout)...
const TEST_IDLE_AFTER: Duration = Duration::from_secs(1);
/// ...and one idle longer than this is closed (lettre's default idle timeout).
const CLOSE_IDLE_AFTER: Duration = Duration::from_secs(60);

impl DirectPool {
    /// A pool for `smtp://host[:port]` without TLS, credentials or options;
    /// `None` for anything else (lettre's transport handles those).
    fn for_url(url: &str) -> Option<DirectPool> {
        let url = url::Url::parse(url).ok()?;
        if url.scheme() != "smtp"
            || url.query().is_some()
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return None;
        }
        let host = url.host_str()?.trim_matches(['[', ']']).to_string();
        Some(DirectPool {
            host,
            port: url.port().unwrap_or(25),
            hello: ClientId::default(),
            idle: std::sync::Mutex::new(Vec::new()),
        })
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<(AsyncSmtpConnection, std::time::Instant)>> {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// An idle connection if there is a usable one, else a new one.
    async fn checkout(&self) -> Result<(AsyncSmtpConnection, Reuse), MailError> {
        loop {
            let Some((mut conn, since)) = self.idle().pop() else {
                break;
            };
            let idle = since.elapsed();
            if idle > CLOSE_IDLE_AFTER {
                conn.abort().await;
                continue;
            }
            if idle <= TEST_IDLE_AFTER || conn.test_connected().await {
                return Ok((conn, Reuse::Pooled));
            }
        }
        Ok((self.connect().await?, Reuse::Fresh))
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, MailError> {
        let connection_error = |e: &dyn fmt::Display| {
            MailError::Transient(Failure::Other(format!("connection error: {e}")))
        };
        let stream = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| connection_error(&e))?;
        stream.set_nodelay(true).map_err(|e| connection_error(&e))?;
        AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello)
            .await
            .map_err(classify)
    }

    async fn send(
        &self,
        envelope: &lettre::address::Envelope,
        raw: &[u8],
    ) -> Result<lettre::transport::smtp::response::Response, MailError> {
        let (mut conn, reuse) = self.checkout().await?;
        let mut sent = conn.send(envelope, raw).await;
        // A pooled connection the server closed while it was idle (a reset
        // right after its last 250, an idle timeout shorter than ours) only
        // shows when it is used. That is not this message's failure: it goes
        // out on a new connection, in the same attempt. (If the server did
        // take the message before the failure, this is the duplicate with
        // the same Message-ID that a retry would have sent, R27.)
        if reuse == Reuse::Pooled
            && let Err(e) = &sent
            && e.status().is_none()
            && !e.is_client()
        {
            tracing::debug!(error = %e, "a pooled SMTP connection was closed; sending on a new one");
            conn = self.connect().await?;
            sent = conn.send(envelope, raw).await;
        }
        // lettre aborts the connection on any failed command (I/O errors
        // included); a broken one is dropped, a good one goes back for the
        // next message. One cut off by the deadline is dropped with this
        // future, never pooled.
        if !conn.has_broken() {
            self.idle().push((conn, std::time::Instant::now()));
        }
        sent.map_err(classify)
    }

    async fn shutdown(&self) {
        let idle: Vec<_> = std::mem::take(&mut *self.idle());
        for (mut conn, _) in idle {
            let _ = conn.quit().await;
        }
    }
}

/// Sorts a lettre SMTP error into transient or permanent, keeping the reply.
fn classify(e: lettre::transport::smtp::Error) -> MailError {
    if let Some(code) = e.status() {
        let code = u16::from(code);
        // For reply errors lettre keeps the server's text as the source.
        let text = std::error::Error::source(&e)
            .map(ToString::to_string)
            .unwrap_or_default();
        let session = is_session_refusal(code, &text);
        let failure = Failure::Reply(SmtpReply { code, text });
        return if session {
            MailError::Config(failure)
        } else if code >= 500 {
            MailError::Permanent(failure)
        } else {
            MailError::Transient(failure)
        };
    }
    let text = e.to_string();
    // TLS that cannot be set up, or a server that offers no STARTTLS or no
    // authentication we can use: the configuration of one side is wrong.
    if e.is_tls()
        || (e.is_client() && (text.contains("authentication") || text.contains("STARTTLS")))
    {
        return MailError::Config(Failure::Other(text));
    }
    // The only client-side refusals about the message itself: non-ASCII
    // content or addresses the server has no extension for. Every other
    // client error (e.g. STARTTLS required but not offered) is about the
    // server or its configuration and may be fixed while we retry.
    if e.is_client() && text.contains("non-ascii") {
        MailError::Permanent(Failure::Other(text))
    } else {
        MailError::Transient(Failure::Other(text))
    }
}

/// A reply about the session rather than the recipient or the message: the
/// server wants authentication or refuses ours (530, 534, 535, 538, 454),
/// wants encryption, or refuses the sender (RFC 3463 enhanced codes
/// `x.7.0` with 530, `x.7.8`–`x.7.14` about credentials and encryption,
/// `x.1.7`/`x.1.8` about the sender's address). Retrying another recipient
/// cannot help, fixing the configuration does. lettre does not say which
/// command a reply answered, so the codes decide.
fn is_session_refusal(code: u16, text: &str) -> bool {
    if matches!(code, 454 | 530 | 534 | 535 | 538) {
        return true;
    }
    let enhanced = text.split_whitespace().next().unwrap_or("");
    let mut parts = enhanced.split('.');
    let (Some(class), Some(subject), Some(detail), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    if !matches!(class, "4" | "5") {
        return false;
    }
    matches!(
        (subject, detail.parse::<u16>()),
        ("7", Ok(8..=14)) | ("1", Ok(7 | 8))
    )
}

/// Writes `msg` as `<dir>/<message-id>.eml`, through a temporary file and a
/// rename so that a reader never sees half a message. A retry of the same
/// message replaces the file.
async fn write_eml(dir: &Path, msg: &Message) -> Result<SmtpReply, MailError> {
    let stem = msg
        .headers()
        .get_raw("Message-ID")
        .map(file_stem)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let name = format!("{stem}.eml");
    let path = dir.join(&name);
    // A dot file with a unique suffix: invisible to `*.eml` readers, never
    // shared by two concurrent writers.
    let tmp = dir.join(format!(".{stem}.{}.tmp", uuid::Uuid::now_v7()));

    let io_err = |what: &str, e: std::io::Error| {
        MailError::Transient(Failure::Other(format!("{what} {}: {e}", path.display())))
    };
    let result = async {
        let mut file = tokio::fs::File::create(&tmp).await?;
        file.write_all(&msg.formatted()).await?;
        // Flushed to disk before the rename makes it visible.
        file.sync_all().await?;
        drop(file);
        tokio::fs::rename(&tmp, &path).await
    }
    .await;
    if let Err(e) = result {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(io_err("cannot write", e));
    }
    Ok(SmtpReply {
        code: 250,
        text: format!("2.0.0 written to {name}"),
    })
}

/// The Message-ID without its angle brackets, limited to characters that are
/// safe in a file name on any system.
fn file_stem(message_id: &str) -> String {
    message_id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@' | '+') {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_start_matches('.')
        .to_owned()
}

/// `url` with any password replaced by `***`; unparsable input is not echoed.
fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "<unparsable smtp url>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailer_is_shareable_across_tasks() {
        fn assert_send_sync_clone<T: Send + Sync + Clone + 'static>() {}
        assert_send_sync_clone::<Mailer>();
        assert_send_sync_clone::<MailError>();
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("smtp://bob:s3cret@mail.test:587?tls=required"),
            "smtp://bob:***@mail.test:587?tls=required"
        );
        assert_eq!(redact_url("smtp://127.0.0.1:2525"), "smtp://127.0.0.1:2525");
        let cfg = MailerConfig {
            smtp_url: Some("smtps://u:hunter2@mail.test".into()),
            pool_size: 2,
            timeout: Duration::from_secs(5),
            probe_interval: Duration::from_secs(5),
            outbox_dir: "outbox".into(),
        };
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }

    #[test]
    fn file_stems_are_safe() {
        assert_eq!(
            file_stem("<0190-ab@info.example.test>"),
            "0190-ab@info.example.test"
        );
        assert_eq!(file_stem("<../../etc/passwd@x>"), "_.._etc_passwd@x");
        assert_eq!(file_stem("<a b/c@d>"), "a_b_c@d");
    }

    #[test]
    fn error_kinds_and_display() {
        let e = MailError::Transient(Failure::Reply(SmtpReply {
            code: 451,
            text: "4.3.0 try later".into(),
        }));
        assert_eq!(e.kind(), "transient");
        assert_eq!(e.code(), Some(451));
        assert!(e.to_string().contains("451 4.3.0 try later"), "{e}");
        let e = MailError::Permanent(Failure::Other("boom".into()));
        assert_eq!(e.kind(), "permanent");
        assert_eq!(e.code(), None);
    }

    #[test]
    fn session_refusals_are_told_from_refusals_of_the_message() {
        for (code, text) in [
            (535, "5.7.8 Authentication credentials invalid"),
            (530, "5.7.0 Authentication required"),
            (534, "5.7.9 Please log in with your web browser"),
            (454, "4.7.0 TLS not available due to local problem"),
            (553, "5.1.8 Sender address rejected: domain not found"),
            (550, "5.1.7 Bad sender's mailbox address syntax"),
            (550, "5.7.11 Encryption required"),
        ] {
            assert!(is_session_refusal(code, text), "{code} {text}");
        }
        for (code, text) in [
            (550, "5.7.1 Message rejected (scripted)"),
            (550, "5.1.1 User unknown"),
            (552, "5.2.2 Mailbox full"),
            (451, "4.3.0 Temporary failure"),
            (421, "4.7.0 Try again later"),
            (554, "Transaction failed"),
        ] {
            assert!(!is_session_refusal(code, text), "{code} {text}");
        }
    }

    #[test]
    fn transport_faults_are_about_the_connection_or_the_session() {
        let reply = |code: u16| {
            Failure::Reply(SmtpReply {
                code,
                text: String::new(),
            })
        };
        assert!(MailError::Transient(Failure::Other("refused".into())).is_transport_fault());
        assert!(MailError::Transient(reply(421)).is_transport_fault());
        assert!(MailError::Config(reply(535)).is_transport_fault());
        assert!(MailError::Config(reply(535)).is_transient());
        assert_eq!(MailError::Config(reply(535)).kind(), "transient");
        assert!(!MailError::Transient(reply(451)).is_transport_fault());
        assert!(!MailError::Permanent(reply(550)).is_transport_fault());
    }

    #[tokio::test]
    async fn bad_urls_are_rejected() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let cfg = |url: &str| MailerConfig {
            smtp_url: Some(url.into()),
            pool_size: 1,
            timeout: Duration::from_secs(1),
            probe_interval: Duration::from_secs(5),
            outbox_dir: "unused".into(),
        };
        for url in [
            "http://mail.test",
            "smtp://mail.test?tls=sometimes",
            "not a url",
        ] {
            let err = Mailer::new(cfg(url)).unwrap_err();
            assert_eq!(err.kind(), "permanent", "{url}: {err}");
        }
        assert!(Mailer::new(cfg("smtp://u:p@mail.test:2525")).is_ok());
        assert!(Mailer::new(cfg("smtp://mail.test:587?tls=required")).is_ok());
        assert!(Mailer::new(cfg("smtps://mail.test")).is_ok());
    }
}
