//! `rust-api-axum doctor` against a working set-up and against each broken part: no database, a wrong provider
//! URL, a pending migration, a provider whose clock is off, a busy port, a configuration that does not parse.

use std::{path::Path, process::Output};

use migration::{Migrator, MigratorTrait};
use rust_api_axum::{config::DatabaseSettings, db};
use serde_json::Value;
use tempfile::TempDir;
use test_support::idp::TestIdp;

use crate::helpers::{binary, free_port};

/// Runs `doctor` with `args` on a fresh instance path under `dir`, and on a free port unless `args` name one.
fn doctor(dir: &Path, args: &[&str]) -> Output {
    let mut command = binary();
    command.args(["doctor", "--host", "127.0.0.1", "--instance-path"]).arg(dir.join("instance")).args(args);
    if !args.contains(&"--port") {
        command.args(["--port", &free_port().to_string()]);
    }
    command.output().expect("doctor runs")
}

/// The report's lines, and the one for `check`.
fn line<'a>(output: &'a Output, check: &str) -> &'a str {
    let text = std::str::from_utf8(&output.stdout).expect("utf-8");
    text.lines()
        .find(|line| line[line.char_indices().nth(2).map_or(0, |(at, _)| at)..].starts_with(&format!("{check}:")))
        .unwrap_or_else(|| panic!("no `{check}` line in:\n{text}"))
}

fn passed(output: &Output, check: &str) -> bool {
    line(output, check).starts_with('✓')
}

#[tokio::test]
async fn a_working_set_up_passes_every_check_and_changes_nothing() {
    let idp = TestIdp::start().await;
    let dir = TempDir::new().expect("temp dir");
    let secrets = idp.write_client_secrets(dir.path());
    let output = doctor(dir.path(), &["--oidc-secrets", secrets.to_str().expect("utf-8")]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&output.stderr));
    for check in ["configuration", "instance path", "database", "schema", "provider", "clock", "port"] {
        assert!(passed(&output, check), "{check}: {text}");
    }
    assert!(line(&output, "configuration").contains("port from flag --port"), "{text}");
    assert!(line(&output, "provider").contains("signing key(s)"), "{text}");
    assert!(line(&output, "schema").contains("applied at start"), "{text}");
    assert!(!dir.path().join("instance/rust-api-axum.sqlite").exists(), "doctor created no database");
    assert!(text.lines().all(|line| line.starts_with('✓')), "one line per check: {text}");
}

#[test]
fn no_database_is_named_with_its_fix() {
    let dir = TempDir::new().expect("temp dir");
    let closed = format!("postgres://nobody@127.0.0.1:{}/nothing", free_port());
    let output = doctor(dir.path(), &["--db", &closed]);
    assert_eq!(output.status.code(), Some(1));
    let database = line(&output, "database");
    assert!(database.starts_with('✗') && database.contains("(fix: check db_url"), "{database}");
    assert!(passed(&output, "instance path") && passed(&output, "port"), "the other checks still ran");
}

#[test]
fn a_database_url_with_secrets_is_named_without_them() {
    let dir = TempDir::new().expect("temp dir");
    let closed = free_port();
    for url in [
        format!("postgres://nobody@127.0.0.1:{closed}/nothing?password=hunter2"),
        "postgres://nobody:hunter2@127.0.0.1:99999/nothing".to_owned(),
        format!("postgres://nobody:pa#hunter2@127.0.0.1:{closed}/nothing"),
    ] {
        let output = doctor(dir.path(), &["--db", &url, "--json"]);
        let all = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert_ne!(output.status.code(), Some(0), "{all}");
        assert!(!all.contains("hunter2"), "{url}: {all}");
    }
}

