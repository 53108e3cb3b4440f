//! `OidcSettings`: the OpenID provider registration, read from a Flask-OIDC `client_secrets.json` (or the `web`
//! entry embedded in the configuration), plus our optional extras (audience, JWKS URI, scope names, username claim).

use std::{path::PathBuf, time::Duration};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;

use crate::config::{AuthSettings, OidcExtras, OneOrMany};

/// Default scope that lets a caller read resources.
pub const DEFAULT_READ_SCOPE: &str = api_types::scope::READ;
/// Default scope that lets a caller create, change and delete resources.
pub const DEFAULT_WRITE_SCOPE: &str = api_types::scope::WRITE;

/// Everything the server needs to verify tokens from one OpenID provider.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// Expected `iss` of every token, and the base of discovery.
    pub issuer: String,
    /// This server's own client id at the provider.
    pub client_id: String,
    /// The public client (no secret, PKCE) Swagger UI's Authorize signs in as, with the redirect URI
    /// `/apidoc/swagger/oauth2-redirect.html`; `client_id` unless `docs_client_id` names another.
    pub docs_client_id: String,
    /// This server's client secret; needed only to introspect opaque tokens. Its `Debug` never shows it.
    pub client_secret: Option<SecretString>,
    /// The provider's authorization endpoint, for the OpenAPI security scheme (Swagger UI "Authorize").
    pub auth_uri: Option<String>,
    /// The provider's token endpoint, for the OpenAPI security scheme.
    pub token_uri: Option<String>,
    /// RFC 7662 endpoint; discovered when not given.
    pub introspection_uri: Option<String>,
    /// Where the signing keys are; discovered when not given.
    pub jwks_uri: Option<String>,
    /// Accepted `aud` values: the configured list, else this server's client id.
    pub audiences: Vec<String>,
    /// Scope required to read resources.
    pub read_scope: String,
    /// Scope required to change resources.
    pub write_scope: String,
    /// Claim that holds the name to show.
    pub username_claim: String,
    /// Extra CA certificates for calls to the provider.
    pub ca_cert: Option<PathBuf>,
    /// How long a positive introspection answer is trusted before asking again (bounded by the token's `exp`).
    pub introspection_cache: Duration,
    /// How often the signing keys are fetched again in the background.
    pub jwks_refresh: Duration,
    /// Longest lifetime an accepted JWT may have.
    pub max_token_lifetime: Duration,
    /// Whether an introspection answer must name one of [`Self::audiences`].
    pub introspection_requires_audience: bool,
    /// Accepted JWT `typ` values, lowercase without `application/`; `""` admits a token without `typ`.
    pub jwt_types: Vec<String>,
    /// Whether plain-HTTP provider URLs off loopback are allowed.
    pub allow_insecure_http: bool,
    /// Longest wait for one call to the provider.
    pub provider_timeout: Duration,
    /// Calls to the provider in flight at once, at most.
    pub provider_max_in_flight: usize,
    /// Whether ECDSA signatures must be in low-S form.
    pub ecdsa_low_s_only: bool,
}

/// Default of `jwks_refresh_secs`.
pub const DEFAULT_JWKS_REFRESH: Duration = Duration::from_secs(300);
/// Default of `max_token_lifetime_secs`: a day.
pub const DEFAULT_MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(86_400);
/// Default of `jwt_types`: RFC 9068's access-token type and the generic one most providers send.
pub const DEFAULT_JWT_TYPES: [&str; 2] = ["at+jwt", "JWT"];

/// A JWT `typ` as compared: lowercase, without the optional `application/` (RFC 7515, section 4.1.9).
pub fn normalized_type(typ: &str) -> String {
    let lower = typ.trim().to_ascii_lowercase();
    lower.strip_prefix("application/").map(str::to_owned).unwrap_or(lower)
}

