//! `TokenVerifier`: turns a bearer token into a [`Principal`] or an [`AuthError`]. JWTs are verified locally
//! (signature by a provider key, `iss`, `aud`, `exp`/`nbf`, a bounded lifetime, an access-token `typ` and no ID
//! token's claims, asymmetric algorithms only); anything else is introspected. Verified tokens are cached by their
//! SHA-256 until they expire (or the key that verified one is removed), so a hot token costs a hash and a map
//! lookup instead of a signature check or a provider call; refused introspections are remembered briefly, so a
//! bad opaque token repeated costs one provider call, not one per request.

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
    http::{ClientError, ProviderClient, provider_client},
    introspection::Introspector,
    jwks::{KeyStore, RemoteKeyStore},
    settings::normalized_type,
};

/// Tolerated clock difference with the provider for `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 30;
/// After the provider failed an introspection, further opaque tokens fail fast for this long.
pub const OUTAGE_BACKOFF_SECS: u64 = 2;
/// Verified tokens remembered at most; beyond it the least recently used are dropped.
pub const CACHE_CAPACITY: usize = 10_000;
/// How long the provider's refusal of an opaque token is remembered.
pub const REFUSAL_CACHE_SECS: u64 = 30;

/// Half the order of P-256 and P-384: an ECDSA `s` above it is the high-S twin of a valid signature.
const P256_HALF_ORDER: [u8; 32] = hex_bytes("7fffffff800000007fffffffffffffffde737d56d38bcf4279dce5617e3192a8");
const P384_HALF_ORDER: [u8; 48] =
    hex_bytes("7fffffffffffffffffffffffffffffffffffffffffffffffe3b1a6c0fa1b96efac0d06d9245853bd76760cb5666294b9");

/// Claims only ID tokens carry (OpenID Connect Core, sections 2 and 3.3.2.11): such a token is proof of a sign-in
/// for a client, never a grant for this API.
const ID_TOKEN_CLAIMS: [&str; 3] = ["nonce", "at_hash", "c_hash"];

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
    /// For a JWT, the key store's epoch when its key verified it; a later epoch means a key was removed since.
    epoch: Option<u64>,
}

