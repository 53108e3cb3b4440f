//! `GET /healthz/`.

use crate::helpers::spawn_app;

#[tokio::test]
async fn healthz_answers_ok_with_and_without_trailing_slash() {
    let app = spawn_app().await;
    for path in ["/healthz", "/healthz/"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["content-type"], "application/json");
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(body, serde_json::json!({"status": "OK"}), "{path}");
    }
}

#[tokio::test]
async fn healthz_answers_head_for_probes() {
    let app = spawn_app().await;
    let response = app.client.head(app.url("/healthz/")).send().await.expect("sent");
    assert_eq!(response.status(), 200);
}
