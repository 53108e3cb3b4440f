//! The container image, run by podman as a user would run it: read-only root, the instance path on a volume,
//! production mode (`db upgrade` first, then the server with `--no-migrate`), SIGTERM as PID 1.

use std::time::Duration;

use deploy_tests::{
    Container, ScratchSchema, free_port, http, image, image_version, inspect, podman_ok, podman_output,
};
use serde_json::{Value, json};
use test_support::{idp::TestIdp, tls::private_ca};

/// What the README promises.
const MAX_IMAGE_BYTES: u64 = 30 * 1024 * 1024;
/// Where the image keeps the instance path (the default SQLite database).
const INSTANCE_PATH: &str = "/var/lib/rust-api-axum";

#[tokio::test]
async fn image_is_at_most_30_mib() {
    let size = inspect("image", &image()).await["Size"].as_u64().expect("image size");
    println!("image size: {size} bytes ({:.1} MiB)", size as f64 / 1024.0 / 1024.0);
    assert!(size <= MAX_IMAGE_BYTES, "the image is {size} bytes, over the 30 MiB target");
}

#[tokio::test]
async fn image_runs_as_uid_10001_with_container_defaults() {
    let config = &inspect("image", &image()).await["Config"];
    assert_eq!(config["User"], "10001:10001");
    assert!(config["ExposedPorts"].get("8080/tcp").is_some(), "8080 is exposed: {config}");
    assert!(config["Volumes"].get(INSTANCE_PATH).is_some(), "the instance path is a volume: {config}");
    assert_eq!(config["Entrypoint"], json!(["/usr/local/bin/rust-api-axum"]));
    assert_eq!(config["Cmd"], json!(["serve"]));
    let env: Vec<&str> = config["Env"].as_array().expect("Env").iter().filter_map(Value::as_str).collect();
    for default in [
        "APP_CONFIG_HOST=0.0.0.0",
        "APP_CONFIG_PORT=8080",
        "APP_CONFIG_INSTANCE_PATH=/var/lib/rust-api-axum",
        "APP_CONFIG_AUTO_MIGRATE=false",
        "APP_CONFIG_LOG_FORMAT=json",
    ] {
        assert!(env.contains(&default), "{default} is not among the image's defaults: {env:?}");
    }
    assert_eq!(config["Labels"]["org.opencontainers.image.version"], image_version().as_str());
}

#[tokio::test]
async fn version_build_argument_reaches_dash_v_and_the_openapi_document() {
    let version = image_version();
    let printed = podman_ok(&["run", "--rm", "--read-only", &image(), "-V"]).await;
    assert_eq!(printed.trim(), format!("rust-api-axum {version}"));
    let document: Value =
        serde_json::from_str(&podman_ok(&["run", "--rm", "--read-only", &image(), "openapi"]).await).expect("JSON");
    assert_eq!(document["info"]["version"], version.as_str());
}

#[tokio::test]
async fn the_ca_bundle_of_the_build_machine_is_in_the_image() {
    let container = Container::run("ca", &["--entrypoint", "/usr/local/bin/rust-api-axum", &image(), "-V"]).await;
    // `-V` ends at once; copying while it ends raced podman into a mount namespace that was just gone ("open
    // /proc/N/ns/mnt: no such file"). From the stopped container, podman copies out of its storage instead.
    podman_ok(&["wait", &container.name]).await;
    let dir = tempfile::TempDir::new().expect("temp dir");
    let copy = dir.path().join("bundle.crt");
    podman_ok(&[
        "cp",
        &format!("{}:/etc/ssl/certs/ca-certificates.crt", container.name),
        copy.to_str().expect("utf-8"),
    ])
    .await;
    let host = std::fs::read(deploy_tests::repo_root().join("target/container/ca-certificates.crt")).expect("bundle");
    assert_eq!(std::fs::read(&copy).expect("copied bundle"), host);
    assert!(host.windows(27).filter(|w| w == b"-----BEGIN CERTIFICATE-----").count() > 50, "a full CA bundle");
}

#[tokio::test]
async fn production_mode_refuses_an_unmigrated_database_in_one_line() {
    let output = podman_output(&["run", "--rm", "--read-only", &image()]).await;
    assert_eq!(output.status.code(), Some(1), "refuses to serve an empty database in production mode");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("db upgrade"), "the error says what to run: {stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"), "no panic: {stderr}");
}

/// A host directory for the instance path, owned by the image's user as a volume would be.
fn instance_dir() -> tempfile::TempDir {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let status = std::process::Command::new("chown").arg("10001:10001").arg(dir.path()).status().expect("chown runs");
    assert!(status.success(), "chown the instance directory to 10001 (the tests run as root)");
    dir
}

