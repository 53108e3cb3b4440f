//! Bearer-token authentication at the HTTP level without a provider: the server built with a `StaticKeyStore`
//! (`TestServer::key_store`) verifies tokens this test signs itself, so these run in milliseconds and need no Node.
//! The `auth` module is the end-to-end layer against the real test provider.

use std::{
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use api_types::scope;
use jsonwebtoken::{Algorithm, EncodingKey, Header, jwk::Jwk, jwk::JwkSet};
use reqwest::StatusCode;
use rust_api_axum::{auth::jwks::StaticKeyStore, config::secret_json};
use serde_json::{Value, json};
use test_support::server::TestServer;

use crate::helpers::{TestApp, problem, serve};

/// The unit tests' key: it signs test tokens and protects nothing.
const RSA_PEM: &[u8] = include_bytes!("../../src/auth/testdata/rsa-test-key.pem");
const ISSUER: &str = "https://idp.invalid";
const AUDIENCE: &str = "rust-api-axum";
const KEY_ID: &str = "static-1";
const RESOURCES: &str = "/api/resource/v1/";

fn signing_key() -> EncodingKey {
    EncodingKey::from_rsa_pem(RSA_PEM).expect("the test RSA key")
}

/// A server that trusts only the test key, for a provider at an address nothing listens on.
async fn app() -> TestApp {
    let mut jwk = Jwk::from_encoding_key(&signing_key(), Algorithm::RS256).expect("a JWK of the test key");
    jwk.common.key_id = Some(KEY_ID.to_owned());
    let keys = Arc::new(StaticKeyStore::new(&JwkSet { keys: vec![jwk] }));
    serve(
        TestServer::new()
            .configure(|config| {
                config.auth.web = Some(secret_json(&json!({"client_id": AUDIENCE, "issuer": ISSUER})));
            })
            .key_store(keys),
    )
    .await
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs()
}

fn claims(scope: &str) -> Value {
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "static-user", "exp": now() + 300, "iat": now(), "scope": scope})
}

fn sign(claims: &Value) -> String {
    let header = Header { kid: Some(KEY_ID.to_owned()), ..Header::new(Algorithm::RS256) };
    jsonwebtoken::encode(&header, claims, &signing_key()).expect("signed")
}

async fn list(app: &TestApp, token: &str) -> reqwest::Response {
    app.client.get(app.url(RESOURCES)).bearer_auth(token).send().await.expect("sent")
}

fn challenge(response: &reqwest::Response) -> String {
    response.headers()["www-authenticate"].to_str().expect("ASCII").to_owned()
}

#[tokio::test]
async fn a_token_signed_by_a_plugged_in_key_reads_and_writes_with_its_scopes() {
    let app = app().await;
    assert_eq!(list(&app, &sign(&claims(scope::READ))).await.status(), StatusCode::OK);
    let created = app
        .client
        .post(app.url(RESOURCES))
        .bearer_auth(sign(&claims(scope::WRITE)))
        .json(&json!({"name": "signed here"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(created.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_token_without_the_scope_is_403_naming_the_scope() {
    let app = app().await;
    let response = list(&app, &sign(&claims(scope::WRITE))).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(challenge(&response).contains(&format!("scope=\"{}\"", scope::READ)), "{}", challenge(&response));
    assert!(problem(response).await.detail.contains(scope::READ));
}

#[tokio::test]
async fn expired_foreign_unknown_key_and_symmetric_tokens_are_401_invalid_token() {
    let app = app().await;
    let mut expired = claims(scope::READ);
    expired["exp"] = json!(now() - 600);
    let mut foreign = claims(scope::READ);
    foreign["aud"] = json!("another-api");
    let unknown_key = jsonwebtoken::encode(
        &Header { kid: Some("not-published".to_owned()), ..Header::new(Algorithm::RS256) },
        &claims(scope::READ),
        &signing_key(),
    )
    .expect("signed");
    // A public key used as an HMAC secret is the classic confusion attack; only asymmetric algorithms pass.
    let symmetric = jsonwebtoken::encode(
        &Header { kid: Some(KEY_ID.to_owned()), ..Header::new(Algorithm::HS256) },
        &claims(scope::READ),
        &EncodingKey::from_secret(b"guessable").expect("an HMAC key"),
    )
    .expect("signed");
    for (what, token) in
        [("expired", sign(&expired)), ("foreign", sign(&foreign)), ("unknown key", unknown_key), ("HS256", symmetric)]
    {
        let response = list(&app, &token).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}");
        assert!(challenge(&response).contains("error=\"invalid_token\""), "{what}: {}", challenge(&response));
    }
}

#[tokio::test]
async fn without_a_token_the_answer_is_401_with_the_bare_challenge() {
    let app = app().await;
    let response = app.client.get(app.url(RESOURCES)).send().await.expect("sent");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(challenge(&response), "Bearer realm=\"rust-api-axum\"");
}

#[tokio::test]
async fn a_500_kb_unknown_key_is_answered_with_a_short_problem() {
    let app = app().await;
    let key = "k".repeat(500 * 1024);
    let response = app
        .client
        .post(app.url(RESOURCES))
        .bearer_auth(sign(&claims(scope::WRITE)))
        .header("content-type", "application/json")
        .body(format!(r#"{{"name": "x", "{key}": 1}}"#))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = response.text().await.expect("body");
    assert!(body.len() < 2048, "a {} byte answer", body.len());
    let problem: api_types::Problem = serde_json::from_str(&body).expect("problem json");
    assert_eq!(problem.errors[0].field, format!("{}…", "k".repeat(128)));
}
