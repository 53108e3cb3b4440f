//! `GET /healthz/`: health for load balancers and Kubernetes probes, including the database.

use api_types::{Health, Problem};
use axum::{Json, extract::State};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{error::ApiError, state::AppState};

/// The health route; also never rate-limited (probes come from one address, in bursts).
pub const PATH: &str = "/healthz";

/// Routes under `/healthz`, merged into the service by the registry.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_health))
}

/// Tells whether the service can answer requests: it is up and its database answered a trivial query within 2 s
/// (asked at most once a second, however often this is polled).
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz_get",
    tag = "health",
    responses(
        (status = 200, description = "The service and its database are up", body = Health),
        (status = 503, description = "The database does not answer", body = Problem,
            content_type = "application/problem+json"),
        (status = "default", description = "Any other failure", body = Problem, content_type = "application/problem+json")
    )
)]
async fn get_health(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    if !state.db_health.is_healthy().await {
        return Err(ApiError::DatabaseUnavailable);
    }
    Ok(Json(Health { status: "OK".to_owned() }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_documented_path_is_the_one_the_rate_limiter_exempts() {
        let openapi = router().into_openapi();
        assert!(openapi.paths.paths.contains_key(super::PATH), "{:?}", openapi.paths.paths.keys());
    }

    use super::router;
}
