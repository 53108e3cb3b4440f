//! OpenTelemetry traces, end to end: the real binary (its tracer is process-global) against the real test OpenID
//! provider, exporting to an OTLP/HTTP receiver started here that decodes what arrives with the OTel proto crate.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, body::Bytes, extract::State, routing::post};
use opentelemetry_proto::tonic::{
    collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse},
    common::v1::{AnyValue, KeyValue, any_value::Value},
    trace::v1::{Span, span::SpanKind, status::StatusCode},
};
use prost::Message;
use tempfile::TempDir;

use crate::{
    helpers::{RunningBinary, binary, free_port},
    idp::TestIdp,
};

/// The caller's span, as a proxy in front of the service would send it.
const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT_SPAN_ID: &str = "b7ad6b7169203331";

/// What the receiver got: each span with its resource's `service.name`.
type Received = Arc<Mutex<Vec<(String, Span)>>>;

/// A minimal OTLP/HTTP collector on a free loopback port: `POST /v1/traces` with a protobuf body.
async fn start_receiver() -> (SocketAddr, Received) {
    async fn export(State(received): State<Received>, body: Bytes) -> Vec<u8> {
        let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf export request");
        let mut received = received.lock().expect("lock");
        for resource_spans in request.resource_spans {
            let service = resource_spans
                .resource
                .as_ref()
                .and_then(|resource| text(&resource.attributes, "service.name"))
                .unwrap_or_default();
            for scope_spans in resource_spans.scope_spans {
                received.extend(scope_spans.spans.into_iter().map(|span| (service.clone(), span)));
            }
        }
        ExportTraceServiceResponse::default().encode_to_vec()
    }
    let received = Received::default();
    let app = Router::new().route("/v1/traces", post(export)).with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("receiver serves") });
    (address, received)
}

fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v: &AnyValue| v.value.as_ref())
}

fn text(attributes: &[KeyValue], key: &str) -> Option<String> {
    match attribute(attributes, key) {
        Some(Value::StringValue(value)) => Some(value.clone()),
        _ => None,
    }
}

