//! The connection loop: accepts TCP connections and serves each with hyper (HTTP/1.1, and HTTP/2 without TLS),
//! with the limits `axum::serve` does not expose: how many connections are served at once, a deadline for the
//! request head (slow clients, slowloris) and its size (431). It tells every request its peer address
//! (`ConnectInfo`) and shuts down gracefully. What a connection costs is measured by `bench/run`'s connection
//! spikes; each choice below that is about memory names its figure.

use std::{
    future::Future,
    io,
    net::SocketAddr,
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
    http::{HeaderValue, Version, header},
    response::Response,
};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore, watch},
};
use tower::ServiceExt as _;

use crate::{readiness::Draining, service::HttpService, settings::LimitSettings};

/// Smallest read buffer hyper accepts for HTTP/1 (the head limit itself may be smaller).
const MIN_READ_BUFFER_BYTES: usize = 8 * 1024;

/// Per-connection limits, from the `limits` section.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Time a client has to send a whole request head, counted from when the connection starts waiting for one
    /// (when it opens, or when the previous response was sent), after which the connection is closed.
    pub header_read_timeout: Duration,
    /// Largest request head, exact for HTTP/1 (request line, headers and the blank line, as sent); hyper answers
    /// 431 beyond it.
    pub max_head_bytes: usize,
    /// Connections served at once; more wait in the kernel's listen queue (not accepted) until one closes.
    pub max_connections: usize,
}

impl From<&LimitSettings> for ConnectionLimits {
    fn from(limits: &LimitSettings) -> Self {
        Self {
            header_read_timeout: Duration::from_secs(limits.header_read_timeout_secs),
            max_head_bytes: limits.max_request_head_bytes,
            max_connections: limits.max_connections,
        }
    }
}

/// Serves `service` on `listener` until `shutdown` completes, then stops accepting, lets each connection finish
/// its current request, and returns when all connections are closed. The caller bounds that wait. While
/// `draining`, HTTP/1 answers carry `Connection: close`, so kept-alive clients (load balancers' pools) reconnect
/// elsewhere before the listener closes.
pub async fn serve<S: HttpService>(
    listener: TcpListener,
    service: S,
    limits: ConnectionLimits,
    draining: Draining,
    shutdown: impl Future<Output = ()>,
) {
    let mut http1 = http1::Builder::new();
    // hyper's own head deadline is off (no timer): it registers a new timer for every request, a measurable share
    // of a greeting under callgrind (`bench/results/profile.md`). `HeadClock::watch` keeps one timer per connection.
    //
    // The read buffer's size alone bounds a head only roughly: hyper checks it while the head is incomplete, and
    // one read may fill the buffer's whole spare capacity, so about 40 KB passed with 32 KiB set. `max_header_size`
    // also checks the parsed head's length, one comparison per request, which makes the limit exact.
    http1
        .header_read_timeout(None)
        .max_buf_size(limits.max_head_bytes.max(MIN_READ_BUFFER_BYTES))
        .max_header_size(limits.max_head_bytes);
    let mut http2 = http2::Builder::new(TokioExecutor::new());
    http2.max_header_list_size(u32::try_from(limits.max_head_bytes).unwrap_or(u32::MAX));
    let builders = Arc::new(Builders { http1, http2, limits });
    // One copy of the layered service for all connections: a copy per connection would sit in every connection's
    // task for its whole life (about a kilobyte each); requests clone it from here as they arrive.
    let service = Arc::new(service);
    // Connections are told to stop through `stop`; each holds a `closed` receiver until it is gone, so the
    // sender's `closed()` says when the last one ended.
    let (stop_tx, stop) = watch::channel(false);
    let (closed_tx, closed) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    let slots = Arc::new(Semaphore::new(limits.max_connections.min(Semaphore::MAX_PERMITS)));
    loop {
        // A free slot first, then accept: at the limit, new connections wait in the listen queue, where they cost
        // the kernel a few hundred bytes instead of this process a task and its buffers.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break, // never closed
            },
            () = &mut shutdown => break,
        };
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
        let connection = Connection {
            _slot: slot,
            peer,
            service: service.clone(),
            builders: builders.clone(),
            draining: draining.clone(),
            stop: stop.clone(),
            _closed: closed.clone(),
        };
        tokio::spawn(connection.serve(stream));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(closed);
    closed_tx.closed().await;
}

/// The protocol settings every connection is served with, built once.
struct Builders {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
    limits: ConnectionLimits,
}

/// What one accepted connection needs besides its socket; it lives in the connection's task.
struct Connection<S> {
    /// This connection's place under `max_connections`, given back when the connection ends.
    _slot: OwnedSemaphorePermit,
    peer: SocketAddr,
    service: Arc<S>,
    builders: Arc<Builders>,
    draining: Draining,
    stop: watch::Receiver<bool>,
    /// Dropped when the connection is gone, which is how `serve` knows when the last one ended.
    _closed: watch::Receiver<()>,
}

