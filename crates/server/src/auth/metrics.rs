//! The authentication metrics: decisions by outcome, JWKS fetches and verified-token cache lookups, registered in
//! the platform's registry. The outcomes are authentication's own vocabulary, mapped from its errors here.

use std::sync::Arc;

use platform::observability::metrics::{Counter, Metrics};

use super::{AuthError, Rejection};

/// Counter: authentication decisions by `outcome`.
pub const AUTH_OUTCOMES: &str = "auth_requests_total";
/// Counter: JWKS fetches from the provider (first load and refetches for unknown key ids).
pub const JWKS_FETCHES: &str = "auth_jwks_fetches_total";
/// Counter: verified-token cache lookups by `result` (`hit`, `miss`).
pub const TOKEN_CACHE: &str = "auth_token_cache_lookups_total";

/// Why an authentication succeeded or failed, as the `outcome` label of [`names::AUTH_OUTCOMES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthOutcome {
    /// A valid token with the scope the operation needs.
    Valid,
    /// No bearer token.
    MissingToken,
    /// The token's `exp` is past.
    Expired,
    /// The signature does not verify, or the token names a key the provider does not have.
    BadSignature,
    /// Another issuer or audience.
    WrongIssuerOrAudience,
    /// Not a well-formed token, an algorithm we refuse, or claims missing.
    Malformed,
    /// The provider said the token is not active (introspection).
    Inactive,
    /// A valid token without the operation's scope.
    InsufficientScope,
    /// The provider could not be asked.
    ProviderUnavailable,
    /// The server has no OIDC configuration.
    NotConfigured,
}

impl AuthOutcome {
    /// Every outcome, in label order.
    pub const ALL: [Self; 10] = [
        Self::Valid,
        Self::MissingToken,
        Self::Expired,
        Self::BadSignature,
        Self::WrongIssuerOrAudience,
        Self::Malformed,
        Self::Inactive,
        Self::InsufficientScope,
        Self::ProviderUnavailable,
        Self::NotConfigured,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::MissingToken => "missing_token",
            Self::Expired => "expired",
            Self::BadSignature => "bad_signature",
            Self::WrongIssuerOrAudience => "wrong_issuer_or_audience",
            Self::Malformed => "malformed",
            Self::Inactive => "inactive",
            Self::InsufficientScope => "insufficient_scope",
            Self::ProviderUnavailable => "provider_unavailable",
            Self::NotConfigured => "not_configured",
        }
    }

    /// The outcome a token's rejection counts as.
    pub fn of_rejection(rejection: Rejection) -> Self {
        match rejection {
            Rejection::Malformed => Self::Malformed,
            Rejection::Expired => Self::Expired,
            Rejection::BadSignature => Self::BadSignature,
            Rejection::Foreign => Self::WrongIssuerOrAudience,
            Rejection::Inactive => Self::Inactive,
        }
    }

    /// The outcome an authentication error stands for.
    pub fn of(error: &AuthError) -> Self {
        match error {
            AuthError::MissingToken => Self::MissingToken,
            AuthError::InvalidToken(rejection, _) => Self::of_rejection(*rejection),
            AuthError::InsufficientScope(_) => Self::InsufficientScope,
            AuthError::NotConfigured => Self::NotConfigured,
            AuthError::ProviderUnavailable => Self::ProviderUnavailable,
        }
    }
}

/// The authentication metrics; the default records nothing (unit tests, `metrics_enabled: false`).
#[derive(Clone, Default)]
pub struct AuthMetrics(Option<Arc<AuthHandles>>);

impl AuthMetrics {
    /// The authentication series, registered in `metrics` and exported from now on (at 0 until counted).
    pub fn register(metrics: &Metrics) -> Self {
        let outcome =
            |label| metrics.counter(AUTH_OUTCOMES, "Authentication decisions by outcome.", &[("outcome", label)]);
        let lookup =
            |result| metrics.counter(TOKEN_CACHE, "Verified-token cache lookups by result.", &[("result", result)]);
        Self(Some(Arc::new(AuthHandles {
            outcomes: AuthOutcome::ALL.map(|known| outcome(known.label())),
            jwks_fetches: metrics.counter(JWKS_FETCHES, "JWKS fetches from the OpenID provider.", &[]),
            cache_hits: lookup("hit"),
            cache_misses: lookup("miss"),
        })))
    }
}

struct AuthHandles {
    outcomes: [Counter; AuthOutcome::ALL.len()],
    jwks_fetches: Counter,
    cache_hits: Counter,
    cache_misses: Counter,
}

impl AuthMetrics {
    /// Counts one authentication decision.
    pub fn outcome(&self, outcome: AuthOutcome) {
        if let Some(handles) = &self.0
            && let Some(index) = AuthOutcome::ALL.iter().position(|known| *known == outcome)
        {
            handles.outcomes[index].increment(1);
        }
    }

    /// Counts one JWKS fetch.
    pub fn jwks_fetched(&self) {
        if let Some(handles) = &self.0 {
            handles.jwks_fetches.increment(1);
        }
    }

    /// Counts one verified-token cache lookup.
    pub fn token_cache(&self, hit: bool) {
        if let Some(handles) = &self.0 {
            if hit { &handles.cache_hits } else { &handles.cache_misses }.increment(1);
        }
    }
}

impl std::fmt::Debug for AuthMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthMetrics")
    }
}

#[cfg(test)]
mod tests {
    use platform::ServiceInfo;

    use super::*;

    #[test]
    fn auth_series_are_there_from_the_start() {
        let metrics = Metrics::new(&ServiceInfo { name: "svc", version: "1" });
        let auth = AuthMetrics::register(&metrics);
        auth.outcome(AuthOutcome::Expired);
        auth.token_cache(true);
        let text = metrics.render();
        assert!(text.contains(r#"auth_requests_total{outcome="expired"} 1"#), "{text}");
        assert!(text.contains(r#"auth_requests_total{outcome="valid"} 0"#), "{text}");
        assert!(text.contains(r#"auth_token_cache_lookups_total{result="hit"} 1"#), "{text}");
        assert!(text.contains("auth_jwks_fetches_total 0"), "{text}");
    }
}
