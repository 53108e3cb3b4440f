//! Prometheus metrics: requests by route template, method and status with their latency, requests in flight, the
//! build, the process, the database pool and authentication. Each service instance has its own registry (no
//! global recorder), and request handles are resolved once per (route, method, status) and kept, so counting a
//! request is a few atomic operations instead of a registry lookup with label strings.

use std::{
    borrow::Cow,
    sync::{Arc, OnceLock},
    time::Duration,
};

use axum::http::{Method, StatusCode};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use sea_orm::{DatabaseConnection, DatabaseConnectionType};

use super::routes::{RouteId, RouteTemplates};
use crate::auth::AuthError;

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

/// Names of the metrics, in one place so the README and dashboards can rely on them.
pub mod names {
    /// Counter: requests answered, by `route`, `method`, `status`.
    pub const REQUESTS: &str = "http_server_requests_total";
    /// Histogram: seconds from the request's arrival to its response head, by `route`, `method`, `status`.
    pub const DURATION: &str = "http_server_request_duration_seconds";
    /// Gauge: requests being handled now.
    pub const IN_FLIGHT: &str = "http_server_requests_in_flight";
    /// Gauge, always 1: the running version as labels (`service`, `version`).
    pub const BUILD_INFO: &str = "build_info";
    /// Gauge: pooled database connections by `state` (`idle`, `in_use`).
    pub const DB_POOL_CONNECTIONS: &str = "db_pool_connections";
    /// Gauge: the pool's largest size (`db_max_connections`).
    pub const DB_POOL_MAX: &str = "db_pool_max_connections";
    /// Counter: authentication decisions by `outcome`.
    pub const AUTH_OUTCOMES: &str = "auth_requests_total";
    /// Counter: JWKS fetches from the provider (first load and refetches for unknown key ids).
    pub const JWKS_FETCHES: &str = "auth_jwks_fetches_total";
    /// Counter: verified-token cache lookups by `result` (`hit`, `miss`).
    pub const TOKEN_CACHE: &str = "auth_token_cache_lookups_total";
}

/// The metrics of one running service; cheap to clone.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    routes: RouteTemplates,
    /// `requests[(route * (OTHER_METHOD + 1) + method) * STATUS_SLOTS + status]`, filled on first use so that
    /// only combinations that happened are exported.
    requests: Box<[OnceLock<RequestHandles>]>,
    in_flight: Gauge,
    auth: AuthMetrics,
    /// The pool reported at each scrape, set once the database is connected.
    database: OnceLock<DatabaseConnection>,
    db_pool_idle: Gauge,
    db_pool_in_use: Gauge,
    process: metrics_process::Collector,
}

