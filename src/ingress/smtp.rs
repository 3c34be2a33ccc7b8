//! The inbound SMTP listener for bounces and complaints (R43 b,
//! `feedback.smtp_listen`): the port an MX of the return path's domain
//! points at. It speaks just enough SMTP (RFC 5321) for a mail server to
//! hand over a delivery status notification or a complaint report: EHLO,
//! MAIL, RCPT, DATA, RSET, NOOP, QUIT; no TLS, no authentication, no relay.
//!
//! What it refuses, and how: a recipient outside the return path's domain
//! `550 5.1.1` (it takes mail for nobody else); a message over
//! [`MAX_MESSAGE`] `552 5.3.4` (announced in `SIZE` and enforced while
//! reading); a report it cannot read `554 5.6.0`, recorded with why. A
//! report about an unknown email is accepted (`250`), recorded and dropped.
//! Every read has a deadline ([`READ_TIMEOUT`], `421` when it passes) and at
//! most [`MAX_CONNECTIONS`] sessions run at once (`421` for one more).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::feedback::{FeedbackSource, Unreadable, report};
use crate::mail::ReturnPath;
use crate::service::Services;

/// The largest message taken, in bytes. A bounce carries the headers or the
/// whole of one of our emails (tens of kilobytes); anything near this is not
/// a bounce.
pub const MAX_MESSAGE: usize = 1024 * 1024;
/// Sessions served at once.
pub const MAX_CONNECTIONS: usize = 32;
/// How long one read (a command, a line of DATA) may take.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest command or DATA line (RFC 5321 allows 1000 with the CRLF).
const MAX_LINE: usize = 4096;
/// Recipients per message.
const MAX_RECIPIENTS: usize = 16;
/// Unknown or out-of-order commands before the session is closed.
const MAX_ERRORS: usize = 10;

/// The listener's settings and the use cases it hands reports to.
pub struct FeedbackListener {
    pub services: Services,
    pub return_path: ReturnPath,
}

impl FeedbackListener {
    /// Serves `listener` until the task is stopped. Takes a clone of the
    /// socket bound at start, so a restart by the supervisor serves the same
    /// port.
    pub async fn run(self: Arc<Self>, listener: std::net::TcpListener) {
        let listener = match listener
            .set_nonblocking(true)
            .and_then(|()| tokio::net::TcpListener::from_std(listener))
        {
            Ok(listener) => listener,
            Err(error) => {
                tracing::error!(%error, "the feedback listener cannot use its socket");
                return;
            }
        };
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait, go on.
                    tracing::warn!(%error, "feedback listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let this = self.clone();
            match slots.clone().try_acquire_owned() {
                Ok(permit) => {
                    tokio::spawn(async move {
                        this.session(stream, peer).await;
                        drop(permit);
                    });
                }
                Err(_) => {
                    tokio::spawn(async move {
                        let mut stream = stream;
                        let _ = stream
                            .write_all(b"421 4.3.2 Too many connections, try again later\r\n")
                            .await;
                    });
                }
            }
        }
    }

    async fn session(&self, stream: TcpStream, peer: SocketAddr) {
        let (read, mut write) = stream.into_split();
        let mut read = BufReader::new(read);
        let domain = self.return_path.domain().to_owned();
        if let Err(error) = self.converse(&mut read, &mut write, &domain).await {
            tracing::debug!(%peer, %error, "feedback listener: session ended");
        }
        let _ = write.shutdown().await;
    }

