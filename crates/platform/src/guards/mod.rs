//! Guards: what stands between the network and the handlers besides the edge: per-caller rate limits, CORS,
//! security headers, and the client's address behind trusted proxies. Built once from their settings by
//! [`Guards::new`] (refusing settings they cannot honour) and installed by [`crate::layers::with_layers`].

pub mod client_addr;
pub mod cors;
pub mod headers;
pub mod rate_limit;

use std::sync::Arc;

use tower_http::cors::CorsLayer;

use crate::settings::GuardSettings;
use client_addr::TrustedProxies;
use headers::{PagePolicies, SecurityHeadersLayer};
use rate_limit::{RateLimitLayer, SubjectLookup};

/// A guard setting that cannot work; the server refuses to start (exit code 2) with this one line.
#[derive(Debug, thiserror::Error)]
pub enum GuardConfigError {
    /// `cors_allowed_origins` holds something browsers would never match, or `*` where it is not allowed.
    #[error("invalid configuration: cors_allowed_origins: {0}")]
    Cors(String),
    /// A `trusted_proxies` entry is neither an address nor a network.
    #[error(
        "invalid configuration: trusted_proxies: \"{0}\" is neither an IP address nor a network (10.0.0.0/8, fd00::/8)"
    )]
    Proxy(String),
    /// A burst without a rate would silently do nothing.
    #[error("invalid configuration: rate_limit_burst is set but rate_limit_per_second is not, so nothing is limited")]
    BurstWithoutRate,
}

/// The guards of one running service, ready to be layered.
#[derive(Debug, Clone)]
pub struct Guards {
    /// Proxies whose forwarding headers name the client; empty believes none.
    pub trusted_proxies: TrustedProxies,
    /// The rate limiter, when `rate_limit_per_second` is set.
    pub rate_limit: Option<RateLimitLayer>,
    /// The CORS layer, when origins are configured.
    pub cors: Option<CorsLayer>,
    /// Security headers, always on.
    pub headers: SecurityHeadersLayer,
}

/// What the application tells the guards at wiring time.
#[derive(Clone, Default)]
pub struct GuardWiring {
    /// Who is asking, for the rate limiter: the subject of an already accepted token.
    pub subjects: Option<Arc<dyn SubjectLookup>>,
    /// Paths the rate limiter never limits (probes).
    pub unlimited: Vec<&'static str>,
    /// The policies of the application's pages.
    pub pages: Option<PagePolicies>,
}

impl Guards {
    /// The guards `settings` ask for, wired to the application by `wiring`.
    pub fn new(settings: &GuardSettings, wiring: GuardWiring) -> Result<Self, GuardConfigError> {
        if settings.rate_limit_burst.is_some() && settings.rate_limit_per_second.is_none() {
            return Err(GuardConfigError::BurstWithoutRate);
        }
        Ok(Self {
            trusted_proxies: TrustedProxies::parse(&settings.trusted_proxies, settings.forwarded_header)?,
            rate_limit: settings
                .rate_limit_per_second
                .map(|rate| RateLimitLayer::new(rate, settings.rate_limit_burst, wiring.subjects, &wiring.unlimited)),
            cors: cors::layer(&settings.cors_allowed_origins, settings.cors_allow_credentials)?,
            headers: SecurityHeadersLayer::new(wiring.pages),
        })
    }

    /// Security headers only: what a service gets without any guard configured (tests, tools).
    pub fn headers_only() -> Self {
        Self {
            trusted_proxies: TrustedProxies::default(),
            rate_limit: None,
            cors: None,
            headers: SecurityHeadersLayer::new(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;

    #[test]
    fn defaults_install_only_the_security_headers() {
        let guards = Guards::new(&GuardSettings::default(), GuardWiring::default()).expect("valid");
        assert!(guards.rate_limit.is_none() && guards.cors.is_none() && guards.trusted_proxies.is_empty());
    }

    #[test]
    fn a_burst_without_a_rate_is_refused() {
        let settings = GuardSettings { rate_limit_burst: NonZeroU32::new(5), ..GuardSettings::default() };
        let error = Guards::new(&settings, GuardWiring::default()).expect_err("refused").to_string();
        assert!(error.contains("rate_limit_per_second"), "{error}");
    }
}
