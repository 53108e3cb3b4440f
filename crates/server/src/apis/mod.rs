//! The API registry: the one place that decides which API versions the service serves (the finished OpenAPI
//! document and its pages are `docs`'s). Adding a version is one
//! module under its API's folder (its operations declare their full paths, e.g. `/api/greeting/v4`) plus one
//! `.merge(...)` line here; its routes and OpenAPI paths come along together. Versions are merged, not nested:
//! `nest` rebuilds every request's URI to strip the prefix, which cost 7% of a greeting's instructions.

use api_types::{FieldError, Problem};
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

pub mod greeting;
pub mod healthz;
pub mod resource;

/// Top-level OpenAPI metadata; paths and their schemas come from the mounted routers.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "rust-api-axum",
        description = "Code-first REST API boilerplate on axum. Every error is an RFC 9457 problem \
                       (`application/problem+json`); every route answers with and without a trailing slash."
    ),
    components(schemas(Problem, FieldError)),
    tags(
        (name = "health", description = "Health of the service and its database"),
        (name = "greeting", description = "Greeting API, in several versions"),
        (name = "resource", description = "Owned resources: read scope to read, write scope to change")
    )
)]
struct ApiDoc;

/// Every mounted API version with its OpenAPI description.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(healthz::router())
        .merge(greeting::v1::router())
        .merge(greeting::v2::router())
        .merge(greeting::v3::router())
        .merge(resource::v1::router())
}
