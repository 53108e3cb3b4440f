//! Guards: what stands between the network and the handlers besides the edge: per-caller rate limits, CORS,
//! security headers, and the client's address behind trusted proxies. Built once from the configuration by
//! [`Guards::from_config`] (refusing a configuration they cannot honour) and installed in `app::with_layers`.

pub mod client_addr;
pub mod cors;
pub mod headers;
pub mod rate_limit;

use tower_http::cors::CorsLayer;

use crate::{auth::Authenticator, config::Config};
use client_addr::TrustedProxies;
use headers::SecurityHeadersLayer;
use rate_limit::RateLimitLayer;

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

impl Guards {
    /// The guards `config` asks for; the rate limiter finds token subjects in `auth`'s cache of accepted tokens.
    pub fn from_config(config: &Config, auth: &Authenticator) -> Result<Self, GuardConfigError> {
        if config.rate_limit_burst.is_some() && config.rate_limit_per_second.is_none() {
            return Err(GuardConfigError::BurstWithoutRate);
        }
        Ok(Self {
            trusted_proxies: TrustedProxies::parse(&config.trusted_proxies, config.forwarded_header)?,
            rate_limit: config
                .rate_limit_per_second
                .map(|rate| RateLimitLayer::new(rate, config.rate_limit_burst, auth.clone())),
            cors: cors::layer(&config.cors_allowed_origins, config.cors_allow_credentials)?,
            headers: SecurityHeadersLayer::new(auth.settings()),
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
        let guards = Guards::from_config(&Config::default(), &Authenticator::Disabled).expect("valid");
        assert!(guards.rate_limit.is_none() && guards.cors.is_none() && guards.trusted_proxies.is_empty());
    }

    #[test]
    fn a_burst_without_a_rate_is_refused() {
        let config = Config { rate_limit_burst: NonZeroU32::new(5), ..Config::default() };
        let error = Guards::from_config(&config, &Authenticator::Disabled).expect_err("refused").to_string();
        assert!(error.contains("rate_limit_per_second"), "{error}");
    }
}
