//! The platform's configuration sections, one per subsystem, each holding only what that subsystem reads. The
//! application's configuration composes them with its own sections; the keys users write are flat
//! (`APP_CONFIG_PORT`), and each field here is named exactly like its key.

use std::num::NonZeroU32;

use serde::{Deserialize, Serialize};

/// Where the server listens and how it stops: the `server` section.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Interface to bind to; `0.0.0.0` to accept connections from other hosts (in a container).
    pub host: String,
    /// TCP port to bind to; `0` picks a free one (the tests use it).
    pub port: u16,
    /// Longest time in-flight requests get to finish after SIGINT/SIGTERM before the server exits anyway.
    pub shutdown_grace_secs: u64,
    /// After SIGTERM, `/readyz` answers 503 for this long while requests are still served, so load balancers stop
    /// sending before the listener closes.
    pub shutdown_drain_secs: u64,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self { host: "localhost".into(), port: 8080, shutdown_grace_secs: 25, shutdown_drain_secs: 0 }
    }
}

/// What one request and one connection may cost: the `limits` section.
#[derive(Debug, Clone)]
pub struct LimitSettings {
    /// Longest time a request may take before it is answered with a 503 problem.
    pub request_timeout_secs: u64,
    /// Largest request body accepted; larger ones get a 413 problem.
    pub max_body_bytes: usize,
    /// A client that has not sent a whole request head this long after connecting (or after its previous
    /// response) is disconnected, so slow clients (slowloris) cannot hold connections open.
    pub header_read_timeout_secs: u64,
    /// Largest request head (request line and headers) accepted, exactly for HTTP/1; larger ones get a 431 answer.
    pub max_request_head_bytes: usize,
    /// Connections served at once; beyond it, new ones wait in the listen queue until one closes, so a flood of
    /// connections cannot push the process past its memory limit (each open connection costs about 12 KiB).
    pub max_connections: usize,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            request_timeout_secs: 30,
            max_body_bytes: 1024 * 1024,
            header_read_timeout_secs: 10,
            max_request_head_bytes: 32 * 1024,
            max_connections: 10_000,
        }
    }
}

/// What stands in front of the handlers: the `guards` section.
#[derive(Debug, Clone)]
pub struct GuardSettings {
    /// Requests a second each caller (token subject, else client address) may make; `None` switches limits off.
    pub rate_limit_per_second: Option<NonZeroU32>,
    /// Requests a caller may make at once before the rate applies; `None` is one second's worth.
    pub rate_limit_burst: Option<NonZeroU32>,
    /// Origins whose browser pages may call the API (`https://app.example.com`), or `["*"]`; empty: no CORS.
    pub cors_allowed_origins: Vec<String>,
    /// Tell browsers they may send cookies and HTTP authentication cross-origin; never together with `*`.
    pub cors_allow_credentials: bool,
    /// Proxies (addresses or networks) whose `Forwarded`/`X-Forwarded-For` name the client; empty trusts none.
    pub trusted_proxies: Vec<String>,
    /// The one forwarding header the trusted proxies write; the other is ignored, since a proxy passes on
    /// whatever a client put in the header it does not write itself.
    pub forwarded_header: ForwardedHeader,
}

impl Default for GuardSettings {
    fn default() -> Self {
        Self {
            rate_limit_per_second: None,
            rate_limit_burst: None,
            cors_allowed_origins: Vec::new(),
            cors_allow_credentials: false,
            trusted_proxies: Vec::new(),
            forwarded_header: ForwardedHeader::XForwardedFor,
        }
    }
}

/// Logs, metrics and traces: the `observability` section.
#[derive(Debug, Clone)]
pub struct ObservabilitySettings {
    /// Shape of the log lines.
    pub log_format: LogFormat,
    /// Log at debug level instead of info.
    pub debug: bool,
    /// Write one access-log line per request.
    pub access_log: bool,
    /// Serve Prometheus metrics at `/metrics`.
    pub metrics_enabled: bool,
    /// Serve `/metrics` on this port of `host` only, instead of on the main listener, so an ingress for the API
    /// never exposes it.
    pub metrics_port: Option<u16>,
    /// OTLP/HTTP collector base URL (`http://collector:4318`); spans go to `{otel_endpoint}/v1/traces`. `None`
    /// switches tracing off, at no cost per request.
    pub otel_endpoint: Option<String>,
    /// `service.name` of the exported spans, so one collector can tell deployments apart.
    pub otel_service_name: String,
}

impl ObservabilitySettings {
    /// The defaults, with spans reported as `service_name`.
    pub fn for_service(service_name: &str) -> Self {
        Self {
            log_format: LogFormat::Text,
            debug: false,
            access_log: true,
            metrics_enabled: true,
            metrics_port: None,
            otel_endpoint: None,
            otel_service_name: service_name.to_owned(),
        }
    }
}

/// Which header names the client behind a trusted proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeader {
    /// `X-Forwarded-For`, written by nginx, HAProxy, Envoy and cloud load balancers.
    XForwardedFor,
    /// `Forwarded` (RFC 7239), for proxies configured to write it.
    Forwarded,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `[2026-11-29 15:30:18,005] INFO: message`, the Flask original's shape, for people.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}
