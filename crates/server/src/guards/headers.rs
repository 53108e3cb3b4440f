//! Security headers on every response: `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer`
//! everywhere, `Cache-Control: no-store` on API answers (problems included: they can carry caller data), and a
//! `Content-Security-Policy` on the documentation pages under `/apidoc/` that fits what each page loads. One
//! hand-written layer instead of three `SetResponseHeaderLayer`s: one future, static values, no allocation.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use axum::http::{HeaderValue, Request, Response, header};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::auth::OidcSettings;

/// The documentation's prefix: its pages get a CSP and may be cached; everything else is API.
const DOCS: &str = "/apidoc/";

static NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");
static NO_REFERRER: HeaderValue = HeaderValue::from_static("no-referrer");
static NO_STORE: HeaderValue = HeaderValue::from_static("no-store");

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

/// The three pages' policies, built once at start (the token endpoint's origin is only known then).
#[derive(Debug)]
struct Policies {
    swagger: HeaderValue,
    redoc: HeaderValue,
    rapidoc: HeaderValue,
}

/// Installs [`SecurityHeaders`].
#[derive(Debug, Clone)]
pub struct SecurityHeadersLayer(Arc<Policies>);

impl SecurityHeadersLayer {
    /// Policies for this deployment: with OIDC, the pages may also call the provider's token endpoint (Swagger
    /// UI's and RapiDoc's Authorize exchange the code there from the browser).
    pub fn new(oidc: Option<&OidcSettings>) -> Self {
        let provider = oidc.and_then(token_origin);
        let policy = |base: &'static str| match &provider {
            Some(origin) => {
                HeaderValue::try_from(format!("{base} {origin}")).unwrap_or_else(|_| HeaderValue::from_static(base))
            }
            None => HeaderValue::from_static(base),
        };
        Self(Arc::new(Policies {
            swagger: policy(SWAGGER_CSP),
            redoc: HeaderValue::from_static(REDOC_CSP),
            rapidoc: policy(RAPIDOC_CSP),
        }))
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

impl<S> Layer<S> for SecurityHeadersLayer {
    type Service = SecurityHeaders<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SecurityHeaders { inner, policies: self.0.clone() }
    }
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct SecurityHeaders<S> {
    inner: S,
    policies: Arc<Policies>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SecurityHeaders<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = SecurityHeadersFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // Only documentation responses carry a (shared, reference-counted) policy; API answers carry nothing.
        let policy = request.uri().path().strip_prefix(DOCS).map(|page| {
            if page.starts_with("redoc") {
                self.policies.redoc.clone()
            } else if page.starts_with("rapidoc") {
                self.policies.rapidoc.clone()
            } else {
                self.policies.swagger.clone()
            }
        });
        SecurityHeadersFuture { inner: self.inner.call(request), policy }
    }
}

pin_project! {
    /// Response future of [`SecurityHeaders`].
    pub struct SecurityHeadersFuture<F> {
        #[pin]
        inner: F,
        policy: Option<HeaderValue>,
    }
}

impl<F, ResBody, E> Future for SecurityHeadersFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = std::task::ready!(this.inner.poll(cx))?;
        let headers = response.headers_mut();
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, NOSNIFF.clone());
        headers.insert(header::REFERRER_POLICY, NO_REFERRER.clone());
        match this.policy.take() {
            Some(policy) => headers.insert(header::CONTENT_SECURITY_POLICY, policy),
            None => headers.insert(header::CACHE_CONTROL, NO_STORE.clone()),
        };
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use axum::body::Body;
    use tower::ServiceExt;

    use super::*;

    async fn headers_for(path: &str, oidc: Option<&OidcSettings>) -> axum::http::HeaderMap {
        let service = SecurityHeadersLayer::new(oidc)
            .layer(tower::service_fn(|_: Request<Body>| async { Ok::<_, Infallible>(Response::new(Body::empty())) }));
        let request = Request::builder().uri(path).body(Body::empty()).expect("request");
        service.oneshot(request).await.expect("infallible").into_parts().0.headers
    }

    #[tokio::test]
    async fn api_answers_are_not_stored_and_carry_no_policy() {
        let headers = headers_for("/api/greeting/v1", None).await;
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        assert!(!headers.contains_key(header::CONTENT_SECURITY_POLICY));
    }

    #[tokio::test]
    async fn each_documentation_page_gets_its_policy() {
        let swagger = headers_for("/apidoc/swagger/index.html", None).await;
        assert_eq!(swagger[header::CONTENT_SECURITY_POLICY], SWAGGER_CSP);
        assert_eq!(swagger[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert!(!swagger.contains_key(header::CACHE_CONTROL));
        assert_eq!(headers_for("/apidoc/redoc", None).await[header::CONTENT_SECURITY_POLICY], REDOC_CSP);
        assert_eq!(headers_for("/apidoc/rapidoc/", None).await[header::CONTENT_SECURITY_POLICY], RAPIDOC_CSP);
        assert_eq!(headers_for("/apidoc", None).await[header::CACHE_CONTROL], "no-store", "not a page: a 404");
    }

    #[test]
    fn the_token_endpoint_origin_is_allowed_to_be_called() {
        let settings = |issuer: &str, token_uri: Option<&str>| OidcSettings {
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
        };
        assert_eq!(
            token_origin(&settings("https://idp.example.com/realms/x/", None)).as_deref(),
            Some("https://idp.example.com")
        );
        assert_eq!(
            token_origin(&settings("https://idp.example.com", Some("http://tokens.example.com:8443/t"))).as_deref(),
            Some("http://tokens.example.com:8443")
        );
        assert_eq!(token_origin(&settings("not a url", None)), None);
        let layer = SecurityHeadersLayer::new(Some(&settings("https://idp.example.com", None)));
        assert_eq!(layer.0.swagger, format!("{SWAGGER_CSP} https://idp.example.com").as_str());
        assert_eq!(layer.0.redoc, REDOC_CSP);
    }
}
