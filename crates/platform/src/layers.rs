//! The layers every request passes, in the order ARCHITECTURE.md draws, and [`Routes`]: a router together with the
//! templates of its routes, so that metric labels and span names know every route the service mounts without a
//! list kept by hand.

use std::time::Duration;

use axum::{Router, extract::DefaultBodyLimit, routing::MethodRouter};
use tower::{ServiceBuilder, util::MapRequestLayer};
use tower_http::{catch_panic::CatchPanicLayer, limit::RequestBodyLimitLayer};

use crate::{
    HttpService,
    edge::{EdgeLayer, trim_trailing_slash},
    guards::{Guards, client_addr},
    observability::{logs::AccessLog, metrics::RequestMetrics, routes::RouteTemplates, traces::HttpTracing},
    problem,
};

/// A router and the templates of the routes it serves, in axum's syntax (`/api/resource/v1/{id}`).
#[derive(Debug, Default)]
#[must_use]
pub struct Routes {
    router: Router,
    templates: Vec<String>,
}

impl Routes {
    /// No routes yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// `router`, serving exactly `templates`: for routers built elsewhere (an OpenAPI router, whose document
    /// lists its paths; a documentation UI serving a page and its assets).
    pub fn of<T: Into<String>>(router: Router, templates: impl IntoIterator<Item = T>) -> Self {
        Self { router, templates: templates.into_iter().map(Into::into).collect() }
    }

    /// Adds the route `path`, recording its template.
    pub fn route(mut self, path: &str, method_router: MethodRouter) -> Self {
        self.router = self.router.route(path, method_router);
        self.templates.push(path.to_owned());
        self
    }

    /// Adds `other`'s routes and templates.
    pub fn merge(mut self, other: Routes) -> Self {
        self.router = self.router.merge(other.router);
        self.templates.extend(other.templates);
        self
    }

    /// The templates of every route, for metrics and traces.
    pub fn templates(&self) -> RouteTemplates {
        RouteTemplates::new(&self.templates)
    }

    /// The router, its requests no route matches answered with a 404 problem.
    pub fn into_router(self) -> Router {
        self.router.fallback(problem::no_route)
    }
}

/// What the layers are built from.
#[derive(Debug)]
pub struct Layers {
    /// Requests still running this long after they arrived are answered 503.
    pub request_timeout: Duration,
    /// Larger bodies are answered 413.
    pub max_body_bytes: usize,
    /// The access log, when it is on.
    pub access_log: Option<AccessLog>,
    /// The guards the settings ask for.
    pub guards: Guards,
    /// Counts every request, when set.
    pub metrics: Option<RequestMetrics>,
    /// Opens a span per request, when set.
    pub traces: Option<HttpTracing>,
    /// Path prefixes whose trailing slash is kept (a UI that resolves relative assets against it).
    pub keep_trailing_slash: &'static [&'static str],
}

/// Wraps `router` in the layers, outermost first. They sit outside the router, not in `Router::layer`, so they
/// are built once instead of once per route, and they see requests that match no route too.
///
/// The guards sit where they see what they need: security headers outermost, so even the edge's own answers
/// (a timeout) carry them; the forwarded client address is resolved before the edge logs it; CORS and the rate
/// limiter inside the edge, so preflights are logged and a 429 becomes a problem with CORS headers. Guards that
/// are not configured are not installed (`option_layer`) and cost nothing.
pub fn with_layers(router: Router, layers: Layers) -> impl HttpService + use<> {
    let Layers { request_timeout, max_body_bytes, access_log, guards, metrics, traces, keep_trailing_slash } = layers;
    let proxies = (!guards.trusted_proxies.is_empty()).then(|| guards.trusted_proxies.clone());
    ServiceBuilder::new()
        .layer(guards.headers)
        .option_layer(proxies.map(|proxies| MapRequestLayer::new(client_addr::resolve_layer(proxies))))
        .layer(EdgeLayer::new(access_log, request_timeout, metrics, traces, &guards.trusted_proxies))
        .option_layer(guards.cors)
        .option_layer(guards.rate_limit)
        .map_request(trim_trailing_slash(keep_trailing_slash))
        .layer(CatchPanicLayer::custom(problem::panic_response))
        .layer(RequestBodyLimitLayer::new(max_body_bytes))
        // The limit above is the one in force. axum's body extractors (`Bytes`, `Json`) also stop at their own
        // 2 MiB default; it is lifted only when the setting is larger, since lifting it inserts a request
        // extension (an allocation) into every request.
        .option_layer((max_body_bytes > AXUM_DEFAULT_BODY_LIMIT).then(DefaultBodyLimit::disable))
        .service(router)
}

/// The body limit axum's own extractors apply unless told otherwise.
const AXUM_DEFAULT_BODY_LIMIT: usize = 2 * 1024 * 1024;

#[cfg(test)]
mod tests {
    use axum::{
        body::Body,
        extract::Request,
        http::{Method, StatusCode},
        routing::get,
    };
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    fn layers(request_timeout: Duration) -> Layers {
        Layers {
            request_timeout,
            max_body_bytes: 1024,
            access_log: None,
            guards: Guards::headers_only(),
            metrics: None,
            traces: None,
            keep_trailing_slash: &[],
        }
    }

    async fn answer(router: Router, layers: Layers, uri: &str) -> (StatusCode, serde_json::Value) {
        let request = Request::builder().uri(uri).body(Body::empty()).expect("request");
        let response = with_layers(router, layers).oneshot(request).await.expect("infallible");
        assert_eq!(response.headers()["content-type"], "application/problem+json");
        let status = response.status();
        let body = response.into_body().collect().await.expect("body").to_bytes();
        (status, serde_json::from_slice(&body).expect("problem json"))
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_problem_without_the_panic_text() {
        async fn boom() -> &'static str {
            panic!("secret internals")
        }
        let router = Router::new().route("/boom", get(boom));
        let (status, problem) = answer(router, layers(Duration::from_secs(5)), "/boom").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!((problem["status"].as_u64(), problem["instance"].as_str()), (Some(500), Some("/boom")));
        assert!(!problem.to_string().contains("secret"));
    }

    #[tokio::test]
    async fn a_slow_handler_is_cut_off_with_a_503_problem() {
        let router = Router::new().route("/slow", get(|| async { tokio::time::sleep(Duration::from_secs(5)).await }));
        let (status, _) = answer(router, layers(Duration::ZERO), "/slow").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn routes_know_their_templates_and_unknown_paths_get_a_404_problem() {
        let routes = Routes::new()
            .route("/a/{id}", get(|| async { "a" }))
            .merge(Routes::of(Router::new().route("/b", get(|| async { "b" })), ["/b"]));
        let templates = routes.templates();
        assert_eq!(templates.template(templates.lookup("/a/7")), "/a/{id}");
        assert_eq!(templates.template(templates.lookup("/b")), "/b");
        let (status, problem) = answer(routes.into_router(), layers(Duration::from_secs(5)), "/c").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(problem["detail"], format!("No route matches {} /c", Method::GET));
    }
}
