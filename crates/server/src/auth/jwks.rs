//! Signing keys: the `KeyStore` trait the verifier asks, `StaticKeyStore` (keys given at construction, for tests),
//! and `RemoteKeyStore`, which keeps the provider's JWKS current: fetched again in the background every
//! `jwks_refresh_secs` (sooner when the JWKS's `Cache-Control: max-age` says so), so a key the provider removed stops
//! verifying, and the tokens it verified are evicted from the verifier's cache (the store's epoch moves); fetched
//! at once when a token names an unknown key (rotation), at most once per [`UNKNOWN_KID_REFETCH`]. Failed fetches
//! back off ([`RETRY_AFTER_FAILURE`] doubling up to [`MAX_BACKOFF`]), the first load too, so neither a flood of
//! made-up key ids nor readiness polls during an outage can hammer the provider.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{
        Arc, RwLock, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use jsonwebtoken::{
    Algorithm, DecodingKey,
    jwk::{AlgorithmParameters, JwkSet, PublicKeyUse},
};

use super::metrics::AuthMetrics;
use super::{AuthError, discovery::Discovery, http::ProviderClient, settings::provider_url_allowed};

/// Shortest time between two refetches caused by unknown key ids.
pub const UNKNOWN_KID_REFETCH: Duration = Duration::from_secs(10);
/// Wait after a first failed fetch before the provider is asked again; it doubles with each further failure up to
/// [`MAX_BACKOFF`]. Meanwhile tokens that need a key the store does not have get 503 (the provider is away, so a
/// key it did not publish may still be one it would).
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);
/// Longest wait between two tries while the provider keeps failing.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Shortest background refresh interval, whatever `max-age` the provider sends (`no-store` included).
pub const MIN_REFRESH: Duration = Duration::from_secs(1);

/// The last fetch and what came of it.
#[derive(Debug, Clone, Copy)]
struct LastFetch {
    at: Instant,
    /// Failed fetches in a row (0 after a success).
    failures: u32,
}

impl LastFetch {
    /// Until when nobody asks the provider again: [`UNKNOWN_KID_REFETCH`] after a success, the backoff after
    /// failures.
    fn quiet_until(&self) -> Instant {
        let quiet = match self.failures {
            0 => UNKNOWN_KID_REFETCH,
            n => RETRY_AFTER_FAILURE.saturating_mul(1 << (n - 1).min(5)).min(MAX_BACKOFF),
        };
        self.at + quiet
    }
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

    /// Moves whenever a key the store had is gone; a token verified under another epoch is verified again.
    fn epoch(&self) -> u64 {
        0
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

/// The provider's JWKS, kept current as the module says.
pub struct RemoteKeyStore {
    client: ProviderClient,
    jwks_uri: Option<String>,
    discovery: Arc<Discovery>,
    allow_insecure_http: bool,
    keys: RwLock<Option<Arc<KeySet>>>,
    /// Serialises fetches (one request for many concurrent misses) and remembers the last one.
    last_fetch: tokio::sync::Mutex<Option<LastFetch>>,
    /// Moves whenever a key id the store had is gone from a new fetch: tokens verified before may no longer be.
    epoch: AtomicU64,
    /// The background refresh interval: `jwks_refresh_secs`, or the last answer's shorter `max-age`.
    refresh_every: Duration,
    /// The last answer's `max-age`, in milliseconds; `u64::MAX` when it had none.
    max_age_ms: AtomicU64,
    /// When the keys were last loaded.
    loaded_at: std::sync::Mutex<Option<Instant>>,
    /// Counts fetches, so operators see rotation and outages.
    metrics: AuthMetrics,
}

impl RemoteKeyStore {
    /// A store for `jwks_uri`, or for the URI discovery names when that is `None`, refreshed every
    /// `refresh_every` once [`Self::refresh_in_background`] runs.
    pub fn new(
        client: ProviderClient,
        jwks_uri: Option<String>,
        discovery: Arc<Discovery>,
        (refresh_every, allow_insecure_http): (Duration, bool),
        metrics: AuthMetrics,
    ) -> Self {
        Self {
            client,
            jwks_uri,
            discovery,
            allow_insecure_http,
            keys: RwLock::new(None),
            last_fetch: tokio::sync::Mutex::new(None),
            epoch: AtomicU64::new(0),
            refresh_every,
            max_age_ms: AtomicU64::new(u64::MAX),
            loaded_at: std::sync::Mutex::new(None),
            metrics,
        }
    }

    /// Refreshes the keys every interval for as long as the store lives; needs a Tokio runtime. The task holds
    /// the store weakly, so it ends with the server (and each test's server) that owns the store.
    pub fn refresh_in_background(self: &Arc<Self>) {
        let store: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            // A tick a second rather than one long sleep: the interval may shorten with the next answer's max-age.
            loop {
                tokio::time::sleep(MIN_REFRESH).await;
                let Some(store) = store.upgrade() else { return };
                let mut last = store.last_fetch.lock().await;
                if store.refresh_due(*last) {
                    let fetched = store.fetch().await;
                    *last = store.after(*last, fetched.is_ok(), false);
                }
            }
        });
    }

