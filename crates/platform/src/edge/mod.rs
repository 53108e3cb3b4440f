//! The HTTP edge: the first and last code every request meets. It names the request (request id, a caller's own
//! believed only from a trusted proxy), times it, cuts
//! it off at the request timeout, gives error responses their problem body and writes the access-log line, in one
//! hand-written layer because all five need the same per-request state and a boxed middleware would cost more
//! than the work itself.

use std::{
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::{
    body::{Body, HttpBody},
    extract::ConnectInfo,
    http::{Method, Request, Response, StatusCode, Uri},
};
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower::{BoxError, Layer, Service};

use crate::{
    guards::client_addr::{ClientAddr, TrustedProxies},
    observability::{
        logs::{AccessEntry, AccessLog},
        metrics::RequestMetrics,
        routes::{RouteId, RouteTemplates},
        traces::{HttpTracing, RequestSpan},
    },
    problem,
};

mod request_id;
mod trailing_slash;

pub(crate) use request_id::write_hex;
pub use request_id::{REQUEST_ID_HEADER, RequestId};
pub use trailing_slash::trim_trailing_slash;

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
    metrics: Option<RequestMetrics>,
    /// Opens each request's span; `None` when traces are off, and then a request pays one `if let`.
    traces: Option<HttpTracing>,
    /// The peers whose `x-request-id` names the request; `None` trusts nobody's.
    proxies: Option<TrustedProxies>,
}

impl EdgeLayer {
    /// `access_log` writes the one-line-per-request log when set; a handler still running `request_timeout` after
    /// the request arrived is dropped and answered 503; `metrics` counts every request when set; `traces` opens
    /// an OpenTelemetry span per request when set (see `observability::traces`); the `x-request-id` of a peer
    /// among `proxies` names its request, anyone else's is only logged beside the id made here.
    pub fn new(
        access_log: Option<AccessLog>,
        request_timeout: Duration,
        metrics: Option<RequestMetrics>,
        traces: Option<HttpTracing>,
        proxies: &TrustedProxies,
    ) -> Self {
        let routes = metrics.as_ref().map(RequestMetrics::routes).or(traces.as_ref().map(HttpTracing::routes)).cloned();
        let proxies = (!proxies.is_empty()).then(|| proxies.clone());
        Self(Arc::new(EdgeSettings { access_log, request_timeout, routes, metrics, traces, proxies }))
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
        let settings = &*self.layer.0;
        // The TCP peer itself, not the forwarded client: it is the proxy that vouches for the id.
        let from_trusted_proxy = || {
            let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(peer)| peer.ip());
            settings.proxies.as_ref().zip(peer).is_some_and(|(proxies, peer)| proxies.contains(peer.to_canonical()))
        };
        let (request_id, client_request_id) = RequestId::for_request(&request, from_trusted_proxy);
        request.extensions_mut().insert(request_id.clone());
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
            client_request_id,
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
    /// The `x-request-id` a caller that is not a trusted proxy sent, for the access log.
    client_request_id: Option<axum::http::HeaderValue>,
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
        let mut response = problem::finalize(response, path, Some(seen.request_id.as_str()));
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
                // Sane ids only (visible ASCII), so the fallback never happens.
                client_request_id: seen.client_request_id.as_ref().map(|id| id.to_str().unwrap_or_default()),
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
