//! Bearer-token authentication against an OpenID provider: settings from `client_secrets.json`, JWT access tokens
//! verified locally against the provider's JWKS, opaque tokens introspected (RFC 7662), verified tokens cached,
//! and the extractors handlers use to require a token and its scopes.

mod discovery;
pub mod extract;
pub mod http;
mod introspection;
pub mod jwks;
pub mod principal;
pub mod settings;
pub mod verifier;

use std::sync::Arc;

pub use extract::{Authenticated, ReadScope, Scoped, WriteScope};
pub use principal::Principal;
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

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Disabled => f.write_str("Authenticator::Disabled"),
            Self::Oidc(verifier) => write!(f, "Authenticator::Oidc({})", verifier.settings().issuer),
        }
    }
}

/// Why a request was not let in; `error.rs` turns each into its RFC 6750 status and `WWW-Authenticate` header.
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

impl Rejection {
    /// The metrics outcome this rejection counts as.
    pub fn outcome(self) -> crate::ops::metrics::AuthOutcome {
        use crate::ops::metrics::AuthOutcome;
        match self {
            Self::Malformed => AuthOutcome::Malformed,
            Self::Expired => AuthOutcome::Expired,
            Self::BadSignature => AuthOutcome::BadSignature,
            Self::Foreign => AuthOutcome::WrongIssuerOrAudience,
            Self::Inactive => AuthOutcome::Inactive,
        }
    }
}
