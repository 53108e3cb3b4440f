//! RFC 7662 introspection of opaque access tokens, authenticated with this server's client credentials, through
//! the `oauth2` crate, and judged as strictly as a JWT: active, not expired, our issuer when it names one, our
//! audience (unless `introspection_requires_audience` is off), and an access token (`token_type`, when given, is
//! `Bearer` or `DPoP`; a refresh token carries none and no audience either). The verifier caches the answers, so a
//! hot token costs one call, and a refused one one call per 30 s.

use std::sync::Arc;

use oauth2::{
    AccessToken, ClientId, ClientSecret, EndpointNotSet, EndpointSet, ExtraTokenFields, IntrospectionUrl,
    RequestTokenError, StandardRevocableToken, StandardTokenIntrospectionResponse, TokenIntrospectionResponse,
    basic::{BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenResponse, BasicTokenType},
};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::http::{OAuth2Http, ProviderClient, provider_span};
use super::{AuthError, OidcSettings, Principal, Rejection, discovery::Discovery, settings::provider_url_allowed};

/// Members of the introspection answer beyond RFC 7662's, such as `preferred_username`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ExtraMembers {
    #[serde(flatten)]
    members: Map<String, Value>,
}

impl ExtraTokenFields for ExtraMembers {}

type IntrospectionAnswer = StandardTokenIntrospectionResponse<ExtraMembers, BasicTokenType>;

type IntrospectionClient = oauth2::Client<
    BasicErrorResponse,
    BasicTokenResponse,
    IntrospectionAnswer,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
>;

/// Asks the provider about opaque tokens.
pub struct Introspector {
    http: OAuth2Http,
    settings: Arc<OidcSettings>,
    discovery: Arc<Discovery>,
}

/// A positive answer: who the token speaks for, and until when that may be trusted without asking again.
pub struct Introspected {
    pub principal: Principal,
    /// Unix seconds: the token's `exp`, bounded by the settings' introspection cache time.
    pub trust_until: u64,
}

impl Introspector {
    /// An introspector using this server's client credentials from `settings`.
    pub fn new(http: ProviderClient, settings: Arc<OidcSettings>, discovery: Arc<Discovery>) -> Self {
        Self { http: http.for_oauth2(), settings, discovery }
    }

    async fn endpoint(&self) -> Result<String, AuthError> {
        if let Some(uri) = &self.settings.introspection_uri {
            return Ok(uri.clone());
        }
        self.discovery.metadata().await?.introspection_endpoint.clone().ok_or_else(|| {
            AuthError::invalid(Rejection::Malformed, "Opaque access tokens are not accepted by this server")
        })
    }

    /// Introspects `token`; inactive, expired or foreign tokens are `InvalidToken`.
    pub async fn introspect(&self, token: &str, now: u64) -> Result<Introspected, AuthError> {
        let Some(secret) = &self.settings.client_secret else {
            return Err(AuthError::invalid(
                Rejection::Malformed,
                "Opaque access tokens are not accepted: the server has no client secret to introspect them",
            ));
        };
        let endpoint = self.endpoint().await?;
        if let Err(reason) = provider_url_allowed(&endpoint, self.settings.allow_insecure_http) {
            tracing::error!("discovery names an introspection endpoint the server will not call: {reason}");
            return Err(AuthError::ProviderUnavailable);
        }
        let url = IntrospectionUrl::new(endpoint.clone()).map_err(|error| {
            tracing::error!("the introspection endpoint {endpoint} is not a URL: {error}");
            AuthError::ProviderUnavailable
        })?;
        let client: IntrospectionClient = oauth2::Client::new(ClientId::new(self.settings.client_id.clone()))
            .set_client_secret(ClientSecret::new(secret.expose_secret().to_owned()))
            .set_introspection_url(url);
        let token = AccessToken::new(token.to_owned());
        let span = provider_span("POST", "introspection", &endpoint);
        let answered = client.introspect(&token).set_token_type_hint("access_token").request_async(&self.http).await;
        // oauth2 accepts only a 200; its errors do not keep the status.
        span.finish_http(answered.is_ok(), answered.is_ok().then_some(200));
        let answer = answered.map_err(|error| {
            match &error {
                RequestTokenError::ServerResponse(response) => tracing::error!(
                    "the provider refused our introspection request ({}); check the server's client credentials",
                    response.error()
                ),
                other => tracing::warn!("introspection at {endpoint} failed: {other}"),
            }
            AuthError::ProviderUnavailable
        })?;
        self.judge(answer, now)
    }

    fn judge(&self, answer: IntrospectionAnswer, now: u64) -> Result<Introspected, AuthError> {
        if !answer.active() {
            return Err(AuthError::invalid(Rejection::Inactive, "The access token is not active"));
        }
        let claims = match serde_json::to_value(&answer) {
            Ok(Value::Object(claims)) => claims,
            _ => return Err(AuthError::ProviderUnavailable),
        };
        judge_claims(&claims, &self.settings, now)
    }
}

