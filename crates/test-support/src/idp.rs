//! The real OpenID provider of the tests (`tools/idp/server.js`, npm `oidc-provider`), one process per test that
//! needs it, so key rotation, request counting, token lifetimes and stopping it stay private to that test.

use std::{path::PathBuf, process::Stdio, time::Duration};

use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

/// Client the API server uses for introspection.
pub const SERVER_CLIENT: (&str, &str) = ("rust-api-axum", "rust-api-axum-secret");
/// Client-credentials client whose access tokens are JWTs.
pub const JWT_CLIENT: (&str, &str) = ("rust-api-axum-test", "rust-api-axum-test-secret");
/// Client-credentials client whose access tokens are opaque.
pub const OPAQUE_CLIENT: (&str, &str) = ("rust-api-axum-opaque", "rust-api-axum-opaque-secret");
/// Swagger UI's public client (authorization code with PKCE; loopback redirect URIs on any port).
pub const DOCS_CLIENT: &str = "rust-api-axum-docs";
/// The client CLI's public device-flow client.
pub const CLI_CLIENT: &str = "rust-api-axum-client";
/// Both resource scopes, space-separated, as a `scope` parameter lists them.
pub static ALL_SCOPES: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| api_types::scope::ALL.join(" "));

/// A running test provider.
pub struct TestIdp {
    child: Child,
    /// The arguments it was started with, to start it again the same way (`restart`).
    args: Vec<String>,
    /// `http://127.0.0.1:PORT` (or `https://` when started with TLS).
    pub issuer: String,
    /// Where tokens are issued.
    pub token_endpoint: String,
    /// Where tokens are revoked.
    pub revocation_endpoint: Option<String>,
    http: reqwest::Client,
}

/// Requests the provider received, per endpoint, since start or the last reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub struct Stats {
    /// Requests to the JWKS URI.
    pub jwks: u64,
    /// Requests to the introspection endpoint.
    pub introspection: u64,
    /// Requests to the token endpoint.
    pub token: u64,
    /// Requests to the discovery document.
    pub discovery: u64,
    /// Requests that arrived where a "redirect" behaviour pointed (a client that followed it).
    pub redirected: u64,
    /// Requests a "stall" behaviour held without an answer.
    pub stalled: u64,
    /// The most of them held at once.
    pub stalled_peak: u64,
}

/// A file for one provider's request log (`$TMPDIR/rust-api-axum-idp-logs/`): hundreds of lines a test run that
/// would otherwise bury the test runner's output (under plain `cargo test` nothing captures a child's stderr).
fn log_file() -> Option<(PathBuf, std::fs::File)> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join("rust-api-axum-idp-logs");
    std::fs::create_dir_all(&dir).ok()?;
    let path = dir.join(format!("{}-{}.log", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
    let file = std::fs::File::create(&path).ok()?;
    Some((path, file))
}

fn idp_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tools/idp")
}

pub use http_client::install_crypto_provider;

impl TestIdp {
    /// Starts the provider on a free loopback port and waits until it answers discovery.
    pub async fn start() -> Self {
        Self::start_with(&[], None).await
    }

    /// Starts the provider over HTTPS with `cert`/`key`, trusting `ca_pem` for the harness's own calls.
    pub async fn start_tls(cert: &std::path::Path, key: &std::path::Path, ca_pem: &[u8]) -> Self {
        let (cert, key) = (cert.to_str().expect("utf-8 path"), key.to_str().expect("utf-8 path"));
        Self::start_with(&["--tls-cert", cert, "--tls-key", key], Some(ca_pem)).await
    }

    /// Starts the provider with a clock `secs` seconds off this machine's: every answer's `Date` header says so.
    pub async fn start_with_clock_offset(secs: i64) -> Self {
        Self::start_with(&["--date-offset-secs", &secs.to_string()], None).await
    }

    /// Starts the provider keeping its signing key and everything it issued in the file `state` (created when
    /// missing), as a real provider keeps them across restarts: after [`stop`](Self::stop),
    /// [`restart`](Self::restart) brings back the same issuer with the same keys, and opaque tokens issued
    /// before still introspect.
    pub async fn start_with_state(state: &std::path::Path) -> Self {
        Self::start_with(&["--state", state.to_str().expect("utf-8 path")], None).await
    }

    /// Starts the provider again after [`stop`](Self::stop), on the same port and so under the same issuer URL,
    /// as a provider coming back from an outage. Only with [`start_with_state`](Self::start_with_state) does
    /// it keep its keys and tokens; otherwise it comes back as a new provider at the old address.
    pub async fn restart(&mut self) {
        let port = self.issuer.rsplit(':').next().expect("the issuer names its port").to_owned();
        let mut args = self.args.clone();
        args.extend(["--port".to_owned(), port]);
        let (child, issuer) = Self::spawn(&args).await;
        assert_eq!(issuer, self.issuer, "the provider came back under the same issuer");
        self.child = child;
    }

