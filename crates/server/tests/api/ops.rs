//! What operators rely on: Prometheus metrics (where they are served, what they count), liveness and readiness
//! (also during shutdown and with the OpenID provider away), and the connection limits (slow and oversized
//! request heads).

use std::time::Duration;

use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{
    helpers::{RunningBinary, TestApp, binary, free_port, problem, spawn_app, spawn_app_with},
    idp::spawn_app_with_idp,
};

async fn metrics_text(app: &TestApp, url: &str) -> String {
    let response = app.client.get(url).send().await.expect("sent");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    response.text().await.expect("text")
}

/// The value of the sample line that starts with `series` (name and labels exactly as exposed).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_never_by_raw_path() {
    let app = spawn_app().await;
    for _ in 0..3 {
        assert_eq!(app.get("/api/greeting/v1").await.status(), 200);
    }
    assert_eq!(app.get("/api/resource/v1/12345").await.status(), 401);
    assert_eq!(app.get("/api/resource/v1/67890").await.status(), 401);
    assert_eq!(app.get("/no/such/path/4711").await.status(), 404);
    let text = metrics_text(&app, &app.url("/metrics")).await;

    let greeting = r#"http_server_requests_total{route="/api/greeting/v1",method="GET",status="200"}"#;
    assert_eq!(sample(&text, greeting), Some(3.0), "{text}");
    let resource = r#"http_server_requests_total{route="/api/resource/v1/{id}",method="GET",status="401"}"#;
    assert_eq!(sample(&text, resource), Some(2.0), "{text}");
    let stranger = r#"http_server_requests_total{route="unmatched",method="GET",status="404"}"#;
    assert_eq!(sample(&text, stranger), Some(1.0), "{text}");
    for raw in ["12345", "67890", "4711"] {
        assert!(!text.contains(raw), "raw path segment {raw} became a label:\n{text}");
    }
    let count = r#"http_server_request_duration_seconds_count{route="/api/greeting/v1",method="GET",status="200"}"#;
    assert_eq!(sample(&text, count), Some(3.0), "{text}");
    assert!(text.contains("# TYPE http_server_request_duration_seconds histogram"), "{text}");
    // The scrape itself is in flight while the text is rendered.
    assert_eq!(sample(&text, "http_server_requests_in_flight"), Some(1.0), "{text}");
    let version = format!(r#"build_info{{service="rust-api-axum",version="{}"}}"#, rust_api_axum::VERSION);
    assert_eq!(sample(&text, &version), Some(1.0), "{text}");
    for process in ["process_resident_memory_bytes", "process_open_fds", "process_cpu_seconds_total", "process_threads"]
    {
        assert!(sample(&text, process).is_some_and(|value| value > 0.0), "{process} missing:\n{text}");
    }
    assert_eq!(sample(&text, "db_pool_max_connections"), Some(10.0), "{text}");
    assert!(sample(&text, r#"db_pool_connections{state="idle"}"#).is_some(), "{text}");
    assert!(sample(&text, r#"db_pool_connections{state="in_use"}"#).is_some(), "{text}");
    let again = metrics_text(&app, &app.url("/metrics")).await;
    let scrape = r#"http_server_requests_total{route="/metrics",method="GET",status="200"}"#;
    assert_eq!(sample(&again, scrape), Some(1.0), "scrapes on the API listener are requests too: {again}");
}

#[tokio::test]
async fn metrics_can_be_switched_off_or_moved_to_their_own_port() {
    let off = spawn_app_with(|config| config.observability.metrics_enabled = false).await;
    assert_eq!(problem(off.get("/metrics").await).await.status, 404);

    let port = free_port();
    let apart = spawn_app_with(|config| config.observability.metrics_port = Some(port)).await;
    assert_eq!(apart.get("/metrics").await.status(), 404, "not on the API listener once it has its own port");
    assert_eq!(apart.get("/api/greeting/v1").await.status(), 200);
    let text = metrics_text(&apart, &format!("http://127.0.0.1:{port}/metrics")).await;
    let greeting = r#"http_server_requests_total{route="/api/greeting/v1",method="GET",status="200"}"#;
    assert_eq!(sample(&text, greeting), Some(1.0), "{text}");
    let other = apart.client.get(format!("http://127.0.0.1:{port}/api/greeting/v1")).send().await.expect("sent");
    assert_eq!(other.status(), 404, "the metrics listener serves nothing else");

    assert!(!openapi_paths(&apart).await.iter().any(|path| ["/metrics", "/livez", "/readyz"].contains(&path.as_str())));
}

async fn openapi_paths(app: &TestApp) -> Vec<String> {
    let document: serde_json::Value = app.get("/apidoc/openapi.json").await.json().await.expect("document");
    document["paths"].as_object().expect("paths").keys().cloned().collect()
}

#[tokio::test]
async fn authentication_outcomes_jwks_fetches_and_cache_lookups_are_counted() {
    let (idp, app, _dir) = spawn_app_with_idp(|_| {}).await;
    let jwt = idp.jwt().await;
    let bearer = |token: &str| format!("Bearer {token}");
    let get = |path: &str, token: Option<String>| {
        let mut request = app.client.get(app.url(path));
        if let Some(token) = token {
            request = request.header("authorization", token);
        }
        request.send()
    };
    assert_eq!(get("/api/greeting/v3", Some(bearer(&jwt))).await.expect("sent").status(), 200);
    assert_eq!(get("/api/greeting/v3", Some(bearer(&jwt))).await.expect("sent").status(), 200);
    assert_eq!(get("/api/greeting/v3", None).await.expect("sent").status(), 401);
    let mut claims = idp.claims();
    claims["exp"] = serde_json::json!(1_000_000);
    let expired = idp.sign(claims, serde_json::json!({})).await;
    assert_eq!(get("/api/greeting/v3", Some(bearer(&expired))).await.expect("sent").status(), 401);
    let mut forged = jwt.clone();
    forged.truncate(jwt.len() - 4);
    forged.push_str("AAAA");
    assert_eq!(get("/api/greeting/v3", Some(bearer(&forged))).await.expect("sent").status(), 401);

    let text = metrics_text(&app, &app.url("/metrics")).await;
    let outcome = |name: &str| sample(&text, &format!(r#"auth_requests_total{{outcome="{name}"}}"#));
    assert_eq!(outcome("valid"), Some(2.0), "{text}");
    assert_eq!(outcome("missing_token"), Some(1.0), "{text}");
    assert_eq!(outcome("expired"), Some(1.0), "{text}");
    assert_eq!(outcome("bad_signature"), Some(1.0), "{text}");
    assert_eq!(outcome("insufficient_scope"), Some(0.0), "{text}");
    assert_eq!(sample(&text, "auth_jwks_fetches_total"), Some(1.0), "one fetch serves every token: {text}");
    assert_eq!(sample(&text, r#"auth_token_cache_lookups_total{result="hit"}"#), Some(1.0), "{text}");
    assert_eq!(sample(&text, r#"auth_token_cache_lookups_total{result="miss"}"#), Some(3.0), "{text}");
}

#[tokio::test]
async fn liveness_and_readiness_answer_without_a_token() {
    let app = spawn_app().await;
    for path in ["/livez", "/readyz", "/livez/", "/readyz/"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(body["status"], "OK");
    }
}

#[tokio::test]
async fn readiness_waits_for_the_providers_keys_and_keeps_them_through_an_outage() {
    let (mut idp, app, _dir) = spawn_app_with_idp(|_| {}).await;
    let jwt = idp.jwt().await;
    assert_eq!(app.get("/readyz").await.status(), 200, "keys load on the first readiness check");
    idp.stop().await;
    assert_eq!(app.get("/readyz").await.status(), 200, "loaded keys keep the replica ready during an outage");
    let response = app.client.get(app.url("/api/greeting/v3")).bearer_auth(&jwt).send().await.expect("sent");
    assert_eq!(response.status(), 200);

    // A replica that starts while the provider is away cannot check tokens: it is not ready.
    let dir = TempDir::new().expect("temp dir");
    let secrets = idp.write_client_secrets(dir.path());
    let cold = spawn_app_with(|config| config.auth.oidc_client_secrets = Some(secrets)).await;
    let response = cold.get("/readyz").await;
    assert_eq!(response.status(), 503);
    assert_eq!(problem(response).await.detail, "Not ready: identity provider signing keys");
    assert_eq!(cold.get("/livez").await.status(), 200);
}

#[test]
fn readiness_turns_503_at_once_on_sigterm_while_requests_are_still_served() {
    let dir = TempDir::new().expect("temp dir");
    let port = free_port();
    let mut command = binary();
    command.args(["--host", "127.0.0.1", "--port", &port.to_string(), "--instance-path", "instance"]);
    command.env("APP_CONFIG_SHUTDOWN_DRAIN_SECS", "6");
    let mut server = RunningBinary::start(command, dir.path());
    server.wait_for("Listening on");
    let get = |path: &str| status_of(port, path);
    assert_eq!(get("/readyz"), 200);
    server.signal("TERM");
    server.wait_for("not ready any more");
    assert_eq!(get("/readyz"), 503, "load balancers are told at once");
    assert_eq!(get("/livez"), 200, "still alive while draining");
    assert_eq!(get("/api/greeting/v1"), 200, "and still serving");
    let (code, lines) = server.wait_for_exit();
    assert_eq!(code, Some(0), "{}", lines.join("\n"));
}

/// The status of a plain blocking `GET path` on a fresh connection, for tests without a runtime.
fn status_of(port: u16, path: &str) -> u16 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connects");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").expect("writes");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("reads");
    answer.get(9..12).and_then(|status| status.parse().ok()).expect("a status line")
}

#[tokio::test]
async fn a_client_that_never_finishes_its_request_head_is_disconnected() {
    let app = spawn_app_with(|config| config.limits.header_read_timeout_secs = 1).await;
    let mut slow = tokio::net::TcpStream::connect(app.address).await.expect("connects");
    let started = std::time::Instant::now();
    slow.write_all(b"GET /api/greeting/v1 HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.expect("writes");
    let mut buffer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut buffer)).await;
    assert!(read.is_ok(), "the server closed the connection within the timeout plus slack");
    assert!(started.elapsed() >= Duration::from_millis(900), "not before the deadline: {:?}", started.elapsed());
    assert!(!String::from_utf8_lossy(&buffer).contains("200 OK"), "no answer to half a request");
    assert_eq!(app.get("/api/greeting/v1").await.status(), 200, "other clients are served");

    // Sending nothing at all, or half of the HTTP/2 preface, is no way around the deadline either.
    for opening in [&b""[..], b"PRI * HTTP/2.0\r\n"] {
        let mut silent = tokio::net::TcpStream::connect(app.address).await.expect("connects");
        silent.write_all(opening).await.expect("writes");
        let read = tokio::time::timeout(Duration::from_secs(5), silent.read_to_end(&mut Vec::new())).await;
        assert!(read.is_ok(), "a connection that opened with {opening:?} was kept past the deadline");
    }
}

#[tokio::test]
async fn an_oversized_request_head_gets_431() {
    let app = spawn_app_with(|config| config.limits.max_request_head_bytes = 16 * 1024).await;
    let big = "a".repeat(20 * 1024);
    let response = app.client.get(app.url("/api/greeting/v1")).header("x-big", big).send().await.expect("sent");
    assert_eq!(response.status(), 431);
    let fits = "a".repeat(8 * 1024);
    let response = app.client.get(app.url("/api/greeting/v1")).header("x-fits", fits).send().await.expect("sent");
    assert_eq!(response.status(), 200);
}

/// The status a request head of exactly `size` bytes (one write, one big header) gets, or 0 when the connection
/// closed without an answer.
async fn status_of_head(app: &TestApp, size: usize, trickle: bool) -> u16 {
    let start = "GET /api/greeting/v1 HTTP/1.1\r\nhost: x\r\nx-big: ";
    let end = "\r\nconnection: close\r\n\r\n";
    let head = format!("{start}{}{end}", "a".repeat(size - start.len() - end.len()));
    assert_eq!(head.len(), size);
    let mut stream = tokio::net::TcpStream::connect(app.address).await.expect("connects");
    if trickle {
        for chunk in head.as_bytes().chunks(1000) {
            stream.write_all(chunk).await.expect("writes");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    } else {
        stream.write_all(head.as_bytes()).await.expect("writes");
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    text.get(9..12).and_then(|code| code.parse().ok()).unwrap_or(0)
}

/// `max_request_head_bytes` is exact for HTTP/1: a head of that many bytes passes and one byte more gets 431,
/// whether it arrives in one write or trickles in, and whatever hyper's read buffer holds at the time.
#[tokio::test]
async fn the_request_head_limit_is_exact() {
    for max in [4 * 1024, 16 * 1024, 32 * 1024] {
        let app = spawn_app_with(|config| config.limits.max_request_head_bytes = max).await;
        for trickle in [false, true] {
            assert_eq!(status_of_head(&app, max, trickle).await, 200, "{max} bytes with {max} set");
            assert_eq!(status_of_head(&app, max + 1, trickle).await, 431, "{} bytes with {max} set", max + 1);
        }
        assert_eq!(status_of_head(&app, max + 8 * 1024, false).await, 431, "{max} set");
    }
}
