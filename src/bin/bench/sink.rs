//! A minimal, fast SMTP sink on 127.0.0.1 for the benchmark: EHLO (with
//! PIPELINING), MAIL, RCPT, DATA, RSET, NOOP, QUIT. It answers 250 to every
//! message, counts them and, depending on the mode, records the time of each
//! 250 by Message-ID or hands the message to whoever waits for its recipient.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// What the sink does with each accepted message besides counting it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Mode {
    /// Count only.
    Count = 0,
    /// Record (Message-ID, time of the 250).
    Stamp = 1,
    /// Deliver to the waiter of the recipient's mailbox.
    Route = 2,
}

/// One received message (routing mode).
pub struct Received {
    pub data: Vec<u8>,
}

#[derive(Default)]
struct Mailbox {
    queued: VecDeque<Received>,
    waiter: Option<oneshot::Sender<Received>>,
}

pub struct Sink {
    pub port: u16,
    mode: AtomicU8,
    count: AtomicU64,
    stamps: Mutex<Vec<(String, SystemTime)>>,
    mailboxes: Mutex<HashMap<String, Mailbox>>,
    /// The first message received, raw, for the bare-client ceiling.
    pub sample: OnceLock<Vec<u8>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Sink {
    pub async fn start() -> std::io::Result<Arc<Sink>> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let sink = Arc::new(Sink {
            port: listener.local_addr()?.port(),
            mode: AtomicU8::new(Mode::Count as u8),
            count: AtomicU64::new(0),
            stamps: Mutex::new(Vec::new()),
            mailboxes: Mutex::new(HashMap::new()),
            sample: OnceLock::new(),
        });
        let s = sink.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve(stream, s.clone()));
            }
        });
        Ok(sink)
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn set_mode(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }

    pub fn take_stamps(&self) -> Vec<(String, SystemTime)> {
        std::mem::take(&mut *lock(&self.stamps))
    }

    /// The next message for `recipient` (lowercase address).
    pub async fn next_for(&self, recipient: &str) -> anyhow::Result<Received> {
        let rx = {
            let mut boxes = lock(&self.mailboxes);
            let mailbox = boxes.entry(recipient.to_string()).or_default();
            if let Some(mail) = mailbox.queued.pop_front() {
                return Ok(mail);
            }
            let (tx, rx) = oneshot::channel();
            mailbox.waiter = Some(tx);
            rx
        };
        Ok(rx.await?)
    }

    fn accepted(&self, recipients: &[String], data: Vec<u8>) {
        let _ = self.sample.set(data.clone());
        match self.mode.load(Ordering::Relaxed) {
            1 => {
                let id = header(&data, b"message-id").unwrap_or_default();
                lock(&self.stamps).push((id, SystemTime::now()));
            }
            2 => {
                let mut boxes = lock(&self.mailboxes);
                for rcpt in recipients {
                    let mailbox = boxes.entry(rcpt.clone()).or_default();
                    let mail = Received { data: data.clone() };
                    match mailbox.waiter.take() {
                        Some(waiter) => {
                            if let Err(mail) = waiter.send(mail) {
                                mailbox.queued.push_back(mail);
                            }
                        }
                        None => mailbox.queued.push_back(mail),
                    }
                }
            }
            _ => {}
        }
        // Counted last: whoever sees the count sees the stamp.
        self.count.fetch_add(1, Ordering::SeqCst);
    }
}

/// The value of the first header `name` (lowercase) of a raw message.
pub fn header(data: &[u8], name: &[u8]) -> Option<String> {
    for line in data.split(|b| *b == b'\n') {
        if line == b"\r" || line.is_empty() {
            return None;
        }
        if line.len() > name.len()
            && line[name.len()] == b':'
            && line[..name.len()].eq_ignore_ascii_case(name)
        {
            return Some(
                String::from_utf8_lossy(&line[name.len() + 1..])
                    .trim()
                    .to_string(),
            );
        }
    }
    None
}

async fn serve(stream: TcpStream, sink: Arc<Sink>) -> std::io::Result<()> {
    let (read, write) = stream.into_split();
    let mut reader = BufReader::with_capacity(64 * 1024, read);
    let mut writer = BufWriter::with_capacity(8 * 1024, write);
    writer.write_all(b"220 bench-sink ESMTP\r\n").await?;
    writer.flush().await?;
    let mut line = Vec::with_capacity(1024);
    let mut recipients: Vec<String> = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let verb: Vec<u8> = line
            .iter()
            .take(4)
            .map(|b| b.to_ascii_uppercase())
            .collect();
        match &verb[..] {
            b"EHLO" => writer
                .write_all(
                    b"250-bench-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 52428800\r\n",
                )
                .await?,
            b"HELO" | b"NOOP" => writer.write_all(b"250 OK\r\n").await?,
            b"MAIL" | b"RSET" => {
                recipients.clear();
                writer.write_all(b"250 OK\r\n").await?
            }
            b"RCPT" => {
                let text = String::from_utf8_lossy(&line);
                if let (Some(a), Some(b)) = (text.find('<'), text.find('>')) {
                    recipients.push(text[a + 1..b].to_ascii_lowercase());
                }
                writer.write_all(b"250 OK\r\n").await?
            }
            b"DATA" => {
                writer.write_all(b"354 go ahead\r\n").await?;
                writer.flush().await?;
                let mut data = Vec::with_capacity(8 * 1024);
                loop {
                    line.clear();
                    if reader.read_until(b'\n', &mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == b".\r\n" || line == b".\n" {
                        break;
                    }
                    // Dot-stuffing.
                    if line.first() == Some(&b'.') {
                        data.extend_from_slice(&line[1..]);
                    } else {
                        data.extend_from_slice(&line);
                    }
                }
                sink.accepted(&recipients, data);
                recipients.clear();
                writer.write_all(b"250 2.0.0 OK queued\r\n").await?
            }
            b"QUIT" => {
                writer.write_all(b"221 bye\r\n").await?;
                writer.flush().await?;
                return Ok(());
            }
            _ => writer.write_all(b"502 unrecognised\r\n").await?,
        }
        // Answer pipelined commands together: flush once nothing more waits.
        if reader.buffer().is_empty() {
            writer.flush().await?;
        }
    }
}
