//! The connection loop: accepts TCP connections and serves each with hyper (HTTP/1.1, and HTTP/2 without TLS),
//! with the limits `axum::serve` does not expose: a deadline for the request head (slow clients, slowloris) and
//! its size (431). It tells every request its peer address (`ConnectInfo`) and shuts down gracefully.

use std::{
    future::Future,
    io,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::{
    body::Body,
    extract::{ConnectInfo, Request},
};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
};
use tokio::net::TcpListener;
use tower::ServiceExt as _;

use crate::app::HttpService;

/// Smallest head limit hyper accepts for its HTTP/1 read buffer.
const MIN_HEAD_BYTES: usize = 8 * 1024;

/// Per-connection limits from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Time a client has to send a whole request head, counted from when the server starts waiting for it (on a
    /// kept-alive connection: from the previous response), after which the connection is closed.
    pub header_read_timeout: Duration,
    /// Largest request head; hyper answers 431 beyond it.
    pub max_head_bytes: usize,
}

/// Serves `service` on `listener` until `shutdown` completes, then stops accepting, lets each connection finish
/// its current request, and returns when all connections are closed. The caller bounds that wait.
pub async fn serve<S: HttpService>(
    listener: TcpListener,
    service: S,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_head_bytes.max(MIN_HEAD_BYTES));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_head_bytes).unwrap_or(u32::MAX));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    pause_after_accept_error(&error).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = service.clone();
        let first_request = Arc::new(AtomicBool::new(false));
        let started = first_request.clone();
        let per_request = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            started.store(true, Ordering::Relaxed);
            let mut request: Request = request.map(Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            service.clone().oneshot(request)
        });
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), per_request).into_owned();
        let connection = graceful.watch(connection);
        let deadline = limits.header_read_timeout;
        tokio::spawn(async move {
            // hyper's head deadline starts only once it knows the protocol; a client that connects and sends
            // nothing, or half of the HTTP/2 preface, would wait for that forever. One timer per connection.
            let silent = async {
                tokio::time::sleep(deadline).await;
                if first_request.load(Ordering::Relaxed) {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                // A client that goes away mid-request, or a head that times out, ends its own connection only.
                served = connection => if let Err(error) = served {
                    tracing::debug!("connection from {peer} ended: {error}");
                },
                () = silent => tracing::debug!("connection from {peer} sent no request in {}s", deadline.as_secs()),
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Accept fails for one connection (reset before accept) or for all for a while (out of file descriptors); in
/// the second case, retrying at once would spin, so wait a little as `axum::serve` does.
async fn pause_after_accept_error(error: &io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(error.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset) {
        return;
    }
    tracing::error!("accepting a connection failed: {error}");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
