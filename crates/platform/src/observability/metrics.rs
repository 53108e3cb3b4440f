//! Prometheus metrics: requests by route template, method and status with their latency, requests in flight, the
//! build and the process; the application registers its own series (its pool, its authentication decisions)
//! through [`Metrics::counter`], [`Metrics::gauge`] and [`Metrics::on_scrape`]. Each service instance has its own
//! registry (no global recorder), and request handles are resolved once per (route, method, status) and kept, so
//! counting a request is a few atomic operations instead of a registry lookup with label strings.

use std::{
    borrow::Cow,
    sync::{Arc, OnceLock, RwLock},
    time::Duration,
};

use axum::http::{Method, StatusCode};
pub use metrics::{Counter, Gauge};
use metrics::{Histogram, Key, KeyName, Label, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use super::routes::{RouteId, RouteTemplates};
use crate::ServiceInfo;

/// Latency buckets in seconds: sub-millisecond for cached reads up to the default request timeout.
const LATENCY_BUCKETS: [f64; 16] =
    [0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Methods with a label of their own; anything else is counted as `OTHER`, so odd methods cannot add series.
const METHODS: [Method; 7] =
    [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE, Method::HEAD, Method::OPTIONS];
const OTHER_METHOD: usize = METHODS.len();

/// Statuses this service answers with, each with its own slot; others share one slot per class (`4xx`, ...).
const STATUSES: [u16; 22] =
    [200, 201, 204, 301, 302, 304, 307, 308, 400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 429, 431, 500, 503];
const STATUS_SLOTS: usize = STATUSES.len() + 5;

/// Names of the platform's metrics, in one place so the docs and dashboards can rely on them; the application's
/// own are named where it registers them.
pub mod names {
    /// Counter: requests answered, by `route`, `method`, `status`.
    pub const REQUESTS: &str = "http_server_requests_total";
    /// Histogram: seconds from the request's arrival to its response head, by `route`, `method`, `status`.
    pub const DURATION: &str = "http_server_request_duration_seconds";
    /// Gauge: requests being handled now.
    pub const IN_FLIGHT: &str = "http_server_requests_in_flight";
    /// Gauge, always 1: the running version as labels (`service`, `version`).
    pub const BUILD_INFO: &str = "build_info";
}

/// The metrics registry of one running service; cheap to clone.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    process: metrics_process::Collector,
    /// The application's samplers, run before each scrape is rendered.
    on_scrape: RwLock<Vec<Box<dyn Fn() + Send + Sync>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// A registry for `service`, exporting its build and process from the start.
    pub fn new(service: &ServiceInfo) -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full(names::DURATION.to_owned()),
                &LATENCY_BUCKETS,
            )
            // Only fails for an empty bucket list, which the constant is not.
            .unwrap_or_else(|_| PrometheusBuilder::new())
            .build_recorder();
        let handle = recorder.handle();
        describe(&recorder);
        let labels = vec![Label::new("service", service.name), Label::new("version", service.version)];
        recorder.register_gauge(&key(names::BUILD_INFO, labels), &META).set(1.0);
        let process = metrics_process::Collector::default();
        metrics::with_local_recorder(&recorder, || process.describe());
        Self(Arc::new(Inner { process, on_scrape: RwLock::new(Vec::new()), handle, recorder }))
    }

    /// Registers the application's counter `name` with `labels` (say `auth_requests_total{outcome="valid"}`),
    /// described by `help`; it is exported from now on, at 0 until counted.
    pub fn counter(&self, name: &'static str, help: &'static str, labels: &[(&'static str, &'static str)]) -> Counter {
        self.0.recorder.describe_counter(KeyName::from_const_str(name), None, SharedString::const_str(help));
        self.0.recorder.register_counter(&key(name, to_labels(labels)), &META)
    }

    /// Registers the application's gauge `name` with `labels`, described by `help`.
    pub fn gauge(&self, name: &'static str, help: &'static str, labels: &[(&'static str, &'static str)]) -> Gauge {
        self.0.recorder.describe_gauge(KeyName::from_const_str(name), None, SharedString::const_str(help));
        self.0.recorder.register_gauge(&key(name, to_labels(labels)), &META)
    }

    /// Runs `sample` before every scrape is rendered, to set gauges from what only a look can tell (a pool's
    /// size).
    pub fn on_scrape(&self, sample: impl Fn() + Send + Sync + 'static) {
        let mut samplers = self.0.on_scrape.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        samplers.push(Box::new(sample));
    }

    /// The exposition text for a scrape; samples the process and runs the application's samplers first.
    pub fn render(&self) -> String {
        let inner = &self.0;
        metrics::with_local_recorder(&inner.recorder, || inner.process.collect());
        for sample in inner.on_scrape.read().unwrap_or_else(std::sync::PoisonError::into_inner).iter() {
            sample();
        }
        inner.handle.render()
    }

    /// Drains recorded histogram samples into their buckets; without it they would pile up between scrapes.
    pub fn run_upkeep(&self) {
        self.0.handle.run_upkeep();
    }
}

