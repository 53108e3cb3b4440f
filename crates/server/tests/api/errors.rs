//! Errors the framework and the layers produce: every one is an RFC 9457 problem.

use crate::helpers::{problem, spawn_app, spawn_app_with};

#[tokio::test]
async fn unknown_route_is_a_404_problem() {
    let app = spawn_app().await;
    let response = app.get("/nope").await;
    assert_eq!(response.status(), 404);
    assert!(response.headers().contains_key("x-request-id"));
    let problem = problem(response).await;
    assert_eq!(problem.problem_type, "about:blank");
    assert_eq!(problem.title, "Not Found");
    assert_eq!(problem.status, 404);
    assert_eq!(problem.detail, "No route matches GET /nope");
    assert_eq!(problem.instance, "/nope");
}

#[tokio::test]
async fn wrong_method_is_a_405_problem_with_allow() {
    let app = spawn_app().await;
    for path in ["/healthz", "/api/greeting/v1/", "/api/greeting/v2"] {
        let response = app.client.delete(app.url(path)).send().await.expect("sent");
        assert_eq!(response.status(), 405, "{path}");
        assert_eq!(response.headers()["allow"], "GET,HEAD", "{path}");
        let problem = problem(response).await;
        assert_eq!(problem.title, "Method Not Allowed");
        assert_eq!(problem.instance, path);
    }
}

#[tokio::test]
async fn a_callers_request_id_is_not_believed_from_an_untrusted_peer() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/nope")).header("x-request-id", "trace-42").send().await.expect("sent");
    let ours = response.headers()["x-request-id"].to_str().expect("ASCII").to_owned();
    assert_ne!(ours, "trace-42", "the server names the request itself");
    assert_eq!(problem(response).await.request_id.as_deref(), Some(ours.as_str()));
}

#[tokio::test]
async fn a_long_unknown_path_is_reflected_cut_short() {
    let app = spawn_app().await;
    let path = format!("/{}", "a".repeat(20_000));
    let response = app.get(&path).await;
    assert_eq!(response.status(), 404);
    let body = response.text().await.expect("body");
    assert!(body.len() < 2048, "{} bytes", body.len());
    assert!(body.contains(&format!("/{}…", "a".repeat(127))), "{body}");
}

#[tokio::test]
async fn oversized_body_is_a_413_problem() {
    let app = spawn_app_with(|config| config.limits.max_body_bytes = 1024).await;
    let response = app.client.post(app.url("/api/greeting/v1")).body(vec![b'x'; 4096]).send().await.expect("sent");
    assert_eq!(response.status(), 413);
    assert_eq!(problem(response).await.status, 413);
}

#[tokio::test]
async fn default_body_limit_is_one_mebibyte() {
    let app = spawn_app().await;
    let response = app.client.post(app.url("/healthz")).body(vec![b'x'; 1024 * 1024 + 1]).send().await.expect("sent");
    assert_eq!(response.status(), 413);
}
