//! The guards against the real server: rate limits by address, by token subject and by forwarded address
//! behind a trusted proxy; CORS preflights; security headers on API answers, problems and the documentation;
//! deeply nested JSON; refused guard configuration.

use std::num::NonZeroU32;

use reqwest::{Method, StatusCode};
use rust_api_axum::{config::Config, startup::Application};
use serde_json::json;
use tempfile::TempDir;

use crate::{
    helpers::{RunningBinary, TestApp, binary, problem, spawn_app, spawn_app_with},
    idp::spawn_app_with_idp,
};

const GREETING: &str = "/api/greeting/v1";
const V3: &str = "/api/greeting/v3";

fn rate(n: u32) -> Option<NonZeroU32> {
    NonZeroU32::new(n)
}

async fn get_with(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = app.client.get(app.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("sent")
}

/// Sends `allowed` requests that must pass, then one that must be refused with a 429 problem and `Retry-After`.
async fn exhaust(app: &TestApp, path: &str, headers: &[(&str, &str)], allowed: usize) {
    for attempt in 0..allowed {
        let response = get_with(app, path, headers).await;
        assert_eq!(response.status(), StatusCode::OK, "request {attempt} of the burst, {headers:?}");
    }
    let refused = get_with(app, path, headers).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS, "{headers:?}");
    let retry_after: u64 = refused.headers()["retry-after"].to_str().expect("text").parse().expect("whole seconds");
    assert_eq!(retry_after, 1, "one request a second: the next slot is at most a second away");
    assert_eq!(refused.headers()["cache-control"], "no-store");
    let problem = problem(refused).await;
    assert_eq!((problem.status, problem.title.as_str()), (429, "Too Many Requests"));
    assert_eq!(problem.detail, "Too many requests; try again in 1 s");
}

#[tokio::test]
async fn an_address_gets_its_burst_then_429_with_retry_after() {
    let app = spawn_app_with(|config| {
        config.guards.rate_limit_per_second = rate(1);
        config.guards.rate_limit_burst = rate(3);
    })
    .await;
    exhaust(&app, GREETING, &[], 3).await;
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK, "probes are never limited");
    assert_eq!(app.get("/api/greeting/v2?name=Ada").await.status(), StatusCode::TOO_MANY_REQUESTS, "per caller");
}

