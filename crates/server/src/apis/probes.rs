//! `/livez`, `/readyz` and `/metrics`: what Kubernetes probes and Prometheus ask. They are for operators, not API
//! clients, so they are not in the OpenAPI document and need no token.

use api_types::Health;
use axum::{
    Json, Router,
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
    routing::get,
};

use crate::{error::ApiError, ops::readiness, state::AppState};

/// The media type of Prometheus' text exposition format.
const PROMETHEUS_TEXT: HeaderValue = HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");

/// `/livez` and `/readyz`.
pub fn router() -> Router<AppState> {
    Router::new().route("/livez", get(live)).route("/readyz", get(ready))
}

/// `/metrics`, merged into the main router or served on its own listener (`metrics_port`).
pub fn metrics_router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

/// 200 while the process serves requests; it checks nothing else, so a database outage never restarts pods.
async fn live() -> Json<Health> {
    Json(Health { status: "OK".to_owned() })
}

/// 200 when this replica should get traffic; else 503 naming what is not ready (also while shutting down).
async fn ready(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    let missing = readiness::not_ready(&state.draining, &state.db_health, &state.auth).await;
    if !missing.is_empty() {
        return Err(ApiError::NotReady(missing));
    }
    Ok(Json(Health { status: "OK".to_owned() }))
}

/// The exposition text; 404 when metrics are off (the route is not mounted then, this is only a fallback).
async fn metrics(State(state): State<AppState>) -> Response {
    match &state.metrics {
        Some(metrics) => ([(header::CONTENT_TYPE, PROMETHEUS_TEXT)], metrics.render()).into_response(),
        None => ApiError::NoRoute { method: "GET".to_owned(), path: "/metrics".to_owned() }.into_response(),
    }
}
