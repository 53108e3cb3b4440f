//! The connection loop: accepts TCP connections and serves each with hyper (HTTP/1.1, and HTTP/2 without TLS),
//! with the limits `axum::serve` does not expose: a deadline for the request head (slow clients, slowloris) and
//! its size (431). It tells every request its peer address (`ConnectInfo`) and shuts down gracefully.

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    body::{Body, Bytes, HttpBody},
    extract::{ConnectInfo, Request},
    response::Response,
};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::{conn::auto, graceful::GracefulShutdown},
};
use tokio::{net::TcpListener, time::Instant};
use tower::ServiceExt as _;

use crate::app::HttpService;

/// Smallest head limit hyper accepts for its HTTP/1 read buffer.
const MIN_HEAD_BYTES: usize = 8 * 1024;

/// Per-connection limits from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Time a client has to send a whole request head, counted from when the connection starts waiting for one
    /// (when it opens, or when the previous response was sent), after which the connection is closed.
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
    // hyper's own head deadline is off (no timer): it registers a new timer for every request, about 1,400
    // instructions of a greeting's 21,000 under callgrind. `watch_heads` keeps one timer per connection instead.
    builder.http1().header_read_timeout(None).max_buf_size(limits.max_head_bytes.max(MIN_HEAD_BYTES));
    builder.http2().max_header_list_size(u32::try_from(limits.max_head_bytes).unwrap_or(u32::MAX));
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
        let clock = Arc::new(HeadClock::new());
        let per_request = {
            let clock = clock.clone();
            hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                let in_flight = InFlight::start(&clock);
                let mut request: Request = request.map(Body::new);
                request.extensions_mut().insert(ConnectInfo(peer));
                let service = service.clone();
                async move {
                    let response: Response = service.oneshot(request).await?;
                    Ok::<_, std::convert::Infallible>(response.map(|body| Answer { body, _in_flight: in_flight }))
                }
            })
        };
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), per_request).into_owned();
        let connection = graceful.watch(connection);
        let deadline = limits.header_read_timeout;
        tokio::spawn(async move {
            tokio::select! {
                // A client that goes away mid-request ends its own connection only.
                served = connection => if let Err(error) = served {
                    tracing::debug!("connection from {peer} ended: {error}");
                },
                () = clock.watch_heads(deadline) => {
                    tracing::debug!("connection from {peer} sent no whole request head in {}s", deadline.as_secs());
                }
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

/// One connection's requests in progress and since when it has been waiting for a request head. A request
/// starts when hyper has its whole head and ends when its response body is dropped (sent, or abandoned).
#[derive(Debug)]
struct HeadClock {
    opened: Instant,
    in_flight: AtomicU32,
    /// Milliseconds after `opened` at which the connection last became idle.
    idle_since_ms: AtomicU64,
}

impl HeadClock {
    fn new() -> Self {
        Self { opened: Instant::now(), in_flight: AtomicU32::new(0), idle_since_ms: AtomicU64::new(0) }
    }

    fn request_ended(&self) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            let now = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.idle_since_ms.store(now, Ordering::Release);
        }
    }

    /// Completes when the connection has waited `deadline` for a request head without getting one; never while
    /// a request is in progress. One timer, re-armed only when it fires, so requests pay no timer of their own.
    async fn watch_heads(&self, deadline: Duration) {
        let mut check_at = self.opened + deadline;
        loop {
            tokio::time::sleep_until(check_at).await;
            if self.in_flight.load(Ordering::Acquire) > 0 {
                check_at = Instant::now() + deadline;
                continue;
            }
            let idle_since = self.opened + Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire));
            check_at = idle_since + deadline;
            if check_at <= Instant::now() {
                return;
            }
        }
    }
}

/// One request in progress on its connection's [`HeadClock`], from its whole head until it is dropped: with the
/// response body once that exists, or with the request's future when the client goes away first.
struct InFlight(Arc<HeadClock>);

impl InFlight {
    fn start(clock: &Arc<HeadClock>) -> Self {
        clock.in_flight.fetch_add(1, Ordering::AcqRel);
        Self(clock.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

/// A response body that keeps its request in flight until it is done with, so the wait for the next request
/// head starts after the answer was written, not while a slow client is still reading it.
struct Answer {
    body: Body,
    _in_flight: InFlight,
}

impl HttpBody for Answer {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_is_given_up_after_the_deadline() {
        let clock = HeadClock::new();
        let started = Instant::now();
        clock.watch_heads(Duration::from_secs(10)).await;
        assert_eq!(started.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_counts_from_the_end_of_the_last_answer_and_never_during_one() {
        let clock = Arc::new(HeadClock::new());
        let started = Instant::now();
        let requests = {
            let clock = clock.clone();
            async move {
                tokio::time::sleep(Duration::from_secs(8)).await;
                let in_flight = InFlight::start(&clock);
                // A slow answer, longer than the deadline.
                tokio::time::sleep(Duration::from_secs(25)).await;
                drop(in_flight);
            }
        };
        tokio::join!(requests, clock.watch_heads(Duration::from_secs(10)));
        assert_eq!(started.elapsed(), Duration::from_secs(8 + 25 + 10));
    }
}
