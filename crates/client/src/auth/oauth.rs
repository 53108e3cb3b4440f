//! The OAuth 2.0 wire: credentials that never show in logs, client authentication, and the three form posts the
//! client makes (device authorization, token, revocation) with their answers sorted into what a caller acts on.
//!
//! These are plain reqwest form posts rather than the `oauth2` crate: the client needs its own polling state
//! machine, tolerant parsing (`expires_in` as a string, `verification_url`) and exact control over which
//! answers are retried, and the requests themselves are a handful of form fields.

use secrecy::ExposeSecret;
use serde::{Deserialize, Deserializer};
use url::Url;

use super::AuthError;
use crate::net;

/// A token or client secret: secrecy's kept type, whose `Debug` never shows the value, so no log line or error can
/// leak it; the value is read with `expose_secret` only where it is sent or stored.
pub use secrecy::SecretString as Secret;

/// Serialises a secret as its value: only for the 0600 token cache, which exists to keep the tokens.
pub fn serialize_exposed<S: serde::Serializer>(secret: &Secret, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(secret.expose_secret())
}

/// How this client proves its identity at the provider's endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// A public client: `client_id` in the form, no secret (the usual CLI registration, e.g. Azure AD).
    None,
    /// `client_secret_basic`: HTTP Basic with the form-encoded id and secret (RFC 6749, section 2.3.1).
    Basic,
    /// `client_secret_post`: id and secret as form fields.
    Post,
}

/// The client's id, secret and the way the provider wants them presented.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    /// The client id.
    pub id: String,
    /// The secret of a confidential client.
    pub secret: Option<Secret>,
    /// How to send them.
    pub method: AuthMethod,
}

impl ClientCredentials {
    /// Picks the method from the provider's `token_endpoint_auth_methods_supported`: none without a secret,
    /// else Basic (the RFC's default) unless the provider lists only `client_secret_post`.
    pub fn new(id: String, secret: Option<Secret>, supported: Option<&[String]>) -> Self {
        let method = match (&secret, supported) {
            (None, _) => AuthMethod::None,
            (Some(_), Some(methods))
                if methods.iter().any(|m| m == "client_secret_post")
                    && !methods.iter().any(|m| m == "client_secret_basic") =>
            {
                AuthMethod::Post
            }
            (Some(_), _) => AuthMethod::Basic,
        };
        Self { id, secret, method }
    }

    /// Adds the client's identity to a form post.
    fn authenticate(
        &self,
        request: reqwest::RequestBuilder,
        form: &mut Vec<(&'static str, String)>,
    ) -> reqwest::RequestBuilder {
        match (&self.method, &self.secret) {
            (AuthMethod::Basic, Some(secret)) => {
                let encode = |value: &str| url::form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>();
                request.basic_auth(encode(&self.id), Some(encode(secret.expose_secret())))
            }
            (AuthMethod::Post, Some(secret)) => {
                form.push(("client_id", self.id.clone()));
                form.push(("client_secret", secret.expose_secret().to_owned()));
                request
            }
            _ => {
                form.push(("client_id", self.id.clone()));
                request
            }
        }
    }
}

/// Deserialises a number of seconds sent as a JSON number or, by some providers (Azure AD v1), as a string.
fn seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Seconds {
        Number(u64),
        Text(String),
    }
    match Option::<Seconds>::deserialize(deserializer)? {
        None => Ok(None),
        Some(Seconds::Number(n)) => Ok(Some(n)),
        Some(Seconds::Text(text)) => text.trim().parse().map(Some).map_err(serde::de::Error::custom),
    }
}

/// Answer of the device authorization endpoint (RFC 8628, section 3.2).
#[derive(Debug, Clone, Deserialize)]
pub struct DeviceAuthorization {
    /// What the client polls with; a credential.
    pub device_code: Secret,
    /// What the person types at the verification page.
    pub user_code: String,
    /// The page to open. Google spells it `verification_url`.
    #[serde(alias = "verification_url")]
    pub verification_uri: String,
    /// The page with the code already filled in, when the provider offers it.
    #[serde(default)]
    pub verification_uri_complete: Option<String>,
    /// Lifetime of both codes, in seconds.
    #[serde(default, deserialize_with = "seconds")]
    pub expires_in: Option<u64>,
    /// Seconds to wait between polls; 5 when absent.
    #[serde(default, deserialize_with = "seconds")]
    pub interval: Option<u64>,
}

