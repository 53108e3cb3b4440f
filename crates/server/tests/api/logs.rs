//! The in-process server's logs on demand: with `TEST_LOG=1` the harness installs the subscriber `main` does, so
//! a failing test can be rerun with its server's lines on stderr, and `access_log = false` is then seen to work.
//! Each check runs one request test of this binary again as a child process with `TEST_LOG=1` and reads its stderr.

use std::process::Command;

use crate::helpers::spawn_app_with;

const LOGGED: &str = "/logged-by-the-access-log";
const UNLOGGED: &str = "/not-logged-by-the-access-log";

/// Runs this binary's test `name` alone, with `TEST_LOG` set to `value`; its stderr.
fn stderr_of(name: &str, value: &str) -> String {
    let output = Command::new(std::env::current_exe().expect("this test binary"))
        .args([name, "--exact", "--nocapture", "--test-threads", "1"])
        .env("TEST_LOG", value)
        .env_remove("RUST_LOG")
        .output()
        .expect("the test binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success() && stdout.contains("1 passed"), "{name} failed: {stdout}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn request_with_the_access_log_on() {
    let app = spawn_app_with(|_| {}).await;
    assert_eq!(app.get(LOGGED).await.status(), 404);
}

#[tokio::test]
async fn request_with_the_access_log_off() {
    let app = spawn_app_with(|config| config.observability.access_log = false).await;
    assert_eq!(app.get(UNLOGGED).await.status(), 404);
}

#[tokio::test]
async fn request_with_its_own_request_id() {
    let app = spawn_app_with(|_| {}).await;
    let response = app.client.get(app.url(LOGGED)).header("x-request-id", "caller-7").send().await.expect("sent");
    assert_eq!(response.status(), 404);
}

#[test]
fn a_callers_request_id_from_an_untrusted_peer_is_logged_beside_the_servers_own() {
    let stderr = stderr_of("logs::request_with_its_own_request_id", "1");
    let access = stderr.lines().find(|line| line.contains(&format!("path={LOGGED}"))).expect("an access line");
    assert!(!access.contains("request_id=caller-7 "), "{access}");
    assert!(access.contains(" client_request_id=caller-7"), "{access}");
}

#[test]
fn test_log_shows_the_servers_lines_and_the_access_line() {
    let stderr = stderr_of("logs::request_with_the_access_log_on", "1");
    assert!(stderr.contains("INFO: Listening on http://127.0.0.1:"), "{stderr}");
    assert!(stderr.contains(&format!("method=GET path={LOGGED} status=404")), "{stderr}");
}

#[test]
fn access_log_false_leaves_the_access_line_out_and_without_test_log_nothing_is_logged() {
    let stderr = stderr_of("logs::request_with_the_access_log_off", "1");
    assert!(stderr.contains("INFO: Listening on"), "logging is on: {stderr}");
    assert!(!stderr.contains(UNLOGGED), "{stderr}");
    let quiet = stderr_of("logs::request_with_the_access_log_on", "");
    assert!(!quiet.contains("Listening on") && !quiet.contains(LOGGED), "{quiet}");
}
