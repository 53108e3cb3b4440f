//! Bearer-token authentication against the real test OpenID provider: greeting v3, the RFC 6750 failure matrix,
//! key rotation, introspection, provider outages and how often the provider is asked.

use std::sync::Arc;

use api_types::scope;
use axum::{Router, routing::get};
use base64::Engine as _;
use rust_api_axum::{
    app,
    auth::{Authenticator, OidcSettings, Scoped, TokenVerifier, WriteScope},
    config::{Config, DatabaseSettings},
    db::handle::DbHandle,
    state::AppState,
};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::{
    helpers::{TestApp, problem, spawn_app, spawn_app_with},
    idp::{JWT_CLIENT, OPAQUE_CLIENT, TestIdp, spawn_app_with_idp},
};

const V3: &str = "/api/greeting/v3/";
const REALM: &str = "Bearer realm=\"rust-api-axum\"";

/// The provider, and the API server configured against it.
async fn app_with_idp() -> (TestIdp, TestApp, TempDir) {
    spawn_app_with_idp(|_| {}).await
}

async fn call(app: &TestApp, path: &str, authorization: Option<&str>) -> reqwest::Response {
    let mut request = app.client.get(app.url(path));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    request.send().await.expect("sent")
}

async fn greet(app: &TestApp, token: &str) -> reqwest::Response {
    call(app, V3, Some(&format!("Bearer {token}"))).await
}

async fn hello(app: &TestApp, token: &str) -> String {
    let response = greet(app, token).await;
    assert_eq!(response.status(), 200);
    response.json::<api_types::Greeting>().await.expect("greeting").message
}

/// Asserts a 401 with `invalid_token` and returns the problem's detail.
async fn invalid_token(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"].to_str().expect("text").to_owned();
    assert!(challenge.starts_with(&format!("{REALM}, error=\"invalid_token\"")), "{challenge}");
    let problem = problem(response).await;
    assert_eq!((problem.status, problem.title.as_str()), (401, "Unauthorized"));
    problem.detail
}

fn b64(value: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

#[tokio::test]
async fn v3_greets_the_user_named_by_a_jwt_and_by_an_opaque_token() {
    let (idp, app, _dir) = app_with_idp().await;
    let jwt = idp.jwt().await;
    assert_eq!(jwt.split('.').count(), 3, "the test client's tokens are JWTs");
    assert_eq!(hello(&app, &jwt).await, "Hello test-user");
    assert_eq!(hello(&app, &jwt).await, "Hello test-user", "trailing slash or not, cached or not");
    let opaque = idp.opaque().await;
    assert_ne!(opaque.split('.').count(), 3, "the opaque client's tokens are not JWTs");
    assert_eq!(hello(&app, &opaque).await, "Hello opaque-user");
    let response = call(&app, "/api/greeting/v3", Some(&format!("bearer {jwt}"))).await;
    assert_eq!(response.status(), 200, "scheme is case-insensitive and the slash optional");
}

#[tokio::test]
async fn missing_or_non_bearer_credentials_get_a_bare_challenge() {
    let (_idp, app, _dir) = app_with_idp().await;
    for authorization in [None, Some("Basic dXNlcjpwYXNz")] {
        let response = call(&app, V3, authorization).await;
        assert_eq!(response.status(), 401, "{authorization:?}");
        assert_eq!(response.headers()["www-authenticate"], REALM);
        assert_eq!(problem(response).await.detail, "This resource requires a bearer token");
    }
}

#[tokio::test]
async fn the_failure_matrix_answers_401_invalid_token() {
    let (idp, app, _dir) = app_with_idp().await;
    let now = idp.claims()["iat"].as_u64().expect("iat");
    let with = |key: &str, value: Value| {
        let mut claims = idp.claims();
        claims[key] = value;
        claims
    };
    let signed = idp.sign(idp.claims(), json!({})).await;
    assert_eq!(hello(&app, &signed).await, "Hello signed-user", "the provider-signed baseline is valid");

    let garbage = invalid_token(greet(&app, "not!a~token").await).await;
    assert_eq!(garbage, "The bearer token is malformed");

    let expired = idp.sign(with("exp", json!(now - 120)), json!({})).await;
    assert_eq!(invalid_token(greet(&app, &expired).await).await, "The access token expired");

    let early = idp.sign(with("nbf", json!(now + 600)), json!({})).await;
    assert_eq!(invalid_token(greet(&app, &early).await).await, "The access token is not valid yet");

    let foreign = idp.sign(with("iss", json!("http://127.0.0.1:1/evil")), json!({})).await;
    assert_eq!(invalid_token(greet(&app, &foreign).await).await, "The access token was issued by another provider");

    let elsewhere = idp.sign(with("aud", json!("another-api")), json!({})).await;
    assert_eq!(invalid_token(greet(&app, &elsewhere).await).await, "The access token is meant for another audience");

    let mut parts: Vec<String> = signed.split('.').map(str::to_owned).collect();
    parts[1] = b64(&with("sub", json!("someone-else")));
    let tampered = parts.join(".");
    assert_eq!(invalid_token(greet(&app, &tampered).await).await, "The access token's signature is invalid");

    let kid = idp.keys().await["kid"].as_str().expect("kid").to_owned();
    let unsigned = format!("{}.{}.", b64(&json!({"alg": "none", "kid": kid})), b64(&idp.claims()));
    let detail = invalid_token(greet(&app, &unsigned).await).await;
    assert_eq!(detail, "The access token is not a well-formed JWT", "alg none is not even parsed");

    // Algorithm confusion: HS256 keyed with the provider's public key material.
    let public = idp.keys().await["keys"][0].to_string();
    let confused = hs256(&idp.claims(), &kid, public.as_bytes());
    assert_eq!(invalid_token(greet(&app, &confused).await).await, "The access token's algorithm HS256 is not accepted");

    let unknown_kid = idp.sign(idp.claims(), json!({"kid": "no-such-key"})).await;
    assert_eq!(invalid_token(greet(&app, &unknown_kid).await).await, "The access token is signed with an unknown key");
}

fn hs256(claims: &Value, kid: &str, secret: &[u8]) -> String {
    let header =
        jsonwebtoken::Header { kid: Some(kid.to_owned()), ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256) };
    let key = jsonwebtoken::EncodingKey::from_secret(secret).expect("hmac key");
    jsonwebtoken::encode(&header, claims, &key).expect("signed")
}

