//! `TokenVerifier`: turns a bearer token into a [`Principal`] or an [`AuthError`]. JWTs are verified locally
//! (signature by a provider key, `iss`, `aud`, `exp`/`nbf`, asymmetric algorithms only); anything else is
//! introspected. Verified tokens are cached by their SHA-256 until they expire, so a hot token costs a hash and a
//! map lookup instead of a signature check or a provider call.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use jsonwebtoken::{Algorithm, Validation, errors::ErrorKind};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::metrics::AuthMetrics;
use super::{
    AuthError, OidcSettings, Principal, Rejection,
    discovery::Discovery,
    http::{ClientError, provider_client},
    introspection::Introspector,
    jwks::{KeyStore, RemoteKeyStore},
};

/// Tolerated clock difference with the provider for `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 30;
/// After the provider failed an introspection, further opaque tokens fail fast for this long.
pub const OUTAGE_BACKOFF_SECS: u64 = 2;
/// Verified tokens remembered at most; beyond it the least recently used are dropped.
pub const CACHE_CAPACITY: usize = 10_000;

/// The signature algorithms we accept: asymmetric only, so a public key can never be used as an HMAC secret.
const ACCEPTED: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

#[derive(Clone)]
struct Verified {
    /// Shared with every request that presents the token: a hit costs a reference count, not copies of its strings.
    principal: Arc<Principal>,
    /// Unix seconds after which the entry must not be used.
    until: u64,
}

/// Verifies bearer tokens for one OpenID provider.
pub struct TokenVerifier {
    settings: Arc<OidcSettings>,
    keys: Arc<dyn KeyStore>,
    introspector: Introspector,
    cache: quick_cache::sync::Cache<[u8; 32], Verified>,
    /// Unix second until which introspection is not tried again after the provider failed.
    outage_until: AtomicU64,
    /// Counts cache hits and misses and, in the extractors, every decision.
    metrics: AuthMetrics,
}

impl TokenVerifier {
    /// A verifier that fetches keys and introspects at the provider named by `settings`.
    pub fn new(settings: OidcSettings, metrics: AuthMetrics) -> Result<Self, ClientError> {
        Self::build(settings, None, metrics)
    }

    /// A verifier that checks JWT signatures against `keys` instead of the provider's JWKS (test servers with a
    /// [`StaticKeyStore`](super::jwks::StaticKeyStore)); opaque tokens are still introspected at the provider.
    pub fn with_keys(
        settings: OidcSettings,
        keys: Arc<dyn KeyStore>,
        metrics: AuthMetrics,
    ) -> Result<Self, ClientError> {
        Self::build(settings, Some(keys), metrics)
    }

    fn build(
        settings: OidcSettings,
        keys: Option<Arc<dyn KeyStore>>,
        metrics: AuthMetrics,
    ) -> Result<Self, ClientError> {
        let http = provider_client(settings.ca_cert.as_deref())?;
        let discovery = Arc::new(Discovery::new(http.clone(), &settings.issuer));
        let keys = keys.unwrap_or_else(|| {
            Arc::new(RemoteKeyStore::new(http.clone(), settings.jwks_uri.clone(), discovery.clone(), metrics.clone()))
        });
        Ok(Self { metrics, ..Self::with_key_store(settings, keys, http, discovery) })
    }

    /// A verifier with its own key store (tests use static keys).
    pub(crate) fn with_key_store(
        settings: OidcSettings,
        keys: Arc<dyn KeyStore>,
        http: reqwest::Client,
        discovery: Arc<Discovery>,
    ) -> Self {
        let settings = Arc::new(settings);
        Self {
            introspector: Introspector::new(http, settings.clone(), discovery),
            settings,
            keys,
            cache: quick_cache::sync::Cache::new(CACHE_CAPACITY),
            outage_until: AtomicU64::new(0),
            metrics: AuthMetrics::default(),
        }
    }