impl<S: HttpService> Connection<S> {
    async fn serve(mut self, stream: TcpStream) {
        let deadline = self.builders.limits.header_read_timeout;
        let clock = Arc::new(HeadClock::default());
        // The HTTP/2 preface or anything else (HTTP/1), decided under the head deadline like the head itself.
        let protocol = tokio::select! {
            protocol = Protocol::of(&stream) => protocol,
            () = clock.watch(deadline) => return,
            _ = self.stop.wait_for(|stop| *stop) => return,
        };
        let service = PerRequest {
            peer: self.peer,
            service: self.service.clone(),
            clock: clock.clone(),
            draining: self.draining.clone(),
        };
        let io = Written { io: TokioIo::new(stream), clock: clock.clone() };
        match protocol {
            Protocol::Http1 => {
                let connection = self.builders.http1.serve_connection(io, service).with_upgrades();
                self.drive(connection, &clock).await;
            }
            // Rare here (h2c with prior knowledge: behind a proxy that speaks it), so its larger state is boxed
            // and does not widen every HTTP/1 connection's task.
            Protocol::Http2 => {
                let connection = Box::pin(self.builders.http2.serve_connection(io, service));
                self.drive(connection, &clock).await;
            }
        }
    }

    /// Serves until the client is done, the head deadline passes on an idle connection, or the server stops.
    async fn drive<C: Graceful>(self, connection: C, clock: &HeadClock) {
        let (peer, deadline, mut stop) = (self.peer, self.builders.limits.header_read_timeout, self.stop);
        let mut connection = std::pin::pin!(connection);
        let idle = tokio::select! {
            // A client that goes away mid-request ends its own connection only.
            served = connection.as_mut() => return log_end(peer, served),
            () = clock.watch(deadline) => true,
            _ = stop.wait_for(|stop| *stop) => false,
        };
        // Close politely: HTTP/1 finishes the answer it is writing, HTTP/2 sends GOAWAY and lets open streams
        // end. A client that stopped reading gets one more deadline; at shutdown the grace period bounds it.
        connection.as_mut().shut_down();
        if idle {
            tracing::debug!("connection from {peer} sent no whole request head in {}s", deadline.as_secs());
            if let Ok(served) = tokio::time::timeout(deadline, connection).await {
                log_end(peer, served);
            }
        } else {
            log_end(peer, connection.await);
        }
        // `self`'s slot and `_closed` receiver drop here, and on every early return: the connection is gone.
    }
}

/// The protocol a connection speaks, from its first bytes.
#[derive(Debug, PartialEq, Eq)]
enum Protocol {
    Http1,
    Http2,
}

/// What an HTTP/2 client with prior knowledge sends first (RFC 9113, section 3.4).
const HTTP2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How long to wait before peeking again at a connection whose first bytes are a part of the preface.
const PARTIAL_PREFACE_PAUSE: Duration = Duration::from_millis(10);

impl Protocol {
    /// Peeks, without reading, at the first bytes: HTTP/2 when they are the preface, else HTTP/1 (as soon as one
    /// byte differs, usually on the first). hyper-util's `auto` builder reads those bytes instead and hands them
    /// back through a 24-byte prefix, and that short first read makes hyper's 8 KiB read buffer grow to 16 KiB
    /// on every HTTP/1 connection: 8 KiB per connection of heap, measured with heaptrack (`bench/run`'s connection
    /// spike shows what it costs in RSS).
    async fn of(stream: &TcpStream) -> Protocol {
        let mut first = [0_u8; HTTP2_PREFACE.len()];
        loop {
            // An error or the end of the stream: HTTP/1 reads it again and ends the connection its own way.
            let Ok(peeked) = stream.peek(&mut first).await else { return Protocol::Http1 };
            if peeked == 0 || first[..peeked] != HTTP2_PREFACE[..peeked] {
                return Protocol::Http1;
            }
            if peeked == HTTP2_PREFACE.len() {
                return Protocol::Http2;
            }
            // A part of the preface: the socket stays readable until more arrives, so peeking again at once would
            // spin. Clients send the preface in one write; only a slow or hostile one gets here, and the head
            // deadline bounds it.
            tokio::time::sleep(PARTIAL_PREFACE_PAUSE).await;
        }
    }
}

/// A hyper connection that can be asked to finish politely.
trait Graceful: Future<Output = Result<(), hyper::Error>> {
    fn shut_down(self: Pin<&mut Self>);
}