fn int(attributes: &[KeyValue], key: &str) -> Option<i64> {
    match attribute(attributes, key) {
        Some(Value::IntValue(value)) => Some(*value),
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The server binary against `idp`, with `env` on top, serving on a free port; returns it and its base URL.
fn start_server(idp: &TestIdp, dir: &TempDir, env: &[(&str, String)]) -> (RunningBinary, String) {
    let port = free_port().to_string();
    let mut command = binary();
    command
        .args(["--host", "127.0.0.1", "--port", &port, "--instance-path", "instance"])
        .env("APP_CONFIG_OIDC_CLIENT_SECRETS", idp.write_client_secrets(dir.path()));
    for (key, value) in env {
        command.env(key, value);
    }
    let mut server = RunningBinary::start(command, dir.path());
    tokio::task::block_in_place(|| server.wait_for("Listening on"));
    (server, format!("http://127.0.0.1:{port}"))
}

/// One protected read, the first request the server sees, so it fetches the provider's keys and reads the
/// database; returns the response's request id.
async fn traced_read(base: &str, token: &str) -> String {
    let response = reqwest::Client::new()
        .get(format!("{base}/api/resource/v1/42"))
        .bearer_auth(token)
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_SPAN_ID}-01"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 404, "no resource 42 in a fresh database");
    response.headers()["x-request-id"].to_str().expect("text").to_owned()
}

/// SIGTERM, then the exit code and every log line.
fn terminate(server: RunningBinary) -> Vec<String> {
    let (code, lines) = tokio::task::block_in_place(|| server.terminate());
    assert_eq!(code, Some(0), "graceful exit; log:\n{}", lines.join("\n"));
    lines
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_is_one_server_span_under_the_callers_with_db_and_provider_children() {
    let (collector, received) = start_receiver().await;
    let idp = TestIdp::start().await;
    let dir = TempDir::new().expect("temp dir");
    let token = idp.jwt().await;
    let env = [
        ("APP_CONFIG_OTEL_ENDPOINT", format!("http://{collector}")),
        ("APP_CONFIG_OTEL_SERVICE_NAME", "traces-test".to_owned()),
    ];
    let (server, base) = start_server(&idp, &dir, &env);
    let request_id = traced_read(&base, &token).await;
    // Nothing is exported before shutdown (the batch delay is 5 s): what arrives proves the flush at SIGTERM.
    let lines = terminate(server);
    let spans = received.lock().expect("lock").clone();
    let log = lines.join("\n");

    let mut servers = spans.iter().filter(|(_, span)| span.kind == SpanKind::Server as i32);
    let (service, request) = servers.next().unwrap_or_else(|| panic!("no SERVER span in {spans:#?}\nlog:\n{log}"));
    assert!(servers.next().is_none(), "one request, one SERVER span");
    assert_eq!(service, "traces-test");
    assert_eq!(request.name, "GET /api/resource/v1/{id}");
    assert_eq!(hex(&request.trace_id), TRACE_ID, "the caller's trace goes on");
    assert_eq!(hex(&request.parent_span_id), PARENT_SPAN_ID, "the caller's span is the parent");
    let attributes = &request.attributes;
    assert_eq!(text(attributes, "http.request.method").as_deref(), Some("GET"));
    assert_eq!(text(attributes, "http.route").as_deref(), Some("/api/resource/v1/{id}"));
    assert_eq!(text(attributes, "url.path").as_deref(), Some("/api/resource/v1/42"));
    assert_eq!(int(attributes, "http.response.status_code"), Some(404));
    assert_eq!(text(attributes, "request.id").as_deref(), Some(request_id.as_str()));

    let child = |name: &str| {
        let (_, span) = spans
            .iter()
            .find(|(_, span)| span.name == name)
            .unwrap_or_else(|| panic!("no {name:?} span in {spans:#?}"));
        assert_eq!(span.kind, SpanKind::Client as i32, "{name}");
        assert_eq!(span.trace_id, request.trace_id, "{name} is in the request's trace");
        assert_eq!(span.parent_span_id, request.span_id, "{name} is a child of the request span");
        span
    };
    let jwks = child("GET jwks");
    assert_eq!(text(&jwks.attributes, "http.request.method").as_deref(), Some("GET"));
    assert_eq!(text(&jwks.attributes, "server.address").as_deref(), Some("127.0.0.1"));
    let url = text(&jwks.attributes, "url.full").expect("url.full");
    assert!(url.starts_with(&idp.issuer) && !url.contains('?'), "{url}");
    assert_eq!(int(&jwks.attributes, "http.response.status_code"), Some(200));
    child("GET openid-configuration");
    let read = child("db.get");
    assert_eq!(text(&read.attributes, "db.system.name").as_deref(), Some("sqlite"));
    assert_eq!(text(&read.attributes, "db.operation.name").as_deref(), Some("SELECT"));

    let access = lines
        .iter()
        .find(|line| line.contains("path=/api/resource/v1/42"))
        .unwrap_or_else(|| panic!("no access line in\n{log}"));
    assert!(access.ends_with(&format!("request_id={request_id} client=127.0.0.1 trace_id={TRACE_ID}")), "{access}");
    let keys_loaded = lines
        .iter()
        .find(|line| line.contains("signing keys from"))
        .unwrap_or_else(|| panic!("no key loading line in\n{log}"));
    assert!(
        keys_loaded.ends_with(&format!(" trace_id={TRACE_ID}")),
        "lines logged while handling it too: {keys_loaded}"
    );
    let start_line = lines.iter().find(|line| line.contains("Listening on")).expect("start line");
    assert!(!start_line.contains("trace_id"), "lines outside a request carry none: {start_line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_without_traceparent_starts_a_trace_and_failures_mark_their_spans() {
    let (collector, received) = start_receiver().await;
    let mut idp = TestIdp::start().await;
    let dir = TempDir::new().expect("temp dir");
    let (opaque, jwt) = (idp.opaque().await, idp.jwt().await);
    let (server, base) = start_server(&idp, &dir, &[("APP_CONFIG_OTEL_ENDPOINT", format!("http://{collector}"))]);
    let client = reqwest::Client::new();
    let list = client.get(format!("{base}/api/resource/v1")).bearer_auth(&opaque).send().await.expect("sent");
    assert_eq!(list.status(), 200);
    // With the provider gone the keys cannot be fetched: 503.
    idp.stop().await;
    let read = client.get(format!("{base}/api/resource/v1/7")).bearer_auth(&jwt).send().await.expect("sent");
    assert_eq!(read.status(), 503);
    terminate(server);
    let spans = received.lock().expect("lock").clone();
    let by_name = |name: &str| {
        spans
            .iter()
            .map(|(_, span)| span)
            .find(|span| span.name == name)
            .unwrap_or_else(|| panic!("no {name:?} in {spans:#?}"))
    };
    let failed = |span: &Span| span.status.as_ref().is_some_and(|status| status.code == StatusCode::Error as i32);

    let listed = by_name("GET /api/resource/v1");
    assert!(listed.parent_span_id.is_empty(), "no traceparent: a new trace, this span its root");
    assert_eq!(int(&listed.attributes, "http.response.status_code"), Some(200));
    assert!(!failed(listed));
    let introspection = by_name("POST introspection");
    assert_eq!(introspection.parent_span_id, listed.span_id);
    assert_eq!(introspection.kind, SpanKind::Client as i32);
    assert_eq!(text(&introspection.attributes, "http.request.method").as_deref(), Some("POST"));
    let url = text(&introspection.attributes, "url.full").expect("url.full");
    assert!(url.starts_with(&idp.issuer) && !url.contains('?'), "{url}");
    assert_eq!(by_name("db.list").parent_span_id, listed.span_id);

    let unavailable = by_name("GET /api/resource/v1/{id}");
    assert_eq!(int(&unavailable.attributes, "http.response.status_code"), Some(503));
    assert!(failed(unavailable), "5xx marks the request span failed: {unavailable:#?}");
    let jwks = by_name("GET jwks");
    assert_eq!(jwks.parent_span_id, unavailable.span_id);
    assert!(failed(jwks), "{jwks:#?}");
    assert_eq!(int(&jwks.attributes, "http.response.status_code"), None, "no answer came");
}

#[tokio::test(flavor = "multi_thread")]
async fn json_log_lines_of_a_traced_request_carry_its_trace_id() {
    let (collector, _received) = start_receiver().await;
    let idp = TestIdp::start().await;
    let dir = TempDir::new().expect("temp dir");
    let token = idp.jwt().await;
    let env =
        [("APP_CONFIG_OTEL_ENDPOINT", format!("http://{collector}")), ("APP_CONFIG_LOG_FORMAT", "json".to_owned())];
    let (server, base) = start_server(&idp, &dir, &env);
    let request_id = traced_read(&base, &token).await;
    let lines = terminate(server);
    let objects: Vec<serde_json::Value> =
        lines.iter().map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"))).collect();
    let access = objects
        .iter()
        .find(|object| object["target"] == "access")
        .unwrap_or_else(|| panic!("no access line in {objects:#?}"));
    assert_eq!(access["request_id"], request_id.as_str());
    assert_eq!(access["trace_id"], TRACE_ID);
    let keys_loaded = objects
        .iter()
        .find(|object| object["message"].as_str().is_some_and(|message| message.contains("signing keys from")))
        .unwrap_or_else(|| panic!("no key loading line in {objects:#?}"));
    assert_eq!(keys_loaded["trace_id"], TRACE_ID, "{keys_loaded}");
    let start = objects
        .iter()
        .find(|object| object["message"].as_str().is_some_and(|message| message.starts_with("Listening on")))
        .expect("start line");
    assert!(start.get("trace_id").is_none(), "{start}");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_otel_endpoint_nothing_is_sent_and_no_trace_id_is_logged() {
    let (collector, received) = start_receiver().await;
    let idp = TestIdp::start().await;
    let dir = TempDir::new().expect("temp dir");
    let token = idp.jwt().await;
    // The SDK's own variable must not switch tracing on by itself: `otel_endpoint` is the one switch.
    let env = [("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{collector}"))];
    let (server, base) = start_server(&idp, &dir, &env);
    traced_read(&base, &token).await;
    let lines = terminate(server);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(received.lock().expect("lock").is_empty(), "nothing may reach a collector");
    assert!(lines.iter().any(|line| line.contains("path=/api/resource/v1/42")), "{lines:#?}");
    assert!(lines.iter().all(|line| !line.contains("trace_id")), "{lines:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_collector_costs_one_warning_and_no_request() {
    rust_api_axum::auth::http::install_crypto_provider();
    let dir = TempDir::new().expect("temp dir");
    let port = free_port().to_string();
    let mut command = binary();
    command
        .args(["--host", "127.0.0.1", "--port", &port, "--instance-path", "instance"])
        // Nothing listens there; exports are attempted every 100 ms instead of every 5 s.
        .env("APP_CONFIG_OTEL_ENDPOINT", format!("http://127.0.0.1:{}", free_port()))
        .env("OTEL_BSP_SCHEDULE_DELAY", "100");
    let mut server = RunningBinary::start(command, dir.path());
    tokio::task::block_in_place(|| server.wait_for("Listening on"));
    for _ in 0..5 {
        let response =
            reqwest::get(format!("http://127.0.0.1:{port}/api/greeting/v1?name=Ada")).await.expect("answered");
        assert_eq!(response.status(), 200, "export failures never reach requests");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let lines = terminate(server);
    let warnings: Vec<&String> = lines.iter().filter(|line| line.contains("exporting spans failed")).collect();
    assert_eq!(warnings.len(), 1, "one line however many exports failed:\n{}", lines.join("\n"));
    assert!(warnings[0].contains("WARN"), "{}", warnings[0]);
}

#[test]
fn a_malformed_endpoint_is_one_line_and_exit_code_2() {
    let dir = TempDir::new().expect("temp dir");
    let output = binary()
        .current_dir(dir.path())
        .args(["--port", "0", "--instance-path", "instance"])
        .env("APP_CONFIG_OTEL_ENDPOINT", "collector:4318")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|line| line.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("invalid otel_endpoint 'collector:4318'"), "{stderr}");
    assert!(!stderr.contains("Listening"), "{stderr}");
}