    /// The settings this verifier enforces.
    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    /// Where authentication decisions are counted.
    pub fn metrics(&self) -> &AuthMetrics {
        &self.metrics
    }

    /// The subject of `token` if it was verified before and is still valid, without verifying it (a cache look-up
    /// that leaves the cache's order and the metrics alone): what the rate limiter keys on.
    pub fn cached_subject(&self, token: &str) -> Option<String> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.cache.peek(&digest).filter(|hit| hit.until > unix_now()).map(|hit| hit.principal.subject.clone())
    }

    /// Whether tokens can be checked now: the provider's signing keys are loaded, or can be loaded.
    pub async fn is_ready(&self) -> bool {
        self.keys.warm().await.is_ok()
    }

    /// Who `token` speaks for, if it is valid for this server now. Concurrent first uses of one token wait for a
    /// single verification (one introspection call, one signature check) instead of each doing their own.
    pub async fn verify(&self, token: &str) -> Result<Arc<Principal>, AuthError> {
        let now = unix_now();
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let guard = match self.cache.get_value_or_guard_async(&digest).await {
            Ok(hit) if hit.until > now => {
                self.metrics.token_cache(true);
                return Ok(hit.principal);
            }
            Ok(_stale) => {
                self.cache.remove(&digest);
                None
            }
            Err(guard) => Some(guard),
        };
        self.metrics.token_cache(false);
        let verified = self.verify_uncached(token, now).await?;
        match guard {
            Some(guard) => {
                let _ = guard.insert(verified.clone());
            }
            None => self.cache.insert(digest, verified.clone()),
        }
        Ok(verified.principal)
    }

    async fn verify_uncached(&self, token: &str, now: u64) -> Result<Verified, AuthError> {
        if looks_like_jwt(token) {
            return self.verify_jwt(token).await;
        }
        if self.outage_until.load(Ordering::Relaxed) > now {
            // The provider just failed: answer at once instead of queueing every request behind a timeout.
            return Err(AuthError::ProviderUnavailable);
        }
        match self.introspector.introspect(token, now).await {
            Ok(answer) => Ok(Verified { principal: Arc::new(answer.principal), until: answer.trust_until }),
            Err(AuthError::ProviderUnavailable) => {
                self.outage_until.store(now + OUTAGE_BACKOFF_SECS, Ordering::Relaxed);
                Err(AuthError::ProviderUnavailable)
            }
            Err(other) => Err(other),
        }
    }

    async fn verify_jwt(&self, token: &str) -> Result<Verified, AuthError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| AuthError::invalid(Rejection::Malformed, "The access token is not a well-formed JWT"))?;
        if !ACCEPTED.contains(&header.alg) {
            return Err(AuthError::invalid(
                Rejection::Malformed,
                format!("The access token's algorithm {:?} is not accepted", header.alg),
            ));
        }
        let key = self.keys.key(header.kid.as_deref()).await?.ok_or_else(|| {
            AuthError::invalid(Rejection::BadSignature, "The access token is signed with an unknown key")
        })?;
        if key.key.family() != header.alg.family() || key.algorithm.is_some_and(|pinned| pinned != header.alg) {
            return Err(AuthError::invalid(
                Rejection::Malformed,
                "The access token's algorithm does not match its key",
            ));
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&self.settings.audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation)
            .map_err(|error| reason(error.kind()))?;
        let principal = super::principal::from_claims(&data.claims, &self.settings.username_claim)
            .ok_or_else(|| AuthError::invalid(Rejection::Malformed, "The access token names no subject"))?;
        let until = data.claims.get("exp").and_then(Value::as_u64).unwrap_or(0) + LEEWAY_SECS;
        Ok(Verified { principal: Arc::new(principal), until })
    }
}

/// Compact JWS: three base64url parts. Anything else is an opaque token for introspection.
fn looks_like_jwt(token: &str) -> bool {
    token.bytes().filter(|b| *b == b'.').count() == 2
}