#[tokio::test]
async fn a_rotated_signing_key_is_picked_up_without_restart() {
    let (idp, app, _dir) = app_with_idp().await;
    let before = idp.jwt().await;
    assert_eq!(hello(&app, &before).await, "Hello test-user");
    let old_kid = jsonwebtoken::decode_header(&before).expect("header").kid;
    let new_kid = idp.rotate_keys().await;
    assert_ne!(old_kid.as_deref(), Some(new_kid.as_str()));
    let after = idp.jwt().await;
    assert_eq!(jsonwebtoken::decode_header(&after).expect("header").kid.as_deref(), Some(new_kid.as_str()));
    assert_eq!(hello(&app, &after).await, "Hello test-user");
}

#[tokio::test]
async fn inactive_and_revoked_opaque_tokens_are_refused() {
    let (idp, app, _dir) = app_with_idp().await;
    let made_up = invalid_token(greet(&app, "made-up-opaque-token").await).await;
    assert_eq!(made_up, "The access token is not active");
    let revoked = idp.opaque().await;
    idp.revoke(OPAQUE_CLIENT, &revoked).await;
    assert_eq!(invalid_token(greet(&app, &revoked).await).await, "The access token is not active");
}

#[tokio::test]
async fn a_token_without_the_required_scope_is_forbidden() {
    let idp = TestIdp::start().await;
    let dir = TempDir::new().expect("temp dir");
    let mut config = Config::default();
    config.auth.oidc_client_secrets = Some(idp.write_client_secrets(dir.path()));
    let settings = OidcSettings::from_settings(&config.auth).expect("valid").expect("configured");
    let verifier = TokenVerifier::new(settings, Default::default()).expect("verifier");
    let memory = DatabaseSettings { db_url: Some("sqlite::memory:".into()), ..DatabaseSettings::default() };
    let db = DbHandle::new(rust_api_axum::db::connect(&memory).await.expect("database"), &memory);
    let state = AppState::new(Authenticator::Oidc(Arc::new(verifier)), Default::default(), db);
    async fn write(scoped: Scoped<WriteScope>) -> String {
        scoped.0.subject.clone()
    }
    let router = Router::new().route("/write", get(write)).with_state(state);
    let routes = platform::layers::Routes::of(router, ["/write"]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let service =
        app::build_app(routes, &config.limits, &config.observability, platform::guards::Guards::headers_only(), None);
    tokio::spawn(async move { axum::serve(listener, axum::ServiceExt::into_make_service(service)).await });
    let client = reqwest::Client::new();
    let call = |token: String| {
        let client = client.clone();
        async move { client.get(format!("http://{address}/write")).bearer_auth(token).send().await.expect("sent") }
    };

    let read_only = idp.client_credentials(JWT_CLIENT, scope::READ).await;
    let response = call(read_only).await;
    assert_eq!(response.status(), 403);
    assert_eq!(
        response.headers()["www-authenticate"],
        format!("{REALM}, error=\"insufficient_scope\", scope=\"{}\"", scope::WRITE)
    );
    assert_eq!(problem(response).await.detail, format!("The access token lacks the scope {}", scope::WRITE));

    let opaque_read_only = idp.client_credentials(OPAQUE_CLIENT, scope::READ).await;
    assert_eq!(call(opaque_read_only).await.status(), 403);

    let writer = idp.client_credentials(JWT_CLIENT, scope::WRITE).await;
    let response = call(writer).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("body"), JWT_CLIENT.0, "client-credentials tokens name the client");
}

