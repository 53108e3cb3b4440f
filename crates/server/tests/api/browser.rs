//! The documentation pages in a real browser: the system's headless Chromium, driven by npm `playwright-core`
//! (`tools/browser/docs.mjs`, one process per scenario), against the real server and the real test OpenID
//! provider. Swagger UI signs in at the provider and tries protected operations; all three pages render with
//! every request to another host blocked. Screenshots go to `<target dir>/browser-screenshots/`.

use std::{path::PathBuf, process::Stdio, time::Duration};

use serde_json::Value;

use crate::idp::spawn_app_with_idp;

/// The browser the tests drive; `CHROMIUM` overrides Debian's path.
fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tools/browser")
}

/// `<target dir>/browser-screenshots`: the test binary runs from `<target dir>/<profile>/deps/`, so the
/// screenshots land next to the build output of this very run, wherever `CARGO_TARGET_DIR` put it.
fn screenshot_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let target = exe.ancestors().nth(3).expect("the binary sits in <target>/<profile>/deps");
    target.join("browser-screenshots")
}

/// Runs `scenario` in the browser against a fresh server and provider; the script's observations.
async fn run_scenario(scenario: &str) -> Value {
    assert!(
        chromium().is_file(),
        "Chromium is not installed at {}: ./scripts/test installs Debian's `chromium` (or set CHROMIUM)",
        chromium().display()
    );
    assert!(
        browser_dir().join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run `npm ci` in tools/browser (./scripts/test does)"
    );
    let (idp, app, _dir) = spawn_app_with_idp(|config| config.observability.access_log = false).await;
    let screenshots = screenshot_dir();
    let run = tokio::process::Command::new("node")
        .arg("docs.mjs")
        .arg(scenario)
        .args(["--server", &app.url("/")])
        .args(["--idp", &idp.issuer])
        .arg("--screenshots")
        .arg(&screenshots)
        .env("CHROMIUM", chromium())
        .current_dir(browser_dir())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(110), run)
        .await
        .expect("the browser scenario finishes within 110 s")
        .expect("node runs the browser script");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let observed: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|error| panic!("no JSON from the browser script ({error}):\n{stdout}\n{stderr}"));
    // The screenshot's path in the test's output, so a failure can be looked at.
    eprintln!("{scenario}: {observed}");
    assert!(output.status.success() && observed["ok"] == true, "{scenario} failed: {observed:#}\n{stderr}");
    assert_eq!(observed["pageErrors"], serde_json::json!([]), "{scenario}: errors in the page");
    assert!(observed["screenshot"].as_str().is_some_and(|path| path.ends_with(".png")), "{observed}");
    observed
}

/// ReDoc's sidebar badge ("API docs by Redocly") is an image from its CDN, hard-coded in the bundle; the page's
/// policy refuses it before any request is made, and the badge removes itself when it does not load.
const REDOC_BADGE: &str = "https://cdn.redoc.ly/redoc/logo-mini.svg";

/// What an offline page must show: rendered operations (`run_scenario` waited for them), nothing requested
/// from another host, and no errors in the console but the refusal of ReDoc's badge.
fn assert_offline(observed: &Value) {
    assert_eq!(observed["blocked"], serde_json::json!([]), "requests to other hosts: {observed:#}");
    let errors = observed["consoleErrors"].as_array().expect("consoleErrors");
    let unexpected: Vec<&Value> =
        errors.iter().filter(|e| !e.as_str().is_some_and(|e| e.contains(REDOC_BADGE))).collect();
    assert!(unexpected.is_empty(), "errors in the console: {unexpected:#?}");
}

#[tokio::test]
async fn swagger_ui_signs_in_at_the_provider_and_tries_protected_operations() {
    let observed = run_scenario("swagger-authorize").await;
    assert_eq!(observed["authorized"], true, "{observed:#}");
    assert_eq!(observed["blocked"], serde_json::json!([]), "{observed:#}");
    let greeting = &observed["greeting"];
    assert_eq!((greeting["status"].as_u64(), &greeting["bearer"]), (Some(200), &Value::Bool(true)), "{greeting}");
    assert_eq!(greeting["body"]["message"], "Hello ada", "the signed-in user's name: {greeting}");
    assert!(greeting["shownStatus"].as_str().is_some_and(|s| s.contains("200")), "{greeting}");
    let created = &observed["created"];
    assert_eq!(created["status"], 201, "{created}");
    assert_eq!(created["body"]["name"], observed["createdName"], "{created}");
    assert!(created["shownStatus"].as_str().is_some_and(|s| s.contains("201")), "{created}");
    assert_eq!(observed["list"]["status"], 200, "{observed:#}");
    assert_eq!(observed["listed"], true, "the new resource is in the list: {observed:#}");
}

#[tokio::test]
async fn swagger_ui_renders_the_operations_offline() {
    assert_offline(&run_scenario("swagger-offline").await);
}

#[tokio::test]
async fn redoc_renders_the_operations_offline() {
    assert_offline(&run_scenario("redoc-offline").await);
}

#[tokio::test]
async fn rapidoc_renders_the_operations_offline() {
    assert_offline(&run_scenario("rapidoc-offline").await);
}