/// Whether `url` may be used to reach the provider: `https`, or `http` to a loopback host (tests, a sidecar), or
/// any `http` when `allow_insecure_http` says so. Plain HTTP elsewhere would carry the client secret and tokens
/// in clear text.
pub fn provider_url_allowed(url: &str, allow_insecure_http: bool) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|_| format!("`{url}` is not a URL"))?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if allow_insecure_http => Ok(()),
        "http" => {
            let loopback = match parsed.host() {
                Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
                Some(url::Host::Ipv4(address)) => address.is_loopback(),
                Some(url::Host::Ipv6(address)) => address.is_loopback(),
                None => false,
            };
            if loopback {
                Ok(())
            } else {
                Err(format!(
                    "`{url}` is plain HTTP off loopback, which would send the client secret and tokens in clear text; \
                     use https, or set oidc.allow_insecure_http = true"
                ))
            }
        }
        other => Err(format!("`{url}` has the scheme `{other}`; the provider is reached over https")),
    }
}

/// Why the OIDC configuration cannot be used; a configuration error (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The secrets file cannot be read.
    #[error("cannot read OIDC client secrets file {}: {source}", path.display())]
    Unreadable {
        /// The configured file.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// The secrets are not valid JSON or lack a required member.
    #[error("invalid OIDC client secrets in {origin}: {reason}")]
    Invalid {
        /// The file or configuration entry.
        origin: String,
        /// What is wrong (never the secret itself).
        reason: String,
    },
}

/// The `web` entry of `client_secrets.json`; unknown members (Google's, Keycloak's extras) are ignored, so our own
/// extras are read from it leniently here, and strictly ([`OidcExtras`]) from a top-level `oidc` object.
#[derive(Deserialize)]
struct WebEntry {
    client_id: String,
    client_secret: Option<SecretString>,
    issuer: String,
    auth_uri: Option<String>,
    token_uri: Option<String>,
    token_introspection_uri: Option<String>,
    /// Flattened, only our own members are taken; the provider's are left alone.
    #[serde(flatten)]
    extras: OidcExtras,
}

