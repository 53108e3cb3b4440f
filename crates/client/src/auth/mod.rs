//! Getting and keeping an access token: discovery, the device authorization grant, the token cache, refresh and
//! revocation. `session` is the entry point; the other modules each own one step.

pub mod cache;
pub mod device;
pub mod discovery;
pub mod oauth;
pub mod session;

pub use session::Session;

/// What to check after a failed discovery: the CA bundle when the certificate was refused, else the URL.
fn discovery_hint(reason: &str) -> &'static str {
    if reason.contains("certificate") {
        "for a provider behind a private CA, pass its CA bundle with --ca-cert (\"ca_cert\")"
    } else {
        "check --discovery-url (\"discovery_url\")"
    }
}

/// Why no usable access token could be had; the binary exits with code 1 on any of these.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The metadata document could not be fetched or is not provider metadata.
    #[error("OpenID discovery at {url} failed: {reason}; {}", discovery_hint(reason))]
    Discovery {
        /// The metadata URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The provider's metadata lacks an endpoint the device flow needs.
    #[error("the OpenID provider at {url} does not offer the device authorization grant: its metadata has no {field}")]
    MissingEndpoint {
        /// The metadata URL.
        url: String,
        /// The missing member.
        field: &'static str,
    },
    /// The provider could not be reached (or kept failing with server errors).
    #[error("cannot reach the OpenID provider at {url}: {reason}")]
    Unreachable {
        /// The endpoint called.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The provider answered something that is not OAuth.
    #[error("unexpected answer from the OpenID provider at {url}: {reason}")]
    Unexpected {
        /// The endpoint called.
        url: String,
        /// What was wrong with the answer.
        reason: String,
    },
    /// The provider refused a request with an OAuth error.
    #[error("the OpenID provider refused the {step}: {error}")]
    Refused {
        /// Which request.
        step: &'static str,
        /// The provider's error.
        error: oauth::OAuthError,
    },
    /// The person (or the provider's policy) denied the login.
    #[error("login denied at the OpenID provider{}", .0.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Denied(Option<String>),
    /// The device code expired before anyone approved it.
    #[error("login timed out: the code was not approved before it expired; run the command again for a new code")]
    Expired,
    /// Logout forgot the cached tokens but could not have them revoked.
    #[error("the cached tokens are forgotten, but the OpenID provider did not revoke them: {0}")]
    NotRevoked(Box<AuthError>),
    /// The token cache cannot be read or written.
    #[error(transparent)]
    Cache(#[from] cache::CacheError),
}
