//! `/livez`, `/readyz` and `/metrics`: what Kubernetes probes and Prometheus ask. They are for operators, not API
//! clients, so they are not in the OpenAPI document and need no token.

use axum::{
    Json,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use serde::Serialize;

use crate::{layers::Routes, observability::metrics::Metrics, problem::ProblemDraft, readiness::Readiness};

/// Liveness: the process serves.
pub const LIVEZ: &str = "/livez";
/// Readiness: this replica should get traffic.
pub const READYZ: &str = "/readyz";
/// The Prometheus scrape.
pub const METRICS: &str = "/metrics";

/// The media type of Prometheus' text exposition format.
const PROMETHEUS_TEXT: HeaderValue = HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");

/// The probes' answer: `{"status":"OK"}`, the shape of the application's own health answer.
#[derive(Serialize)]
struct Status {
    status: &'static str,
}

/// The paths the rate limiter must never limit: orchestrator probes come from one address, often in bursts, and a
/// throttled probe restarts a healthy pod. `/metrics` is limited like the API (a scrape every few seconds is far
/// below any sane limit, and a flood of scrapes is work: each samples `/proc`).
pub const UNLIMITED: [&str; 2] = [LIVEZ, READYZ];

/// `/livez` and `/readyz`, asking `readiness`.
pub fn routes(readiness: Readiness) -> Routes {
    Routes::new().route(LIVEZ, get(live)).route(READYZ, get(ready).with_state(readiness))
}

/// `/metrics` of `metrics`, merged into the main routes or served on its own listener (`metrics_port`).
pub fn metrics_routes(metrics: Metrics) -> Routes {
    Routes::new().route(METRICS, get(scrape).with_state(metrics))
}

/// 200 while the process serves requests; it checks nothing else, so a database outage never restarts pods.
async fn live() -> Json<Status> {
    Json(Status { status: "OK" })
}

/// 200 when this replica should get traffic; else 503 naming what is not ready (also while shutting down).
async fn ready(State(readiness): State<Readiness>) -> Result<Json<Status>, ProblemDraft> {
    let missing = readiness.not_ready().await;
    if !missing.is_empty() {
        return Err(ProblemDraft::new(StatusCode::SERVICE_UNAVAILABLE, format!("Not ready: {}", missing.join(", "))));
    }
    Ok(Json(Status { status: "OK" }))
}

/// The exposition text.
async fn scrape(State(metrics): State<Metrics>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, PROMETHEUS_TEXT)], metrics.render())
}