#[tokio::test]
async fn a_provider_outage_fails_opaque_tokens_with_503_but_not_jwts_with_known_keys() {
    let (mut idp, app, _dir) = app_with_idp().await;
    let warm = idp.jwt().await;
    let unseen = idp.jwt().await;
    let opaque = idp.opaque().await;
    assert_eq!(hello(&app, &warm).await, "Hello test-user", "loads the signing keys");
    idp.stop().await;

    assert_eq!(hello(&app, &unseen).await, "Hello test-user", "a new JWT verifies with the cached key");
    let response = greet(&app, &opaque).await;
    assert_eq!(response.status(), 503);
    assert!(!response.headers().contains_key("www-authenticate"));
    let problem = problem(response).await;
    assert_eq!(problem.detail, "The identity provider cannot be reached; try again later");
}

#[tokio::test]
async fn a_thousand_requests_with_one_token_ask_the_provider_at_most_once() {
    let (idp, app, _dir) = app_with_idp().await;
    let jwt = idp.jwt().await;
    let opaque = idp.opaque().await;
    let app = Arc::new(app);
    for token in [jwt, opaque] {
        let mut batch = tokio::task::JoinSet::new();
        for _ in 0..1_000 {
            let (app, token) = (app.clone(), token.clone());
            batch.spawn(async move { greet(&app, &token).await.status().as_u16() });
        }
        while let Some(status) = batch.join_next().await {
            assert_eq!(status.expect("task"), 200);
        }
    }
    let stats = idp.stats().await;
    assert!(stats.jwks <= 1, "JWKS fetched {} times", stats.jwks);
    assert!(stats.introspection <= 1, "introspected {} times", stats.introspection);
}

#[tokio::test]
async fn a_flood_of_unknown_key_ids_refetches_the_keys_at_most_once() {
    let (idp, app, _dir) = app_with_idp().await;
    assert_eq!(hello(&app, &idp.jwt().await).await, "Hello test-user");
    for n in 0..50 {
        let bogus = idp.sign(idp.claims(), json!({"kid": format!("bogus-{n}")})).await;
        assert_eq!(greet(&app, &bogus).await.status(), 401);
    }
    let stats = idp.stats().await;
    assert!(stats.jwks <= 2, "the initial fetch plus at most one refetch, saw {}", stats.jwks);
}

#[tokio::test]
async fn without_oidc_configuration_protected_routes_are_closed() {
    let app = spawn_app().await;
    let response = call(&app, V3, Some("Bearer anything")).await;
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], REALM);
    let problem = problem(response).await;
    assert_eq!(problem.detail, "This server has no authentication configured, so protected resources are closed");
}