#[tokio::test]
async fn read_only_container_serves_on_a_published_loopback_port_and_stops_on_sigterm() {
    let instance = instance_dir();
    let volume = format!("{}:{INSTANCE_PATH}", instance.path().display());
    // Production mode: the schema first, with the same image.
    let upgrade = podman_output(&["run", "--rm", "--read-only", "-v", &volume, &image(), "db", "upgrade"]).await;
    assert!(upgrade.status.success(), "db upgrade: {}", String::from_utf8_lossy(&upgrade.stderr));
    assert!(instance.path().join("rust-api-axum.sqlite").is_file(), "the database is on the volume");

    let port = free_port();
    let publish = format!("127.0.0.1:{port}:8080");
    let server = Container::run("serve", &["--read-only", "-v", &volume, "-p", &publish, &image()]).await;
    let base = format!("http://127.0.0.1:{port}");
    if let Err(e) = deploy_tests::wait_for_200(&format!("{base}/readyz"), Duration::from_secs(30)).await {
        panic!("{e}\n{}", server.logs().await);
    }
    let client = http();
    let health: Value =
        client.get(format!("{base}/healthz/")).send().await.expect("healthz").json().await.expect("JSON");
    assert_eq!(health["status"], "OK", "{health}");
    let greeting = client.get(format!("{base}/api/greeting/v1/")).send().await.expect("greeting");
    assert_eq!(greeting.status(), 200);
    assert_eq!(greeting.json::<Value>().await.expect("JSON")["message"], "Hello World");

    let pid = inspect("container", &server.name).await["State"]["Pid"].as_u64().expect("pid");
    let status = deploy_tests::process_status(pid);
    let uid = status.iter().find(|(k, _)| k == "Uid").map(|(_, v)| v.as_str()).expect("Uid line");
    assert_eq!(uid, "10001 10001 10001 10001", "runs as 10001: {uid}");
    let logs = server.logs().await;
    let first = logs.lines().next().expect("a log line");
    serde_json::from_str::<Value>(first).unwrap_or_else(|_| panic!("JSON log lines: {first}"));

    let (elapsed, exit_code) = server.stop(10).await;
    println!("podman stop took {elapsed:?}, exit code {exit_code}");
    assert_eq!(exit_code, 0, "SIGTERM as PID 1 ends the server cleanly, not by SIGKILL\n{}", server.logs().await);
    assert!(elapsed < Duration::from_secs(10), "stopped before podman's kill timeout: {elapsed:?}");
}

// In a module named after its engine, so `./scripts/test` can leave it out by module path.
mod postgres {
    use super::*;

    #[tokio::test]
    async fn upgrade_then_no_migrate_server_verifies_provider_tokens_over_https() {
        // The provider over HTTPS from a private CA, which the container trusts as its system bundle: proves that the
        // static binary in an empty image verifies TLS from the bundle path the image ships.
        let tls = tempfile::TempDir::new().expect("temp dir");
        let (ca, cert, key) = private_ca(tls.path());
        let ca_pem = std::fs::read(&ca).expect("CA PEM");
        let idp = TestIdp::start_tls(&cert, &key, &ca_pem).await;
        let secrets_dir = tempfile::TempDir::new().expect("temp dir");
        let secrets = idp.write_client_secrets(secrets_dir.path());
        std::fs::set_permissions(&secrets, std::os::unix::fs::PermissionsExt::from_mode(0o644)).expect("chmod");
        let database = ScratchSchema::create().await;

        let db_env = [
            "-e".to_owned(),
            format!("APP_CONFIG_DB_URL={}", database.url),
            "-e".to_owned(),
            format!("APP_CONFIG_DB_SCHEMA={}", database.schema),
        ];
        let common = |extra: &[String]| {
            // Host networking: the container reaches PostgreSQL and the provider on loopback, and so do the checks.
            let mut args: Vec<String> =
                ["--network", "host", "--read-only", "--tmpfs", INSTANCE_PATH].map(str::to_owned).to_vec();
            args.extend_from_slice(&db_env);
            args.extend_from_slice(extra);
            args
        };
        let mut upgrade = vec!["run".to_owned(), "--rm".to_owned()];
        upgrade.extend(common(&[]));
        upgrade.extend([image(), "db".to_owned(), "upgrade".to_owned()]);
        let upgrade = podman_output(&upgrade.iter().map(String::as_str).collect::<Vec<_>>()).await;
        assert!(upgrade.status.success(), "db upgrade: {}", String::from_utf8_lossy(&upgrade.stderr));

        let port = free_port();
        let server_args = common(&[
            "-e".to_owned(),
            "APP_CONFIG_HOST=127.0.0.1".to_owned(),
            "-e".to_owned(),
            format!("APP_CONFIG_PORT={port}"),
            "-v".to_owned(),
            format!("{}:/etc/rust-api-axum/client_secrets.json:ro", secrets.display()),
            "-v".to_owned(),
            format!("{}:/etc/ssl/certs/ca-certificates.crt:ro", ca.display()),
            image(),
            "--oidc-secrets".to_owned(),
            "/etc/rust-api-axum/client_secrets.json".to_owned(),
            "--no-migrate".to_owned(),
        ]);
        let server = Container::run("pg", &server_args.iter().map(String::as_str).collect::<Vec<_>>()).await;
        let base = format!("http://127.0.0.1:{port}");
        // Ready means the database answers and the provider's signing keys were fetched over HTTPS.
        if let Err(e) = deploy_tests::wait_for_200(&format!("{base}/readyz"), Duration::from_secs(30)).await {
            panic!("{e}\n{}", server.logs().await);
        }
        let client = http();
        let anonymous = client.get(format!("{base}/api/resource/v1")).send().await.expect("list");
        assert_eq!(anonymous.status(), 401);
        let token = idp.jwt().await;
        let created = client
            .post(format!("{base}/api/resource/v1"))
            .bearer_auth(&token)
            .json(&json!({"name": "from-the-container"}))
            .send()
            .await
            .expect("create");
        assert_eq!(created.status(), 201, "{}", server.logs().await);
        let listed: Value = client
            .get(format!("{base}/api/resource/v1"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("JSON");
        assert_eq!(listed["resources"][0]["name"], "from-the-container", "{listed}");
        let rows = database.query(&format!("SELECT name FROM {}.resources", database.schema)).await;
        assert_eq!(rows, [json!({"name": "from-the-container"})], "the write is in PostgreSQL");

        let (elapsed, exit_code) = server.stop(10).await;
        assert_eq!(exit_code, 0, "{}", server.logs().await);
        assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    }
}
