//! Assembles the HTTP service: the API registry, the documentation pages, the 404 fallback and the layers every
//! request passes through, in the order described in ARCHITECTURE.md.

use std::{convert::Infallible, time::Duration};

use axum::{
    Router,
    extract::{DefaultBodyLimit, Request},
    http::{Method, Uri},
    response::Response,
};
use tower::{Service, ServiceBuilder, util::MapRequestLayer};
use tower_http::{catch_panic::CatchPanicLayer, limit::RequestBodyLimitLayer};

use crate::{
    apis::{self, apidoc, probes},
    config::Config,
    edge::{self, EdgeLayer},
    error::{self, ApiError},
    guards::{Guards, client_addr},
    ops::{metrics::Metrics, routes::RouteTemplates, traces::HttpTracing},
    state::AppState,
    telemetry::AccessLog,
};

/// The service the connection loop (`serve.rs`) runs: the routes wrapped in the layers.
pub trait HttpService:
    Service<Request, Response = Response, Error = Infallible, Future: Send> + Clone + Send + Sync + 'static
{
}

impl<S> HttpService for S where
    S: Service<Request, Response = Response, Error = Infallible, Future: Send> + Clone + Send + Sync + 'static
{
}

/// The whole application for `state`, guarded by `guards` (built from the same configuration at start).
pub fn build_app(state: AppState, guards: Guards) -> impl HttpService {
    let (api, openapi) = apis::router().split_for_parts();
    let oidc = state.auth.settings();
    let openapi = apis::finish(openapi, oidc);
    // Spans are named after the templates metrics already built, or, without metrics, templates of their own.
    let traces = HttpTracing::if_enabled(|| match &state.metrics {
        Some(metrics) => metrics.routes().clone(),
        None => RouteTemplates::new(&openapi),
    });
    let mut router = api.merge(apidoc::router(openapi, oidc)).merge(probes::router());
    if state.metrics.is_some() && state.config.metrics_port.is_none() {
        router = router.merge(probes::metrics_router());
    }
    let router = router.fallback(no_route).with_state(state.clone());
    with_layers(router, &state.config, guards, state.metrics.clone(), traces)
}

/// The service of the metrics listener (`metrics_port`): `/metrics` alone, with the same problem answers.
pub fn build_metrics_app(state: AppState) -> impl HttpService {
    let router = probes::metrics_router().fallback(no_route).with_state(state.clone());
    // Scrapes are neither counted nor traced: they would dominate the signals of a quiet service.
    with_layers(router, &state.config, Guards::headers_only(), None, None)
}

/// Wraps `router` in the layers, outermost first. They sit outside the router, not in `Router::layer`, so they
/// are built once instead of once per route, and they see requests that match no route too.
///
/// The guards sit where they see what they need: security headers outermost, so even the edge's own answers
/// (a timeout) carry them; the forwarded client address is resolved before the edge logs it; CORS and the rate
/// limiter inside the edge, so preflights are logged and a 429 becomes a problem with CORS headers. Guards that
/// are not configured are not installed (`option_layer`) and cost nothing. `metrics` counts every request and
/// `traces` opens a span per request, each when set.
pub fn with_layers(
    router: Router,
    config: &Config,
    guards: Guards,
    metrics: Option<Metrics>,
    traces: Option<HttpTracing>,
) -> impl HttpService + use<> {
    let proxies = (!guards.trusted_proxies.is_empty()).then(|| guards.trusted_proxies.clone());
    let timeout = Duration::from_secs(config.request_timeout_secs);
    ServiceBuilder::new()
        .layer(guards.headers)
        .option_layer(proxies.map(|proxies| MapRequestLayer::new(client_addr::resolve_layer(proxies))))
        .layer(EdgeLayer::new(AccessLog::for_config(config), timeout, metrics, traces))
        .option_layer(guards.cors)
        .option_layer(guards.rate_limit)
        .map_request(edge::trim_trailing_slash(&[apidoc::SWAGGER_UI]))
        .layer(CatchPanicLayer::custom(error::panic_response))
        .layer(RequestBodyLimitLayer::new(config.max_body_bytes))
        // The limit above is the one in force. axum's body extractors (`ApiJson` reads through `Bytes`) also stop at
        // their own 2 MiB default; it is lifted only when the setting is larger, since lifting it inserts a request
        // extension (an allocation) into every request.
        .option_layer((config.max_body_bytes > AXUM_DEFAULT_BODY_LIMIT).then(DefaultBodyLimit::disable))
        .service(router)
}

/// The body limit axum's own extractors apply unless told otherwise.
const AXUM_DEFAULT_BODY_LIMIT: usize = 2 * 1024 * 1024;

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::NoRoute { method: method.to_string(), path: uri.path().to_owned() }
}

#[cfg(test)]
mod tests {
    use api_types::Problem;
    use axum::{body::Body, http::StatusCode, routing::get};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_answers_500_problem_without_the_panic_text() {
        async fn boom() -> &'static str {
            panic!("secret internals")
        }
        let router = Router::new().route("/boom", get(boom));
        let app = with_layers(router, &Config::default(), Guards::headers_only(), None, None);
        let request = Request::builder().uri("/boom").body(Body::empty()).expect("request");
        let response = app.oneshot(request).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = response.into_body().collect().await.expect("body").to_bytes();
        let problem: Problem = serde_json::from_slice(&body).expect("problem json");
        assert_eq!(problem.status, 500);
        assert_eq!(problem.instance, "/boom");
        assert!(!String::from_utf8_lossy(&body).contains("secret"));
    }

    #[tokio::test]
    async fn a_slow_handler_is_cut_off_with_a_503_problem() {
        let router = Router::new().route("/slow", get(|| async { tokio::time::sleep(Duration::from_secs(5)).await }));
        let config = Config { request_timeout_secs: 0, ..Config::default() };
        let request = Request::builder().uri("/slow").body(Body::empty()).expect("request");
        let response = with_layers(router, &config, Guards::headers_only(), None, None)
            .oneshot(request)
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()["content-type"], "application/problem+json");
    }
}
