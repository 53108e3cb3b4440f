//! OpenID Connect discovery: the provider's endpoints, fetched once from `issuer/.well-known/openid-configuration`
//! when the settings do not name them, retried after a failure but not more than once a second.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use serde::Deserialize;
use tokio::sync::OnceCell;

use super::{AuthError, http::ProviderClient};

/// The parts of the provider metadata we use.
#[derive(Debug, Clone, Deserialize)]
pub struct ProviderMetadata {
    /// Must equal the configured issuer (OpenID Connect Discovery, section 4.3).
    pub issuer: String,
    /// Where the signing keys are.
    pub jwks_uri: Option<String>,
    /// RFC 7662 endpoint.
    pub introspection_endpoint: Option<String>,
}

/// Lazily fetched, then cached, provider metadata.
pub struct Discovery {
    client: ProviderClient,
    issuer: String,
    metadata: OnceCell<ProviderMetadata>,
    last_failure: Mutex<Option<Instant>>,
}

const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

impl Discovery {
    /// Discovery for `issuer`, fetched on first use.
    pub fn new(client: ProviderClient, issuer: &str) -> Self {
        Self { client, issuer: issuer.to_owned(), metadata: OnceCell::new(), last_failure: Mutex::new(None) }
    }

    /// The metadata, fetching it if this is the first successful call.
    pub async fn metadata(&self) -> Result<&ProviderMetadata, AuthError> {
        if let Some(metadata) = self.metadata.get() {
            return Ok(metadata);
        }
        if let Ok(guard) = self.last_failure.lock()
            && guard.is_some_and(|at| at.elapsed() < RETRY_AFTER_FAILURE)
        {
            return Err(AuthError::ProviderUnavailable);
        }
        let fetched = self.metadata.get_or_try_init(|| self.fetch()).await;
        if fetched.is_err()
            && let Ok(mut guard) = self.last_failure.lock()
        {
            *guard = Some(Instant::now());
        }
        fetched
    }

    async fn fetch(&self) -> Result<ProviderMetadata, AuthError> {
        let url = format!("{}/.well-known/openid-configuration", self.issuer.trim_end_matches('/'));
        let fetched = self.client.get_json::<ProviderMetadata>(&url, "openid-configuration").await;
        let metadata = fetched.map(|fetched| fetched.value).map_err(|error| {
            tracing::warn!("OIDC discovery at {url} failed: {error}");
            AuthError::ProviderUnavailable
        })?;
        if metadata.issuer != self.issuer {
            tracing::error!(
                "OIDC discovery at {url} names issuer {} but the configuration expects {}",
                metadata.issuer,
                self.issuer
            );
            return Err(AuthError::ProviderUnavailable);
        }
        Ok(metadata)
    }
}