/// `token_type` values of access tokens (RFC 6750's and RFC 9449's schemes; compared ignoring case).
const ACCESS_TOKEN_TYPES: [&str; 2] = ["bearer", "dpop"];

/// The checks an active introspection answer must still pass: not expired, our issuer, our audience, an access
/// token.
fn judge_claims(claims: &Map<String, Value>, settings: &OidcSettings, now: u64) -> Result<Introspected, AuthError> {
    if let Some(kind) = claims.get("token_type")
        && !kind.as_str().is_some_and(|kind| ACCESS_TOKEN_TYPES.iter().any(|ours| kind.eq_ignore_ascii_case(ours)))
    {
        return Err(AuthError::invalid(Rejection::Foreign, "The token is not an access token"));
    }
    let exp = claims.get("exp").and_then(Value::as_u64);
    if exp.is_some_and(|exp| exp <= now) {
        return Err(AuthError::invalid(Rejection::Expired, "The access token expired"));
    }
    if let Some(issuer) = claims.get("iss").and_then(Value::as_str)
        && issuer != settings.issuer
    {
        return Err(AuthError::invalid(Rejection::Foreign, "The access token was issued by another provider"));
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if audiences.is_empty() && settings.introspection_requires_audience {
        // A token without an audience may be meant for anyone, and a refresh token has none.
        return Err(AuthError::invalid(Rejection::Foreign, "The access token names no audience"));
    }
    if !audiences.is_empty() && !audiences.iter().any(|aud| settings.audiences.iter().any(|ours| ours == aud)) {
        return Err(AuthError::invalid(Rejection::Foreign, "The access token is meant for another audience"));
    }
    let principal = super::principal::from_claims(claims, &settings.username_claim)?;
    let bound = now + settings.introspection_cache.as_secs().max(1);
    Ok(Introspected { principal, trust_until: exp.map_or(bound, |exp| exp.min(bound)) })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{auth::settings::OidcSettings, config::AuthSettings};

    fn settings() -> OidcSettings {
        let config = AuthSettings {
            web: Some(crate::config::secret_json(
                &json!({"client_id": "api", "issuer": "https://idp", "introspection_cache_secs": 60}),
            )),
            ..AuthSettings::default()
        };
        OidcSettings::from_settings(&config).expect("valid").expect("configured")
    }

    fn judged(claims: Value) -> Result<Introspected, AuthError> {
        judge_claims(claims.as_object().expect("object"), &settings(), 1_000)
    }

    #[test]
    fn active_answer_for_us_is_trusted_until_the_cache_bound() {
        let ok = judged(json!({"active": true, "sub": "s", "aud": "api", "iss": "https://idp", "exp": 5_000}))
            .expect("accepted");
        assert_eq!(ok.trust_until, 1_060);
        let soon = judged(json!({"active": true, "sub": "s", "aud": "api", "exp": 1_010})).expect("accepted");
        assert_eq!(soon.trust_until, 1_010, "never trusted past exp");
        let typed = json!({"active": true, "sub": "s", "aud": ["x", "api"], "token_type": "Bearer"});
        assert!(judged(typed).is_ok());
    }

    #[test]
    fn an_answer_without_our_audience_or_for_another_token_type_is_refused() {
        for (claims, reason) in [
            (json!({"active": true, "sub": "s"}), "The access token names no audience"),
            (json!({"active": true, "sub": "s", "aud": "api", "token_type": "refresh_token"}), "not an access token"),
            (json!({"active": true, "sub": "s", "aud": "api", "token_type": "id_token"}), "not an access token"),
            (json!({"active": true, "sub": "s", "aud": "api", "token_type": 7}), "not an access token"),
        ] {
            match judged(claims.clone()) {
                Err(AuthError::InvalidToken(Rejection::Foreign, text)) => assert!(text.contains(reason), "{claims}"),
                Err(other) => panic!("{claims}: {other:?}"),
                Ok(_) => panic!("{claims}: accepted"),
            }
        }
        let mut lenient = settings();
        lenient.introspection_requires_audience = false;
        let answer = json!({"active": true, "sub": "s"});
        assert!(judge_claims(answer.as_object().expect("object"), &lenient, 1_000).is_ok(), "when told so");
    }

    #[test]
    fn expired_foreign_issuer_or_audience_and_subjectless_answers_are_refused() {
        for claims in [
            json!({"active": true, "sub": "s", "exp": 999}),
            json!({"active": true, "sub": "s", "aud": "api", "iss": "http://evil"}),
            json!({"active": true, "sub": "s", "aud": ["other"]}),
            json!({"active": true, "aud": "api"}),
        ] {
            assert!(matches!(judged(claims.clone()), Err(AuthError::InvalidToken(..))), "{claims}");
        }
    }
}
