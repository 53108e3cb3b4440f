//! Signing keys: the `KeyStore` trait the verifier asks, `StaticKeyStore` (keys given at construction, for tests),
//! and `RemoteKeyStore`, which caches the provider's JWKS and refetches it when a token names an unknown key (key
//! rotation), at most once per [`UNKNOWN_KID_REFETCH`] (once per [`RETRY_AFTER_FAILURE`] while the provider fails),
//! so a flood of made-up key ids cannot hammer the provider. Until a first fetch succeeds there is nothing to
//! rate-limit against: each request that needs a key fetches, one at a time behind the store's lock.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use jsonwebtoken::{
    Algorithm, DecodingKey,
    jwk::{AlgorithmParameters, JwkSet, PublicKeyUse},
};

use super::metrics::AuthMetrics;
use super::{AuthError, discovery::Discovery, http};

/// Shortest time between two refetches caused by unknown key ids.
pub const UNKNOWN_KID_REFETCH: Duration = Duration::from_secs(10);
/// Shortest time between two refetches after one failed: the provider is away, so a key it did not publish may
/// still be one it would; tokens naming it get 503 until a refetch succeeds, and the provider is asked once a
/// second at most however many such tokens arrive.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// The last refetch caused by an unknown key id.
#[derive(Debug, Clone, Copy)]
struct Refetch {
    at: Instant,
    /// The provider did not answer: its silence says nothing about the key.
    failed: bool,
}

/// A public key that may verify token signatures.
pub struct VerifyingKey {
    /// The key material.
    pub key: DecodingKey,
    /// The one algorithm the JWK pins (`alg`), if it pins one.
    pub algorithm: Option<Algorithm>,
}

/// Boxed future returned by [`KeyStore::key`], so the store can be a trait object.
pub type KeyFuture<'a> = Pin<Box<dyn Future<Output = Result<Option<Arc<VerifyingKey>>, AuthError>> + Send + 'a>>;

/// Where the verifier finds signing keys; behind a trait so tests can use static keys (unit tests, and test
/// servers through `ApplicationBuilder::key_store`).
pub trait KeyStore: Send + Sync {
    /// The key named `kid` (or the only key, when the token names none); `None` when there is no such key,
    /// `Err(ProviderUnavailable)` when the provider had to be asked and could not be.
    fn key<'a>(&'a self, kid: Option<&'a str>) -> KeyFuture<'a>;

    /// Loads the keys if they are not loaded yet, for readiness: `Err(ProviderUnavailable)` while they cannot be.
    /// Keys once loaded stay, so a provider outage later does not take a ready replica out of service.
    fn warm(&self) -> Pin<Box<dyn Future<Output = Result<(), AuthError>> + Send + '_>> {
        Box::pin(async { Ok(()) })
    }
}

/// Keys as the provider last published them.
#[derive(Default)]
struct KeySet {
    by_kid: HashMap<String, Arc<VerifyingKey>>,
    without_kid: Vec<Arc<VerifyingKey>>,
}

impl KeySet {
    fn find(&self, kid: Option<&str>) -> Option<Arc<VerifyingKey>> {
        match kid {
            Some(kid) => self.by_kid.get(kid).cloned(),
            None if self.by_kid.len() + self.without_kid.len() == 1 => {
                self.by_kid.values().chain(&self.without_kid).next().cloned()
            }
            None => None,
        }
    }

    /// Keeps the usable signature keys; symmetric (`oct`) and encryption keys are never accepted.
    fn from_jwks(jwks: &JwkSet) -> Self {
        let mut set = Self::default();
        for jwk in &jwks.keys {
            if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption))
                || matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_))
            {
                continue;
            }
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                tracing::debug!(kid = ?jwk.common.key_id, "skipping a JWK we cannot use");
                continue;
            };
            let algorithm = jwk.common.key_algorithm.and_then(|alg| alg.to_string().parse::<Algorithm>().ok());
            let key = Arc::new(VerifyingKey { key, algorithm });
            match &jwk.common.key_id {
                Some(kid) => {
                    set.by_kid.insert(kid.clone(), key);
                }
                None => set.without_kid.push(key),
            }
        }
        set
    }
}

/// The provider's JWKS, fetched on first use and refetched for unknown key ids.
pub struct RemoteKeyStore {
    client: reqwest::Client,
    jwks_uri: Option<String>,
    discovery: Arc<Discovery>,
    keys: RwLock<Option<Arc<KeySet>>>,
    /// Serialises fetches (one request for many concurrent misses) and remembers the last unknown-kid refetch.
    refetch: tokio::sync::Mutex<Option<Refetch>>,
    /// Counts fetches, so operators see rotation and outages.
    metrics: AuthMetrics,
}

