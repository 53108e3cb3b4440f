//! The access token for API calls: from the cache while it is fresh, refreshed when it is near expiry or the API
//! refused it, from a new device login otherwise; and logout. The only module that decides *when* to talk to the
//! provider, so a run with a fresh cached token makes no provider request at all (not even discovery).

use std::time::Instant;

use base64::Engine as _;
use secrecy::ExposeSecret;

use super::{
    AuthError,
    cache::{CachedTokens, TokenCache, unix_now},
    device::{self, SystemClock, TokenPoll},
    discovery::{self, Provider},
    oauth::{self, ClientCredentials, Secret, TokenAnswer, TokenKind, TokenResponse},
};
use crate::{config::Settings, ui::Ui};

/// RFC 8628's grant type for polling the token endpoint.
const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// What `logout` did.
#[derive(Debug)]
pub struct Logout {
    /// Whether there were cached tokens to forget.
    pub was_logged_in: bool,
    /// Who was logged in, when known.
    pub user: Option<String>,
    /// Whether the provider was asked to revoke the grant (it has a revocation endpoint).
    pub revoked: bool,
}

/// One run's view of the user's login.
pub struct Session<'a> {
    http: &'a reqwest::Client,
    settings: &'a Settings,
    ui: Ui,
    cache: TokenCache,
    provider: Option<Provider>,
    tokens: Option<CachedTokens>,
    loaded: bool,
    /// The tokens came from a login or refresh in this run: use them until they expire, even inside the refresh
    /// margin, so short-lived tokens do not cost a refresh per call.
    obtained_now: bool,
    logged_in_now: bool,
}

impl<'a> Session<'a> {
    /// A session for the configured provider and client; nothing is read or fetched yet.
    pub fn new(http: &'a reqwest::Client, settings: &'a Settings, ui: Ui) -> Self {
        let cache = TokenCache::new(&settings.cache_dir, &settings.discovery_url, &settings.client_id);
        Self {
            http,
            settings,
            ui,
            cache,
            provider: None,
            tokens: None,
            loaded: false,
            obtained_now: false,
            logged_in_now: false,
        }
    }

    /// An access token worth sending: the cached one while fresh, else a refreshed one, else one from a new
    /// device login (announced on standard error, since the command did not ask for it).
    pub async fn access_token(&mut self) -> Result<Secret, AuthError> {
        if !self.loaded {
            self.tokens = self.cache.load()?;
            self.loaded = true;
        }
        if let Some(tokens) = &self.tokens {
            let now = unix_now();
            if tokens.fresh(now) || (self.obtained_now && !tokens.expired(now)) {
                tracing::debug!("using the cached access token");
                return Ok(tokens.access_token.clone());
            }
            if tokens.refresh_token.is_some()
                && let Some(token) = self.refresh().await?
            {
                return Ok(token);
            }
        }
        let tokens = self.login().await?;
        self.ui.note(&logged_in_message(tokens.user.as_deref()));
        Ok(tokens.access_token)
    }

    /// A new access token after the API refused the current one: refreshed, or from a new login. `None` when
    /// the refused token came from a login in this very run, since another login would not do better.
    pub async fn renew(&mut self) -> Result<Option<Secret>, AuthError> {
        tracing::debug!("the API refused the access token; renewing it once");
        if self.tokens.as_ref().is_some_and(|t| t.refresh_token.is_some())
            && let Some(token) = self.refresh().await?
        {
            return Ok(Some(token));
        }
        if self.logged_in_now {
            return Ok(None);
        }
        let tokens = self.login().await?;
        self.ui.note(&logged_in_message(tokens.user.as_deref()));
        Ok(Some(tokens.access_token))
    }