    async fn converse<R, W>(&self, read: &mut R, write: &mut W, domain: &str) -> std::io::Result<()>
    where
        R: AsyncBufRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        reply(
            write,
            &format!("220 {domain} ESMTP invited feedback listener"),
        )
        .await?;
        let mut sender: Option<String> = None;
        let mut recipients: Vec<String> = Vec::new();
        let mut errors = 0;
        loop {
            let line = match read_line(read, MAX_LINE).await? {
                Line::Text(line) => line,
                Line::TooLong => {
                    errors += 1;
                    reply(write, "500 5.5.2 Line too long").await?;
                    continue;
                }
                Line::TimedOut => {
                    return reply(write, "421 4.4.2 Timeout: closing the connection").await;
                }
                Line::Closed => return Ok(()),
            };
            if errors >= MAX_ERRORS {
                return reply(write, "421 4.7.0 Too many errors: closing the connection").await;
            }
            let line = String::from_utf8_lossy(&line).into_owned();
            let (verb, arg) = match line.split_once(' ') {
                Some((verb, arg)) => (verb.to_ascii_uppercase(), arg.trim().to_owned()),
                None => (line.trim().to_ascii_uppercase(), String::new()),
            };
            match verb.as_str() {
                "EHLO" => {
                    sender = None;
                    recipients.clear();
                    reply(
                        write,
                        &format!(
                            "250-{domain}\r\n250-SIZE {MAX_MESSAGE}\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES"
                        ),
                    )
                    .await?;
                }
                "HELO" => {
                    sender = None;
                    recipients.clear();
                    reply(write, &format!("250 {domain}")).await?;
                }
                "MAIL" => {
                    let Some(rest) = strip_prefix_ci(&arg, "FROM:") else {
                        errors += 1;
                        reply(write, "501 5.5.4 Syntax: MAIL FROM:<address>").await?;
                        continue;
                    };
                    let (path, params) = path_and_params(rest);
                    if let Some(size) = params.iter().find_map(|p| strip_prefix_ci(p, "SIZE="))
                        && size.parse::<usize>().is_ok_and(|n| n > MAX_MESSAGE)
                    {
                        reply(write, &too_big()).await?;
                        continue;
                    }
                    sender = Some(path);
                    recipients.clear();
                    reply(write, "250 2.1.0 Ok").await?;
                }
                "RCPT" => {
                    let Some(rest) = strip_prefix_ci(&arg, "TO:") else {
                        errors += 1;
                        reply(write, "501 5.5.4 Syntax: RCPT TO:<address>").await?;
                        continue;
                    };
                    if sender.is_none() {
                        errors += 1;
                        reply(write, "503 5.5.1 MAIL first").await?;
                        continue;
                    }
                    let (path, _) = path_and_params(rest);
                    if !self.return_path.is_in_domain(&path) {
                        reply(
                            write,
                            &format!(
                                "550 5.1.1 <{path}>: this server takes mail for @{domain} only"
                            ),
                        )
                        .await?;
                        continue;
                    }
                    if recipients.len() >= MAX_RECIPIENTS {
                        reply(write, "452 4.5.3 Too many recipients").await?;
                        continue;
                    }
                    recipients.push(path);
                    reply(write, "250 2.1.5 Ok").await?;
                }
                "DATA" => {
                    if recipients.is_empty() {
                        errors += 1;
                        reply(write, "503 5.5.1 RCPT first").await?;
                        continue;
                    }
                    reply(write, "354 End data with <CR><LF>.<CR><LF>").await?;
                    let answer = match read_data(read).await? {
                        Data::Message(raw) => self.take(&raw, &recipients).await,
                        Data::TooBig => {
                            let why = Unreadable::Malformed(format!(
                                "a message of more than {MAX_MESSAGE} bytes was refused"
                            ));
                            let _ = self
                                .services
                                .record_unreadable_feedback(
                                    FeedbackSource::Smtp,
                                    recipients.first().map(String::as_str),
                                    &why,
                                )
                                .await;
                            too_big()
                        }
                        Data::TimedOut => {
                            return reply(write, "421 4.4.2 Timeout: closing the connection").await;
                        }
                        Data::Closed => return Ok(()),
                    };
                    sender = None;
                    recipients.clear();
                    reply(write, &answer).await?;
                }
                "RSET" => {
                    sender = None;
                    recipients.clear();
                    reply(write, "250 2.0.0 Ok").await?;
                }
                "NOOP" => reply(write, "250 2.0.0 Ok").await?,
                "VRFY" => reply(write, "252 2.5.0 Cannot verify").await?,
                "QUIT" => return reply(write, "221 2.0.0 Bye").await,
                _ => {
                    errors += 1;
                    reply(write, "502 5.5.2 Command not recognized").await?;
                }
            }
        }
    }

    /// Reads and applies one received message; the SMTP answer says what
    /// became of it.
    async fn take(&self, raw: &[u8], recipients: &[String]) -> String {
        // The recipient that names an email (the return path), else the first.
        let named = recipients
            .iter()
            .find_map(|r| self.return_path.id_of(r).map(|id| (r.as_str(), Some(id))));
        let (envelope_to, outbox_id) =
            named.unwrap_or((recipients.first().map_or("", String::as_str), None));
        match report::read(raw, FeedbackSource::Smtp, Some(envelope_to), outbox_id) {
            Ok(feedback) => match self.services.apply_feedback(&feedback).await {
                Ok(crate::service::feedback::FeedbackOutcome::Unmatched) => {
                    "250 2.0.0 Accepted: it names no email of ours, recorded and dropped".into()
                }
                Ok(_) => format!("250 2.0.0 Accepted: {} recorded", feedback.kind.as_str()),
                Err(error) => {
                    tracing::warn!(%error, "feedback listener: could not record a report");
                    "451 4.3.0 Cannot record the report now, try again later".into()
                }
            },
            Err(why) => {
                let recorded = self
                    .services
                    .record_unreadable_feedback(FeedbackSource::Smtp, Some(envelope_to), &why)
                    .await;
                match (&why, recorded) {
                    (_, Err(error)) => {
                        tracing::warn!(%error, "feedback listener: could not record a report");
                        "451 4.3.0 Cannot record the report now, try again later".into()
                    }
                    (Unreadable::NotAFailure(text), Ok(())) => {
                        format!("250 2.0.0 Accepted and ignored: {text}")
                    }
                    (Unreadable::Malformed(text), Ok(())) => {
                        format!("554 5.6.0 Not a report this server reads: {text}")
                    }
                }
            }
        }
    }
}

