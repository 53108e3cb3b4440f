//! OpenTelemetry traces: the OTLP/HTTP exporter and its lifetime, the request span the edge opens, the child spans
//! the application opens for its calls out (its database, its OpenID provider: each room names its own, through
//! [`client_span`]), and the trace id that log lines carry.
//!
//! Spans are made with the OpenTelemetry API directly (the edge attaches the request's `Context` around each poll
//! of the request, children read `Context::current()`), not through `tracing` and tracing-opentelemetry: `tracing`
//! spans would be recorded by the log subscriber whether exported or not, while here "off" is provably free: with
//! no `otel_endpoint` no tracer exists, the edge holds `None`, and every other entry point returns after one
//! `OnceLock` load, before creating, extracting or allocating anything.

use std::{
    fmt,
    path::Path,
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use super::routes::{RouteId, RouteTemplates};
use crate::{ServiceInfo, settings::ObservabilitySettings};
use axum::http::{HeaderMap, Method};
use bytes::Bytes;
pub use opentelemetry::KeyValue;
use opentelemetry::{
    Context, ContextGuard,
    propagation::TextMapPropagator,
    trace::{SpanBuilder, SpanKind, Status, TraceContextExt, TraceId, Tracer, TracerProvider},
};
use opentelemetry_http::{HeaderExtractor, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::{
    Resource,
    propagation::TraceContextPropagator,
    trace::{SdkTracer, SdkTracerProvider, Span},
};

/// The tracer of this process, set once when an endpoint is configured; its absence is what "off" means.
static TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// Longest wait for the last spans at shutdown: with the default 25 s grace for requests and no drain it stays
/// within Kubernetes' default 30 s before SIGKILL (the README has the budget with a drain).
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(3);

/// Shortest time between two log lines about failed exports, so an unreachable collector is one line a minute.
const EXPORT_FAILURE_REPORT_INTERVAL: Duration = Duration::from_secs(60);

/// Whether spans are being made; one atomic load, for callers that must stay free when tracing is off.
pub fn enabled() -> bool {
    TRACER.get().is_some()
}

/// Why tracing could not be started; the binary exits with code 2 (a configuration mistake) on any of these.
#[derive(Debug, thiserror::Error)]
pub enum TracesError {
    /// `otel_endpoint` is not an http(s) base URL.
    #[error("invalid otel_endpoint '{endpoint}': {reason}")]
    Endpoint {
        /// The configured value.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTP client cannot be built (e.g. a bad `ca_cert` bundle).
    #[error(transparent)]
    Client(#[from] http_client::ClientError),
    /// opentelemetry-otlp refused its configuration.
    #[error("cannot build the OTLP trace exporter: {0}")]
    Exporter(String),
}

/// The running trace pipeline (batch processor and exporter); `main` keeps it to flush it at shutdown.
pub struct Traces {
    provider: SdkTracerProvider,
}

impl Traces {
    /// Starts exporting `service`'s spans when `settings` name an endpoint; `None` (and no cost anywhere)
    /// otherwise. Exports run on `runtime`, through the workspace's outbound client (5 s to connect, 10 s a call,
    /// the system's roots plus `ca_cert`).
    pub fn start(
        settings: &ObservabilitySettings,
        service: &ServiceInfo,
        ca_cert: Option<&Path>,
        runtime: tokio::runtime::Handle,
    ) -> Result<Option<Self>, TracesError> {
        let Some(endpoint) = settings.otel_endpoint.as_deref() else { return Ok(None) };
        let url = traces_url(endpoint)?;
        let client = http_client::build(http_client::Settings {
            user_agent: format!("{}/{}", service.name, service.version),
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            ca_cert,
        })?;
        let client = ExportClient { client, runtime };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(url.clone())
            .build()
            .map_err(|error| TracesError::Exporter(error.to_string()))?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name(settings.otel_service_name.clone()).build())
            .build();
        if TRACER.set(provider.tracer(service.name)).is_err() {
            tracing::warn!("traces were already started in this process; keeping the first exporter");
        }
        tracing::info!("Exporting traces to {}", without_password(&url));
        Ok(Some(Self { provider }))
    }

    /// Exports the spans still queued (the last requests') and stops the exporter. Call after serving ended,
    /// outside the runtime's `block_on` but while the runtime still exists: the exports run on it.
    pub fn shutdown(self) {
        if let Err(error) = self.provider.shutdown_with_timeout(SHUTDOWN_FLUSH) {
            tracing::warn!("flushing the last spans failed: {error}");
        }
    }
}

/// `{endpoint}/v1/traces`, after checking that `endpoint` is an http(s) base URL without query or fragment.
fn traces_url(endpoint: &str) -> Result<String, TracesError> {
    // The value may carry credentials (`https://user:secret@collector`): the error line shows it without them.
    let shown = without_password(endpoint);
    let invalid = |reason: &str| TracesError::Endpoint { endpoint: shown.clone(), reason: reason.to_owned() };
    let url = url::Url::parse(endpoint).map_err(|error| invalid(&error.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https (OTLP over HTTP)"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("a base URL takes no query or fragment"));
    }
    Ok(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
}

/// `url` with its password masked, for log lines and errors.
fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// The exporter's HTTP client: the workspace reqwest (no second HTTP stack), its calls spawned onto the server's
/// runtime because the SDK's batch processor drives exports from its own thread, outside any runtime.
#[derive(Debug)]
struct ExportClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for ExportClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let outcome = match self.runtime.spawn(send(client, request)).await {
            Ok(outcome) => outcome,
            Err(error) => Err(Box::new(error) as HttpError),
        };
        match &outcome {
            Err(error) => report_export_failure(error),
            Ok(response) if !response.status().is_success() => {
                report_export_failure(&format_args!("the collector answered {}", response.status()));
            }
            Ok(_) => {}
        }
        outcome
    }
}

/// One POST to the collector; its answer is small, and the client's timeout bounds the whole call.
async fn send(client: reqwest::Client, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
    // Errors without the URL: it is in the start-up line already, and it may hold credentials.
    let response = client.execute(reqwest::Request::try_from(request)?).await.map_err(reqwest::Error::without_url)?;
    let (status, headers) = (response.status(), response.headers().clone());
    let mut answer = Response::new(response.bytes().await.map_err(reqwest::Error::without_url)?);
    *answer.status_mut() = status;
    *answer.headers_mut() = headers;
    Ok(answer)
}

/// Logs a failed export at most once per [`EXPORT_FAILURE_REPORT_INTERVAL`], counting the ones in between; spans
/// that cannot be sent are dropped and never affect requests.
fn report_export_failure(reason: &dyn fmt::Display) {
    static LAST: Mutex<Option<(Instant, u64)>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    match last.as_mut() {
        Some((at, skipped)) if at.elapsed() < EXPORT_FAILURE_REPORT_INTERVAL => *skipped += 1,
        _ => {
            let skipped = last.map_or(0, |(_, skipped)| skipped);
            *last = Some((Instant::now(), 0));
            drop(last);
            tracing::warn!("exporting spans failed ({skipped} more failures since the last report): {reason}");
        }
    }
}

/// What the edge needs to open request spans: the tracer and the route templates that name them. The edge holds
/// `Option<HttpTracing>`, `None` when tracing is off, so a request costs one `if let` then; one `Arc`, because the
/// edge copies its settings into every request.
#[derive(Debug, Clone)]
pub struct HttpTracing(Arc<HttpTracingParts>);

/// The parts of [`HttpTracing`].
#[derive(Debug)]
struct HttpTracingParts {
    tracer: SdkTracer,
    routes: RouteTemplates,
}

impl HttpTracing {
    /// `Some` when traces are exported; `routes` name the spans (the same templates metrics count under, so the
    /// edge looks a request's route up once for both).
    pub fn if_enabled(routes: impl FnOnce() -> RouteTemplates) -> Option<Self> {
        let tracer = TRACER.get()?.clone();
        Some(Self(Arc::new(HttpTracingParts { tracer, routes: routes() })))
    }

    /// The route templates the spans are named after.
    pub fn routes(&self) -> &RouteTemplates {
        &self.0.routes
    }

    /// Opens the SERVER span of a request whose path `path` matched `route`, as a child of the caller's
    /// `traceparent` when it sent a valid one.
    pub fn start(
        &self,
        method: &Method,
        route: RouteId,
        path: &str,
        headers: &HeaderMap,
        request_id: &str,
    ) -> RequestSpan {
        let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
        let HttpTracingParts { tracer, routes } = &*self.0;
        // OTel HTTP conventions: `{method} {http.route}`, or the method alone when no route matched.
        let template = (route != RouteId(0)).then(|| routes.template(route));
        let mut attributes = Vec::with_capacity(5);
        attributes.push(KeyValue::new("http.request.method", method.as_str().to_owned()));
        let name = match template {
            Some(template) => {
                attributes.push(KeyValue::new("http.route", template.to_owned()));
                format!("{method} {template}")
            }
            None => method.as_str().to_owned(),
        };
        attributes.push(KeyValue::new("url.path", path.to_owned()));
        attributes.push(KeyValue::new("request.id", request_id.to_owned()));
        let builder = SpanBuilder::from_name(name).with_kind(SpanKind::Server).with_attributes(attributes);
        let span = tracer.build_with_context(builder, &parent);
        RequestSpan { cx: parent.with_span(span) }
    }
}

/// A request's span inside the `Context` its children find it in.
pub struct RequestSpan {
    cx: Context,
}

impl RequestSpan {
    /// Makes the request's context current until the guard drops; the edge holds one around each poll.
    pub fn attach(&self) -> ContextGuard {
        self.cx.clone().attach()
    }

    /// The trace id, for the access line.
    pub fn trace_id(&self) -> TraceIdHex {
        TraceIdHex::new(self.cx.span().span_context().trace_id())
    }

    /// Records the answered status and ends the span; 5xx marks it failed, as the HTTP conventions ask.
    pub fn finish(self, status: u16) {
        let span = self.cx.span();
        span.set_attribute(KeyValue::new("http.response.status_code", i64::from(status)));
        if status >= 500 {
            span.set_attribute(KeyValue::new("error.type", status.to_string()));
            span.set_status(Status::error(""));
        }
        span.end();
    }
}

/// A trace id as 32 lowercase hex digits on the stack, so log lines carry it without allocating.
#[derive(Clone, Copy)]
pub struct TraceIdHex([u8; 32]);

impl TraceIdHex {
    /// Written digit by digit into the array: `format!` would allocate on every traced request.
    fn new(id: TraceId) -> Self {
        let id = u128::from_be_bytes(id.to_bytes());
        let mut hex = [0u8; 32];
        // The high and low halves, each as 16 digits.
        crate::edge::write_hex((id >> 64) as u64, &mut hex[..16]);
        crate::edge::write_hex(id as u64, &mut hex[16..]);
        Self(hex)
    }

    /// The digits as text.
    pub fn as_str(&self) -> &str {
        // Hex digits are ASCII, so this never falls back.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// The trace id of the request being handled on this thread, for log lines other than the access line; `None`
/// after one atomic load when tracing is off.
pub fn current_trace_id() -> Option<TraceIdHex> {
    if !enabled() {
        return None;
    }
    Context::map_current(|cx| {
        let context = cx.span().span_context().clone();
        context.is_valid().then(|| TraceIdHex::new(context.trace_id()))
    })
}

/// A child span of the current request (a database or provider call), ended by [`Self::finish`] or on drop
/// (a cancelled call). Empty, and free, when tracing is off or no request is being traced.
#[must_use = "the span measures the call until `finish`"]
pub struct ChildSpan(Option<Span>);

impl ChildSpan {
    /// A child of the current context's span; `name` and `attributes` are closures so that "off" builds neither.
    pub fn start(name: impl FnOnce() -> String, kind: SpanKind, attributes: impl FnOnce() -> Vec<KeyValue>) -> Self {
        let Some(tracer) = TRACER.get() else { return Self(None) };
        Context::map_current(|parent| {
            // Work outside a traced request (start-up, background refreshes) makes no orphan traces.
            if !parent.has_active_span() {
                return Self(None);
            }
            let builder = SpanBuilder::from_name(name()).with_kind(kind).with_attributes(attributes());
            Self(Some(tracer.build_with_context(builder, parent)))
        })
    }

    /// Ends the span, failed when `outcome` is an error. The error's text stays out of the span: driver and
    /// client errors can name hosts, tables and URLs with query strings; the cause is in the log already.
    pub fn finish<T, E>(self, outcome: &Result<T, E>) {
        self.finish_with(outcome.is_ok(), None);
    }

    /// Ends the span, failed unless `ok`.
    pub fn finish_as(self, ok: bool) {
        self.finish_with(ok, None);
    }

    /// Ends the span of an HTTP call, with the answer's status when one came back.
    pub fn finish_http(self, ok: bool, status: Option<u16>) {
        self.finish_with(ok, status);
    }

    /// The one place child spans end, so every kind records status the same way.
    fn finish_with(self, ok: bool, status: Option<u16>) {
        use opentelemetry::trace::Span as _;
        let Some(mut span) = self.0 else { return };
        if let Some(status) = status {
            span.set_attribute(KeyValue::new("http.response.status_code", i64::from(status)));
        }
        if !ok {
            span.set_status(Status::error("failed"));
        }
        span.end();
    }
}

/// Runs `call` inside `span`, ending it with the call's outcome; for store methods whose bodies have many exits.
pub async fn in_span<T, E>(span: ChildSpan, call: impl Future<Output = Result<T, E>>) -> Result<T, E> {
    let outcome = call.await;
    span.finish(&outcome);
    outcome
}

/// A CLIENT span (a call out: the database, the OpenID provider) as a child of the current request's span, named
/// by `name` with `attributes` (the OTel conventions of its kind). Both are closures, built only when the current
/// request is traced; otherwise this is one atomic load and the span is empty.
pub fn client_span(name: impl FnOnce() -> String, attributes: impl FnOnce() -> Vec<KeyValue>) -> ChildSpan {
    ChildSpan::start(name, SpanKind::Client, attributes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_must_be_an_http_base_url() {
        assert_eq!(traces_url("http://collector:4318").expect("valid"), "http://collector:4318/v1/traces");
        assert_eq!(traces_url("https://c.example/otlp/").expect("valid"), "https://c.example/otlp/v1/traces");
        for bad in ["collector:4318", "grpc://collector:4317", "http://", "not a url", "http://c:4318/?x=1"] {
            let error = traces_url(bad).expect_err(bad).to_string();
            assert!(error.starts_with(&format!("invalid otel_endpoint '{bad}'")), "{error}");
            assert!(!error.contains('\n'), "one line: {error}");
        }
    }

    #[test]
    fn trace_ids_are_32_lowercase_hex_digits() {
        let id = TraceId::from(0x0af7651916cd43dd8448eb211c80319c_u128);
        assert_eq!(TraceIdHex::new(id).as_str(), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(TraceIdHex::new(TraceId::from(1_u128)).as_str(), "00000000000000000000000000000001");
    }

    #[test]
    fn without_a_tracer_nothing_is_made() {
        // Unit tests never start the exporter, so these are the "off" paths.
        assert!(!enabled());
        assert!(current_trace_id().is_none());
        assert!(client_span(|| "db.get".into(), Vec::new).0.is_none());
        assert!(HttpTracing::if_enabled(|| RouteTemplates::new(["/x"])).is_none());
    }
}
