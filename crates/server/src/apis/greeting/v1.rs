//! Greeting v1: the anonymous `Hello World`.

use api_types::{Greeting, Problem};
use axum::Json;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{domain::greeting, state::AppState};

/// Routes under `/api/greeting/v1`, merged into the service by the registry.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_greeting))
}

/// Greets the world.
#[utoipa::path(
    get,
    path = "/api/greeting/v1",
    operation_id = "greeting_v1_get",
    tag = "greeting",
    responses(
        (status = 200, description = "The greeting", body = Greeting),
        (status = "default", description = "Any other failure", body = Problem, content_type = "application/problem+json")
    )
)]
async fn get_greeting() -> Json<Greeting> {
    Json(Greeting { message: greeting::greet_world() })
}
