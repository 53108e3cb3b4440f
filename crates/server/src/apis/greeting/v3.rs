//! Greeting v3: greets the caller named by a valid bearer token.

use api_types::{Greeting, Problem};
use axum::Json;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{auth::Authenticated, domain::greeting, state::AppState};

/// Routes under `/api/greeting/v3`, merged into the service by the registry.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_greeting))
}

/// Greets the caller by the username in their access token (no particular scope needed).
#[utoipa::path(
    get,
    path = "/api/greeting/v3",
    operation_id = "greeting_v3_get",
    tag = "greeting",
    security(("oidc" = [])),
    responses(
        (status = 200, description = "The greeting", body = Greeting, example = json!({"message": "Hello ada"})),
        (status = 401, description = "No, a malformed, an expired or a foreign bearer token; see `WWW-Authenticate`",
            body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The identity provider could not be asked", body = Problem,
            content_type = "application/problem+json"),
        (status = "default", description = "Any other failure", body = Problem, content_type = "application/problem+json")
    )
)]
async fn get_greeting(Authenticated(caller): Authenticated) -> Json<Greeting> {
    Json(Greeting { message: greeting::greet_caller(caller.username.as_str()) })
}
