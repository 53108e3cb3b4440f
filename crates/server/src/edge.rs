//! The HTTP edge: the first and last code every request meets. It names the request (request id), times it, cuts
//! it off at the request timeout, gives error responses their problem body and writes the access-log line, in one
//! hand-written layer because all five need the same per-request state and a boxed middleware would cost more
//! than the work itself.

use std::{
    future::Future,
    hash::{BuildHasher, RandomState},
    pin::Pin,
    sync::{
        Arc, LazyLock,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::{
    body::{Body, HttpBody},
    http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, uri::PathAndQuery},
};
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower::{BoxError, Layer, Service};

use crate::{
    error,
    guards::client_addr::ClientAddr,
    ops::{
        metrics::Metrics,
        routes::{RouteId, RouteTemplates},
        traces::{HttpTracing, RequestSpan},
    },
    telemetry::{AccessEntry, AccessLog},
};

/// Header carrying the request id in and out, as most proxies and tracing set-ups expect.
pub static REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The id of one request: the caller's `x-request-id` when it is sane, else one made here. It goes back in the
/// response's `x-request-id` header, into problem bodies and into the access line; handlers can take it from the
/// request's extensions (`Extension<RequestId>`) to tag their own logs.
#[derive(Debug, Clone)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// The id as text, for logs and problem bodies.
    pub fn as_str(&self) -> &str {
        // Both sources below are visible ASCII, so this never falls back.
        self.0.to_str().unwrap_or_default()
    }

    fn for_request<B>(request: &Request<B>) -> Self {
        request
            .headers()
            .get(&REQUEST_ID_HEADER)
            .filter(|value| is_sane_request_id(value.as_bytes()))
            .map_or_else(Self::generate, |value| Self(value.clone()))
    }

    /// A process-unique id without a syscall: a random per-process prefix and a counter, as fixed-width hex.
    /// Written by hand into a stack buffer because `format!` here was 12% of a greeting's instructions.
    fn generate() -> Self {
        static PREFIX: LazyLock<u64> = LazyLock::new(|| RandomState::new().hash_one("rust-api-axum"));
        static COUNTER: AtomicU64 = AtomicU64::new(1);
        let mut id = [b'-'; 33];
        write_hex(*PREFIX, &mut id[..16]);
        write_hex(COUNTER.fetch_add(1, Ordering::Relaxed), &mut id[17..]);
        Self(HeaderValue::from_bytes(&id).unwrap_or_else(|_| HeaderValue::from_static("unknown")))
    }
}

/// Writes `value` as 16 lowercase hex digits into `out` (16 bytes); request ids and trace ids use it.
pub(crate) fn write_hex(value: u64, out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (index, byte) in out.iter_mut().enumerate() {
        let shift = 60 - 4 * index;
        *byte = DIGITS[((value >> shift) & 0xf) as usize];
    }
}

/// Ids from outside are echoed into logs and headers: accept only short, plain tokens.
fn is_sane_request_id(bytes: &[u8]) -> bool {
    (1..=128).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/' | b'+' | b'='))
}

/// Installs [`Edge`] around the whole application.
#[derive(Debug, Clone)]
pub struct EdgeLayer(Arc<EdgeSettings>);

/// What every request's edge needs, shared so that cloning the service per connection is one reference count.
#[derive(Debug)]
struct EdgeSettings {
    access_log: Option<AccessLog>,
    request_timeout: Duration,
    /// The route templates of metrics or traces, so each request's route is looked up once for both.
    routes: Option<RouteTemplates>,
    metrics: Option<Metrics>,
    /// Opens each request's span; `None` when traces are off, and then a request pays one `if let`.
    traces: Option<HttpTracing>,
}