/// Verifies bearer tokens for one OpenID provider.
pub struct TokenVerifier {
    settings: Arc<OidcSettings>,
    keys: Arc<dyn KeyStore>,
    introspector: Introspector,
    cache: quick_cache::sync::Cache<[u8; 32], Verified>,
    /// Opaque tokens the provider refused, with the refusal and the unix second it may be forgotten.
    refused: quick_cache::sync::Cache<[u8; 32], (AuthError, u64)>,
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
        let http = provider_client(settings.ca_cert.as_deref(), settings.provider_timeout)?;
        let http = ProviderClient::new(http, settings.provider_max_in_flight);
        let discovery = Arc::new(Discovery::new(http.clone(), &settings.issuer));
        let keys = keys.unwrap_or_else(|| {
            let store = Arc::new(RemoteKeyStore::new(
                http.clone(),
                settings.jwks_uri.clone(),
                discovery.clone(),
                (settings.jwks_refresh, settings.allow_insecure_http),
                metrics.clone(),
            ));
            store.refresh_in_background();
            store
        });
        Ok(Self { metrics, ..Self::with_key_store(settings, keys, http, discovery) })
    }

    /// A verifier with its own key store (tests use static keys).
    pub(crate) fn with_key_store(
        settings: OidcSettings,
        keys: Arc<dyn KeyStore>,
        http: ProviderClient,
        discovery: Arc<Discovery>,
    ) -> Self {
        let settings = Arc::new(settings);
        Self {
            introspector: Introspector::new(http, settings.clone(), discovery),
            settings,
            keys,
            cache: quick_cache::sync::Cache::new(CACHE_CAPACITY),
            refused: quick_cache::sync::Cache::new(CACHE_CAPACITY),
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
            Ok(hit) if hit.until > now && hit.epoch.is_none_or(|epoch| epoch == self.keys.epoch()) => {
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
        let verified = self.verify_uncached(token, &digest, now).await?;
        match guard {
            Some(guard) => {
                let _ = guard.insert(verified.clone());
            }
            None => self.cache.insert(digest, verified.clone()),
        }
        Ok(verified.principal)
    }

    async fn verify_uncached(&self, token: &str, digest: &[u8; 32], now: u64) -> Result<Verified, AuthError> {
        if looks_like_jwt(token) {
            return self.verify_jwt(token, now).await;
        }
        match self.refused.get(digest) {
            Some((refusal, until)) if until > now => return Err(refusal),
            Some(_) => {
                self.refused.remove(digest);
            }
            None => {}
        }
        if self.outage_until.load(Ordering::Relaxed) > now {
            // The provider just failed: answer at once instead of queueing every request behind a timeout.
            return Err(AuthError::ProviderUnavailable);
        }
        match self.introspector.introspect(token, now).await {
            Ok(answer) => {
                Ok(Verified { principal: Arc::new(answer.principal), until: answer.trust_until, epoch: None })
            }
            Err(AuthError::ProviderUnavailable) => {
                self.outage_until.store(now + OUTAGE_BACKOFF_SECS, Ordering::Relaxed);
                Err(AuthError::ProviderUnavailable)
            }
            Err(refusal) => {
                // Remembered by the token's hash, so an anonymous caller repeating a bad token is answered here.
                self.refused.insert(*digest, (refusal.clone(), now + REFUSAL_CACHE_SECS));
                Err(refusal)
            }
        }
    }

    async fn verify_jwt(&self, token: &str, now: u64) -> Result<Verified, AuthError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| AuthError::invalid(Rejection::Malformed, "The access token is not a well-formed JWT"))?;
        if !ACCEPTED.contains(&header.alg) {
            return Err(AuthError::invalid(
                Rejection::Malformed,
                format!("The access token's algorithm {:?} is not accepted", header.alg),
            ));
        }
        let typ = header.typ.as_deref().map(normalized_type).unwrap_or_default();
        if !self.settings.jwt_types.contains(&typ) {
            return Err(AuthError::invalid(
                Rejection::Foreign,
                "The token's type (its `typ` header) is not one this server accepts as an access token",
            ));
        }
        if self.settings.ecdsa_low_s_only && has_high_s(token, header.alg) {
            return Err(AuthError::invalid(
                Rejection::BadSignature,
                "The access token's signature is not in low-S form",
            ));
        }
        // Read before the key is looked up: a removal the lookup triggers must not pass this token under the new
        // epoch.
        let epoch = self.keys.epoch();
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
        if ID_TOKEN_CLAIMS.iter().any(|claim| data.claims.contains_key(*claim)) {
            return Err(AuthError::invalid(Rejection::Foreign, "An ID token is not an access token"));
        }
        let exp = data.claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
        let iat = data.claims.get("iat").and_then(Value::as_u64);
        if iat.is_some_and(|iat| iat > now + LEEWAY_SECS) {
            return Err(AuthError::invalid(Rejection::Malformed, "The access token was issued in the future"));
        }
        let lifetime = exp.saturating_sub(iat.unwrap_or(now));
        if lifetime > self.settings.max_token_lifetime.as_secs() + LEEWAY_SECS {
            return Err(AuthError::invalid(
                Rejection::Malformed,
                "The access token's lifetime is longer than this server accepts",
            ));
        }
        let principal = super::principal::from_claims(&data.claims, &self.settings.username_claim)?;
        Ok(Verified { principal: Arc::new(principal), until: exp + LEEWAY_SECS, epoch: Some(epoch) })
    }
}

/// Whether `token`'s ECDSA signature has its `s` in the upper half of the curve order (a malleable twin); false for
/// other algorithms and for signatures too mangled to tell (the signature check refuses those).
fn has_high_s(token: &str, alg: Algorithm) -> bool {
    use base64::Engine as _;
    let half: &[u8] = match alg {
        Algorithm::ES256 => &P256_HALF_ORDER,
        Algorithm::ES384 => &P384_HALF_ORDER,
        _ => return false,
    };
    let Some(signature) = token.rsplit('.').next() else { return false };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(signature) else { return false };
    // JWS ECDSA signatures are r || s, each as long as the order (RFC 7518, section 3.4).
    bytes.len() == 2 * half.len() && &bytes[half.len()..] > half
}