    /// Logs in with the device flow and caches the tokens.
    pub async fn login(&mut self) -> Result<CachedTokens, AuthError> {
        let provider = self.provider().await?;
        let client = self.credentials(&provider);
        let device = oauth::device_authorization(
            self.http,
            &provider.device_authorization_endpoint,
            &client,
            &self.settings.scopes,
        )
        .await?;
        let started = Instant::now();
        let poller = device::DevicePoller::new(started, device.expires_in, device.interval);
        self.ui.device_prompt(&device, poller.deadline() - started);
        let waiting = self.ui.waiting(poller.deadline());
        let poll = DeviceCodePoll {
            http: self.http,
            endpoint: &provider.token_endpoint,
            client: &client,
            device_code: &device.device_code,
        };
        let outcome = device::poll_for_tokens(&SystemClock, &poll, poller).await;
        drop(waiting);
        let tokens = outcome?;
        let user = display_name(&tokens);
        let entry = self.cache.entry(tokens, None, user);
        self.cache.store(&entry)?;
        tracing::debug!("logged in; tokens cached in {}", self.cache.path().display());
        self.tokens = Some(entry.clone());
        self.loaded = true;
        self.obtained_now = true;
        self.logged_in_now = true;
        Ok(entry)
    }

    /// Forgets the cached tokens, then asks the provider to revoke them (the refresh token, which ends the grant;
    /// the access token when there is none).
    pub async fn logout(&mut self) -> Result<Logout, AuthError> {
        let tokens = self.cache.load()?;
        let removed = self.cache.remove()?;
        let Some(tokens) = tokens else {
            return Ok(Logout { was_logged_in: removed, user: None, revoked: false });
        };
        let revoked = self.revoke(&tokens).await.map_err(|error| AuthError::NotRevoked(Box::new(error)))?;
        Ok(Logout { was_logged_in: true, user: tokens.user, revoked })
    }

    async fn revoke(&mut self, tokens: &CachedTokens) -> Result<bool, AuthError> {
        let provider = self.provider().await?;
        let Some(endpoint) = &provider.revocation_endpoint else {
            tracing::debug!("the provider has no revocation endpoint; the tokens are only forgotten");
            return Ok(false);
        };
        let client = self.credentials(&provider);
        let (token, kind) = match &tokens.refresh_token {
            Some(refresh) => (refresh, TokenKind::Refresh),
            None => (&tokens.access_token, TokenKind::Access),
        };
        oauth::revoke(self.http, endpoint, &client, token, kind).await?;
        Ok(true)
    }

    /// Refreshes under the cache lock. `Ok(None)` when the refresh token is no longer accepted (the caller
    /// logs in instead); the dead entry is removed.
    async fn refresh(&mut self) -> Result<Option<Secret>, AuthError> {
        let _lock = self.cache.lock().await?;
        let held = self.tokens.clone();
        // Another run may have refreshed while we waited for the lock: its tokens are as new as ours would be
        // (so they are used even inside the refresh margin), and our refresh token may already be spent.
        let stored = self.cache.load()?;
        if let Some(stored) = &stored
            && held.as_ref().is_none_or(|held| held.access_token.expose_secret() != stored.access_token.expose_secret())
            && !stored.expired(unix_now())
        {
            tracing::debug!("another run refreshed the tokens; using them");
            self.tokens = Some(stored.clone());
            self.obtained_now = true;
            return Ok(Some(stored.access_token.clone()));
        }
        let Some(current) = stored.or(held) else { return Ok(None) };
        let Some(refresh_token) = current.refresh_token.clone() else { return Ok(None) };
        let provider = self.provider().await?;
        let client = self.credentials(&provider);
        let form = vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", refresh_token.expose_secret().to_owned()),
        ];
        match oauth::token_request(self.http, &provider.token_endpoint, &client, form).await {
            TokenAnswer::Tokens(tokens) => {
                let entry = self.cache.entry(tokens, Some(&current), None);
                self.cache.store(&entry)?;
                tracing::debug!("refreshed the access token");
                let token = entry.access_token.clone();
                self.tokens = Some(entry);
                self.obtained_now = true;
                Ok(Some(token))
            }
            TokenAnswer::Refused(error) if error.error == "invalid_grant" => {
                tracing::debug!("the refresh token is no longer accepted ({error}); a new login is needed");
                self.cache.remove()?;
                self.tokens = None;
                Ok(None)
            }
            TokenAnswer::Refused(error) => Err(AuthError::Refused { step: "token refresh", error }),
            TokenAnswer::Transient(reason) => {
                Err(AuthError::Unreachable { url: provider.token_endpoint.to_string(), reason })
            }
            TokenAnswer::Invalid(reason) => {
                Err(AuthError::Unexpected { url: provider.token_endpoint.to_string(), reason })
            }
        }
    }

    /// The provider's endpoints, discovered on first need.
    async fn provider(&mut self) -> Result<Provider, AuthError> {
        if let Some(provider) = &self.provider {
            return Ok(provider.clone());
        }
        let provider = discovery::discover(self.http, &self.settings.discovery_url).await?;
        self.provider = Some(provider.clone());
        Ok(provider)
    }

    fn credentials(&self, provider: &Provider) -> ClientCredentials {
        ClientCredentials::new(
            self.settings.client_id.clone(),
            self.settings.client_secret.clone(),
            provider.auth_methods.as_deref(),
        )
    }
}