impl RemoteKeyStore {
    /// A store for `jwks_uri`, or for the URI discovery names when that is `None`.
    pub fn new(
        client: reqwest::Client,
        jwks_uri: Option<String>,
        discovery: Arc<Discovery>,
        metrics: AuthMetrics,
    ) -> Self {
        Self { client, jwks_uri, discovery, keys: RwLock::new(None), refetch: tokio::sync::Mutex::new(None), metrics }
    }

    fn cached(&self) -> Option<Arc<KeySet>> {
        self.keys.read().ok().and_then(|guard| guard.clone())
    }

    async fn fetch(&self) -> Result<Arc<KeySet>, AuthError> {
        self.metrics.jwks_fetched();
        let uri = match &self.jwks_uri {
            Some(uri) => uri.clone(),
            None => self.discovery.metadata().await?.jwks_uri.clone().ok_or_else(|| {
                tracing::error!("the OpenID provider publishes no jwks_uri; set oidc.jwks_uri");
                AuthError::ProviderUnavailable
            })?,
        };
        let jwks = http::get_json::<JwkSet>(&self.client, &uri, "jwks").await.map_err(|error| {
            tracing::warn!("fetching the JWKS at {uri} failed: {error}");
            AuthError::ProviderUnavailable
        })?;
        let set = Arc::new(KeySet::from_jwks(&jwks));
        tracing::info!("Loaded {} signing keys from {uri}", set.by_kid.len() + set.without_kid.len());
        if let Ok(mut guard) = self.keys.write() {
            *guard = Some(set.clone());
        }
        Ok(set)
    }

    async fn lookup(&self, kid: Option<&str>) -> Result<Option<Arc<VerifyingKey>>, AuthError> {
        if let Some(set) = self.cached()
            && let Some(key) = set.find(kid)
        {
            return Ok(Some(key));
        }
        let mut last_refetch = self.refetch.lock().await;
        // Another request may have fetched while this one waited for the lock.
        let set = match self.cached() {
            None => self.fetch().await?,
            Some(set) => {
                if let Some(key) = set.find(kid) {
                    return Ok(Some(key));
                }
                match *last_refetch {
                    // The provider answered recently without this key: the token is bad, not the provider.
                    Some(Refetch { at, failed: false }) if at.elapsed() < UNKNOWN_KID_REFETCH => return Ok(None),
                    // The provider failed recently: it cannot tell yet, and a 401 would wrongly blame the token.
                    Some(Refetch { at, failed: true }) if at.elapsed() < RETRY_AFTER_FAILURE => {
                        return Err(AuthError::ProviderUnavailable);
                    }
                    _ => {}
                }
                let fetched = self.fetch().await;
                *last_refetch = Some(Refetch { at: Instant::now(), failed: fetched.is_err() });
                fetched?
            }
        };
        Ok(set.find(kid))
    }
}

impl KeyStore for RemoteKeyStore {
    fn key<'a>(&'a self, kid: Option<&'a str>) -> KeyFuture<'a> {
        Box::pin(self.lookup(kid))
    }

    fn warm(&self) -> Pin<Box<dyn Future<Output = Result<(), AuthError>> + Send + '_>> {
        Box::pin(async move {
            if self.cached().is_some() {
                return Ok(());
            }
            // Behind the refetch lock, so polling readiness during an outage makes one request at a time.
            let _fetching = self.refetch.lock().await;
            if self.cached().is_none() {
                self.fetch().await?;
            }
            Ok(())
        })
    }
}

/// Keys fixed at construction, for tests: the verifier's unit tests and test servers built with
/// `ApplicationBuilder::key_store`. No configuration key selects it; a deployment always uses the provider's JWKS.
#[derive(Default)]
pub struct StaticKeyStore {
    keys: KeySet,
}

impl StaticKeyStore {
    /// A store holding the signature keys of `jwks`.
    pub fn new(jwks: &JwkSet) -> Self {
        Self { keys: KeySet::from_jwks(jwks) }
    }
}

impl KeyStore for StaticKeyStore {
    fn key<'a>(&'a self, kid: Option<&'a str>) -> KeyFuture<'a> {
        Box::pin(async move { Ok(self.keys.find(kid)) })
    }
}
