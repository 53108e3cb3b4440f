//! The documentation pages: the Swagger UI, ReDoc and RapiDoc pages that render the OpenAPI document, and the
//! security policy each page needs.
//! Every page works offline: Swagger UI's assets come with `utoipa-swagger-ui` (vendored), ReDoc's and RapiDoc's
//! bundles are vendored in `crates/server/assets/` (see its README) and compiled into the binary, so nothing is
//! loaded from a CDN, behind a corporate proxy or on an air-gapped network alike.

use axum::{
    Router,
    http::{HeaderValue, header},
    response::IntoResponse,
    routing::get,
};
use platform::{guards::headers::PagePolicies, layers::Routes};
use utoipa::openapi::OpenApi;
use utoipa_swagger_ui::{SwaggerUi, oauth};

use crate::auth::OidcSettings;

/// Where the OpenAPI document is served.
pub const OPENAPI_JSON: &str = "/apidoc/openapi.json";
/// Swagger UI's root; it must keep its trailing slash for its relative asset links.
pub const SWAGGER_UI: &str = "/apidoc/swagger";
/// ReDoc's page; its bundle is served below it, so the page's policy covers both.
pub const REDOC: &str = "/apidoc/redoc";
/// RapiDoc's page; its bundle is served below it.
pub const RAPIDOC: &str = "/apidoc/rapidoc";
/// Where every page lives: its answers get a page's policy instead of `no-store`.
const PAGES: &str = "/apidoc/";

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
pub fn routes(openapi: OpenApi, oidc: Option<&OidcSettings>) -> Routes {
    let mut swagger = SwaggerUi::new(SWAGGER_UI).url(OPENAPI_JSON, openapi);
    if let Some(settings) = oidc {
        swagger = swagger.oauth(
            oauth::Config::new()
                .client_id(&settings.docs_client_id)
                .scopes(vec!["openid".to_owned(), settings.read_scope.clone(), settings.write_scope.clone()])
                .use_pkce_with_authorization_code_grant(true),
        );
    }
    let page = |html: &'static str| get(move || async move { ([(header::CONTENT_TYPE, HTML.clone())], html) });
    let script = |js: &'static [u8]| {
        get(move || async move {
            ([(header::CONTENT_TYPE, JAVASCRIPT.clone()), (header::CACHE_CONTROL, CACHE_A_DAY.clone())], js)
                .into_response()
        })
    };
    // Swagger UI serves the document, its page and its assets below its root.
    let swagger_ui = Routes::of(Router::new().merge(swagger), [OPENAPI_JSON, SWAGGER_UI, SWAGGER_UI_ASSETS]);
    swagger_ui
        .route(REDOC, page(REDOC_PAGE))
        .route("/apidoc/redoc/redoc.standalone.js", script(REDOC_JS))
        .route(RAPIDOC, page(RAPIDOC_PAGE))
        .route("/apidoc/rapidoc/rapidoc-min.js", script(RAPIDOC_JS))
}

/// The template of Swagger UI's assets.
const SWAGGER_UI_ASSETS: &str = "/apidoc/swagger/{*asset}";

/// Path prefixes whose trailing slash the edge keeps: Swagger UI resolves its relative asset links against it.
pub const KEEP_TRAILING_SLASH: &[&str] = &[SWAGGER_UI];

/// Swagger UI: every script, style sheet and image comes from the binary itself (no inline scripts); React sets
/// inline styles, the CSS holds `data:` images; `connect-src` lets it fetch the document, try operations and
/// exchange an authorization code at the provider's token endpoint (appended at start).
const SWAGGER_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; font-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; \
    connect-src 'self'";

/// ReDoc: its bundle from the binary (no inline script: it starts itself on the page's `<redoc>` element),
/// styled-components' inline styles, a `blob:` worker for search. No font host: the pages work offline and use
/// the system's fonts.
const REDOC_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; font-src data:; \
    img-src 'self' data:; worker-src blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; \
    connect-src 'self'";

