//! The API's documentation: the OpenAPI document and the Swagger UI, ReDoc and RapiDoc pages that render it.
//! Swagger UI's assets are compiled into the binary so it works offline; ReDoc and RapiDoc load theirs from a CDN.

use axum::Router;
use utoipa::openapi::OpenApi;
use utoipa_rapidoc::RapiDoc;
use utoipa_redoc::{Redoc, Servable};
use utoipa_swagger_ui::SwaggerUi;

use crate::state::AppState;

/// Where the OpenAPI document is served.
pub const OPENAPI_JSON: &str = "/apidoc/openapi.json";
/// Swagger UI's root; it must keep its trailing slash for its relative asset links.
pub const SWAGGER_UI: &str = "/apidoc/swagger";

/// The documentation routes for `openapi`.
pub fn router(openapi: OpenApi) -> Router<AppState> {
    Router::new()
        .merge(SwaggerUi::new(SWAGGER_UI).url(OPENAPI_JSON, openapi.clone()))
        .merge(Redoc::with_url("/apidoc/redoc", openapi))
        .merge(RapiDoc::new(OPENAPI_JSON).path("/apidoc/rapidoc"))
}