impl OidcSettings {
    /// The settings the `auth` section asks for, or `None` when it configures no OIDC at all.
    pub fn from_settings(config: &AuthSettings) -> Result<Option<Self>, SettingsError> {
        let (document, origin) = match (&config.oidc_client_secrets, &config.web) {
            (Some(path), _) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| SettingsError::Unreadable { path: path.clone(), source })?;
                let origin = path.display().to_string();
                let document: Value = serde_json::from_str(&text).map_err(|error| SettingsError::Invalid {
                    origin: origin.clone(),
                    reason: format!("not JSON: {error}"),
                })?;
                (document, origin)
            }
            (None, Some(web)) => {
                let origin = "the configuration's `web` entry".to_owned();
                // Configuration loading wrote this text from a JSON value, so it parses.
                let web: Value = serde_json::from_str(web.expose_secret()).map_err(|error| SettingsError::Invalid {
                    origin: origin.clone(),
                    reason: format!("`web`: {error}"),
                })?;
                (serde_json::json!({ "web": web }), origin)
            }
            (None, None) => return Ok(None),
        };
        let invalid = |reason: String| SettingsError::Invalid { origin: origin.clone(), reason };
        let web = document.get("web").ok_or_else(|| invalid("no `web` entry".to_owned()))?;
        let web: WebEntry = serde_json::from_value(web.clone()).map_err(|error| invalid(format!("`web`: {error}")))?;
        let in_file = document
            .get("oidc")
            .map(|value| serde_json::from_value::<OidcExtras>(value.clone()))
            .transpose()
            .map_err(|error| invalid(format!("`oidc`: {error}")))?;
        let mut extras = web.extras;
        for overrides in [in_file, config.oidc.clone()].into_iter().flatten() {
            extras.merge(overrides);
        }
        if web.issuer.trim().is_empty() || web.client_id.trim().is_empty() {
            return Err(invalid("`web.issuer` and `web.client_id` must not be empty".to_owned()));
        }
        let allow_insecure_http = extras.allow_insecure_http.unwrap_or(false);
        for url in
            [Some(&web.issuer), web.token_introspection_uri.as_ref(), extras.jwks_uri.as_ref()].into_iter().flatten()
        {
            provider_url_allowed(url, allow_insecure_http).map_err(&invalid)?;
        }
        let audiences = match extras.audience {
            Some(OneOrMany::One(audience)) => vec![audience],
            Some(OneOrMany::Many(audiences)) if !audiences.is_empty() => audiences,
            _ => vec![web.client_id.clone()],
        };
        Ok(Some(Self {
            issuer: web.issuer,
            docs_client_id: extras.docs_client_id.unwrap_or_else(|| web.client_id.clone()),
            client_id: web.client_id,
            client_secret: web.client_secret.filter(|secret| !secret.expose_secret().is_empty()),
            auth_uri: web.auth_uri,
            token_uri: web.token_uri,
            introspection_uri: web.token_introspection_uri,
            jwks_uri: extras.jwks_uri,
            audiences,
            read_scope: extras.read_scope.unwrap_or_else(|| DEFAULT_READ_SCOPE.to_owned()),
            write_scope: extras.write_scope.unwrap_or_else(|| DEFAULT_WRITE_SCOPE.to_owned()),
            username_claim: extras.username_claim.unwrap_or_else(|| "preferred_username".to_owned()),
            ca_cert: config.ca_cert.clone(),
            introspection_cache: Duration::from_secs(extras.introspection_cache_secs.unwrap_or(60)),
            jwks_refresh: extras
                .jwks_refresh_secs
                .map_or(DEFAULT_JWKS_REFRESH, |secs| Duration::from_secs(secs.max(1))),
            max_token_lifetime: extras
                .max_token_lifetime_secs
                .map_or(DEFAULT_MAX_TOKEN_LIFETIME, |secs| Duration::from_secs(secs.max(1))),
            introspection_requires_audience: extras.introspection_requires_audience.unwrap_or(true),
            jwt_types: extras
                .jwt_types
                .unwrap_or_else(|| DEFAULT_JWT_TYPES.map(str::to_owned).to_vec())
                .iter()
                .map(|typ| normalized_type(typ))
                .collect(),
            allow_insecure_http,
            provider_timeout: Duration::from_secs(extras.provider_timeout_secs.unwrap_or(5).max(1)),
            provider_max_in_flight: extras.provider_max_in_flight.unwrap_or(16).max(1),
            ecdsa_low_s_only: extras.ecdsa_low_s_only.unwrap_or(false),
        }))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn settings_from_file(
        document: Value,
        adjust: impl FnOnce(&mut AuthSettings),
    ) -> Result<Option<OidcSettings>, SettingsError> {
        let dir = tempfile::TempDir::new().expect("temp dir");
        let path = dir.path().join("client_secrets.json");
        std::fs::write(&path, document.to_string()).expect("write");
        let mut config = AuthSettings { oidc_client_secrets: Some(path), ..AuthSettings::default() };
        adjust(&mut config);
        OidcSettings::from_settings(&config)
    }

    fn web() -> Value {
        json!({"client_id": "api", "client_secret": "s3cret", "issuer": "https://idp", "auth_uri": "https://idp/auth",
               "token_uri": "https://idp/token", "token_introspection_uri": "https://idp/introspect",
               "userinfo_uri": "https://idp/me", "redirect_uris": ["http://x"]})
    }

    #[test]
    fn no_oidc_configuration_means_no_settings() {
        assert!(OidcSettings::from_settings(&AuthSettings::default()).expect("ok").is_none());
    }

    #[test]
    fn flask_oidc_file_with_web_anywhere_and_defaults() {
        let settings =
            settings_from_file(json!({"other": 1, "web": web()}), |_| {}).expect("valid").expect("configured");
        assert_eq!(settings.issuer, "https://idp");
        assert_eq!(settings.audiences, vec!["api".to_owned()]);
        assert_eq!(settings.read_scope, DEFAULT_READ_SCOPE);
        assert_eq!(settings.write_scope, DEFAULT_WRITE_SCOPE);
        assert_eq!(settings.username_claim, "preferred_username");
        assert_eq!(settings.introspection_uri.as_deref(), Some("https://idp/introspect"));
        assert_eq!(settings.docs_client_id, "api", "Swagger UI signs in as this server's client by default");
    }

    #[test]
    fn extras_in_web_are_overridden_by_top_level_oidc_and_then_by_configuration() {
        let mut web = web();
        web["audience"] = json!("from-web");
        web["read_scope"] = json!("r-web");
        let document = json!({"web": web, "oidc": {"audience": ["a1", "a2"], "username_claim": "email"}});
        let settings = settings_from_file(document, |config| {
            config.oidc = Some(OidcExtras {
                username_claim: Some("upn".into()),
                docs_client_id: Some("api-docs".into()),
                ..OidcExtras::default()
            });
        })
        .expect("valid")
        .expect("configured");
        assert_eq!(settings.audiences, vec!["a1".to_owned(), "a2".to_owned()]);
        assert_eq!(settings.read_scope, "r-web");
        assert_eq!(settings.username_claim, "upn");
        assert_eq!(settings.docs_client_id, "api-docs");
    }

    #[test]
    fn embedded_web_entry_is_used_without_a_file() {
        let config = AuthSettings { web: Some(crate::config::secret_json(&web())), ..AuthSettings::default() };
        let settings = OidcSettings::from_settings(&config).expect("valid").expect("configured");
        assert_eq!(settings.client_id, "api");
    }

    #[test]
    fn missing_web_or_issuer_is_a_clear_error_without_the_secret() {
        let error = settings_from_file(json!({"installed": {}}), |_| {}).expect_err("error").to_string();
        assert!(error.contains("no `web` entry"), "{error}");
        let error = settings_from_file(json!({"web": {"client_id": "api", "client_secret": "s3cret"}}), |_| {})
            .expect_err("error")
            .to_string();
        assert!(error.contains("issuer"), "{error}");
        assert!(!error.contains("s3cret"), "{error}");
    }

    #[test]
    fn a_misspelt_member_of_the_file_s_oidc_object_is_refused() {
        let document = json!({"web": web(), "oidc": {"audeince": "x"}});
        let error = settings_from_file(document, |_| {}).expect_err("refused").to_string();
        assert!(error.contains("`oidc`: unknown field `audeince`"), "{error}");
    }

    #[test]
    fn plain_http_provider_urls_off_loopback_are_refused_unless_allowed() {
        let mut remote = web();
        remote["issuer"] = json!("http://idp.example.com");
        let error = settings_from_file(json!({"web": remote.clone()}), |_| {}).expect_err("refused").to_string();
        assert!(error.contains("plain HTTP off loopback") && error.contains("allow_insecure_http"), "{error}");
        let document = json!({"web": remote, "oidc": {"allow_insecure_http": true}});
        assert!(settings_from_file(document, |_| {}).is_ok());
        for url in ["https://idp.example.com", "http://127.0.0.1:9", "http://[::1]:9", "http://localhost"] {
            assert_eq!(provider_url_allowed(url, false), Ok(()), "{url}");
        }
        let mut jwks = web();
        jwks["jwks_uri"] = json!("http://keys.example.com/jwks");
        assert!(settings_from_file(json!({"web": jwks}), |_| {}).is_err(), "every configured provider URL");
        assert!(provider_url_allowed("ftp://idp", true).is_err());
    }

    #[test]
    fn jwt_types_are_compared_lowercase_without_the_media_type_prefix() {
        let settings = settings_from_file(json!({"web": web()}), |_| {}).expect("valid").expect("configured");
        assert_eq!(settings.jwt_types, ["at+jwt", "jwt"]);
        assert_eq!(normalized_type("application/AT+JWT"), "at+jwt");
        let document = json!({"web": web(), "oidc": {"jwt_types": ["JWT", ""], "max_token_lifetime_secs": 600}});
        let settings = settings_from_file(document, |_| {}).expect("valid").expect("configured");
        assert_eq!(
            (settings.jwt_types, settings.max_token_lifetime),
            (vec!["jwt".into(), String::new()], Duration::from_secs(600))
        );
    }

    #[test]
    fn debug_output_redacts_the_secret() {
        let settings = settings_from_file(json!({"web": web()}), |_| {}).expect("valid").expect("configured");
        assert!(!format!("{settings:?}").contains("s3cret"));
    }
}