#[tokio::test]
async fn the_served_spec_and_swagger_ui_use_the_configured_provider_without_secrets() {
    let (idp, app, _dir) = app_with_idp().await;
    let spec: Value = app.get("/apidoc/openapi.json").await.json().await.expect("spec");
    let flow = &spec["components"]["securitySchemes"]["oidc"]["flows"]["authorizationCode"];
    assert_eq!(flow["authorizationUrl"], format!("{}/auth", idp.issuer));
    assert_eq!(flow["tokenUrl"], idp.token_endpoint);
    assert!(flow["scopes"][scope::WRITE].is_string());
    assert_eq!(spec["paths"]["/api/greeting/v3"]["get"]["security"], json!([{"oidc": []}]));
    for status in ["401", "503"] {
        assert!(spec["paths"]["/api/greeting/v3"]["get"]["responses"][status].is_object(), "{status}");
    }
    let initializer = app.get("/apidoc/swagger/swagger-initializer.js").await.text().await.expect("js");
    assert!(initializer.contains("usePkceWithAuthorizationCodeGrant"), "{initializer}");
    assert!(initializer.contains("rust-api-axum"), "client id configured");
    let redirect = app.get("/apidoc/swagger/oauth2-redirect.html").await;
    assert_eq!(redirect.status(), 200);
    for page in [spec.to_string(), initializer] {
        assert!(!page.contains("rust-api-axum-secret"), "the client secret leaked");
    }
}

#[tokio::test]
async fn a_provider_behind_a_private_ca_is_trusted_only_with_ca_cert() {
    let dir = TempDir::new().expect("temp dir");
    let (ca, cert, key) = test_support::tls::private_ca(dir.path());
    let idp = TestIdp::start_tls(&cert, &key, &std::fs::read(&ca).expect("ca")).await;
    assert!(idp.issuer.starts_with("https://127.0.0.1:"), "{}", idp.issuer);
    let secrets = idp.write_client_secrets(dir.path());
    let jwt = idp.jwt().await;

    let untrusting = spawn_app_with(|config| config.auth.oidc_client_secrets = Some(secrets.clone())).await;
    let response = greet(&untrusting, &jwt).await;
    assert_eq!(response.status(), 503, "the provider's certificate is not trusted without --ca-cert");

    let trusting = spawn_app_with(|config| {
        config.auth.oidc_client_secrets = Some(secrets);
        config.auth.ca_cert = Some(ca);
    })
    .await;
    assert_eq!(hello(&trusting, &jwt).await, "Hello test-user", "JWKS fetched over TLS");
    assert_eq!(hello(&trusting, &idp.opaque().await).await, "Hello opaque-user", "introspected over TLS");
}

/// The provider, and the API server configured against it with `extras` (our `oidc` members) in the `web` entry
/// of its `client_secrets.json`, where providers' files put them.
async fn app_with_idp_extras(extras: Value) -> (TestIdp, TestApp, TempDir) {
    let idp = TestIdp::start().await;
    let dir = TempDir::new().expect("temp dir");
    let path = idp.write_client_secrets(dir.path());
    let mut secrets: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("JSON");
    for (member, value) in extras.as_object().expect("an object") {
        secrets["web"][member] = value.clone();
    }
    std::fs::write(&path, secrets.to_string()).expect("write");
    let app = spawn_app_with(|config| config.auth.oidc_client_secrets = Some(path)).await;
    (idp, app, dir)
}