/// A successful token answer (RFC 6749, section 5.1).
#[derive(Debug, Clone, Deserialize)]
pub struct TokenResponse {
    /// The token for API calls (never the ID token).
    pub access_token: Secret,
    /// Must be `Bearer`, in any case.
    pub token_type: String,
    /// Lifetime of the access token in seconds, when the provider says.
    #[serde(default, deserialize_with = "seconds")]
    pub expires_in: Option<u64>,
    /// Present when `offline_access` (or the provider's equivalent) was granted.
    #[serde(default)]
    pub refresh_token: Option<Secret>,
    /// The OpenID Connect ID token; used only to show who logged in.
    #[serde(default)]
    pub id_token: Option<Secret>,
    /// Granted scopes, when they differ from the requested ones or the provider always says.
    #[serde(default)]
    pub scope: Option<String>,
}

/// An OAuth error answer (RFC 6749, section 5.2).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct OAuthError {
    /// The error code, e.g. `authorization_pending`.
    pub error: String,
    /// The provider's explanation for people.
    #[serde(default)]
    pub error_description: Option<String>,
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.error_description {
            Some(description) if !description.is_empty() => write!(f, "{} ({description})", self.error),
            _ => f.write_str(&self.error),
        }
    }
}

/// A token endpoint answer, sorted by what the caller does next.
#[derive(Debug)]
pub enum TokenAnswer {
    /// Tokens were issued.
    Tokens(TokenResponse),
    /// The provider answered with an OAuth error (pending, denied, invalid grant...).
    Refused(OAuthError),
    /// The network failed or the provider had a server error: asking again later may work.
    Transient(String),
    /// The provider answered something that is not OAuth: asking again will not help.
    Invalid(String),
}

/// One form post to the token endpoint.
pub async fn token_request(
    http: &reqwest::Client,
    endpoint: &Url,
    client: &ClientCredentials,
    mut form: Vec<(&'static str, String)>,
) -> TokenAnswer {
    let request = client.authenticate(http.post(endpoint.clone()), &mut form);
    tracing::debug!("token request: {}", net::describe_form(&form));
    let response = match net::send(http, request.form(&form)).await {
        Ok(response) => response,
        Err(error) => return TokenAnswer::Transient(net::reason(&error)),
    };
    let status = response.status();
    let body = match response.bytes().await {
        Ok(body) => body,
        Err(error) => return TokenAnswer::Transient(net::reason(&error)),
    };
    if status.is_success() {
        return match serde_json::from_slice::<TokenResponse>(&body) {
            Ok(tokens) if tokens.token_type.eq_ignore_ascii_case("bearer") => TokenAnswer::Tokens(tokens),
            Ok(tokens) => {
                TokenAnswer::Invalid(format!("token type {:?} is not supported (only Bearer)", tokens.token_type))
            }
            Err(error) => TokenAnswer::Invalid(format!("HTTP {status} without a token response ({error})")),
        };
    }
    match serde_json::from_slice::<OAuthError>(&body) {
        Ok(error) if status.is_server_error() => TokenAnswer::Transient(format!("HTTP {status}: {error}")),
        Ok(error) => TokenAnswer::Refused(error),
        Err(_) if status.is_server_error() => TokenAnswer::Transient(format!("HTTP {status}")),
        Err(_) => TokenAnswer::Invalid(format!("HTTP {status} without an OAuth error body")),
    }
}

/// Starts a device login: asks the provider for a device code and a user code for `scopes`.
pub async fn device_authorization(
    http: &reqwest::Client,
    endpoint: &Url,
    client: &ClientCredentials,
    scopes: &[String],
) -> Result<DeviceAuthorization, AuthError> {
    let mut form = vec![("scope", scopes.join(" "))];
    let request = client.authenticate(http.post(endpoint.clone()), &mut form);
    tracing::debug!("device authorization request: {}", net::describe_form(&form));
    let url = endpoint.to_string();
    let response = net::send(http, request.form(&form))
        .await
        .map_err(|error| AuthError::Unreachable { url: url.clone(), reason: net::reason(&error) })?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|error| AuthError::Unreachable { url: url.clone(), reason: net::reason(&error) })?;
    if status.is_success() {
        return serde_json::from_slice(&body).map_err(|error| AuthError::Unexpected {
            url,
            reason: format!("HTTP {status} without a device authorization response ({error})"),
        });
    }
    match serde_json::from_slice::<OAuthError>(&body) {
        Ok(error) => Err(AuthError::Refused { step: "device authorization request", error }),
        Err(_) => Err(AuthError::Unexpected { url, reason: format!("HTTP {status} without an OAuth error body") }),
    }
}

