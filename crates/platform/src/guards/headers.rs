//! Security headers on every response: `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer`
//! everywhere, `Cache-Control: no-store` on API answers (problems included: they can carry caller data), and on
//! the application's pages (its documentation) a `Content-Security-Policy` that fits what each page loads, handed
//! in by the application as [`PagePolicies`]. One hand-written layer instead of three `SetResponseHeaderLayer`s:
//! one future, shared values, no allocation.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use axum::http::{HeaderValue, Request, Response, header};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

static NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");
static NO_REFERRER: HeaderValue = HeaderValue::from_static("no-referrer");
static NO_STORE: HeaderValue = HeaderValue::from_static("no-store");

/// The policies of the application's pages: every path below `prefix` is a page (it may be cached and gets a
/// policy instead of `no-store`); the first of `pages` whose name the rest of the path starts with gives the
/// policy, else `default`.
#[derive(Debug, Clone)]
pub struct PagePolicies {
    /// The pages' common prefix, with its trailing slash (`/apidoc/`).
    pub prefix: &'static str,
    /// `(name, policy)`: a path `{prefix}{name}...` gets `policy`.
    pub pages: Vec<(&'static str, HeaderValue)>,
    /// The policy of the other paths under `prefix`.
    pub default: HeaderValue,
}

/// Installs [`SecurityHeaders`].
#[derive(Debug, Clone)]
pub struct SecurityHeadersLayer(Option<Arc<PagePolicies>>);

impl SecurityHeadersLayer {
    /// The headers, with `pages` when the application serves pages.
    pub fn new(pages: Option<PagePolicies>) -> Self {
        Self(pages.map(Arc::new))
    }
}

impl<S> Layer<S> for SecurityHeadersLayer {
    type Service = SecurityHeaders<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SecurityHeaders { inner, pages: self.0.clone() }
    }
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct SecurityHeaders<S> {
    inner: S,
    pages: Option<Arc<PagePolicies>>,
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
        // Only page responses carry a (shared, reference-counted) policy; API answers carry nothing.
        let policy = self.pages.as_ref().and_then(|pages| {
            let page = request.uri().path().strip_prefix(pages.prefix)?;
            let found = pages.pages.iter().find(|(name, _)| page.starts_with(name));
            Some(found.map_or(&pages.default, |(_, policy)| policy).clone())
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

    fn pages() -> PagePolicies {
        PagePolicies {
            prefix: "/apidoc/",
            pages: vec![("redoc", HeaderValue::from_static("redoc-policy"))],
            default: HeaderValue::from_static("default-policy"),
        }
    }

    async fn headers_for(path: &str, pages: Option<PagePolicies>) -> axum::http::HeaderMap {
        let service = SecurityHeadersLayer::new(pages)
            .layer(tower::service_fn(|_: Request<Body>| async { Ok::<_, Infallible>(Response::new(Body::empty())) }));
        let request = Request::builder().uri(path).body(Body::empty()).expect("request");
        service.oneshot(request).await.expect("infallible").into_parts().0.headers
    }

    #[tokio::test]
    async fn api_answers_are_not_stored_and_carry_no_policy() {
        let headers = headers_for("/api/greeting/v1", Some(pages())).await;
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        assert!(!headers.contains_key(header::CONTENT_SECURITY_POLICY));
        assert_eq!(headers_for("/apidoc/redoc", None).await[header::CACHE_CONTROL], "no-store", "no pages");
    }

    #[tokio::test]
    async fn each_page_gets_its_policy() {
        let redoc = headers_for("/apidoc/redoc/bundle.js", Some(pages())).await;
        assert_eq!(redoc[header::CONTENT_SECURITY_POLICY], "redoc-policy");
        assert_eq!(redoc[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert!(!redoc.contains_key(header::CACHE_CONTROL));
        let other = headers_for("/apidoc/swagger/index.html", Some(pages())).await;
        assert_eq!(other[header::CONTENT_SECURITY_POLICY], "default-policy");
        assert_eq!(headers_for("/apidoc", Some(pages())).await[header::CACHE_CONTROL], "no-store", "not a page");
    }
}
