//! The API's documentation: the OpenAPI document and the Swagger UI, ReDoc and RapiDoc pages that render it.
//! Swagger UI's assets are compiled into the binary so it works offline; ReDoc and RapiDoc load theirs from a CDN.

use axum::Router;
use utoipa::openapi::OpenApi;
use utoipa_rapidoc::RapiDoc;
use utoipa_redoc::{Redoc, Servable};
use utoipa_swagger_ui::{SwaggerUi, oauth};

use crate::{auth::OidcSettings, state::AppState};

/// Where the OpenAPI document is served.
pub const OPENAPI_JSON: &str = "/apidoc/openapi.json";
/// Swagger UI's root; it must keep its trailing slash for its relative asset links.
pub const SWAGGER_UI: &str = "/apidoc/swagger";

/// The documentation routes for `openapi`; with OIDC settings, Swagger UI's Authorize button logs in with the
/// authorization code flow and PKCE as this server's client (the secret is never put in the page).
pub fn router(openapi: OpenApi, oidc: Option<&OidcSettings>) -> Router<AppState> {
    let mut swagger = SwaggerUi::new(SWAGGER_UI).url(OPENAPI_JSON, openapi.clone());
    if let Some(settings) = oidc {
        swagger = swagger.oauth(
            oauth::Config::new()
                .client_id(&settings.client_id)
                .scopes(vec!["openid".to_owned(), settings.read_scope.clone(), settings.write_scope.clone()])
                .use_pkce_with_authorization_code_grant(true),
        );
    }
    Router::new()
        .merge(swagger)
        .merge(Redoc::with_url("/apidoc/redoc", openapi))
        .merge(RapiDoc::new(OPENAPI_JSON).path("/apidoc/rapidoc"))
}
