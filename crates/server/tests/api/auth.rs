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
