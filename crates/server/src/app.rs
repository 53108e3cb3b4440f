//! Wiring: the application handed to the platform. Its routes (the API registry, the documentation pages, the
//! probes and, on the main listener, the scrape), its answers to the platform's questions (who is asking, what
//! must be ready, which pages need which policy) and the platform's layers around them, in the order
//! ARCHITECTURE.md draws.

use std::time::Duration;

use platform::{
    HttpService,
    guards::Guards,
    layers::{Layers, Routes, with_layers},
    observability::{logs::AccessLog, metrics::RequestMetrics, traces::HttpTracing},
    probes,
};
use utoipa::openapi::OpenApi;

use crate::{
    apis,
    auth::OidcSettings,
    config::{LimitSettings, ObservabilitySettings},
    docs::{self, pages},
    state::AppState,
};

/// The routes of the API listener: every API version of the registry with `state`, the documentation of
/// `openapi`, and `platform` (the probes, and the scrape unless it has its own port).
pub fn routes(state: AppState, openapi: OpenApi, oidc: Option<&OidcSettings>, platform: Routes) -> Routes {
    let (api, _) = apis::router().split_for_parts();
    let templates: Vec<String> = openapi.paths.paths.keys().cloned().collect();
    Routes::of(api.with_state(state), templates).merge(pages::routes(openapi, oidc)).merge(platform)
}

/// The OpenAPI document as this deployment serves it.
pub fn openapi(oidc: Option<&OidcSettings>) -> OpenApi {
    docs::openapi::openapi(oidc)
}

/// `routes` wrapped in the layers, within `limits`, logged as `observability` asks, guarded by `guards`, counted by
/// `metrics` and traced when traces are exported.
pub fn build_app(
    routes: Routes,
    limits: &LimitSettings,
    observability: &ObservabilitySettings,
    guards: Guards,
    metrics: Option<RequestMetrics>,
) -> impl HttpService {
    // Spans are named after the templates metrics already use, or, without metrics, templates of their own.
    let traces = HttpTracing::if_enabled(|| match &metrics {
        Some(metrics) => metrics.routes().clone(),
        None => routes.templates(),
    });
    let layers = Layers {
        request_timeout: Duration::from_secs(limits.request_timeout_secs),
        max_body_bytes: limits.max_body_bytes,
        access_log: AccessLog::for_settings(observability),
        guards,
        metrics,
        traces,
        keep_trailing_slash: pages::KEEP_TRAILING_SLASH,
    };
    with_layers(routes.into_router(), layers)
}

/// The service of the metrics listener (`metrics_port`): `/metrics` alone, with the same problem answers.
pub fn build_metrics_app(
    scrape: Routes,
    limits: &LimitSettings,
    observability: &ObservabilitySettings,
) -> impl HttpService {
    // Scrapes are neither counted nor traced: they would dominate the signals of a quiet service.
    let layers = Layers {
        request_timeout: Duration::from_secs(limits.request_timeout_secs),
        max_body_bytes: limits.max_body_bytes,
        access_log: AccessLog::for_settings(observability),
        guards: Guards::headers_only(),
        metrics: None,
        traces: None,
        keep_trailing_slash: &[],
    };
    with_layers(scrape.into_router(), layers)
}

/// The paths the rate limiter never limits: the platform's probes and the application's health.
pub fn unlimited_paths() -> Vec<&'static str> {
    probes::UNLIMITED.into_iter().chain([apis::healthz::PATH]).collect()
}
