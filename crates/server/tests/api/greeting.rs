//! Greeting v1 and v2.

use crate::helpers::{problem, spawn_app};

async fn message(app: &crate::helpers::TestApp, path: &str) -> String {
    let response = app.get(path).await;
    assert_eq!(response.status(), 200, "{path}");
    let greeting: api_types::Greeting = response.json().await.expect("greeting body");
    greeting.message
}

#[tokio::test]
async fn v1_says_hello_world_with_and_without_trailing_slash() {
    let app = spawn_app().await;
    assert_eq!(message(&app, "/api/greeting/v1").await, "Hello World");
    assert_eq!(message(&app, "/api/greeting/v1/").await, "Hello World");
}

#[tokio::test]
async fn v2_greets_by_name_or_as_stranger() {
    let app = spawn_app().await;
    assert_eq!(message(&app, "/api/greeting/v2?name=Ada").await, "Hello Ada");
    assert_eq!(message(&app, "/api/greeting/v2/?name=Ada").await, "Hello Ada");
    assert_eq!(message(&app, "/api/greeting/v2").await, "Hello Stranger");
    assert_eq!(message(&app, "/api/greeting/v2/").await, "Hello Stranger");
}

#[tokio::test]
async fn v2_trims_the_name_and_keeps_unicode_and_quotes_verbatim() {
    let app = spawn_app().await;
    assert_eq!(message(&app, "/api/greeting/v2?name=%20%20Ada%20").await, "Hello Ada");
    let raw = r#"O'Brien "x"; DROP TABLE t; -- 名前 🦀"#;
    let response = app.client.get(app.url("/api/greeting/v2")).query(&[("name", raw)]).send().await.expect("sent");
    let greeting: api_types::Greeting = response.json().await.expect("greeting");
    assert_eq!(greeting.message, format!("Hello {raw}"));
}

#[tokio::test]
async fn v2_accepts_255_characters_and_refuses_256() {
    let app = spawn_app().await;
    let longest = "é".repeat(255);
    assert_eq!(message(&app, &format!("/api/greeting/v2?name={longest}")).await, format!("Hello {longest}"));

    let response = app.get(&format!("/api/greeting/v2?name={}", "é".repeat(256))).await;
    assert_eq!(response.status(), 400);
    let problem = problem(response).await;
    assert_eq!(problem.status, 400);
    assert_eq!(problem.errors[0].field, "name");
    assert!(problem.detail.contains("at most 255"), "{}", problem.detail);
}

#[tokio::test]
async fn v2_refuses_empty_blank_and_control_character_names() {
    let app = spawn_app().await;
    for query in ["name=", "name=%20%20", "name=a%0Ab"] {
        let response = app.get(&format!("/api/greeting/v2/?{query}")).await;
        assert_eq!(response.status(), 400, "{query}");
        let problem = problem(response).await;
        assert_eq!(problem.title, "Bad Request");
        assert_eq!(problem.instance, "/api/greeting/v2/");
        assert_eq!(problem.errors.len(), 1, "{query}");
    }
}

#[tokio::test]
async fn v2_malformed_query_string_is_a_400_problem() {
    let app = spawn_app().await;
    let response = app.get("/api/greeting/v2?name=a&name=b").await;
    assert_eq!(response.status(), 400);
    let problem = problem(response).await;
    assert!(problem.detail.contains("duplicate field"), "{}", problem.detail);
}
