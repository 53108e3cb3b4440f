//! Greeting v2: greets whoever the optional `name` query parameter names.

use api_types::{Greeting, Problem};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    domain::{greeting, name::Name},
    error::ApiError,
    extract::ApiQuery,
    state::AppState,
};

/// Routes under `/api/greeting/v2`, merged into the service by the registry.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_greeting))
}

/// Query parameters of greeting v2.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct GreetingQuery {
    /// Who to greet: at most 255 characters, not only white space, no control, format (bidi controls, zero-width
    /// characters) or line and paragraph separator characters (it is normalised to NFC and trimmed). Omit it to
    /// greet a stranger.
    #[param(
        min_length = 1,
        max_length = 255,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]*[^\s\u0000-\u001f\u007f-\u009f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb][^\u0000-\u001f\u007f-\u009f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]*$",
        example = "Ada"
    )]
    name: Option<String>,
}

/// Greets a person by name, or a stranger.
#[utoipa::path(
    get,
    path = "/api/greeting/v2",
    operation_id = "greeting_v2_get",
    tag = "greeting",
    params(GreetingQuery),
    responses(
        (status = 200, description = "The greeting", body = Greeting,
            example = json!({"message": "Hello Ada"})),
        (status = 400, description = "`name` is empty, too long or holds control, format or separator characters", body = Problem,
            content_type = "application/problem+json"),
        (status = "default", description = "Any other failure", body = Problem, content_type = "application/problem+json")
    )
)]
async fn get_greeting(ApiQuery(query): ApiQuery<GreetingQuery>) -> Result<Json<Greeting>, ApiError> {
    let name = query
        .name
        .as_deref()
        .map(Name::parse)
        .transpose()
        .map_err(|error| ApiError::invalid_field("name", error.to_string()))?;
    Ok(Json(Greeting { message: greeting::greet(name.as_ref()) }))
}