    async fn start_with(args: &[&str], ca_pem: Option<&[u8]>) -> Self {
        let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
        let (child, issuer) = Self::spawn(&args).await;
        install_crypto_provider();
        let mut http = reqwest::Client::builder();
        if let Some(pem) = ca_pem {
            http = http.tls_certs_merge(reqwest::Certificate::from_pem_bundle(pem).expect("CA PEM"));
        }
        let http = http.build().expect("client");
        let discovery: Value = http
            .get(format!("{issuer}/.well-known/openid-configuration"))
            .send()
            .await
            .expect("discovery answers")
            .json()
            .await
            .expect("discovery JSON");
        Self {
            child,
            args,
            token_endpoint: discovery["token_endpoint"].as_str().expect("token_endpoint").to_owned(),
            revocation_endpoint: discovery["revocation_endpoint"].as_str().map(str::to_owned),
            issuer,
            http,
        }
    }

    /// Starts `node server.js args` and waits for its ready line; the process and the issuer it announced.
    async fn spawn(args: &[String]) -> (Child, String) {
        let dir = idp_dir();
        assert!(
            dir.join("node_modules/oidc-provider").is_dir(),
            "the test OpenID provider is not installed: run `npm ci` in tools/idp (./scripts/test does)"
        );
        let log = log_file();
        let mut child = Command::new("node")
            .arg("server.js")
            .args(args)
            .current_dir(&dir)
            .stdout(Stdio::piped())
            .stderr(log.as_ref().and_then(|(_, file)| file.try_clone().ok()).map_or_else(Stdio::inherit, Stdio::from))
            .kill_on_drop(true)
            .spawn()
            .expect("node starts the test OpenID provider");
        let stdout = child.stdout.take().expect("stdout piped");
        let mut lines = BufReader::new(stdout).lines();
        let log_path = log.map_or_else(|| "stderr".to_owned(), |(path, _)| path.display().to_string());
        let ready = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("the test OpenID provider is ready within 30 s (its log: {log_path})"))
            .expect("stdout readable")
            .expect("a ready line");
        // Keep draining stdout so the provider never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let ready: Value = serde_json::from_str(&ready).expect("ready line is JSON");
        (child, ready["issuer"].as_str().expect("issuer").to_owned())
    }

    /// The full discovery URL, as the client CLI is usually configured.
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer)
    }

    /// Access tokens issued from now on live `secs` seconds.
    pub async fn set_access_token_ttl(&self, secs: u64) {
        self.post_json("/test/ttl", json!({"AccessToken": secs})).await;
    }

    /// Redeems `refresh_token` as the CLI would; returns the status and the body.
    pub async fn refresh(&self, refresh_token: &str) -> (u16, Value) {
        let response = self
            .http
            .post(&self.token_endpoint)
            .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh_token), ("client_id", CLI_CLIENT)])
            .send()
            .await
            .expect("token endpoint answers");
        (response.status().as_u16(), response.json().await.expect("token JSON"))
    }

    /// A Flask-OIDC `client_secrets.json` for the API server, written into `dir`.
    pub fn write_client_secrets(&self, dir: &std::path::Path) -> PathBuf {
        let path = dir.join("client_secrets.json");
        let secrets = json!({
            "web": {
                "client_id": SERVER_CLIENT.0,
                "client_secret": SERVER_CLIENT.1,
                "issuer": self.issuer,
                "auth_uri": format!("{}/auth", self.issuer),
                "token_uri": self.token_endpoint,
                "userinfo_uri": format!("{}/me", self.issuer),
                "redirect_uris": ["http://127.0.0.1:8080/apidoc/swagger/oauth2-redirect.html"],
                // Our extra: Swagger UI signs in as the public client, since a page cannot keep a secret.
                "docs_client_id": DOCS_CLIENT,
            }
        });
        std::fs::write(&path, secrets.to_string()).expect("write client secrets");
        path
    }

    /// An access token from the client-credentials grant.
    pub async fn client_credentials(&self, (id, secret): (&str, &str), scope: &str) -> String {
        let response = self
            .http
            .post(&self.token_endpoint)
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials"), ("scope", scope)])
            .send()
            .await
            .expect("token endpoint answers");
        let status = response.status();
        let body: Value = response.json().await.expect("token JSON");
        assert!(status.is_success(), "token request failed: {body}");
        body["access_token"].as_str().expect("access_token").to_owned()
    }

    /// A JWT access token with both resource scopes.
    pub async fn jwt(&self) -> String {
        self.client_credentials(JWT_CLIENT, &ALL_SCOPES).await
    }

    /// An opaque access token with both resource scopes.
    pub async fn opaque(&self) -> String {
        self.client_credentials(OPAQUE_CLIENT, &ALL_SCOPES).await
    }

    /// A token with exactly `claims` (and extra header fields), signed by the provider's current key.
    pub async fn sign(&self, claims: Value, header: Value) -> String {
        let body: Value = self.post_json("/test/sign", json!({"claims": claims, "header": header})).await;
        body["token"].as_str().expect("token").to_owned()
    }

    /// A token with `claims`, signed by the key `kid` that a rotation took out of the JWKS.
    pub async fn sign_with_retired(&self, claims: Value, kid: &str) -> String {
        let body: Value = self.post_json("/test/sign", json!({"claims": claims, "header": {}, "key": kid})).await;
        body["token"].as_str().expect("token").to_owned()
    }

    /// Makes the provider's JWKS or introspection endpoint misbehave (see `POST /test/behaviour` in
    /// `tools/idp/server.js`): e.g. `{"jwks": "stall"}`, `{"introspection": {"answer": {...}}}`, `{"reset": true}`.
    pub async fn behave(&self, behaviour: Value) {
        self.post_json("/test/behaviour", behaviour).await;
    }

    /// Signs `user` in through the device flow of the CLI's client (approved by `tools/idp/approve-device.mjs`,
    /// as a browser would) and returns the token answer: `access_token`, `id_token`, `refresh_token`.
    pub async fn device_tokens(&self, user: &str) -> Value {
        let scope = format!("openid profile offline_access {}", *ALL_SCOPES);
        let started: Value = self
            .http
            .post(format!("{}/device/auth", self.issuer))
            .form(&[("client_id", CLI_CLIENT), ("scope", scope.as_str())])
            .send()
            .await
            .expect("device authorization answers")
            .json()
            .await
            .expect("JSON");
        let uri = started["verification_uri_complete"].as_str().expect("verification_uri_complete");
        let approved = Command::new("node")
            .arg("approve-device.mjs")
            .arg(uri)
            .arg(user)
            .current_dir(idp_dir())
            .output()
            .await
            .expect("node runs approve-device.mjs");
        assert!(approved.status.success(), "approval failed: {}", String::from_utf8_lossy(&approved.stderr));
        let device_code = started["device_code"].as_str().expect("device_code");
        let grant = "urn:ietf:params:oauth:grant-type:device_code";
        let response = self
            .http
            .post(&self.token_endpoint)
            .form(&[("grant_type", grant), ("device_code", device_code), ("client_id", CLI_CLIENT)])
            .send()
            .await
            .expect("token endpoint answers");
        let status = response.status();
        let body: Value = response.json().await.expect("token JSON");
        assert!(status.is_success(), "device token request failed: {body}");
        body
    }

    /// Replaces the signing key, keeping the replaced one published until [`Self::remove_previous_keys`]; returns
    /// the new key id.
    pub async fn rotate_keys(&self) -> String {
        let body: Value = self.post_json("/test/rotate-keys", json!({})).await;
        body["kid"].as_str().expect("kid").to_owned()
    }

    /// Stops publishing the keys a rotation replaced (a rotation keeps the previous key in the JWKS, as real
    /// providers do for a while); returns their key ids.
    pub async fn remove_previous_keys(&self) -> Vec<String> {
        let body: Value = self.post_json("/test/remove-key", json!({})).await;
        body["removed"].as_array().expect("removed").iter().map(|kid| kid.as_str().expect("kid").to_owned()).collect()
    }

    /// The provider's current public keys.
    pub async fn keys(&self) -> Value {
        self.http.get(format!("{}/test/keys", self.issuer)).send().await.expect("keys").json().await.expect("JSON")
    }

    /// Requests received so far, per endpoint.
    pub async fn stats(&self) -> Stats {
        self.http.get(format!("{}/test/stats", self.issuer)).send().await.expect("stats").json().await.expect("JSON")
    }

    /// Revokes `token` at the provider (as the client it was issued to).
    pub async fn revoke(&self, (id, secret): (&str, &str), token: &str) {
        let endpoint = self.revocation_endpoint.as_deref().expect("revocation endpoint");
        let response = self
            .http
            .post(endpoint)
            .basic_auth(id, Some(secret))
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .send()
            .await
            .expect("revocation answers");
        assert!(response.status().is_success(), "revocation failed: {}", response.status());
    }

    /// Claims a valid token for the API server would carry, to be varied by failure tests.
    pub fn claims(&self) -> Value {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
        json!({"iss": self.issuer, "aud": SERVER_CLIENT.0, "sub": "signed-user", "exp": now + 600, "iat": now,
               "scope": *ALL_SCOPES, "client_id": JWT_CLIENT.0, "preferred_username": "signed-user"})
    }

    /// Stops the provider (SIGKILL, so nothing is flushed or said goodbye), as an outage would.
    pub async fn stop(&mut self) {
        let _ = self.child.kill().await;
    }

    async fn post_json(&self, path: &str, body: Value) -> Value {
        let response =
            self.http.post(format!("{}{path}", self.issuer)).json(&body).send().await.expect("admin endpoint answers");
        assert!(response.status().is_success(), "{path} failed: {}", response.status());
        response.json().await.expect("JSON")
    }
}