/// RapiDoc: its module from the binary, styles in its shadow DOM, the document and "try" calls and the token
/// endpoint via `connect-src`. Its bundle names Google's font host; not allowed, so it falls back to system fonts.
const RAPIDOC_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    font-src data:; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; \
    connect-src 'self'";

/// The pages' security policies for this deployment: with OIDC, Swagger UI and RapiDoc may also call the
/// provider's token endpoint (their Authorize exchanges the code there from the browser).
pub fn policies(oidc: Option<&OidcSettings>) -> PagePolicies {
    let provider = oidc.and_then(token_origin);
    let policy = |base: &'static str| match &provider {
        Some(origin) => {
            HeaderValue::try_from(format!("{base} {origin}")).unwrap_or_else(|_| HeaderValue::from_static(base))
        }
        None => HeaderValue::from_static(base),
    };
    PagePolicies {
        prefix: PAGES,
        pages: vec![("redoc", HeaderValue::from_static(REDOC_CSP)), ("rapidoc", policy(RAPIDOC_CSP))],
        default: policy(SWAGGER_CSP),
    }
}

/// The origin (`https://idp.example.com`) of the token endpoint the OpenAPI document names, if it has one.
fn token_origin(settings: &OidcSettings) -> Option<String> {
    let token =
        settings.token_uri.clone().unwrap_or_else(|| format!("{}/token", settings.issuer.trim_end_matches('/')));
    let origin = url::Url::parse(&token).ok()?.origin();
    // Only plain origins: anything else could smuggle a `;` into the policy.
    origin.is_tuple().then(|| origin.ascii_serialization()).filter(|text| !text.contains([';', ',', ' ']))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(issuer: &str, token_uri: Option<&str>) -> OidcSettings {
        OidcSettings {
            issuer: issuer.to_owned(),
            token_uri: token_uri.map(str::to_owned),
            client_id: "api".to_owned(),
            docs_client_id: "api-docs".to_owned(),
            client_secret: None,
            auth_uri: None,
            introspection_uri: None,
            jwks_uri: None,
            audiences: Vec::new(),
            read_scope: "read".to_owned(),
            write_scope: "write".to_owned(),
            username_claim: "username".to_owned(),
            ca_cert: None,
            introspection_cache: std::time::Duration::ZERO,
            jwks_refresh: std::time::Duration::ZERO,
            max_token_lifetime: std::time::Duration::ZERO,
            introspection_requires_audience: true,
            jwt_types: Vec::new(),
            allow_insecure_http: false,
            provider_timeout: std::time::Duration::ZERO,
            provider_max_in_flight: 1,
            ecdsa_low_s_only: false,
        }
    }

    #[test]
    fn each_page_has_its_policy_under_the_pages_prefix() {
        let policies = policies(None);
        assert_eq!(policies.prefix, "/apidoc/");
        assert_eq!(policies.default, SWAGGER_CSP);
        assert_eq!(
            policies.pages,
            [("redoc", HeaderValue::from_static(REDOC_CSP)), ("rapidoc", HeaderValue::from_static(RAPIDOC_CSP))]
        );
    }

    #[test]
    fn the_token_endpoint_origin_is_allowed_to_be_called() {
        assert_eq!(
            token_origin(&settings("https://idp.example.com/realms/x/", None)).as_deref(),
            Some("https://idp.example.com")
        );
        assert_eq!(
            token_origin(&settings("https://idp.example.com", Some("http://tokens.example.com:8443/t"))).as_deref(),
            Some("http://tokens.example.com:8443")
        );
        assert_eq!(token_origin(&settings("not a url", None)), None);
        let policies = policies(Some(&settings("https://idp.example.com", None)));
        assert_eq!(policies.default, format!("{SWAGGER_CSP} https://idp.example.com").as_str());
        assert_eq!(policies.pages[0].1, REDOC_CSP);
        assert_eq!(policies.pages[1].1, format!("{RAPIDOC_CSP} https://idp.example.com").as_str());
    }
}
