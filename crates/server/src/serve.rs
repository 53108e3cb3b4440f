//! The connection loop: accepts TCP connections and serves each with hyper (HTTP/1.1, and HTTP/2 without TLS),
//! with the limits `axum::serve` does not expose: a deadline for the request head (slow clients, slowloris) and
//! its size (431). It tells every request its peer address (`ConnectInfo`) and shuts down gracefully.

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, Waker},
    time::Duration,
};

use axum::{
    body::Body,
    extract::{ConnectInfo, Request},
};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
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
        .timer(LazyTimer)
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_head_bytes.max(MIN_HEAD_BYTES));
    builder.http2().timer(LazyTimer).max_header_list_size(u32::try_from(limits.max_head_bytes).unwrap_or(u32::MAX));
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

/// hyper's timer, for the request-head deadline that hyper moves forward at every request. tokio's timer
/// (`TokioTimer`) re-registers in the timer wheel at each move, about 2,000 instructions per request under
/// callgrind, 10% of a greeting. This one only records the new deadline; the registered timer stays where it
/// was and, when it fires early, is re-armed for the recorded deadline: one registration per deadline period
/// per connection instead of one per request.
#[derive(Debug, Clone, Copy)]
struct LazyTimer;

pin_project_lite::pin_project! {
    /// A deadline that may lie beyond the time its registered timer fires.
    struct LazySleep {
        deadline: tokio::time::Instant,
        // The task the registered timer wakes; while it is the polling task and the timer has not fired,
        // polling again changes nothing, so it is skipped (hyper polls at every request).
        wakes: Option<Waker>,
        #[pin]
        armed: tokio::time::Sleep,
    }
}

impl Future for LazySleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        if this.wakes.as_ref().is_some_and(|waker| waker.will_wake(cx.waker())) && !this.armed.is_elapsed() {
            return Poll::Pending;
        }
        loop {
            if this.armed.as_mut().poll(cx).is_pending() {
                *this.wakes = Some(cx.waker().clone());
                return Poll::Pending;
            }
            if tokio::time::Instant::now() >= *this.deadline {
                return Poll::Ready(());
            }
            // It fired for an earlier deadline that has since been moved: wait for the recorded one.
            this.armed.as_mut().reset(*this.deadline);
        }
    }
}

impl hyper::rt::Sleep for LazySleep {}

impl hyper::rt::Timer for LazyTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(std::time::Instant::now() + duration)
    }

    fn sleep_until(&self, deadline: std::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        let deadline = tokio::time::Instant::from_std(deadline);
        Box::pin(LazySleep { deadline, wakes: None, armed: tokio::time::sleep_until(deadline) })
    }

    fn now(&self) -> std::time::Instant {
        tokio::time::Instant::now().into_std()
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, new_deadline: std::time::Instant) {
        let new_deadline = tokio::time::Instant::from_std(new_deadline);
        match sleep.as_mut().downcast_mut_pin::<LazySleep>() {
            Some(lazy) => {
                let mut lazy = lazy.project();
                *lazy.deadline = new_deadline;
                // A deadline moved earlier than the registered timer must re-register, or it would fire late.
                if new_deadline < lazy.armed.deadline() {
                    lazy.armed.as_mut().reset(new_deadline);
                    *lazy.wakes = None;
                }
            }
            None => *sleep = self.sleep_until(new_deadline.into_std()),
        }
    }
}

#[cfg(test)]
mod tests {
    use hyper::rt::Timer as _;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_moved_deadline_fires_at_the_new_time_not_the_old() {
        let start = tokio::time::Instant::now();
        let mut sleep = LazyTimer.sleep(Duration::from_secs(10));
        tokio::time::sleep(Duration::from_secs(5)).await;
        LazyTimer.reset(&mut sleep, (start + Duration::from_secs(15)).into_std());
        sleep.as_mut().await;
        assert_eq!(start.elapsed(), Duration::from_secs(15));
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_moved_earlier_fires_early() {
        let start = tokio::time::Instant::now();
        let mut sleep = LazyTimer.sleep(Duration::from_secs(10));
        LazyTimer.reset(&mut sleep, (start + Duration::from_secs(3)).into_std());
        sleep.as_mut().await;
        assert_eq!(start.elapsed(), Duration::from_secs(3));
    }
}