/// "Logged in as ada." or "Logged in." when the provider did not say who.
pub fn logged_in_message(user: Option<&str>) -> String {
    match user {
        Some(user) => format!("Logged in as {user}."),
        None => "Logged in.".to_owned(),
    }
}

/// Polls the token endpoint with the device code.
struct DeviceCodePoll<'p> {
    http: &'p reqwest::Client,
    endpoint: &'p url::Url,
    client: &'p ClientCredentials,
    device_code: &'p Secret,
}

impl TokenPoll for DeviceCodePoll<'_> {
    fn poll(&self) -> impl Future<Output = TokenAnswer> {
        let form = vec![
            ("grant_type", DEVICE_CODE_GRANT.to_owned()),
            ("device_code", self.device_code.expose_secret().to_owned()),
        ];
        oauth::token_request(self.http, self.endpoint, self.client, form)
    }
}

/// Who logged in, for messages: from the ID token (or a JWT access token), unverified since it only labels
/// output; `preferred_username`, then `email`, `name`, `sub`.
fn display_name(tokens: &TokenResponse) -> Option<String> {
    [tokens.id_token.as_ref(), Some(&tokens.access_token)].into_iter().flatten().find_map(|token| {
        let payload = token.expose_secret().split('.').nth(1)?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
        let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        ["preferred_username", "email", "name", "sub"]
            .iter()
            .find_map(|claim| claims.get(claim).and_then(serde_json::Value::as_str).map(str::to_owned))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: serde_json::Value) -> Secret {
        let encode = |v: &serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        Secret::from(format!("{}.{}.sig", encode(&serde_json::json!({"alg": "RS256"})), encode(&claims)))
    }

    fn tokens(access: Secret, id: Option<Secret>) -> TokenResponse {
        TokenResponse {
            access_token: access,
            token_type: "Bearer".into(),
            expires_in: None,
            refresh_token: None,
            id_token: id,
            scope: None,
        }
    }

    #[test]
    fn the_user_is_named_from_the_id_token_then_the_access_token() {
        let id = jwt(serde_json::json!({"sub": "u1", "preferred_username": "ada"}));
        let access = jwt(serde_json::json!({"sub": "u2"}));
        assert_eq!(display_name(&tokens(access.clone(), Some(id))).as_deref(), Some("ada"));
        assert_eq!(display_name(&tokens(access, None)).as_deref(), Some("u2"));
        assert_eq!(display_name(&tokens(Secret::from("opaque"), None)), None);
        assert_eq!(logged_in_message(None), "Logged in.");
    }
}