impl EdgeLayer {
    /// `access_log` writes the one-line-per-request log when set; a handler still running `request_timeout` after
    /// the request arrived is dropped and answered 503; `metrics` counts every request when set; `traces` opens
    /// an OpenTelemetry span per request when set (see `ops::traces`).
    pub fn new(
        access_log: Option<AccessLog>,
        request_timeout: Duration,
        metrics: Option<Metrics>,
        traces: Option<HttpTracing>,
    ) -> Self {
        let routes = metrics.as_ref().map(Metrics::routes).or(traces.as_ref().map(HttpTracing::routes)).cloned();
        Self(Arc::new(EdgeSettings { access_log, request_timeout, routes, metrics, traces }))
    }
}

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Edge { inner, layer: self.clone() }
    }
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct Edge<S> {
    inner: S,
    layer: EdgeLayer,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Edge<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: HttpBody<Data = axum::body::Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = EdgeFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let started = Instant::now();
        let request_id = RequestId::for_request(&request);
        request.extensions_mut().insert(request_id.clone());
        let settings = &*self.layer.0;
        let route = settings.routes.as_ref().map(|routes| routes.lookup(request.uri().path()));
        if let Some(metrics) = &settings.metrics {
            metrics.request_started();
        }
        let span = settings.traces.as_ref().zip(route).map(|(traces, route)| {
            traces.start(request.method(), route, request.uri().path(), request.headers(), request_id.as_str())
        });
        let seen = Seen {
            started,
            request_id,
            method: request.method().clone(),
            uri: request.uri().clone(),
            client: ClientAddr::of(request.extensions()),
            layer: self.layer.clone(),
            route,
            span,
        };
        EdgeFuture { inner: self.inner.call(request), deadline: None, seen: Some(seen) }
    }
}

/// What the edge remembers of a request until its response is ready.
struct Seen {
    started: Instant,
    request_id: RequestId,
    method: Method,
    /// The URI as it arrived (before the trailing slash is trimmed); only its path is logged.
    uri: Uri,
    /// The client's address for the access log, when the server recorded a peer.
    client: Option<std::net::IpAddr>,
    layer: EdgeLayer,
    /// The route the request is counted and traced under, when metrics or traces are on.
    route: Option<RouteId>,
    /// The request's span when traces are on; current while the handler is polled, so its children find it.
    span: Option<RequestSpan>,
}

impl Drop for Seen {
    fn drop(&mut self) {
        // Also when the client went away before the answer: the request is not in flight any more.
        if let Some(metrics) = &self.layer.0.metrics {
            metrics.request_ended();
        }
    }
}

pin_project! {
    /// Response future of [`Edge`].
    pub struct EdgeFuture<F> {
        #[pin]
        inner: F,
        // Armed only when the handler is not ready at its first poll: registering a timer for every request
        // cost more than a whole cheap handler, and most requests never wait.
        #[pin]
        deadline: Option<Sleep>,
        seen: Option<Seen>,
    }
}

impl<F, ResBody, E> Future for EdgeFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    ResBody: HttpBody<Data = axum::body::Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if this.seen.is_none() {
            // Polled after completion, a caller bug: stay pending rather than poll the finished inner future.
            return Poll::Pending;
        }
        let _traced = this.seen.as_ref().and_then(|seen| seen.span.as_ref()).map(RequestSpan::attach);
        let response = match this.inner.poll(cx) {
            Poll::Ready(result) => result?.map(Body::new),
            Poll::Pending => {
                if this.deadline.is_none() {
                    let Some(seen) = this.seen.as_ref() else { return Poll::Pending };
                    let deadline = tokio::time::Instant::from_std(seen.started) + seen.layer.0.request_timeout;
                    this.deadline.set(Some(tokio::time::sleep_until(deadline)));
                }
                match this.deadline.as_pin_mut().map(|deadline| deadline.poll(cx)) {
                    Some(Poll::Ready(())) => timed_out(),
                    _ => return Poll::Pending,
                }
            }
        };
        let Some(mut seen) = this.seen.take() else { return Poll::Pending };
        let path = seen.uri.path();
        let mut response = error::finalize(response, path, Some(seen.request_id.as_str()));
        response.headers_mut().insert(REQUEST_ID_HEADER.clone(), seen.request_id.0.clone());
        let elapsed = seen.started.elapsed();
        if let (Some(metrics), Some(route)) = (&seen.layer.0.metrics, seen.route) {
            metrics.record(route, &seen.method, response.status(), elapsed);
        }
        let trace_id = seen.span.as_ref().map(RequestSpan::trace_id);
        if let Some(access_log) = seen.layer.0.access_log {
            access_log.write(&AccessEntry {
                method: seen.method.as_str(),
                path,
                status: response.status().as_u16(),
                latency_us: u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
                request_id: seen.request_id.as_str(),
                trace_id: trace_id.as_ref().map(|id| id.as_str()),
                client: seen.client,
            });
        }
        if let Some(span) = seen.span.take() {
            span.finish(response.status().as_u16());
        }
        Poll::Ready(Ok(response))
    }
}