struct RequestHandles {
    count: Counter,
    duration: Histogram,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// A registry for a service serving `routes` with a pool of at most `db_max_connections`.
    pub fn new(routes: RouteTemplates, db_max_connections: u32) -> Self {
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
        let gauge = |name: &'static str, labels: Vec<Label>| recorder.register_gauge(&key(name, labels), &META);
        gauge(names::BUILD_INFO, vec![Label::new("service", "rust-api-axum"), Label::new("version", crate::VERSION)])
            .set(1.0);
        gauge(names::DB_POOL_MAX, vec![]).set(f64::from(db_max_connections));
        let slots = routes.len() * (OTHER_METHOD + 1) * STATUS_SLOTS;
        let counter = |name: &'static str, label: &'static str, value: &'static str| {
            recorder.register_counter(&key(name, vec![Label::new(label, value)]), &META)
        };
        let auth = AuthMetrics(Some(Arc::new(AuthHandles {
            outcomes: AuthOutcome::ALL.map(|outcome| counter(names::AUTH_OUTCOMES, "outcome", outcome.label())),
            jwks_fetches: recorder.register_counter(&key(names::JWKS_FETCHES, vec![]), &META),
            cache_hits: counter(names::TOKEN_CACHE, "result", "hit"),
            cache_misses: counter(names::TOKEN_CACHE, "result", "miss"),
        })));
        let process = metrics_process::Collector::default();
        metrics::with_local_recorder(&recorder, || process.describe());
        Self(Arc::new(Inner {
            in_flight: gauge(names::IN_FLIGHT, vec![]),
            db_pool_idle: gauge(names::DB_POOL_CONNECTIONS, vec![Label::new("state", "idle")]),
            db_pool_in_use: gauge(names::DB_POOL_CONNECTIONS, vec![Label::new("state", "in_use")]),
            requests: (0..slots).map(|_| OnceLock::new()).collect(),
            routes,
            auth,
            database: OnceLock::new(),
            process,
            handle,
            recorder,
        }))
    }

    /// Reports the pool of `database` from now on (the registry exists before the database is connected, so
    /// that the token verifier can count from the start).
    pub fn observe_pool(&self, database: DatabaseConnection) {
        let _ = self.0.database.set(database);
    }

    /// The route templates requests are counted under.
    pub fn routes(&self) -> &RouteTemplates {
        &self.0.routes
    }

    /// The authentication part, handed to the token verifier and the extractors.
    pub fn auth(&self) -> AuthMetrics {
        self.0.auth.clone()
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
        let method_slot = METHODS.iter().position(|known| known == method).unwrap_or(OTHER_METHOD);
        let status_slot = status_slot(status.as_u16());
        let index = (route.0 * (OTHER_METHOD + 1) + method_slot) * STATUS_SLOTS + status_slot;
        let Some(slot) = self.0.requests.get(index) else { return };
        let handles = slot.get_or_init(|| {
            let labels = vec![
                Label::new("route", self.0.routes.template(route).to_owned()),
                Label::new("method", METHODS.get(method_slot).map_or("OTHER", Method::as_str).to_owned()),
                Label::new("status", status_label(status_slot)),
            ];
            RequestHandles {
                count: self.0.recorder.register_counter(&key(names::REQUESTS, labels.clone()), &META),
                duration: self.0.recorder.register_histogram(&key(names::DURATION, labels), &META),
            }
        });
        handles.count.increment(1);
        handles.duration.record(elapsed.as_secs_f64());
    }

    /// The exposition text for a scrape; samples the process and the pool first.
    pub fn render(&self) -> String {
        let inner = &self.0;
        metrics::with_local_recorder(&inner.recorder, || inner.process.collect());
        if let Some((size, idle)) = inner.database.get().and_then(pool_usage) {
            inner.db_pool_idle.set(idle as f64);
            inner.db_pool_in_use.set(f64::from(size).max(idle as f64) - idle as f64);
        }
        inner.handle.render()
    }

    /// Drains recorded histogram samples into their buckets; without it they would pile up between scrapes.
    pub fn run_upkeep(&self) {
        self.0.handle.run_upkeep();
    }
}

