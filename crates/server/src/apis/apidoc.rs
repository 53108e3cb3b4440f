//! The API's documentation: the OpenAPI document and the Swagger UI, ReDoc and RapiDoc pages that render it.
//! Every page works offline: Swagger UI's assets come with `utoipa-swagger-ui` (vendored), ReDoc's and RapiDoc's
//! bundles are vendored in `crates/server/assets/` (see its README) and compiled into the binary, so nothing is
//! loaded from a CDN, behind a corporate proxy or on an air-gapped network alike.

use axum::{
    Router,
    http::{HeaderValue, header},
    response::IntoResponse,
    routing::get,
};
use utoipa::openapi::OpenApi;
use utoipa_swagger_ui::{SwaggerUi, oauth};

use crate::{auth::OidcSettings, state::AppState};

/// Where the OpenAPI document is served.
pub const OPENAPI_JSON: &str = "/apidoc/openapi.json";
/// Swagger UI's root; it must keep its trailing slash for its relative asset links.
pub const SWAGGER_UI: &str = "/apidoc/swagger";
/// ReDoc's page; its bundle is served below it, so the page's policy covers both.
pub const REDOC: &str = "/apidoc/redoc";
/// RapiDoc's page; its bundle is served below it.
pub const RAPIDOC: &str = "/apidoc/rapidoc";

/// ReDoc's standalone bundle (npm `redoc`, `bundles/redoc.standalone.js`).
const REDOC_JS: &[u8] = include_bytes!("../../assets/redoc/redoc.standalone.js");
/// RapiDoc's bundle (npm `rapidoc`, `dist/rapidoc-min.js`).
const RAPIDOC_JS: &[u8] = include_bytes!("../../assets/rapidoc/rapidoc-min.js");

/// ReDoc starts itself on a `<redoc spec-url>` element, so the page needs no inline script and its policy can
/// forbid them; it fetches the document like Swagger UI does instead of carrying a copy.
const REDOC_PAGE: &str = r#"<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>rust-api-axum - ReDoc</title>
    <style>body { margin: 0; padding: 0; }</style>
  </head>
  <body>
    <redoc spec-url="/apidoc/openapi.json"></redoc>
    <script src="/apidoc/redoc/redoc.standalone.js"></script>
  </body>
</html>
"#;

/// RapiDoc is a custom element; it fetches the document itself. `load-fonts="false"`: it would load Open Sans
/// from Google's font host, which offline fails with a page error; system fonts do.
const RAPIDOC_PAGE: &str = r#"<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>rust-api-axum - RapiDoc</title>
    <script type="module" src="/apidoc/rapidoc/rapidoc-min.js"></script>
  </head>
  <body>
    <rapi-doc spec-url="/apidoc/openapi.json" load-fonts="false"></rapi-doc>
  </body>
</html>
"#;

static HTML: HeaderValue = HeaderValue::from_static("text/html; charset=utf-8");
static JAVASCRIPT: HeaderValue = HeaderValue::from_static("text/javascript; charset=utf-8");
/// The bundles change only with the binary; a day of caching spares reloading a megabyte per page view.
static CACHE_A_DAY: HeaderValue = HeaderValue::from_static("public, max-age=86400");

/// The documentation routes for `openapi`; with OIDC settings, Swagger UI's Authorize button logs in with the
/// authorization code flow and PKCE as the provider's public documentation client (`docs_client_id`, by default
/// this server's client id); no secret is ever put in the page.
pub fn router(openapi: OpenApi, oidc: Option<&OidcSettings>) -> Router<AppState> {
    let mut swagger = SwaggerUi::new(SWAGGER_UI).url(OPENAPI_JSON, openapi);
    if let Some(settings) = oidc {
        swagger = swagger.oauth(
            oauth::Config::new()
                .client_id(&settings.docs_client_id)
                .scopes(vec!["openid".to_owned(), settings.read_scope.clone(), settings.write_scope.clone()])
                .use_pkce_with_authorization_code_grant(true),
        );
    }
    let page = |html: &'static str| move || async move { ([(header::CONTENT_TYPE, HTML.clone())], html) };
    let script = |js: &'static [u8]| {
        move || async move {
            ([(header::CONTENT_TYPE, JAVASCRIPT.clone()), (header::CACHE_CONTROL, CACHE_A_DAY.clone())], js)
                .into_response()
        }
    };
    Router::new()
        .merge(swagger)
        .route(REDOC, get(page(REDOC_PAGE)))
        .route("/apidoc/redoc/redoc.standalone.js", get(script(REDOC_JS)))
        .route(RAPIDOC, get(page(RAPIDOC_PAGE)))
        .route("/apidoc/rapidoc/rapidoc-min.js", get(script(RAPIDOC_JS)))
}