/// Which kind of token is being revoked (RFC 7009's `token_type_hint`).
#[derive(Debug, Clone, Copy)]
pub enum TokenKind {
    /// A refresh token: revoking it ends the whole grant at most providers.
    Refresh,
    /// An access token.
    Access,
}

/// Revokes `token` (RFC 7009). A provider that cannot revoke this kind of token (`unsupported_token_type`, e.g.
/// for self-contained JWT access tokens) is not an error: there is nothing more the client can do.
pub async fn revoke(
    http: &reqwest::Client,
    endpoint: &Url,
    client: &ClientCredentials,
    token: &Secret,
    kind: TokenKind,
) -> Result<(), AuthError> {
    let hint = match kind {
        TokenKind::Refresh => "refresh_token",
        TokenKind::Access => "access_token",
    };
    let mut form = vec![("token", token.expose_secret().to_owned()), ("token_type_hint", hint.to_owned())];
    let request = client.authenticate(http.post(endpoint.clone()), &mut form);
    tracing::debug!("revocation request: {}", net::describe_form(&form));
    let url = endpoint.to_string();
    let response = net::send(http, request.form(&form))
        .await
        .map_err(|error| AuthError::Unreachable { url: url.clone(), reason: net::reason(&error) })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let body = response.bytes().await.unwrap_or_default();
    match serde_json::from_slice::<OAuthError>(&body) {
        Ok(error) if error.error == "unsupported_token_type" => Ok(()),
        Ok(error) => Err(AuthError::Refused { step: "revocation", error }),
        Err(_) => Err(AuthError::Unexpected { url, reason: format!("HTTP {status} without an OAuth error body") }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let tokens: TokenResponse =
            serde_json::from_str(r#"{"access_token": "at-1", "token_type": "Bearer", "refresh_token": "rt-1"}"#)
                .expect("parses");
        let shown = format!("{tokens:?}");
        assert!(!shown.contains("at-1") && !shown.contains("rt-1"), "{shown}");
        assert_eq!(tokens.access_token.expose_secret(), "at-1");
    }

    #[test]
    fn lifetimes_may_be_numbers_or_strings_and_google_spells_the_uri_differently() {
        let device: DeviceAuthorization = serde_json::from_str(
            r#"{"device_code": "d", "user_code": "U", "verification_url": "https://g/device", "expires_in": "900"}"#,
        )
        .expect("parses");
        assert_eq!(
            (device.verification_uri.as_str(), device.expires_in, device.interval),
            ("https://g/device", Some(900), None)
        );
        let tokens: TokenResponse =
            serde_json::from_str(r#"{"access_token": "a", "token_type": "bearer", "expires_in": 60}"#).expect("parses");
        assert_eq!(tokens.expires_in, Some(60));
    }

    #[test]
    fn the_method_follows_the_secret_and_the_providers_list() {
        let post_only = ["client_secret_post".to_owned()];
        let both = ["client_secret_basic".to_owned(), "client_secret_post".to_owned()];
        let method = |secret: Option<&str>, supported: Option<&[String]>| {
            ClientCredentials::new("id".into(), secret.map(Secret::from), supported).method
        };
        assert_eq!(method(None, Some(&both)), AuthMethod::None);
        assert_eq!(method(Some("s"), None), AuthMethod::Basic);
        assert_eq!(method(Some("s"), Some(&both)), AuthMethod::Basic);
        assert_eq!(method(Some("s"), Some(&post_only)), AuthMethod::Post);
    }

    #[test]
    fn oauth_errors_read_well() {
        let error = OAuthError { error: "access_denied".into(), error_description: Some("End-User aborted".into()) };
        assert_eq!(error.to_string(), "access_denied (End-User aborted)");
    }
}