fn too_big() -> String {
    format!("552 5.3.4 Message too big: at most {MAX_MESSAGE} bytes")
}

async fn reply<W: AsyncWrite + Unpin>(write: &mut W, text: &str) -> std::io::Result<()> {
    let mut bytes = Vec::with_capacity(text.len() + 2);
    bytes.extend_from_slice(text.as_bytes());
    bytes.extend_from_slice(b"\r\n");
    write.write_all(&bytes).await?;
    write.flush().await
}

fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| text[prefix.len()..].trim_start())
}

/// `<a@b> SIZE=10` → (`a@b`, [`SIZE=10`]); `<>` is the empty path.
fn path_and_params(text: &str) -> (String, Vec<String>) {
    let text = text.trim();
    let (path, rest) = match text.strip_prefix('<').and_then(|t| t.split_once('>')) {
        Some((path, rest)) => (path, rest),
        None => text.split_once(' ').unwrap_or((text, "")),
    };
    (
        path.trim().to_owned(),
        rest.split_whitespace().map(str::to_owned).collect(),
    )
}

enum Line {
    Text(Vec<u8>),
    TooLong,
    TimedOut,
    Closed,
}

/// One line without its CRLF (or LF), at most `max` bytes; a longer one is
/// read to its end and reported. Each wait for bytes has the deadline.
async fn read_line<R: AsyncBufRead + Unpin>(read: &mut R, max: usize) -> std::io::Result<Line> {
    let mut line = Vec::new();
    let mut too_long = false;
    loop {
        let available = match tokio::time::timeout(READ_TIMEOUT, read.fill_buf()).await {
            Err(_) => return Ok(Line::TimedOut),
            Ok(result) => result?,
        };
        if available.is_empty() {
            return Ok(Line::Closed);
        }
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(at) => (&available[..=at], true),
            None => (available, false),
        };
        let used = chunk.len();
        if !too_long {
            if line.len() + used > max + 2 {
                too_long = true;
                line.clear();
            } else {
                line.extend_from_slice(chunk);
            }
        }
        read.consume(used);
        if done {
            if too_long {
                return Ok(Line::TooLong);
            }
            while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                line.pop();
            }
            return Ok(Line::Text(line));
        }
    }
}

