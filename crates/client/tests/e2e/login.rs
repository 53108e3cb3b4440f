//! The device flow against the real provider: a first run logs in (prompt read, approved over HTTP), a second
//! run uses the cache without asking the provider anything, and logout revokes the grant.

use crate::harness::{Login, World};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greet_logs_in_with_the_device_flow_then_uses_the_cached_token() {
    let world = World::start().await;

    // No command: greet is the default, as in the original. No cached token: it logs in first.
    let first = world.run(&[], Login::Approve("ada")).await;
    assert_eq!(first.success(), "Hello ada\n");
    assert!(first.prompted(), "{}", first.stderr);
    assert!(first.stderr.contains("The code expires in 10 minutes."), "{}", first.stderr);
    assert!(first.stderr.contains("Logged in as ada."), "{}", first.stderr);

    // The cache: one private file, the access token (not the ID token), the refresh token, the key.
    let files = world.cache_files();
    assert_eq!(files.len(), 1, "{files:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&files[0]).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the token cache is private");
    }
    let cache = world.cache();
    assert_eq!(cache["client_id"], "rust-api-axum-client");
    assert_eq!(cache["discovery_url"], world.idp.discovery_url());
    assert_eq!(cache["user"], "ada");
    assert!(cache["refresh_token"].is_string(), "offline_access gives a refresh token: {cache}");
    assert!(cache.get("id_token").is_none(), "the ID token is not kept");
    let access_token = cache["access_token"].as_str().expect("access token");
    let claims = jwt_claims(access_token);
    assert_eq!((claims["aud"].as_str(), claims["sub"].as_str()), (Some("rust-api-axum"), Some("ada")));

    // Second run: the cached token, and not a single request to the provider.
    let before = world.idp.stats().await;
    let second = world.run(&["greet"], Login::NotExpected).await;
    assert_eq!(second.success(), "Hello ada\n");
    assert!(!second.prompted() && second.stderr.is_empty(), "{}", second.stderr);
    assert_eq!(world.idp.stats().await, before, "no token or discovery request with a fresh cached token");

    // JSON output is the API's body; -q changes nothing on stdout.
    let json = world.run(&["-q", "--output", "json", "greet"], Login::NotExpected).await;
    let body: api_types::Greeting = serde_json::from_str(json.success()).expect("a Greeting body");
    assert_eq!(body.message, "Hello ada");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_then_logout_revokes_the_grant_and_forgets_the_tokens() {
    let world = World::start().await;
    let login = world.run(&["login"], Login::Approve("grace")).await;
    assert_eq!(login.success(), "Logged in as grace.\n");
    let refresh_token = world.cache()["refresh_token"].as_str().expect("refresh token").to_owned();

    let logout = world.run(&["logout"], Login::NotExpected).await;
    assert_eq!(logout.success(), "Logged out grace; the provider revoked the grant.\n");
    assert!(world.cache_files().is_empty(), "the cache entry is gone");
    let (status, body) = world.idp.refresh(&refresh_token).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "the refresh token is revoked");

    let again = world.run(&["logout"], Login::NotExpected).await;
    assert_eq!(again.success(), "Not logged in.\n");
}

/// The claims of a JWT, unverified (the server verifies; the test only looks).
fn jwt_claims(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}