fn reason(kind: &ErrorKind) -> AuthError {
    let (why, text) = match kind {
        ErrorKind::ExpiredSignature => (Rejection::Expired, "The access token expired"),
        ErrorKind::ImmatureSignature => (Rejection::Expired, "The access token is not valid yet"),
        ErrorKind::InvalidIssuer => (Rejection::Foreign, "The access token was issued by another provider"),
        ErrorKind::InvalidAudience => (Rejection::Foreign, "The access token is meant for another audience"),
        ErrorKind::InvalidSignature => (Rejection::BadSignature, "The access token's signature is invalid"),
        ErrorKind::MissingRequiredClaim(_) => (Rejection::Malformed, "The access token lacks a required claim"),
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
            (Rejection::Malformed, "The access token's algorithm is not accepted")
        }
        _ => (Rejection::Malformed, "The access token is not a well-formed JWT"),
    };
    AuthError::invalid(why, text)
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use jsonwebtoken::{EncodingKey, Header, jwk::Jwk, jwk::JwkSet};
    use serde_json::json;

    use super::*;
    use crate::{auth::jwks::StaticKeyStore, config::AuthSettings};

    const RSA_PEM: &[u8] = include_bytes!("testdata/rsa-test-key.pem");
    const EC_PEM: &[u8] = include_bytes!("testdata/ec-test-key.pem");
    const ISSUER: &str = "http://idp.test";

    fn rsa_key() -> EncodingKey {
        EncodingKey::from_rsa_pem(RSA_PEM).expect("test RSA key")
    }

    fn verifier() -> TokenVerifier {
        let mut jwk = Jwk::from_encoding_key(&rsa_key(), Algorithm::RS256).expect("jwk");
        jwk.common.key_id = Some("k1".into());
        let mut ec =
            Jwk::from_encoding_key(&EncodingKey::from_ec_pem(EC_PEM).expect("ec"), Algorithm::ES256).expect("jwk");
        ec.common.key_id = Some("e1".into());
        let keys = Arc::new(StaticKeyStore::new(&JwkSet { keys: vec![jwk, ec] }));
        let config = AuthSettings {
            web: Some(crate::config::secret_json(&json!({"client_id": "api", "issuer": ISSUER}))),
            ..AuthSettings::default()
        };
        let settings = OidcSettings::from_settings(&config).expect("valid").expect("configured");
        let http = provider_client(None).expect("client");
        let discovery = Arc::new(Discovery::new(http.clone(), ISSUER));
        TokenVerifier::with_key_store(settings, keys, http, discovery)
    }

    fn claims() -> Value {
        let now = unix_now();
        json!({"iss": ISSUER, "aud": "api", "sub": "s1", "exp": now + 300, "iat": now, "scope": "r w",
               "client_id": "c1", "preferred_username": "ada"})
    }

    fn sign(claims: &Value, alg: Algorithm, kid: Option<&str>, key: &EncodingKey) -> String {
        let header = Header { kid: kid.map(str::to_owned), ..Header::new(alg) };
        jsonwebtoken::encode(&header, claims, key).expect("signed")
    }

    fn rs256(claims: &Value) -> String {
        sign(claims, Algorithm::RS256, Some("k1"), &rsa_key())
    }

    async fn refusal(token: &str) -> String {
        match verifier().verify(token).await {
            Err(AuthError::InvalidToken(_, reason)) => reason,
            other => panic!("expected invalid_token, got {other:?}"),
        }
    }

    fn b64(value: &Value) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
    }

    #[tokio::test]
    async fn a_valid_token_yields_its_principal_and_is_cached() {
        let verifier = verifier();
        let token = rs256(&claims());
        let principal = verifier.verify(&token).await.expect("valid");
        assert_eq!(principal.subject, "s1");
        assert_eq!(principal.username, "ada");
        assert_eq!(principal.client_id.as_deref(), Some("c1"));
        assert!(principal.has_scope("r") && principal.has_scope("w"));
        assert_eq!(verifier.cache.len(), 1);
        assert_eq!(verifier.verify(&token).await.expect("cached"), principal);
    }

    #[tokio::test]
    async fn an_audience_list_containing_ours_is_accepted() {
        let mut claims = claims();
        claims["aud"] = json!(["other", "api"]);
        assert!(verifier().verify(&rs256(&claims)).await.is_ok());
    }

    #[tokio::test]
    async fn es256_tokens_verify_with_their_ec_key() {
        let key = EncodingKey::from_ec_pem(EC_PEM).expect("ec");
        assert!(verifier().verify(&sign(&claims(), Algorithm::ES256, Some("e1"), &key)).await.is_ok());
    }

    #[tokio::test]
    async fn expired_and_not_yet_valid_tokens_are_refused_beyond_the_leeway() {
        let now = unix_now();
        let mut expired = claims();
        expired["exp"] = json!(now - LEEWAY_SECS - 5);
        assert_eq!(refusal(&rs256(&expired)).await, "The access token expired");
        let mut early = claims();
        early["nbf"] = json!(now + LEEWAY_SECS + 60);
        assert_eq!(refusal(&rs256(&early)).await, "The access token is not valid yet");
        let mut within = claims();
        within["exp"] = json!(now - 5);
        assert!(verifier().verify(&rs256(&within)).await.is_ok(), "5 s of clock skew are tolerated");
    }

    #[tokio::test]
    async fn foreign_issuer_or_audience_and_missing_claims_are_refused() {
        let mut foreign = claims();
        foreign["iss"] = json!("http://evil.test");
        assert_eq!(refusal(&rs256(&foreign)).await, "The access token was issued by another provider");
        let mut elsewhere = claims();
        elsewhere["aud"] = json!("another-api");
        assert_eq!(refusal(&rs256(&elsewhere)).await, "The access token is meant for another audience");
        for claim in ["sub", "exp", "aud"] {
            let mut partial = claims();
            partial.as_object_mut().expect("object").remove(claim);
            assert_eq!(refusal(&rs256(&partial)).await, "The access token lacks a required claim", "{claim}");
        }
    }

    #[tokio::test]
    async fn a_tampered_payload_fails_the_signature() {
        let token = rs256(&claims());
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut forged = claims();
        forged["scope"] = json!("r w admin");
        parts[1] = b64(&forged);
        assert_eq!(refusal(&parts.join(".")).await, "The access token's signature is invalid");
    }

    #[tokio::test]
    async fn alg_none_and_hmac_with_the_public_key_are_refused() {
        let unsigned = format!("{}.{}.", b64(&json!({"alg": "none", "kid": "k1"})), b64(&claims()));
        let reason = refusal(&unsigned).await;
        assert!(reason.contains("well-formed") || reason.contains("not accepted"), "{reason}");

        // Algorithm confusion: HS256 keyed with the public key the verifier knows.
        let public_pem = include_bytes!("testdata/rsa-test-pub.pem");
        let confused =
            sign(&claims(), Algorithm::HS256, Some("k1"), &EncodingKey::from_secret(public_pem).expect("hmac key"));
        assert_eq!(refusal(&confused).await, "The access token's algorithm HS256 is not accepted");
    }

    #[tokio::test]
    async fn unknown_kid_and_algorithm_key_mismatch_are_refused() {
        assert_eq!(
            refusal(&sign(&claims(), Algorithm::RS256, Some("nope"), &rsa_key())).await,
            "The access token is signed with an unknown key"
        );
        let ec = EncodingKey::from_ec_pem(EC_PEM).expect("ec");
        assert_eq!(
            refusal(&sign(&claims(), Algorithm::ES256, Some("k1"), &ec)).await,
            "The access token's algorithm does not match its key"
        );
    }

    #[tokio::test]
    async fn opaque_tokens_need_a_client_secret_to_introspect() {
        let reason = refusal("opaque-token-value").await;
        assert!(reason.contains("no client secret"), "{reason}");
    }
}