/// `Bearer {token}`'s answer on greeting v3, once `accepted(status)` or after 10 s (a background refresh is due
/// within a second or two).
async fn status_once(app: &TestApp, token: &str, accepted: impl Fn(u16) -> bool) -> u16 {
    let since = std::time::Instant::now();
    loop {
        let status = greet(app, token).await.status().as_u16();
        if accepted(status) || since.elapsed() > std::time::Duration::from_secs(10) {
            return status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_key_the_provider_removed_stops_verifying_and_its_cached_tokens_are_evicted() {
    let (idp, app, _dir) = app_with_idp_extras(json!({"jwks_refresh_secs": 1})).await;
    let verified = idp.jwt().await;
    assert_eq!(hello(&app, &verified).await, "Hello test-user", "verified and cached under the first key");
    let removed = jsonwebtoken::decode_header(&verified).expect("header").kid.expect("kid");
    idp.rotate_keys().await;
    assert_eq!(hello(&app, &idp.jwt().await).await, "Hello test-user", "the new key verifies");
    assert_eq!(hello(&app, &verified).await, "Hello test-user", "while the provider still publishes the old key");
    assert_eq!(idp.remove_previous_keys().await, std::slice::from_ref(&removed));
    // No request names an unknown key: only the background refresh can notice the removal.
    assert_eq!(status_once(&app, &verified, |status| status != 200).await, 401, "the cached token is refused");
    assert_eq!(
        invalid_token(greet(&app, &verified).await).await,
        "The access token is signed with an unknown key",
        "re-verified, not served from the cache"
    );
    let fresh_under_removed = idp.sign_with_retired(idp.claims(), &removed).await;
    assert_eq!(
        invalid_token(greet(&app, &fresh_under_removed).await).await,
        "The access token is signed with an unknown key"
    );
    assert_eq!(hello(&app, &idp.jwt().await).await, "Hello test-user", "the new key verifies");
}

#[tokio::test]
async fn a_shorter_max_age_on_the_jwks_refreshes_sooner_and_without_any_request() {
    let (idp, app, _dir) = app_with_idp_extras(json!({})).await;
    idp.behave(json!({"jwksMaxAge": 1})).await;
    assert_eq!(hello(&app, &idp.jwt().await).await, "Hello test-user");
    let loaded = idp.stats().await.jwks;
    tokio::time::sleep(std::time::Duration::from_millis(3_500)).await;
    let refreshed = idp.stats().await.jwks - loaded;
    assert!((2..=4).contains(&refreshed), "max-age=1 refreshes about every second (default 300 s): {refreshed}");
}

#[tokio::test]
async fn tokens_living_too_long_or_issued_in_the_future_are_refused() {
    let (idp, app, _dir) = app_with_idp().await;
    let now = idp.claims()["iat"].as_u64().expect("iat");
    let mut century = idp.claims();
    century["exp"] = json!(now + 100 * 365 * 86_400);
    let century = idp.sign(century, json!({})).await;
    assert_eq!(
        invalid_token(greet(&app, &century).await).await,
        "The access token's lifetime is longer than this server accepts"
    );
    let mut future = idp.claims();
    future["iat"] = json!(now + 10 * 365 * 86_400);
    future["exp"] = json!(now + 10 * 365 * 86_400 + 600);
    let future = idp.sign(future, json!({})).await;
    assert_eq!(invalid_token(greet(&app, &future).await).await, "The access token was issued in the future");
    let mut no_iat = idp.claims();
    no_iat.as_object_mut().expect("object").remove("iat");
    no_iat["exp"] = json!(now + 2 * 86_400);
    let no_iat = idp.sign(no_iat, json!({})).await;
    assert_eq!(greet(&app, &no_iat).await.status(), 401, "without iat, exp is measured from now");
    let mut day = idp.claims();
    day["exp"] = json!(now + 86_400);
    assert_eq!(hello(&app, &idp.sign(day, json!({})).await).await, "Hello signed-user", "a day is accepted");
}

#[tokio::test]
async fn an_id_token_and_a_refresh_token_are_not_access_tokens() {
    // The audience lists the CLI's client too, as a deployment accepting its users' tokens might: the ID token
    // the provider issues to that client then carries an accepted audience, and only its type gives it away.
    let (idp, app, _dir) =
        app_with_idp_extras(json!({"audience": ["rust-api-axum", test_support::idp::CLI_CLIENT]})).await;
    let tokens = idp.device_tokens("ada").await;
    let access = tokens["access_token"].as_str().expect("access_token");
    assert_eq!(hello(&app, access).await, "Hello ada", "the access token of the same sign-in works");
    let id_token = tokens["id_token"].as_str().expect("id_token");
    let detail = invalid_token(greet(&app, id_token).await).await;
    assert!(detail.contains("type") || detail.contains("ID token"), "{detail}");
    let mut nonce = idp.claims();
    nonce["nonce"] = json!("n-0S6_WzA2Mj");
    let typed_id_token = idp.sign(nonce, json!({"typ": "JWT"})).await;
    assert_eq!(invalid_token(greet(&app, &typed_id_token).await).await, "An ID token is not an access token");
    let untyped = idp.sign(idp.claims(), json!({"typ": null})).await;
    assert_eq!(greet(&app, &untyped).await.status(), 401, "a JWT without typ is not taken for an access token");
    let refresh = tokens["refresh_token"].as_str().expect("refresh_token");
    let detail = invalid_token(greet(&app, refresh).await).await;
    assert!(detail.contains("no audience") || detail.contains("not an access token"), "{detail}");
}

#[tokio::test]
async fn introspection_answers_for_someone_else_or_for_another_token_type_are_refused() {
    let (idp, app, _dir) = app_with_idp().await;
    let answer = |extra: Value| {
        let mut claims = json!({"active": true, "sub": "someone", "client_id": "another-client",
                                "scope": *test_support::idp::ALL_SCOPES, "iss": idp.issuer});
        for (member, value) in extra.as_object().expect("object") {
            claims[member] = value.clone();
        }
        json!({"introspection": {"answer": claims}})
    };
    for (n, (extra, expected)) in [
        (json!({}), "The access token names no audience"),
        (json!({"aud": "another-api"}), "The access token is meant for another audience"),
        (
            json!({"aud": "rust-api-axum", "iss": "https://elsewhere.example"}),
            "The access token was issued by another provider",
        ),
        (json!({"aud": "rust-api-axum", "token_type": "refresh_token"}), "The token is not an access token"),
    ]
    .into_iter()
    .enumerate()
    {
        idp.behave(answer(extra)).await;
        // A token of its own each time: refusals are remembered by the token's hash.
        let detail = invalid_token(greet(&app, &format!("opaque-token-{n}")).await).await;
        assert_eq!(detail, expected);
    }
    idp.behave(answer(json!({"aud": "rust-api-axum", "token_type": "Bearer"}))).await;
    assert_eq!(hello(&app, "opaque-token-for-us").await, "Hello someone", "an answer for us is taken");
}

#[tokio::test]
async fn a_bad_opaque_token_repeated_asks_the_provider_once() {
    let (idp, app, _dir) = app_with_idp().await;
    for _ in 0..5 {
        assert_eq!(invalid_token(greet(&app, "made-up-opaque-token").await).await, "The access token is not active");
    }
    assert_eq!(idp.stats().await.introspection, 1, "the refusal is remembered for 30 s");
}

#[tokio::test]
async fn until_the_first_key_load_succeeds_readiness_and_tokens_back_off() {
    let (idp, app, _dir) = app_with_idp().await;
    idp.behave(json!({"jwks": "empty"})).await;
    let jwt = idp.jwt().await;
    for _ in 0..20 {
        assert_eq!(app.get("/readyz").await.status(), 503, "an empty key set is not ready");
        assert_eq!(greet(&app, &jwt).await.status(), 503);
    }
    let asked = idp.stats().await.jwks;
    assert!(asked <= 2, "40 readiness checks and tokens in a burst asked for the keys {asked} times");
    idp.behave(json!({"reset": true})).await;
    assert_eq!(status_once(&app, &jwt, |status| status == 200).await, 200, "after the backoff the keys load");
    assert_eq!(app.get("/readyz").await.status(), 200);
}

#[tokio::test]
async fn the_provider_client_follows_no_redirect_and_reads_no_huge_answer() {
    let (idp, app, _dir) = app_with_idp().await;
    let opaque = idp.opaque().await;
    idp.behave(json!({"introspection": "redirect"})).await;
    assert_eq!(greet(&app, &opaque).await.status(), 503, "a redirect is a provider failure");
    assert_eq!(idp.stats().await.redirected, 0, "the introspection body (it carries the token) went nowhere else");

    let (idp, app, _dir) = app_with_idp().await;
    idp.behave(json!({"jwks": "huge"})).await;
    let started = std::time::Instant::now();
    assert_eq!(app.get("/readyz").await.status(), 503, "a 64 MiB JWKS is refused, not loaded as no keys");
    println!("a 64 MiB JWKS refused after {:?}", started.elapsed());
    idp.behave(json!({"jwks": "redirect"})).await;
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    assert_eq!(app.get("/readyz").await.status(), 503);
    assert_eq!(idp.stats().await.redirected, 0, "the JWKS redirect was not followed");
}

#[tokio::test]
async fn a_subject_too_long_to_store_is_refused_before_any_write() {
    let (idp, app, _dir) = app_with_idp().await;
    let mut long = idp.claims();
    long["sub"] = json!("s".repeat(256));
    let token = idp.sign(long, json!({})).await;
    let create = app
        .client
        .post(app.url("/api/resource/v1"))
        .bearer_auth(&token)
        .json(&json!({"name": "long subject"}))
        .send()
        .await
        .expect("sent");
    // Before, SQLite stored it (its columns have no length) and PostgreSQL and MariaDB answered 503.
    assert_eq!(invalid_token(create).await, "The access token's subject is longer than 255 characters");
}