/// The answer to a request whose handler ran out of time; `finalize` gives it its problem body.
fn timed_out() -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    response
}

/// Makes `/a/b/` route like `/a/b` so every route answers with and without the trailing slash, without a
/// redirect. Paths under `keep` are left alone: Swagger UI needs its slash to resolve its relative assets.
pub fn trim_trailing_slash<B>(keep: &'static [&'static str]) -> impl Fn(Request<B>) -> Request<B> + Clone {
    move |mut request| {
        let path = request.uri().path();
        if path.len() > 1 && path.ends_with('/') && !keep.iter().any(|prefix| path.starts_with(prefix)) {
            let trimmed = path.trim_end_matches('/');
            let trimmed = if trimmed.is_empty() { "/" } else { trimmed };
            let path_and_query = match request.uri().query() {
                Some(query) => format!("{trimmed}?{query}"),
                None => trimmed.to_owned(),
            };
            let mut parts = request.uri().clone().into_parts();
            if let Ok(path_and_query) = PathAndQuery::try_from(path_and_query) {
                parts.path_and_query = Some(path_and_query);
                if let Ok(uri) = Uri::from_parts(parts) {
                    *request.uri_mut() = uri;
                }
            }
        }
        request
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trimmed(uri: &str) -> String {
        let request = Request::builder().uri(uri).body(()).expect("request");
        trim_trailing_slash(&["/keep/"])(request).uri().to_string()
    }

    #[test]
    fn trailing_slashes_are_trimmed_keeping_the_query() {
        assert_eq!(trimmed("/api/greeting/v2/?name=Ada"), "/api/greeting/v2?name=Ada");
        assert_eq!(trimmed("/healthz//"), "/healthz");
        assert_eq!(trimmed("/"), "/");
        assert_eq!(trimmed("//"), "/");
        assert_eq!(trimmed("/keep/assets/"), "/keep/assets/");
        assert_eq!(trimmed("/no/slash"), "/no/slash");
    }

    #[test]
    fn generated_request_ids_are_unique_and_sane() {
        let (a, b) = (RequestId::generate(), RequestId::generate());
        assert_ne!(a.as_str(), b.as_str());
        assert!(is_sane_request_id(a.as_str().as_bytes()));
        assert_eq!(a.as_str().len(), 33);
        assert_eq!(a.as_str()[..17], b.as_str()[..17], "one prefix per process");
    }

    #[test]
    fn hex_is_fixed_width_and_lowercase() {
        let mut out = [0u8; 16];
        write_hex(0x1f, &mut out);
        assert_eq!(&out, b"000000000000001f");
        write_hex(u64::MAX, &mut out);
        assert_eq!(&out, b"ffffffffffffffff");
    }

    #[test]
    fn caller_request_id_is_kept_only_when_sane() {
        let with = |value: &str| {
            let request = Request::builder().header("x-request-id", value).body(()).expect("request");
            RequestId::for_request(&request).as_str().to_owned()
        };
        assert_eq!(with("abc-123"), "abc-123");
        assert_ne!(with("has space"), "has space");
        assert_ne!(with(&"x".repeat(129)), "x".repeat(129));
    }
}
