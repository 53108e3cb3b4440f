//! A TCP fault proxy between the server under test and its database: it forwards bytes until told to `cut()` (every
//! open connection closed, new ones closed as soon as they are accepted) or to `blackhole()` (connections accepted
//! and held, nothing answered), and `restore()`s forwarding. Faults are injected here, not by stopping the shared
//! database server, so the other tests using that server keep running.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
    task::JoinHandle,
};

/// What the proxy does with connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forwards both ways.
    Pass,
    /// Closes every connection (with a reset, as a crashed server or a dropped route would look).
    Cut,
    /// Holds every connection and forwards nothing, as a partition that drops packets would look.
    Blackhole,
}

/// A running proxy on a loopback port.
pub struct FaultProxy {
    port: u16,
    mode: watch::Sender<Mode>,
    accepted: Arc<AtomicU64>,
    accept_loop: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts forwarding from a free loopback port to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("the proxy binds a loopback port");
        let port = listener.local_addr().expect("bound address").port();
        let (mode, _) = watch::channel(Mode::Pass);
        let accepted = Arc::new(AtomicU64::new(0));
        let accept_loop = tokio::spawn(accept_loop(listener, upstream, mode.subscribe(), accepted.clone()));
        Self { port, mode, accepted, accept_loop }
    }

    /// The loopback port clients connect to instead of the upstream's.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connections accepted so far (whatever happened to them).
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// From now on every open connection is reset and new ones are reset as soon as they are accepted.
    pub fn cut(&self) {
        self.mode.send_replace(Mode::Cut);
    }

    /// From now on nothing is forwarded: open connections and new ones are held silent.
    pub fn blackhole(&self) {
        self.mode.send_replace(Mode::Blackhole);
    }

    /// Forwards new connections again (connections held by a blackhole are closed: their bytes are lost).
    pub fn restore(&self) {
        self.mode.send_replace(Mode::Pass);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // Connection tasks end when the mode leaves Pass or its sender goes away.
        self.mode.send_replace(Mode::Cut);
        self.accept_loop.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    mode: watch::Receiver<Mode>,
    accepted: Arc<AtomicU64>,
) {
    while let Ok((client, _)) = listener.accept().await {
        accepted.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(connection(client, upstream, mode.clone()));
    }
}

/// Resets `stream`: a zero linger makes close send RST, so the peer sees the failure at once instead of a FIN it
/// might take for an orderly end.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

/// Waits until the mode is no longer `current` (or the proxy is gone); returns the new mode.
async fn leaves(mode: &mut watch::Receiver<Mode>, current: Mode) -> Mode {
    match mode.wait_for(|m| *m != current).await {
        Ok(next) => *next,
        Err(_) => Mode::Cut,
    }
}

async fn connection(mut client: TcpStream, upstream: SocketAddr, mut mode: watch::Receiver<Mode>) {
    let now = *mode.borrow_and_update();
    match now {
        Mode::Cut => return reset(client),
        Mode::Blackhole => {
            leaves(&mut mode, Mode::Blackhole).await;
            return reset(client);
        }
        Mode::Pass => {}
    }
    let Ok(mut server) = TcpStream::connect(upstream).await else { return reset(client) };
    let next = tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => return,
        next = leaves(&mut mode, Mode::Pass) => next,
    };
    if next == Mode::Blackhole {
        // Hold both ends silent; whatever comes next ends this connection.
        leaves(&mut mode, Mode::Blackhole).await;
    }
    reset(client);
    reset(server);
}