impl<S: HttpService> Graceful for http1::UpgradeableConnection<Written, PerRequest<S>> {
    fn shut_down(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<S: HttpService> Graceful for Pin<Box<http2::Connection<Written, PerRequest<S>, TokioExecutor>>> {
    fn shut_down(self: Pin<&mut Self>) {
        self.get_mut().as_mut().graceful_shutdown();
    }
}

/// The hyper service of one connection: gives every request the peer address and the head clock, and closes
/// HTTP/1 connections while draining.
struct PerRequest<S> {
    peer: SocketAddr,
    service: Arc<S>,
    clock: Arc<HeadClock>,
    draining: Draining,
}

impl<S: HttpService> hyper::service::Service<hyper::Request<Incoming>> for PerRequest<S> {
    type Response = Response<Answer>;
    type Error = std::convert::Infallible;
    type Future = Answering<tower::util::Oneshot<S, Request>>;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        let in_flight = InFlight::start(&self.clock);
        let close = self.draining.is_draining() && request.version() < Version::HTTP_2;
        let mut request: Request = request.map(Body::new);
        request.extensions_mut().insert(ConnectInfo(self.peer));
        Answering { answer: S::clone(&self.service).oneshot(request), in_flight: Some(in_flight), close }
    }
}

pin_project_lite::pin_project! {
    /// One request's answer on its way: the application's future, then `Connection: close` while draining and the
    /// request kept in flight until hyper has sent the body. A named future rather than a boxed `async` block, so
    /// a request costs no allocation of its own.
    struct Answering<F> {
        #[pin]
        answer: F,
        in_flight: Option<InFlight>,
        close: bool,
    }
}

impl<F: Future<Output = Result<Response, std::convert::Infallible>>> Future for Answering<F> {
    type Output = Result<Response<Answer>, std::convert::Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(mut response) = std::task::ready!(this.answer.poll(cx));
        if *this.close {
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        let in_flight = this.in_flight.take();
        Poll::Ready(Ok(response.map(|body| Answer { body, _in_flight: in_flight })))
    }
}

fn log_end(peer: SocketAddr, served: Result<(), hyper::Error>) {
    if let Err(error) = served {
        tracing::debug!("connection from {peer} ended: {error}");
    }
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

/// One connection's activity, for the request-head deadline: requests in progress (from a whole head until the
/// response body is dropped, or the request abandoned) and a count of writes that made progress. Reads do not
/// count: a client trickling a head byte by byte is exactly what the deadline is for.
#[derive(Debug, Default)]
struct HeadClock {
    in_flight: AtomicU32,
    activity: AtomicU64,
}

impl HeadClock {
    /// Completes once the connection has gone a whole `deadline` with no request in progress, no answer ended and
    /// no write making progress: it is idle or a slow client's. One timer per connection, re-armed every
    /// `deadline` only, so requests pay no timer of their own. Fires between one and two deadlines after the
    /// last activity (one, on a connection that never sent a whole head).
    async fn watch(&self, deadline: Duration) {
        let mut seen = self.activity.load(Ordering::Acquire);
        loop {
            tokio::time::sleep(deadline).await;
            let now = self.activity.load(Ordering::Acquire);
            if self.in_flight.load(Ordering::Acquire) == 0 && now == seen {
                return;
            }
            seen = now;
        }
    }

    fn touch(&self) {
        self.activity.fetch_add(1, Ordering::Release);
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
        // Activity first, so a watchdog that sees no request in flight also sees that one just ended.
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request in flight until hyper is done with it.
struct Answer {
    body: Body,
    /// Always `Some`; an `Option` only because the future that makes the answer hands it over once.
    _in_flight: Option<InFlight>,
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

pin_project_lite::pin_project! {
    /// The connection's socket, counting writes that made progress: an answer still being sent to a slow reader
    /// after its body was handed over is activity, not idleness.
    struct Written {
        #[pin]
        io: TokioIo<TcpStream>,
        clock: Arc<HeadClock>,
    }
}

impl hyper::rt::Read for Written {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        self.project().io.poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Written {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.project();
        let written = this.io.poll_write(cx, buf);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            this.clock.touch();
        }
        written
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let written = this.io.poll_write_vectored(cx, bufs);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            this.clock.touch();
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::time::Instant;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_never_sends_a_head_is_given_up_after_one_deadline() {
        let clock = HeadClock::default();
        let started = Instant::now();
        clock.watch(Duration::from_secs(10)).await;
        assert_eq!(started.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn requests_in_progress_and_writes_keep_a_connection_and_a_quiet_deadline_ends_it() {
        let clock = Arc::new(HeadClock::default());
        let started = Instant::now();
        let requests = {
            let clock = clock.clone();
            async move {
                tokio::time::sleep(Duration::from_secs(8)).await;
                let in_flight = InFlight::start(&clock);
                // A slow handler, longer than the deadline.
                tokio::time::sleep(Duration::from_secs(25)).await;
                drop(in_flight);
                // The answer trickles out to a slow reader for another 15 s.
                for _ in 0..3 {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    clock.touch();
                }
            }
        };
        tokio::join!(requests, clock.watch(Duration::from_secs(10)));
        // Last activity at 48 s; the checks run every 10 s, so the first quiet whole period ends at 60 s.
        assert_eq!(started.elapsed(), Duration::from_secs(60));
    }
}