    /// Whether the background refresh is due: the interval (or a shorter `max-age`) since the last load has
    /// passed, or the backoff after a failed fetch has; the keys not loaded yet are due at once.
    fn refresh_due(&self, last: Option<LastFetch>) -> bool {
        if let Some(last) = last
            && last.failures > 0
        {
            return Instant::now() >= last.quiet_until();
        }
        let max_age = Duration::from_millis(self.max_age_ms.load(Ordering::Relaxed));
        let loaded_at = self.loaded_at.lock().ok().and_then(|guard| *guard);
        loaded_at.is_none_or(|at| at.elapsed() >= self.refresh_every.min(max_age).max(MIN_REFRESH))
    }

    /// The record of a fetch that `succeeded` (or not) after `last`; only a refetch for an unknown key id keeps
    /// the provider quiet after a success (a load or a refresh leaves the next unknown key id free to ask).
    fn after(&self, last: Option<LastFetch>, succeeded: bool, for_unknown_kid: bool) -> Option<LastFetch> {
        match (succeeded, for_unknown_kid) {
            (true, false) => None,
            (true, true) => Some(LastFetch { at: Instant::now(), failures: 0 }),
            (false, _) => {
                let failures = last.map_or(0, |last| last.failures).saturating_add(1);
                Some(LastFetch { at: Instant::now(), failures })
            }
        }
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
        if let Err(reason) = provider_url_allowed(&uri, self.allow_insecure_http) {
            tracing::error!("discovery names a JWKS the server will not fetch: {reason}");
            return Err(AuthError::ProviderUnavailable);
        }
        let fetched = self.client.get_json::<JwkSet>(&uri, "jwks").await.map_err(|error| {
            tracing::warn!("fetching the JWKS at {uri} failed: {error}");
            AuthError::ProviderUnavailable
        })?;
        let max_age = fetched.max_age.map_or(u64::MAX, |age| u64::try_from(age.as_millis()).unwrap_or(u64::MAX));
        self.max_age_ms.store(max_age, Ordering::Relaxed);
        if let Ok(mut loaded_at) = self.loaded_at.lock() {
            *loaded_at = Some(Instant::now());
        }
        let set = Arc::new(KeySet::from_jwks(&fetched.value));
        let count = set.by_kid.len() + set.without_kid.len();
        if let Ok(mut guard) = self.keys.write() {
            if let Some(old) = guard.as_ref()
                && old.removed_in(&set)
            {
                self.epoch.fetch_add(1, Ordering::Relaxed);
                tracing::info!("the provider removed a signing key; tokens it verified are checked again");
            }
            *guard = Some(set.clone());
        }
        if count == 0 {
            tracing::error!("the JWKS at {uri} holds no usable signing key");
            return Err(AuthError::ProviderUnavailable);
        }
        tracing::info!("Loaded {count} signing keys from {uri}");
        Ok(set)
    }

    async fn lookup(&self, kid: Option<&str>) -> Result<Option<Arc<VerifyingKey>>, AuthError> {
        if let Some(set) = self.cached()
            && let Some(key) = set.find(kid)
        {
            return Ok(Some(key));
        }
        let mut last = self.last_fetch.lock().await;
        // Another request may have fetched while this one waited for the lock.
        let loaded = self.cached().filter(|set| !set.is_empty());
        if let Some(set) = &loaded
            && let Some(key) = set.find(kid)
        {
            return Ok(Some(key));
        }
        if let Some(previous) = *last
            && Instant::now() < previous.quiet_until()
        {
            return match (previous.failures, &loaded) {
                // The provider answered recently without this key: the token is bad, not the provider.
                (0, Some(_)) => Ok(None),
                // The provider failed recently (or has no keys): it cannot tell yet, and a 401 would wrongly blame
                // the token.
                _ => Err(AuthError::ProviderUnavailable),
            };
        }
        let fetched = self.fetch().await;
        *last = self.after(*last, fetched.is_ok(), loaded.is_some());
        Ok(fetched?.find(kid))
    }
}

impl KeySet {
    fn is_empty(&self) -> bool {
        self.by_kid.is_empty() && self.without_kid.is_empty()
    }

    /// Whether a key of this set is missing from `newer`: a removed key id, or fewer keys without an id.
    fn removed_in(&self, newer: &KeySet) -> bool {
        self.by_kid.keys().any(|kid| !newer.by_kid.contains_key(kid))
            || self.without_kid.len() > newer.without_kid.len()
    }
}

impl KeyStore for RemoteKeyStore {
    fn key<'a>(&'a self, kid: Option<&'a str>) -> KeyFuture<'a> {
        Box::pin(self.lookup(kid))
    }

    fn warm(&self) -> Pin<Box<dyn Future<Output = Result<(), AuthError>> + Send + '_>> {
        Box::pin(async move {
            if self.cached().is_some_and(|set| !set.is_empty()) {
                return Ok(());
            }
            // Behind the fetch lock and its backoff, so polling readiness during an outage asks the provider once
            // per backoff interval, not once per poll.
            let mut last = self.last_fetch.lock().await;
            if self.cached().is_some_and(|set| !set.is_empty()) {
                return Ok(());
            }
            if last.is_some_and(|previous| Instant::now() < previous.quiet_until()) {
                return Err(AuthError::ProviderUnavailable);
            }
            let fetched = self.fetch().await;
            *last = self.after(*last, fetched.is_ok(), false);
            fetched.map(|_| ())
        })
    }

    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Relaxed)
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