#[tokio::test]
async fn without_a_rate_nothing_is_limited() {
    let app = spawn_app().await;
    for _ in 0..50 {
        assert_eq!(app.get(GREETING).await.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn each_token_subject_has_its_own_budget() {
    let (idp, app, _dir) = spawn_app_with_idp(|config| {
        config.guards.rate_limit_per_second = rate(1);
        config.guards.rate_limit_burst = rate(2);
    })
    .await;
    let alice = format!("Bearer {}", idp.jwt().await);
    let mut bob_claims = idp.claims();
    bob_claims["sub"] = json!("bob");
    bob_claims["preferred_username"] = json!("bob");
    let bob = format!("Bearer {}", idp.sign(bob_claims, json!({})).await);

    // The limiter never verifies a token itself: a token's first use counts against the address, and once the
    // handler has accepted it, its uses count against its subject.
    assert_eq!(get_with(&app, V3, &[("authorization", &alice)]).await.status(), StatusCode::OK, "address: 1 of 2");
    exhaust(&app, V3, &[("authorization", &alice)], 2).await;
    assert_eq!(get_with(&app, V3, &[("authorization", &bob)]).await.status(), StatusCode::OK, "address: 2 of 2");
    let for_bob = get_with(&app, V3, &[("authorization", &bob)]).await;
    assert_eq!(for_bob.status(), StatusCode::OK, "same address, another subject: its own budget");
    assert_eq!(for_bob.json::<serde_json::Value>().await.expect("json")["message"], "Hello bob");
    // Made-up tokens count against the address, which is spent: they are refused before anything verifies them.
    let forged = get_with(&app, V3, &[("authorization", "Bearer not.a.jwt")]).await;
    assert_eq!(forged.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(app.get(GREETING).await.status(), StatusCode::TOO_MANY_REQUESTS, "the address is spent");
}

#[tokio::test]
async fn behind_a_trusted_proxy_callers_are_keyed_by_their_forwarded_address() {
    let app = spawn_app_with(|config| {
        config.guards.rate_limit_per_second = rate(1);
        config.guards.rate_limit_burst = rate(1);
        config.guards.trusted_proxies = vec!["127.0.0.1".into(), "::1".into()];
    })
    .await;
    exhaust(&app, GREETING, &[("x-forwarded-for", "203.0.113.1")], 1).await;
    let other = get_with(&app, GREETING, &[("x-forwarded-for", "203.0.113.2")]).await;
    assert_eq!(other.status(), StatusCode::OK, "another client behind the same proxy");
    let forged =
        get_with(&app, GREETING, &[("forwarded", "for=198.51.100.77"), ("x-forwarded-for", "203.0.113.1")]).await;
    assert_eq!(forged.status(), StatusCode::TOO_MANY_REQUESTS, "Forwarded is not the header this proxy writes");
    let spoofed = get_with(&app, GREETING, &[("x-forwarded-for", "203.0.113.1, 203.0.113.3")]).await;
    assert_eq!(spoofed.status(), StatusCode::OK, "only the right-most untrusted entry counts");
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_callers_request_id_is_kept() {
    let app = spawn_app_with(|config| config.guards.trusted_proxies = vec!["127.0.0.1".into(), "::1".into()]).await;
    let response = get_with(&app, "/nope", &[("x-request-id", "trace-42")]).await;
    assert_eq!(response.headers()["x-request-id"], "trace-42");
    assert_eq!(problem(response).await.request_id.as_deref(), Some("trace-42"));
    let elsewhere = spawn_app_with(|config| config.guards.trusted_proxies = vec!["10.0.0.0/8".into()]).await;
    let response = get_with(&elsewhere, "/nope", &[("x-request-id", "trace-42")]).await;
    assert_ne!(response.headers()["x-request-id"], "trace-42", "the peer 127.0.0.1 is not the trusted proxy");
}

#[tokio::test]
async fn from_an_untrusted_peer_forwarding_headers_are_ignored() {
    let app = spawn_app_with(|config| {
        config.guards.rate_limit_per_second = rate(1);
        config.guards.rate_limit_burst = rate(1);
        config.guards.trusted_proxies = vec!["10.0.0.0/8".into()];
    })
    .await;
    exhaust(&app, GREETING, &[("x-forwarded-for", "203.0.113.1")], 1).await;
    let spoofed = get_with(&app, GREETING, &[("x-forwarded-for", "203.0.113.2")]).await;
    assert_eq!(spoofed.status(), StatusCode::TOO_MANY_REQUESTS, "still the peer 127.0.0.1");
}

const ORIGIN: &str = "https://app.example.com";

async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    app.client
        .request(Method::OPTIONS, app.url("/api/resource/v1"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization, content-type")
        .send()
        .await
        .expect("sent")
}

#[tokio::test]
async fn cors_preflights_are_answered_for_allowed_origins_only() {
    let app = spawn_app_with(|config| config.guards.cors_allowed_origins = vec![ORIGIN.into()]).await;

    let allowed = preflight(&app, ORIGIN).await;
    assert_eq!(allowed.status(), StatusCode::OK);
    let headers = allowed.headers();
    assert_eq!(headers["access-control-allow-origin"], ORIGIN);
    assert_eq!(headers["access-control-allow-methods"], "GET,POST,PUT,PATCH,DELETE");
    assert_eq!(headers["access-control-allow-headers"], "authorization,content-type,x-request-id");
    assert_eq!(headers["access-control-max-age"], "600");
    assert!(!headers.contains_key("access-control-allow-credentials"));
    assert!(headers.get_all("vary").iter().any(|value| value.to_str().expect("text").contains("origin")));

    let foreign = preflight(&app, "https://evil.example.com").await;
    assert!(!foreign.headers().contains_key("access-control-allow-origin"), "{:?}", foreign.headers());

    let simple = get_with(&app, GREETING, &[("origin", ORIGIN)]).await;
    assert_eq!(simple.status(), StatusCode::OK);
    assert_eq!(simple.headers()["access-control-allow-origin"], ORIGIN);
    assert_eq!(simple.headers()["access-control-expose-headers"], "x-request-id,retry-after");
}

#[tokio::test]
async fn without_origins_there_are_no_cors_headers() {
    let app = spawn_app().await;
    let response = preflight(&app, ORIGIN).await;
    assert!(!response.headers().contains_key("access-control-allow-origin"));
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "OPTIONS is not routed without CORS");
}

#[tokio::test]
async fn security_headers_are_on_answers_problems_and_documentation() {
    let app = spawn_app().await;
    for (path, status) in [(GREETING, StatusCode::OK), ("/nope", StatusCode::NOT_FOUND)] {
        let response = app.get(path).await;
        assert_eq!(response.status(), status);
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(headers["cache-control"], "no-store", "{path}");
        assert!(!headers.contains_key("content-security-policy"), "{path}");
    }

    let swagger = app.get("/apidoc/swagger/").await;
    assert_eq!(swagger.status(), StatusCode::OK);
    let headers = swagger.headers().clone();
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(!headers.contains_key("cache-control"), "documentation may be cached");
    let csp = headers["content-security-policy"].to_str().expect("text").to_owned();
    assert!(csp.starts_with("default-src 'none'; script-src 'self';"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    // The page loads only what the policy allows: scripts and styles from the binary, no inline script.
    let page = swagger.text().await.expect("html");
    assert!(page.contains(r#"<script src="./swagger-ui-bundle.js""#), "{page}");
    assert!(!page.contains("<script>"), "an inline script would need 'unsafe-inline'");

    // ReDoc and RapiDoc come from the binary too: scripts from the server only, no other host anywhere.
    for (page, bundle) in
        [("/apidoc/redoc", "/apidoc/redoc/redoc.standalone.js"), ("/apidoc/rapidoc", "/apidoc/rapidoc/rapidoc-min.js")]
    {
        let response = app.get(page).await;
        let csp = response.headers()["content-security-policy"].to_str().expect("text").to_owned();
        assert!(csp.contains("script-src 'self';") && !csp.contains("://"), "{page}: {csp}");
        let html = response.text().await.expect("html");
        assert!(html.contains(bundle) && !html.contains("://"), "{page}: {html}");
        let script = app.get(bundle).await;
        assert_eq!(script.status(), 200, "{bundle}");
        assert_eq!(script.headers()["content-type"], "text/javascript; charset=utf-8", "{bundle}");
        assert!(script.headers().contains_key("content-security-policy"), "{bundle}");
        assert!(script.bytes().await.expect("body").len() > 100_000, "{bundle}: the whole bundle");
    }
}

#[tokio::test]
async fn deeply_nested_json_is_a_400_problem() {
    let (idp, app, _dir) = spawn_app_with_idp(|_| {}).await;
    let token = idp.jwt().await;
    let response = app
        .client
        .post(app.url("/api/resource/v1"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("[".repeat(100_000))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let problem = problem(response).await;
    assert_eq!(problem.detail, "The body is nested deeper than 127 levels of arrays and objects");
    assert_eq!(problem.instance, "/api/resource/v1");

    let fine = app
        .client
        .post(app.url("/api/resource/v1"))
        .bearer_auth(&token)
        .json(&json!({"name": "after the deep one"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(fine.status(), StatusCode::CREATED, "the server is still well");
}

#[tokio::test]
async fn unusable_guard_settings_refuse_to_start_with_exit_code_2() {
    let instance = TempDir::new().expect("temp dir");
    let mut base = Config::default();
    base.server.host = "127.0.0.1".into();
    base.server.port = 0;
    base.database.instance_path = instance.path().join("i");
    let with = |adjust: fn(&mut Config)| {
        let mut config = base.clone();
        adjust(&mut config);
        config
    };
    let cases = [
        (with(|c| c.guards.cors_allowed_origins = vec!["https://app.example.com/".into()]), "write it as"),
        (
            with(|c| {
                c.guards.cors_allowed_origins = vec!["*".into()];
                c.guards.cors_allow_credentials = true;
            }),
            "\"*\"",
        ),
        (with(|c| c.guards.trusted_proxies = vec!["10.0.0.0/33".into()]), "10.0.0.0/33"),
        (with(|c| c.guards.rate_limit_burst = rate(5)), "rate_limit_per_second"),
    ];
    for (config, named) in cases {
        let error = Application::build(config).await.err().expect("refused");
        assert_eq!(error.exit_code(), 2, "{error}");
        let message = error.to_string();
        assert!(message.starts_with("invalid configuration: ") && message.contains(named), "{message}");
        assert_eq!(message.lines().count(), 1, "{message}");
    }
}

#[test]
fn the_binary_refuses_a_bad_origin_in_one_line_and_logs_the_forwarded_client() {
    let dir = TempDir::new().expect("temp dir");
    let output = binary()
        .current_dir(dir.path())
        .env("APP_CONFIG_CORS_ALLOWED_ORIGINS", "[https://app.example.com/]")
        .args(["--host", "127.0.0.1", "--port", "0"])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().last().expect("a line");
    assert!(
        last.contains("ERROR: invalid configuration: cors_allowed_origins: \"https://app.example.com/\""),
        "{stderr}"
    );

    let mut command = binary();
    command.env("APP_CONFIG_TRUSTED_PROXIES", "[127.0.0.1]").args(["--host", "127.0.0.1", "--port", "0"]);
    let mut running = RunningBinary::start(command, dir.path());
    let line = running.wait_for("Listening on http://");
    let address = line.rsplit("http://").next().expect("address").to_owned();
    for forwarded in ["", "X-Forwarded-For: 198.51.100.7, 203.0.113.9\r\n"] {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&address).expect("connect");
        let request = format!("GET /api/greeting/v1 HTTP/1.1\r\nHost: x\r\n{forwarded}Connection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).expect("write");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    let direct = running.wait_for("path=/api/greeting/v1 ");
    assert!(direct.ends_with(" client=127.0.0.1"), "{direct}");
    let forwarded = running.wait_for("path=/api/greeting/v1 ");
    assert!(forwarded.ends_with(" client=203.0.113.9"), "{forwarded}");
    assert_eq!(running.terminate().0, Some(0));
}
