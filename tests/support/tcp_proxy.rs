//! A TCP proxy that can blackhole the traffic it forwards: a network that
//! stops delivering packets without resetting anything. While blackholed,
//! every connection, old or new, stays open and silent in both directions
//! (no byte forwarded, no FIN, no RST), the way a dead switch or a dropping
//! firewall looks to both ends; healing resumes forwarding where it stopped.
//!
//! It runs on its own thread and runtime so that whatever the test awaits,
//! the proxy keeps forwarding (or keeps holding) on time.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct TcpProxy {
    /// The address to connect to instead of the upstream.
    pub addr: SocketAddr,
    blackholed: watch::Sender<bool>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TcpProxy {
    /// Listens on 127.0.0.1, an unused port, forwarding to `upstream`.
    pub fn start(upstream: SocketAddr) -> TcpProxy {
        let (blackholed, gate) = watch::channel(false);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("proxy runtime");
            rt.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy bind");
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let accepting = async {
                    loop {
                        let Ok((client, _)) = listener.accept().await else {
                            continue;
                        };
                        tokio::spawn(forward(client, upstream, gate.clone()));
                    }
                };
                tokio::select! {
                    _ = accepting => {}
                    _ = stopped => {}
                }
            });
            // Dropping the runtime drops every connection it holds.
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the proxy listens");
        TcpProxy {
            addr,
            blackholed,
            stop: Some(stop),
        }
    }

    /// Stops forwarding: every connection stays open, nothing gets through.
    pub fn blackhole(&self) {
        self.blackholed.send_replace(true);
    }

    /// Forwards again, starting with whatever was held.
    pub fn heal(&self) {
        self.blackholed.send_replace(false);
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Waits until the traffic flows.
async fn open(gate: &mut watch::Receiver<bool>) {
    let _ = gate.wait_for(|blackholed| !*blackholed).await;
}

/// One client connection: connects upstream once the traffic flows, then
/// copies each direction through the gate.
async fn forward(client: TcpStream, upstream: SocketAddr, mut gate: watch::Receiver<bool>) {
    // A blackholed network delivers no SYN either: the client's connection
    // is accepted (the kernel does that) but nothing reaches the upstream.
    open(&mut gate).await;
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::join!(
        copy(client_read, server_write, gate.clone()),
        copy(server_read, client_write, gate),
    );
}

/// Copies bytes until end of file or an error; while blackholed, holds what
/// it read and reads no more, and passes no end of file on.
async fn copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut gate: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        open(&mut gate).await;
        let n = match from.read(&mut buf).await {
            Ok(n) => n,
            Err(_) => return,
        };
        open(&mut gate).await;
        if n == 0 {
            let _ = to.shutdown().await;
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