/// The request series (by route, method and status, and in flight) of a service serving `routes`, which the edge
/// counts into; cheap to clone.
#[derive(Clone)]
pub struct RequestMetrics(Arc<RequestSeries>);

struct RequestSeries {
    registry: Metrics,
    routes: RouteTemplates,
    /// `requests[(route * (OTHER_METHOD + 1) + method) * STATUS_SLOTS + status]`, filled on first use so that
    /// only combinations that happened are exported.
    requests: Box<[OnceLock<RequestHandles>]>,
    in_flight: Gauge,
}

struct RequestHandles {
    count: Counter,
    duration: Histogram,
}

impl std::fmt::Debug for RequestMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequestMetrics")
    }
}

impl RequestMetrics {
    /// The request series in `registry` of a service serving `routes`.
    pub fn new(registry: &Metrics, routes: RouteTemplates) -> Self {
        let slots = routes.len() * (OTHER_METHOD + 1) * STATUS_SLOTS;
        let in_flight = registry.0.recorder.register_gauge(&key(names::IN_FLIGHT, vec![]), &META);
        Self(Arc::new(RequestSeries {
            registry: registry.clone(),
            requests: (0..slots).map(|_| OnceLock::new()).collect(),
            routes,
            in_flight,
        }))
    }

    /// The route templates requests are counted under.
    pub fn routes(&self) -> &RouteTemplates {
        &self.0.routes
    }

    /// Counts a request as in flight; the caller must call [`Self::request_ended`] exactly once for it, also
    /// when the client goes away (the edge does it when it drops the request's state).
    pub fn request_started(&self) {
        self.0.in_flight.increment(1.0);
    }

    /// Ends what [`Self::request_started`] began.
    pub fn request_ended(&self) {
        self.0.in_flight.decrement(1.0);
    }

    /// Records one answered request.
    pub fn record(&self, route: RouteId, method: &Method, status: StatusCode, elapsed: Duration) {
        let series = &*self.0;
        let method_slot = METHODS.iter().position(|known| known == method).unwrap_or(OTHER_METHOD);
        let status_slot = status_slot(status.as_u16());
        let index = (route.0 * (OTHER_METHOD + 1) + method_slot) * STATUS_SLOTS + status_slot;
        let Some(slot) = series.requests.get(index) else { return };
        let handles = slot.get_or_init(|| {
            let labels = vec![
                Label::new("route", series.routes.template(route).to_owned()),
                Label::new("method", METHODS.get(method_slot).map_or("OTHER", Method::as_str).to_owned()),
                Label::new("status", status_label(status_slot)),
            ];
            let recorder = &series.registry.0.recorder;
            RequestHandles {
                count: recorder.register_counter(&key(names::REQUESTS, labels.clone()), &META),
                duration: recorder.register_histogram(&key(names::DURATION, labels), &META),
            }
        });
        handles.count.increment(1);
        handles.duration.record(elapsed.as_secs_f64());
    }
}

fn status_slot(status: u16) -> usize {
    STATUSES
        .iter()
        .position(|&known| known == status)
        .unwrap_or_else(|| STATUSES.len() + usize::from(status / 100).clamp(1, 5) - 1)
}

fn status_label(slot: usize) -> Cow<'static, str> {
    match STATUSES.get(slot) {
        Some(status) => Cow::Owned(status.to_string()),
        None => Cow::Borrowed(["1xx", "2xx", "3xx", "4xx", "5xx"].get(slot - STATUSES.len()).unwrap_or(&"5xx")),
    }
}

