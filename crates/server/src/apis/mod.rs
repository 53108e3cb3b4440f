//! The API registry: the one place that decides which API versions are mounted where. Adding a version is one
//! module under its API's folder plus one `.nest(...)` line here; its routes and OpenAPI paths come along together.

use api_types::{FieldError, Problem};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

pub mod apidoc;
pub mod greeting;
pub mod healthz;

/// Top-level OpenAPI metadata; paths and their schemas come from the mounted routers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "rust-api-axum",
        description = "Code-first REST API boilerplate on axum. Every error is an RFC 9457 problem \
                       (`application/problem+json`); every route answers with and without a trailing slash."
    ),
    components(schemas(Problem, FieldError)),
    tags(
        (name = "health", description = "Liveness of the service"),
        (name = "greeting", description = "Greeting API, in several versions")
    )
)]
struct ApiDoc;

/// Every mounted API version with its OpenAPI description.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/healthz", healthz::router())
        .nest("/api/greeting/v1", greeting::v1::router())
        .nest("/api/greeting/v2", greeting::v2::router())
    // Slots that later work fills: `/api/greeting/v3` (OIDC-protected) and `/api/resource/v1` (database).
}

/// The OpenAPI document of everything [`router`] mounts, stamped with this build's version.
pub fn openapi() -> utoipa::openapi::OpenApi {
    with_version(router().into_openapi())
}

/// Sets `info.version`, which the derive would otherwise take from Cargo's package version.
pub(crate) fn with_version(mut api: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    api.info.version = crate::VERSION.to_owned();
    api
}