enum Data {
    Message(Vec<u8>),
    TooBig,
    TimedOut,
    Closed,
}

/// The message after `DATA`, up to the line `.`, dot-unstuffed, lines
/// ending in CRLF. Past [`MAX_MESSAGE`] the rest is read and dropped, so the
/// answer comes at the end of the data as the client expects it.
async fn read_data<R: AsyncBufRead + Unpin>(read: &mut R) -> std::io::Result<Data> {
    let mut message = Vec::new();
    let mut too_big = false;
    loop {
        let line = match read_line(read, MAX_LINE).await? {
            Line::Text(line) => line,
            // A line over the limit is not SMTP; keep reading to the end.
            Line::TooLong => {
                too_big = true;
                continue;
            }
            Line::TimedOut => return Ok(Data::TimedOut),
            Line::Closed => return Ok(Data::Closed),
        };
        if line == b"." {
            return Ok(if too_big {
                Data::TooBig
            } else {
                Data::Message(message)
            });
        }
        if too_big {
            continue;
        }
        let line = line.strip_prefix(b".").unwrap_or(&line);
        if message.len() + line.len() + 2 > MAX_MESSAGE {
            too_big = true;
            message = Vec::new();
            continue;
        }
        message.extend_from_slice(line);
        message.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_parameters() {
        assert_eq!(path_and_params("<>"), (String::new(), vec![]));
        assert_eq!(
            path_and_params("<a@b.example> SIZE=100 BODY=8BITMIME"),
            (
                "a@b.example".into(),
                vec!["SIZE=100".into(), "BODY=8BITMIME".into()]
            )
        );
        assert_eq!(
            path_and_params("a@b.example"),
            ("a@b.example".into(), vec![])
        );
        assert_eq!(strip_prefix_ci("from:<x>", "FROM:"), Some("<x>"));
    }

    /// A client that stops sending is cut off after `READ_TIMEOUT`, in a
    /// command or in the middle of DATA (the paused clock jumps ahead when
    /// nothing else can run).
    #[tokio::test(start_paused = true)]
    async fn every_read_has_a_deadline() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut server = BufReader::new(server);
        let started = tokio::time::Instant::now();
        assert!(matches!(
            read_line(&mut server, MAX_LINE).await.unwrap(),
            Line::TimedOut
        ));
        assert!(started.elapsed() >= READ_TIMEOUT);
        client.write_all(b"half a line").await.unwrap();
        assert!(matches!(
            read_line(&mut server, MAX_LINE).await.unwrap(),
            Line::TimedOut
        ));
        client.write_all(b"\r\nsome data\r\n").await.unwrap();
        assert!(matches!(
            read_data(&mut server).await.unwrap(),
            Data::TimedOut
        ));
    }

    #[tokio::test]
    async fn data_is_unstuffed_and_bounded() {
        let mut input: &[u8] = b"a\r\n..b\r\n.\r\nNEXT\r\n";
        match read_data(&mut input).await.unwrap() {
            Data::Message(m) => assert_eq!(m, b"a\r\n.b\r\n"),
            _ => panic!("a message"),
        }
        let big = format!("{}\r\n.\r\n", "x\r\n".repeat(MAX_MESSAGE / 2));
        let mut input = big.as_bytes();
        assert!(matches!(read_data(&mut input).await.unwrap(), Data::TooBig));
        let long = format!("{}\r\nQUIT\r\n", "y".repeat(MAX_LINE + 10));
        let mut input = long.as_bytes();
        assert!(matches!(
            read_line(&mut input, MAX_LINE).await.unwrap(),
            Line::TooLong
        ));
        assert!(
            matches!(read_line(&mut input, MAX_LINE).await.unwrap(), Line::Text(t) if t == b"QUIT")
        );
    }
}