#[test]
fn a_provider_that_is_not_there_is_named() {
    let dir = TempDir::new().expect("temp dir");
    let secrets = dir.path().join("client_secrets.json");
    let issuer = format!("http://127.0.0.1:{}", free_port());
    let web = serde_json::json!({"web": {"client_id": "api", "client_secret": "s3cret", "issuer": issuer}});
    std::fs::write(&secrets, web.to_string()).expect("write");
    let output = doctor(dir.path(), &["--oidc-secrets", secrets.to_str().expect("utf-8")]);
    assert_eq!(output.status.code(), Some(1));
    let provider = line(&output, "provider");
    assert!(provider.starts_with('✗') && provider.contains(&issuer), "{provider}");
    assert!(provider.contains("(fix: check the issuer"), "{provider}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("s3cret"), "no secret in the report");
}

#[tokio::test]
async fn a_pending_migration_fails_only_in_production_mode() {
    let dir = TempDir::new().expect("temp dir");
    let file = dir.path().join("behind.sqlite");
    let settings =
        DatabaseSettings { db_url: Some(format!("sqlite://{}", file.display()).into()), ..Default::default() };
    let connection = db::connect(&settings).await.expect("connects");
    Migrator::up(&connection, Some(1)).await.expect("revision 1 only");
    connection.close().await.expect("closed");
    let url = format!("sqlite://{}", file.display());

    let production = doctor(dir.path(), &["--db", &url, "--no-migrate"]);
    assert_eq!(production.status.code(), Some(1));
    let schema = line(&production, "schema");
    // Every migration after the first: the history's own, and any an entity added.
    let pending = Migrator::migrations().len() - 1;
    assert!(schema.starts_with('✗') && schema.contains(&format!("{pending} migration(s) pending")), "{schema}");
    assert!(schema.contains("rust-api-axum db upgrade"), "{schema}");
    assert!(passed(&production, "database"));

    let development = doctor(dir.path(), &["--db", &url]);
    assert!(passed(&development, "schema"), "{}", line(&development, "schema"));
}

#[tokio::test]
async fn a_provider_clock_off_beyond_the_leeway_is_detected() {
    let idp = TestIdp::start_with_clock_offset(300).await;
    let dir = TempDir::new().expect("temp dir");
    let secrets = idp.write_client_secrets(dir.path());
    let output = doctor(dir.path(), &["--oidc-secrets", secrets.to_str().expect("utf-8")]);
    assert_eq!(output.status.code(), Some(1));
    let clock = line(&output, "clock");
    assert!(clock.starts_with('✗'), "{clock}");
    assert!(clock.contains("behind the provider's") && clock.contains("(fix: synchronise"), "{clock}");
    assert!(passed(&output, "provider"), "the provider itself answers");
}

#[test]
fn a_busy_port_is_named() {
    let dir = TempDir::new().expect("temp dir");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("address").port().to_string();
    let output = doctor(dir.path(), &["--port", &port]);
    assert_eq!(output.status.code(), Some(1));
    let line = line(&output, "port");
    assert!(line.starts_with('✗') && line.contains(&format!("127.0.0.1:{port}")), "{line}");
}

#[test]
fn a_configuration_that_does_not_parse_is_the_one_failing_check() {
    let dir = TempDir::new().expect("temp dir");
    let mut command = binary();
    command.env("APP_CONFIG_PORT", "eighty").args(["doctor", "--instance-path"]).arg(dir.path());
    let output = command.output().expect("doctor runs");
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with("✗ configuration: ") && text.contains("APP_CONFIG_PORT"), "{text}");
}

#[test]
fn json_is_one_object_for_machines() {
    let dir = TempDir::new().expect("temp dir");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("address").port().to_string();
    let output = doctor(dir.path(), &["--json", "--port", &port]);
    assert_eq!(output.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&output.stdout).expect("one JSON object");
    assert_eq!(report["ok"], false);
    let checks = report["checks"].as_array().expect("checks");
    let port_check = checks.iter().find(|check| check["check"] == "port").expect("a port check");
    assert_eq!((port_check["ok"].as_bool(), port_check["fix"].is_string()), (Some(false), true));
    assert!(checks.iter().any(|check| check["check"] == "database" && check["ok"] == true));
}

#[tokio::test]
async fn beside_a_running_server_its_own_port_is_not_a_failure() {
    let app = crate::helpers::spawn_app().await;
    let dir = TempDir::new().expect("temp dir");
    let port = app.address.port().to_string();
    let output = tokio::task::spawn_blocking(move || {
        let mut command = binary();
        command.args(["doctor", "--host", "127.0.0.1", "--port", &port, "--instance-path"]).arg(dir.path().join("i"));
        command.output().expect("doctor runs")
    })
    .await
    .expect("joined");
    let port_line = line(&output, "port");
    assert!(port_line.starts_with('✓') && port_line.contains("served by a running instance"), "{port_line}");
}