static META: Metadata<'static> = Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

fn key(name: &'static str, labels: Vec<Label>) -> Key {
    Key::from_parts(name, labels)
}

fn to_labels(labels: &[(&'static str, &'static str)]) -> Vec<Label> {
    labels.iter().map(|&(name, value)| Label::new(name, value)).collect()
}

fn describe(recorder: &PrometheusRecorder) {
    let text = |name: &'static str, unit: Option<Unit>, help: &'static str| {
        (KeyName::from_const_str(name), unit, SharedString::const_str(help))
    };
    for (name, unit, help) in [
        text(names::REQUESTS, None, "Requests answered, by route template, method and status."),
        text(names::IN_FLIGHT, None, "Requests being handled now."),
        text(names::BUILD_INFO, None, "The running build; always 1."),
    ] {
        if name.as_str().ends_with("_total") {
            recorder.describe_counter(name, unit, help);
        } else {
            recorder.describe_gauge(name, unit, help);
        }
    }
    let (name, unit, help) =
        text(names::DURATION, Some(Unit::Seconds), "Time from a request's arrival to its response head.");
    recorder.describe_histogram(name, unit, help);
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICE: ServiceInfo = ServiceInfo { name: "svc", version: "1.2.3" };

    fn metrics() -> (Metrics, RequestMetrics) {
        let registry = Metrics::new(&SERVICE);
        let requests =
            RequestMetrics::new(&registry, RouteTemplates::new(["/api/resource/v1", "/api/resource/v1/{id}"]));
        (registry, requests)
    }

    #[test]
    fn requests_are_counted_under_their_route_template() {
        let (metrics, requests) = metrics();
        let route = requests.routes().lookup("/api/resource/v1/42");
        requests.record(route, &Method::GET, StatusCode::OK, Duration::from_millis(3));
        requests.record(route, &Method::GET, StatusCode::OK, Duration::from_millis(3));
        requests.record(
            requests.routes().lookup("/x/y"),
            &Method::from_bytes(b"BREW").expect("method"),
            StatusCode::IM_A_TEAPOT,
            Duration::ZERO,
        );
        let text = metrics.render();
        assert!(
            text.contains(r#"http_server_requests_total{route="/api/resource/v1/{id}",method="GET",status="200"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"http_server_requests_total{route="unmatched",method="OTHER",status="4xx"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"http_server_request_duration_seconds_bucket{route="/api/resource/v1/{id}",method="GET",status="200",le="0.005"} 2"#), "{text}");
        assert!(!text.contains("/42"), "raw paths never become labels");
    }

    #[test]
    fn in_flight_counts_started_minus_ended() {
        let (metrics, requests) = metrics();
        requests.request_started();
        requests.request_started();
        assert!(metrics.render().contains("http_server_requests_in_flight 2"));
        requests.request_ended();
        requests.request_ended();
        assert!(metrics.render().contains("http_server_requests_in_flight 0"));
    }

    #[test]
    fn build_process_and_app_series_are_there_from_the_start() {
        let (metrics, _) = metrics();
        metrics.counter("app_things_total", "Things.", &[("kind", "a")]).increment(2);
        let _registered = metrics.counter("app_things_total", "Things.", &[("kind", "b")]);
        let gauge = metrics.gauge("app_level", "A level.", &[]);
        metrics.on_scrape(move || gauge.set(7.0));
        let text = metrics.render();
        assert!(text.contains(r#"build_info{service="svc",version="1.2.3"} 1"#), "{text}");
        assert!(text.contains(r#"app_things_total{kind="a"} 2"#), "{text}");
        assert!(text.contains(r#"app_things_total{kind="b"} 0"#), "{text}");
        assert!(text.contains("# HELP app_things_total Things."), "{text}");
        assert!(text.contains("app_level 7"), "{text}");
        assert!(text.contains("process_resident_memory_bytes"), "{text}");
    }

    #[test]
    fn status_slots_keep_known_codes_and_fold_others_into_classes() {
        assert_eq!(status_label(status_slot(404)), "404");
        assert_eq!(status_label(status_slot(418)), "4xx");
        assert_eq!(status_label(status_slot(599)), "5xx");
        assert_eq!(status_label(status_slot(102)), "1xx");
    }
}
