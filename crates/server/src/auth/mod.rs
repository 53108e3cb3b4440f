//! Bearer-token authentication against an OpenID provider: settings from `client_secrets.json`, JWT access tokens
//! verified locally against the provider's JWKS, opaque tokens introspected (RFC 7662), verified tokens cached,
//! and the extractors handlers use to require a token and its scopes.

mod discovery;
pub mod extract;
pub mod http;
mod introspection;
pub mod jwks;
pub mod metrics;
pub mod principal;
pub mod settings;
pub mod verifier;

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use platform::{
    guards::rate_limit::SubjectLookup,
    problem::{HttpError, ProblemDraft},
    readiness::ReadinessCheck,
};

pub use crate::domain::principal::Principal;
pub use extract::{Authenticated, ReadScope, Scoped, WriteScope};
pub use settings::{OidcSettings, SettingsError};
pub use verifier::TokenVerifier;

/// Whether and how this server authenticates callers.
#[derive(Clone)]
pub enum Authenticator {
    /// No OIDC configuration: protected routes are closed to everyone.
    Disabled,
    /// Tokens are verified against the configured OpenID provider.
    Oidc(Arc<TokenVerifier>),
}

impl Authenticator {
    /// The OIDC settings in force, if any.
    pub fn settings(&self) -> Option<&OidcSettings> {
        match self {
            Self::Disabled => None,
            Self::Oidc(verifier) => Some(verifier.settings()),
        }
    }
}

/// The rate limiter's "who is asking": the subject of a token the verifier already accepted, from its cache.
impl SubjectLookup for TokenVerifier {
    fn subject(&self, headers: &HeaderMap) -> Option<String> {
        extract::bearer_token_in(headers).ok().and_then(|token| self.cached_subject(token))
    }
}

/// Readiness waits for the provider's signing keys: without them no JWT can be verified.
pub struct SigningKeysLoaded(pub Arc<TokenVerifier>);

#[async_trait::async_trait]
impl ReadinessCheck for SigningKeysLoaded {
    fn name(&self) -> &'static str {
        "identity provider signing keys"
    }

    async fn check(&self) -> bool {
        self.0.is_ready().await
    }
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Disabled => f.write_str("Authenticator::Disabled"),
            Self::Oidc(verifier) => write!(f, "Authenticator::Oidc({})", verifier.settings().issuer),
        }
    }
}

/// Why a request was not let in; each answers with its RFC 6750 status and `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header (or another scheme): the caller did not try.
    #[error("This resource requires a bearer token")]
    MissingToken,
    /// The token is malformed, badly signed, expired, foreign or revoked: why, and the words for the caller.
    #[error("{1}")]
    InvalidToken(Rejection, String),
    /// A valid token without the scope this operation needs.
    #[error("The access token lacks the scope {0}")]
    InsufficientScope(String),
    /// The server has no OIDC configuration, so nobody can be authenticated.
    #[error("This server has no authentication configured, so protected resources are closed")]
    NotConfigured,
    /// The OpenID provider could not be asked while the decision needed it.
    #[error("The identity provider cannot be reached; try again later")]
    ProviderUnavailable,
}

impl AuthError {
    pub(crate) fn invalid(why: Rejection, reason: impl Into<String>) -> Self {
        Self::InvalidToken(why, reason.into())
    }
}

/// Why a token was refused, in the few classes operators tell apart (the metrics' `outcome` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Not a well-formed token, an algorithm we refuse, or required claims missing.
    Malformed,
    /// Past its `exp`, or before its `nbf`.
    Expired,
    /// The signature does not verify, or no key of the provider's signed it.
    BadSignature,
    /// Issued by another provider or for another audience.
    Foreign,
    /// The provider says the token is not active (revoked, or an opaque token it does not know).
    Inactive,
}

impl HttpError for AuthError {
    fn problem(&self) -> ProblemDraft {
        let status = match self {
            Self::MissingToken | Self::InvalidToken(..) | Self::NotConfigured => StatusCode::UNAUTHORIZED,
            Self::InsufficientScope(_) => StatusCode::FORBIDDEN,
            Self::ProviderUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        };
        let draft = ProblemDraft::new(status, self.to_string());
        match bearer_challenge(self) {
            Some(challenge) => draft.with_header(header::WWW_AUTHENTICATE, challenge),
            None => draft,
        }
    }
}

/// The RFC 6750 `WWW-Authenticate` challenge for an authentication failure (none for a provider outage).
fn bearer_challenge(error: &AuthError) -> Option<HeaderValue> {
    const REALM: &str = "Bearer realm=\"rust-api-axum\"";
    // Quoted-string values: drop the two characters that could break out of the quotes.
    let quoted = |text: &str| text.replace(['"', '\\'], "");
    let value = match error {
        AuthError::MissingToken | AuthError::NotConfigured => REALM.to_owned(),
        AuthError::InvalidToken(_, reason) => {
            format!("{REALM}, error=\"invalid_token\", error_description=\"{}\"", quoted(reason))
        }
        AuthError::InsufficientScope(scope) => {
            format!("{REALM}, error=\"insufficient_scope\", scope=\"{}\"", quoted(scope))
        }
        AuthError::ProviderUnavailable => return None,
    };
    HeaderValue::try_from(value).ok()
}

#[cfg(test)]
mod tests {
    use api_types::Problem;
    use axum::response::IntoResponse;
    use http_body_util::BodyExt;

    use super::*;

    #[tokio::test]
    async fn auth_failures_carry_their_rfc_6750_challenge() {
        let cases = [
            (AuthError::MissingToken, 401, Some("Bearer realm=\"rust-api-axum\"")),
            (
                AuthError::invalid(Rejection::Expired, "The access token expired"),
                401,
                Some(
                    "Bearer realm=\"rust-api-axum\", error=\"invalid_token\", error_description=\"The access token expired\"",
                ),
            ),
            (
                AuthError::InsufficientScope("write".into()),
                403,
                Some("Bearer realm=\"rust-api-axum\", error=\"insufficient_scope\", scope=\"write\""),
            ),
            (AuthError::NotConfigured, 401, Some("Bearer realm=\"rust-api-axum\"")),
            (AuthError::ProviderUnavailable, 503, None),
        ];
        for (error, status, challenge) in cases {
            let response = platform::problem::finalize(error.problem().into_response(), "/x", None);
            assert_eq!(response.status().as_u16(), status, "{error:?}");
            assert_eq!(
                response.headers().get(header::WWW_AUTHENTICATE).map(|v| v.to_str().expect("text")),
                challenge,
                "{error:?}"
            );
            let body = response.into_body().collect().await.expect("body").to_bytes();
            let problem: Problem = serde_json::from_slice(&body).expect("problem json");
            assert_eq!((problem.status, problem.detail), (status, error.to_string()));
        }
    }
}