/// Pool size and idle connections of `database`'s sqlx pool.
fn pool_usage(database: &DatabaseConnection) -> Option<(u32, usize)> {
    match &database.inner {
        DatabaseConnectionType::SqlxSqlitePoolConnection(_) => {
            let pool = database.get_sqlite_connection_pool();
            Some((pool.size(), pool.num_idle()))
        }
        DatabaseConnectionType::SqlxPostgresPoolConnection(_) => {
            let pool = database.get_postgres_connection_pool();
            Some((pool.size(), pool.num_idle()))
        }
        DatabaseConnectionType::SqlxMySqlPoolConnection(_) => {
            let pool = database.get_mysql_connection_pool();
            Some((pool.size(), pool.num_idle()))
        }
        _ => None,
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

fn describe(recorder: &PrometheusRecorder) {
    let text = |name: &'static str, unit: Option<Unit>, help: &'static str| {
        (KeyName::from_const_str(name), unit, SharedString::const_str(help))
    };
    for (name, unit, help) in [
        text(names::REQUESTS, None, "Requests answered, by route template, method and status."),
        text(names::IN_FLIGHT, None, "Requests being handled now."),
        text(names::BUILD_INFO, None, "The running build; always 1."),
        text(names::DB_POOL_CONNECTIONS, None, "Pooled database connections by state."),
        text(names::DB_POOL_MAX, None, "Largest number of pooled database connections."),
        text(names::AUTH_OUTCOMES, None, "Authentication decisions by outcome."),
        text(names::JWKS_FETCHES, None, "JWKS fetches from the OpenID provider."),
        text(names::TOKEN_CACHE, None, "Verified-token cache lookups by result."),
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

/// Why an authentication succeeded or failed, as the `outcome` label of [`names::AUTH_OUTCOMES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthOutcome {
    /// A valid token with the scope the operation needs.
    Valid,
    /// No bearer token.
    MissingToken,
    /// The token's `exp` is past.
    Expired,
    /// The signature does not verify, or the token names a key the provider does not have.
    BadSignature,
    /// Another issuer or audience.
    WrongIssuerOrAudience,
    /// Not a well-formed token, an algorithm we refuse, or claims missing.
    Malformed,
    /// The provider said the token is not active (introspection).
    Inactive,
    /// A valid token without the operation's scope.
    InsufficientScope,
    /// The provider could not be asked.
    ProviderUnavailable,
    /// The server has no OIDC configuration.
    NotConfigured,
}

impl AuthOutcome {
    /// Every outcome, in label order.
    pub const ALL: [Self; 10] = [
        Self::Valid,
        Self::MissingToken,
        Self::Expired,
        Self::BadSignature,
        Self::WrongIssuerOrAudience,
        Self::Malformed,
        Self::Inactive,
        Self::InsufficientScope,
        Self::ProviderUnavailable,
        Self::NotConfigured,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::MissingToken => "missing_token",
            Self::Expired => "expired",
            Self::BadSignature => "bad_signature",
            Self::WrongIssuerOrAudience => "wrong_issuer_or_audience",
            Self::Malformed => "malformed",
            Self::Inactive => "inactive",
            Self::InsufficientScope => "insufficient_scope",
            Self::ProviderUnavailable => "provider_unavailable",
            Self::NotConfigured => "not_configured",
        }
    }

    /// The outcome an authentication error stands for.
    pub fn of(error: &AuthError) -> Self {
        match error {
            AuthError::MissingToken => Self::MissingToken,
            AuthError::InvalidToken(rejection, _) => rejection.outcome(),
            AuthError::InsufficientScope(_) => Self::InsufficientScope,
            AuthError::NotConfigured => Self::NotConfigured,
            AuthError::ProviderUnavailable => Self::ProviderUnavailable,
        }
    }
}

/// The authentication metrics; the default records nothing (unit tests, `metrics_enabled: false`).
#[derive(Clone, Default)]
pub struct AuthMetrics(Option<Arc<AuthHandles>>);

struct AuthHandles {
    outcomes: [Counter; AuthOutcome::ALL.len()],
    jwks_fetches: Counter,
    cache_hits: Counter,
    cache_misses: Counter,
}

impl AuthMetrics {
    /// Counts one authentication decision.
    pub fn outcome(&self, outcome: AuthOutcome) {
        if let Some(handles) = &self.0
            && let Some(index) = AuthOutcome::ALL.iter().position(|known| *known == outcome)
        {
            handles.outcomes[index].increment(1);
        }
    }

    /// Counts one JWKS fetch.
    pub fn jwks_fetched(&self) {
        if let Some(handles) = &self.0 {
            handles.jwks_fetches.increment(1);
        }
    }

    /// Counts one verified-token cache lookup.
    pub fn token_cache(&self, hit: bool) {
        if let Some(handles) = &self.0 {
            if hit { &handles.cache_hits } else { &handles.cache_misses }.increment(1);
        }
    }
}

impl std::fmt::Debug for AuthMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthMetrics")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> Metrics {
        Metrics::new(RouteTemplates::new(&crate::apis::openapi(None)), 10)
    }

    #[test]
    fn requests_are_counted_under_their_route_template() {
        let metrics = metrics();
        let route = metrics.routes().lookup("/api/resource/v1/42");
        metrics.record(route, &Method::GET, StatusCode::OK, Duration::from_millis(3));
        metrics.record(route, &Method::GET, StatusCode::OK, Duration::from_millis(3));
        metrics.record(
            metrics.routes().lookup("/x/y"),
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
        let metrics = metrics();
        metrics.request_started();
        metrics.request_started();
        assert!(metrics.render().contains("http_server_requests_in_flight 2"));
        metrics.request_ended();
        metrics.request_ended();
        assert!(metrics.render().contains("http_server_requests_in_flight 0"));
    }

    #[test]
    fn build_and_auth_series_are_there_from_the_start() {
        let metrics = metrics();
        metrics.auth().outcome(AuthOutcome::Expired);
        metrics.auth().token_cache(true);
        let text = metrics.render();
        assert!(text.contains(&format!(r#"build_info{{service="rust-api-axum",version="{}"}} 1"#, crate::VERSION)));
        assert!(text.contains(r#"auth_requests_total{outcome="expired"} 1"#), "{text}");
        assert!(text.contains(r#"auth_requests_total{outcome="valid"} 0"#), "{text}");
        assert!(text.contains(r#"auth_token_cache_lookups_total{result="hit"} 1"#), "{text}");
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