/// Bytes from hex digits, at compile time.
const fn hex_bytes<const N: usize>(hex: &str) -> [u8; N] {
    const fn digit(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("not a lowercase hex digit"),
        }
    }
    let hex = hex.as_bytes();
    assert!(hex.len() == 2 * N, "wrong length");
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = digit(hex[2 * i]) << 4 | digit(hex[2 * i + 1]);
        i += 1;
    }
    out
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
    const ISSUER: &str = "https://idp.test";

    fn rsa_key() -> EncodingKey {
        EncodingKey::from_rsa_pem(RSA_PEM).expect("test RSA key")
    }

    fn verifier() -> TokenVerifier {
        let mut jwk = Jwk::from_encoding_key(&rsa_key(), Algorithm::RS256).expect("jwk");
        jwk.common.key_id = Some("k1".into());
        let mut ec =
            Jwk::from_encoding_key(&EncodingKey::from_ec_pem(EC_PEM).expect("ec"), Algorithm::ES256).expect("jwk");
        ec.common.key_id = Some("e1".into());
        verifier_with(Arc::new(StaticKeyStore::new(&JwkSet { keys: vec![jwk, ec] })))
    }

    fn verifier_with(keys: Arc<dyn KeyStore>) -> TokenVerifier {
        verifier_from(keys, json!({}))
    }

    /// A verifier with `oidc` members `extras`.
    fn verifier_from(keys: Arc<dyn KeyStore>, extras: Value) -> TokenVerifier {
        let mut web = json!({"client_id": "api", "issuer": ISSUER});
        for (member, value) in extras.as_object().expect("object") {
            web[member] = value.clone();
        }
        let config = AuthSettings { web: Some(crate::config::secret_json(&web)), ..AuthSettings::default() };
        let settings = OidcSettings::from_settings(&config).expect("valid").expect("configured");
        let http = ProviderClient::new(provider_client(None, std::time::Duration::from_secs(5)).expect("client"), 4);
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
    async fn only_access_token_types_pass_and_id_token_claims_are_refused() {
        let typed = |typ: Option<&str>| {
            let header =
                Header { kid: Some("k1".into()), typ: typ.map(str::to_owned), ..Header::new(Algorithm::RS256) };
            jsonwebtoken::encode(&header, &claims(), &rsa_key()).expect("signed")
        };
        for typ in ["at+jwt", "JWT", "application/at+JWT"] {
            assert!(verifier().verify(&typed(Some(typ))).await.is_ok(), "{typ}");
        }
        let not_access = "The token's type (its `typ` header) is not one this server accepts as an access token";
        for typ in [None, Some("id_token+jwt"), Some("logout+jwt")] {
            assert_eq!(refusal(&typed(typ)).await, not_access, "{typ:?}");
        }
        for claim in ID_TOKEN_CLAIMS {
            let mut id_token = claims();
            id_token[claim] = json!("x");
            assert_eq!(refusal(&rs256(&id_token)).await, "An ID token is not an access token", "{claim}");
        }
    }

    #[tokio::test]
    async fn the_lifetime_is_bounded_and_iat_may_not_lie_ahead() {
        let now = unix_now();
        let mut long = claims();
        long["exp"] = json!(now + 86_400 + LEEWAY_SECS + 10);
        assert_eq!(refusal(&rs256(&long)).await, "The access token's lifetime is longer than this server accepts");
        let mut ahead = claims();
        ahead["iat"] = json!(now + LEEWAY_SECS + 60);
        assert_eq!(refusal(&rs256(&ahead)).await, "The access token was issued in the future");
        let mut skewed = claims();
        skewed["iat"] = json!(now + 10);
        assert!(verifier().verify(&rs256(&skewed)).await.is_ok(), "within the leeway");
    }

    /// The high-S twin of `token`: the same r, s replaced by n - s (P-256).
    fn high_s_twin(token: &str) -> String {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let (signed, signature) = token.rsplit_once('.').expect("three parts");
        let mut bytes = URL_SAFE_NO_PAD.decode(signature).expect("base64");
        let order = hex_bytes::<32>("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");
        let mut borrow = 0i16;
        for i in (0..32).rev() {
            let difference = i16::from(order[i]) - i16::from(bytes[32 + i]) - borrow;
            bytes[32 + i] = difference.rem_euclid(256) as u8;
            borrow = i16::from(difference < 0);
        }
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(bytes))
    }

    #[tokio::test]
    async fn the_high_s_twin_of_an_ecdsa_signature_is_refused_when_low_s_is_required() {
        let key = EncodingKey::from_ec_pem(EC_PEM).expect("ec");
        let token = sign(&claims(), Algorithm::ES256, Some("e1"), &key);
        let twin = high_s_twin(&token);
        let (low, high) = if has_high_s(&token, Algorithm::ES256) { (twin, token) } else { (token, twin) };
        assert!(has_high_s(&high, Algorithm::ES256) && !has_high_s(&low, Algorithm::ES256));
        let lenient = verifier();
        assert!(lenient.verify(&low).await.is_ok() && lenient.verify(&high).await.is_ok(), "both verify by default");
        let mut ec = Jwk::from_encoding_key(&key, Algorithm::ES256).expect("jwk");
        ec.common.key_id = Some("e1".into());
        let keys = Arc::new(StaticKeyStore::new(&JwkSet { keys: vec![ec] }));
        let strict = verifier_from(keys, json!({"ecdsa_low_s_only": true}));
        assert!(strict.verify(&low).await.is_ok());
        match strict.verify(&high).await {
            Err(AuthError::InvalidToken(_, reason)) => {
                assert_eq!(reason, "The access token's signature is not in low-S form");
            }
            other => panic!("the high-S twin passed: {other:?}"),
        }
    }

    /// Keys that can be taken away, as a provider removes one.
    struct Revocable {
        keys: std::sync::Mutex<Option<Arc<StaticKeyStore>>>,
        epoch: AtomicU64,
    }

    impl KeyStore for Revocable {
        fn key<'a>(&'a self, kid: Option<&'a str>) -> super::super::jwks::KeyFuture<'a> {
            let keys = self.keys.lock().expect("lock").clone();
            Box::pin(async move {
                match keys {
                    Some(keys) => keys.key(kid).await,
                    None => Ok(None),
                }
            })
        }

        fn epoch(&self) -> u64 {
            self.epoch.load(Ordering::Relaxed)
        }
    }

    #[tokio::test]
    async fn a_cached_token_is_verified_again_once_the_store_s_epoch_moves() {
        let mut jwk = Jwk::from_encoding_key(&rsa_key(), Algorithm::RS256).expect("jwk");
        jwk.common.key_id = Some("k1".into());
        let store = Arc::new(Revocable {
            keys: std::sync::Mutex::new(Some(Arc::new(StaticKeyStore::new(&JwkSet { keys: vec![jwk] })))),
            epoch: AtomicU64::new(0),
        });
        let verifier = verifier_with(store.clone());
        let token = rs256(&claims());
        assert!(verifier.verify(&token).await.is_ok());
        *store.keys.lock().expect("lock") = None;
        assert!(verifier.verify(&token).await.is_ok(), "served from the cache while the epoch stands");
        store.epoch.fetch_add(1, Ordering::Relaxed);
        assert_eq!(
            match verifier.verify(&token).await {
                Err(AuthError::InvalidToken(_, reason)) => reason,
                other => panic!("still accepted: {other:?}"),
            },
            "The access token is signed with an unknown key"
        );
    }

    #[tokio::test]
    async fn opaque_tokens_need_a_client_secret_to_introspect() {
        let reason = refusal("opaque-token-value").await;
        assert!(reason.contains("no client secret"), "{reason}");
    }
}
