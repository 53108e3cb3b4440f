//! `GET /healthz/`: liveness for load balancers and Kubernetes probes.

use api_types::{Health, Problem};
use axum::Json;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::state::AppState;

/// Mounted at `/healthz` by the registry.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_health))
}

/// Tells whether the service can answer requests.
#[utoipa::path(
    get,
    path = "/",
    operation_id = "healthz_get",
    tag = "health",
    responses(
        (status = 200, description = "The service is up", body = Health),
        (status = "default", description = "Any other failure", body = Problem, content_type = "application/problem+json")
    )
)]
async fn get_health() -> Json<Health> {
    Json(Health { status: "OK".to_owned() })
}
