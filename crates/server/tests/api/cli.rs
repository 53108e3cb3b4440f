//! The real binary: its help, its exit codes and the configuration layering it applies.

use std::net::TcpListener;

use migration::{Migrator, MigratorTrait};
use tempfile::TempDir;

use crate::helpers::{RunningBinary, binary, free_port};

/// The migrations the binary knows, oldest first: read from the Migrator, so one that `cargo xtask new-entity`
/// appends needs no edit here.
fn migrations() -> Vec<String> {
    Migrator::migrations().iter().map(|migration| migration.name().to_owned()).collect()
}

/// What `db status` ends with on an empty schema.
fn none_applied() -> String {
    format!("0 applied, {} pending\n", migrations().len())
}

/// The start of the error of production mode on an empty schema.
fn all_pending() -> String {
    format!("the database schema is behind this version ({} pending migration(s)", migrations().len())
}

fn no_panic_or_backtrace(stderr: &str) {
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("backtrace"), "{stderr}");
}

#[test]
fn help_names_the_version_and_every_flag() {
    let output = binary().arg("-h").output().expect("runs");
    assert_eq!(output.status.code(), Some(0));
    let help = String::from_utf8(output.stdout).expect("utf-8");
    assert!(help.starts_with(&format!("rust-api-axum - {}\n", rust_api_axum::VERSION)), "{help}");
    for flag in ["-h", "-V", "-d, --debug", "--host", "--port", "--instance-path", "--db", "--oidc-secrets"] {
        assert!(help.contains(flag), "help lacks {flag}:\n{help}");
    }
}

#[test]
fn version_flag_prints_the_version() {
    let output = binary().arg("-V").output().expect("runs");
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), format!("rust-api-axum {}", rust_api_axum::VERSION));
}

#[test]
fn unknown_flag_is_a_usage_error() {
    let output = binary().arg("--bogus").output().expect("runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--bogus"));
}

#[test]
fn unusable_instance_path_exits_1_with_one_clear_line() {
    let dir = TempDir::new().expect("temp dir");
    std::fs::write(dir.path().join("a-file"), "").expect("file");
    let output = binary()
        .current_dir(dir.path())
        .args(["--instance-path", "a-file/instance", "--port", "0"])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ERROR: cannot use instance path a-file/instance"), "{stderr}");
    no_panic_or_backtrace(&stderr);
}

#[test]
fn port_in_use_exits_1_with_one_clear_line() {
    let dir = TempDir::new().expect("temp dir");
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let output =
        binary().current_dir(dir.path()).args(["--host", "127.0.0.1", "--port", &port]).output().expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("ERROR: cannot listen on 127.0.0.1:{port}")), "{stderr}");
    assert!(stderr.contains("in use"), "{stderr}");
    no_panic_or_backtrace(&stderr);
}

#[test]
fn unresolvable_host_exits_1_with_one_clear_line() {
    let dir = TempDir::new().expect("temp dir");
    let output = binary().current_dir(dir.path()).args(["--host", "no-such-host.invalid"]).output().expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ERROR: cannot resolve host 'no-such-host.invalid'"), "{stderr}");
    no_panic_or_backtrace(&stderr);
}

#[test]
fn config_errors_exit_2_naming_the_file_or_variable() {
    let dir = TempDir::new().expect("temp dir");
    std::fs::write(dir.path().join("broken.json"), "{ nope").expect("file");
    std::fs::write(dir.path().join("typo.json"), r#"{"prot": 1}"#).expect("file");
    let cases: [(&str, &str, &str); 5] = [
        ("APP_CONFIG", "broken.json", "broken.json"),
        ("APP_CONFIG", "typo.json", "prot"),
        ("APP_CONFIG", "missing.json", "missing.json"),
        ("APP_CONFIG_PORT", "eighty", "APP_CONFIG_PORT"),
        // Pasted into `SET search_path` by the driver: anything but a plain identifier is refused at start.
        ("APP_CONFIG_DB_SCHEMA", "public; DROP TABLE resources", "key \"db_schema\""),
    ];
    for (variable, value, named) in cases {
        let output = binary().current_dir(dir.path()).env(variable, value).output().expect("runs");
        assert_eq!(output.status.code(), Some(2), "{variable}={value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.starts_with("error: "), "{stderr}");
        assert!(stderr.contains(named), "{variable}={value}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    }
}

/// Starts the binary in `dir`, returns the address it says it listens on, and stops it with SIGTERM.
fn listening_address(dir: &TempDir, configure: impl FnOnce(&mut std::process::Command)) -> String {
    let mut command = binary();
    configure(&mut command);
    let mut running = RunningBinary::start(command, dir.path());
    let line = running.wait_for("Listening on http://");
    let address = line.rsplit("http://").next().expect("address").to_owned();
    let (code, _) = running.terminate();
    assert_eq!(code, Some(0), "SIGTERM is a clean exit");
    address
}

#[test]
fn flags_beat_environment_beats_file_beats_defaults() {
    let dir = TempDir::new().expect("temp dir");
    let (file_port, env_port, flag_port) = (free_port(), free_port(), free_port());
    std::fs::write(dir.path().join("config.json"), format!(r#"{{"host": "127.0.0.1", "port": {file_port}}}"#))
        .expect("file");

    let from_file = listening_address(&dir, |c| {
        c.env("APP_CONFIG", "config.json");
    });
    assert_eq!(from_file, format!("127.0.0.1:{file_port}"));

    let from_env = listening_address(&dir, |c| {
        c.env("APP_CONFIG", "config.json").env("APP_CONFIG_PORT", env_port.to_string());
    });
    assert_eq!(from_env, format!("127.0.0.1:{env_port}"));

    let from_flag = listening_address(&dir, |c| {
        c.env("APP_CONFIG", "config.json")
            .env("APP_CONFIG_PORT", env_port.to_string())
            .args(["--port", &flag_port.to_string()]);
    });
    assert_eq!(from_flag, format!("127.0.0.1:{flag_port}"));
}

#[test]
fn startup_logs_version_instance_path_address_and_missing_auth_then_stops_on_sigterm() {
    let dir = TempDir::new().expect("temp dir");
    let mut command = binary();
    command.args(["--host", "127.0.0.1", "--port", "0"]);
    let mut running = RunningBinary::start(command, dir.path());
    let listening = running.wait_for("Listening on http://127.0.0.1:");
    let (code, lines) = running.terminate();
    assert_eq!(code, Some(0));
    let log = lines.join("\n");
    assert!(log.contains(&format!("INFO: rust-api-axum {} starting", rust_api_axum::VERSION)), "{log}");
    assert!(log.contains("INFO: Created instance path at "), "{log}");
    assert!(log.contains("WARN: Running without any authentication/authorisation"), "{log}");
    assert!(log.contains("Received SIGTERM") && log.contains("INFO: Stopped"), "{log}");
    // The original's shape: `[2026-11-29 15:30:18,005] INFO: message`.
    let stamp = &listening[..25];
    assert!(stamp.starts_with('[') && stamp.ends_with(']') && stamp.as_bytes()[20] == b',', "{listening}");
    assert!(dir.path().join("var/instance").is_dir(), "default instance path is var/instance");

    // A second start reuses the directory and says so.
    let mut command = binary();
    command.args(["--host", "127.0.0.1", "--port", "0"]);
    let mut again = RunningBinary::start(command, dir.path());
    again.wait_for("INFO: Using existing instance path at ");
    again.wait_for("Listening on");
    assert_eq!(again.terminate().0, Some(0));
}

#[test]
fn json_log_format_writes_one_json_object_per_line_including_access_lines() {
    let dir = TempDir::new().expect("temp dir");
    let mut command = binary();
    command.env("APP_CONFIG_LOG_FORMAT", "json").args(["--host", "127.0.0.1", "--port", "0"]);
    let mut running = RunningBinary::start(command, dir.path());
    let line = running.wait_for("Listening on http://");
    let entry: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
    let address = entry["message"].as_str().expect("message").trim_start_matches("Listening on http://").to_owned();
    {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&address).expect("connect");
        stream.write_all(b"GET /api/greeting/v1/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("write");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    let access = running.wait_for("\"path\":\"/api/greeting/v1/\"");
    let access: serde_json::Value = serde_json::from_str(&access).expect("JSON access line");
    assert_eq!(access["method"], "GET");
    assert_eq!(access["status"], 200);
    assert!(access["latency_us"].is_u64(), "{access}");
    assert!(access["request_id"].is_string(), "{access}");
    let (code, lines) = running.terminate();
    assert_eq!(code, Some(0));
    for line in lines {
        serde_json::from_str::<serde_json::Value>(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
    }
}

#[test]
fn unusable_oidc_secrets_or_ca_bundle_exit_2() {
    let dir = TempDir::new().expect("temp dir");
    std::fs::write(dir.path().join("no-web.json"), r#"{"installed": {}}"#).expect("file");
    std::fs::write(dir.path().join("not-a-cert.pem"), "hello").expect("file");
    std::fs::write(
        dir.path().join("secrets.json"),
        r#"{"web": {"client_id": "api", "client_secret": "s3cret-value", "issuer": "http://127.0.0.1:9"}}"#,
    )
    .expect("file");
    let cases: [(&[&str], &str); 3] = [
        (&["--oidc-secrets", "absent.json"], "absent.json"),
        (&["--oidc-secrets", "no-web.json"], "no `web` entry"),
        (&["--oidc-secrets", "secrets.json", "--ca-cert", "not-a-cert.pem"], "not-a-cert.pem"),
    ];
    for (args, named) in cases {
        let output = binary()
            .current_dir(dir.path())
            .args(["--host", "127.0.0.1", "--port", "0"])
            .args(args)
            .output()
            .expect("runs");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(named), "{args:?}: {stderr}");
        assert!(!stderr.contains("s3cret-value"), "{stderr}");
        no_panic_or_backtrace(&stderr);
        let error_line = stderr.lines().find(|l| l.contains("ERROR")).expect("an error line");
        let cause = error_line.rsplit(": ").next().expect("a cause");
        assert_eq!(error_line.matches(cause).count(), 1, "the cause is said once: {error_line}");
    }
}

#[test]
fn with_oidc_secrets_the_server_names_its_issuer_and_drops_the_warning() {
    let dir = TempDir::new().expect("temp dir");
    std::fs::write(
        dir.path().join("secrets.json"),
        r#"{"web": {"client_id": "api", "client_secret": "s3cret-value", "issuer": "http://127.0.0.1:9"}}"#,
    )
    .expect("file");
    let mut command = binary();
    command.args(["--host", "127.0.0.1", "--port", "0", "--oidc-secrets", "secrets.json", "-d"]);
    let mut running = RunningBinary::start(command, dir.path());
    running.wait_for("Listening on http://");
    let (code, lines) = running.terminate();
    assert_eq!(code, Some(0));
    let log = lines.join("\n");
    assert!(log.contains("Accepting bearer tokens from http://127.0.0.1:9 for audience api"), "{log}");
    assert!(!log.contains("Running without any authentication"), "{log}");
    assert!(!log.contains("s3cret-value"), "{log}");
}

fn run_in(dir: &TempDir, args: &[&str]) -> (Option<i32>, String, String) {
    let output = binary().current_dir(dir.path()).args(args).output().expect("runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn production_mode_refuses_a_schema_that_is_behind_until_db_upgrade() {
    let dir = TempDir::new().expect("temp dir");
    let (code, _, stderr) = run_in(&dir, &["--host", "127.0.0.1", "--port", "0", "--no-migrate"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains(&all_pending()), "{stderr}");
    assert!(stderr.contains("run `rust-api-axum db upgrade` first"), "{stderr}");
    no_panic_or_backtrace(&stderr);

    let migrations = migrations();
    let (code, stdout, _) = run_in(&dir, &["db", "status"]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("m0001_resources") && stdout.ends_with(&none_applied()), "{stdout}");
    let (code, stdout, _) = run_in(&dir, &["db", "upgrade"]);
    let applied = format!("Applied {} migration(s); the schema is up to date.\n", migrations.len());
    assert_eq!((code, stdout.as_str()), (Some(0), applied.as_str()));
    let (_, stdout, _) = run_in(&dir, &["db", "history"]);
    assert_eq!(stdout, format!("{} (head, current)\n", migrations.join("\n")));
    assert!(dir.path().join("var/instance/rust-api-axum.sqlite").is_file(), "default database in the instance path");

    let mut command = binary();
    command.args(["--host", "127.0.0.1", "--port", "0", "--no-migrate"]);
    let mut running = RunningBinary::start(command, dir.path());
    running.wait_for("Listening on http://");
    assert_eq!(running.terminate().0, Some(0));

    let (code, stdout, _) = run_in(&dir, &["db", "downgrade"]);
    let previous = &migrations[migrations.len() - 2];
    assert_eq!(stdout, format!("Reverted 1 migration(s); now at {previous}.\n"));
    assert_eq!(code, Some(0));
}

#[test]
fn unsupported_or_unreachable_databases_are_one_clear_line() {
    let dir = TempDir::new().expect("temp dir");
    let (code, _, stderr) = run_in(&dir, &["--db", "mssql://sa:pw@localhost/app", "--port", "0"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("MS SQL Server is not supported"), "{stderr}");
    let (code, _, stderr) = run_in(&dir, &["--db", "postgres://app:hunter2@127.0.0.1:1/app", "--port", "0"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("cannot connect to the database at postgres://127.0.0.1:1/app"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
    no_panic_or_backtrace(&stderr);
}

/// A secret in the URL never reaches the output, whichever part of the URL carries it and whether or not the URL
/// parses: the start line, the connection error and the driver's own words show scheme, host, port and database.
#[test]
fn database_urls_never_show_their_secrets() {
    let dir = TempDir::new().expect("temp dir");
    let closed = free_port();
    for (url, code) in [
        (format!("postgres://app@127.0.0.1:{closed}/app?password=hunter2&sslmode=disable"), 1),
        (format!("mysql://app@127.0.0.1:{closed}/app?password=hunter2"), 1),
        ("postgres://app:hunter2@127.0.0.1:99999/app".to_owned(), 2),
        (format!("postgres://app:pa#hunter2@127.0.0.1:{closed}/app"), 2),
    ] {
        for command in [&["--port", "0"][..], &["db", "status"], &["db", "upgrade"]] {
            let (exit, stdout, stderr) = run_in(&dir, &[&["--db", url.as_str()][..], command].concat());
            assert_eq!(exit, Some(code), "{url} {command:?}: {stderr}");
            assert!(!stderr.contains("hunter2") && !stdout.contains("hunter2"), "{url} {command:?}: {stderr}");
            no_panic_or_backtrace(&stderr);
        }
    }
    let (_, _, stderr) =
        run_in(&dir, &["--db", &format!("postgres://app@127.0.0.1:{closed}/app?password=hunter2&sslmode=disable")]);
    assert!(stderr.contains(&format!("Using database postgres://127.0.0.1:{closed}/app?sslmode=disable")), "{stderr}");
    let (_, _, stderr) = run_in(&dir, &["--db", "postgres://app:hunter2@127.0.0.1:99999/app"]);
    assert!(stderr.contains("<unparseable database URL>") || stderr.contains("db_url"), "{stderr}");
}

/// The instance path and the SQLite files in it (the database, its WAL and shared-memory files) hold every
/// record: only the server's user may read them, whatever the umask.
#[test]
fn the_instance_path_and_the_sqlite_files_are_private() {
    use std::os::unix::fs::PermissionsExt;

    let dir = TempDir::new().expect("temp dir");
    let mode = |name: &str| {
        let path = dir.path().join("var/instance").join(name);
        std::fs::metadata(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
    };
    let mut command = binary();
    command.args(["--host", "127.0.0.1", "--port", "0"]);
    let mut running = RunningBinary::start(command, dir.path());
    running.wait_for("Listening on http://");
    assert_eq!(mode(""), 0o700, "the instance path");
    for file in ["rust-api-axum.sqlite", "rust-api-axum.sqlite-wal", "rust-api-axum.sqlite-shm"] {
        assert_eq!(mode(file), 0o600, "{file}");
    }
    assert_eq!(running.terminate().0, Some(0));
}

/// The production flow starts on a fresh volume: `db upgrade` once, then replicas with `--no-migrate`. Every
/// `db` command must therefore work on an instance path that does not exist yet, as `serve` does.
#[test]
fn every_db_command_works_on_an_instance_path_that_does_not_exist_yet() {
    let migrations = migrations();
    let commands: [(&[&str], String); 4] = [
        (&["db", "upgrade"], format!("Applied {} migration(s); the schema is up to date.\n", migrations.len())),
        (&["db", "status"], none_applied()),
        (&["db", "history"], format!("{} (head)\n", migrations.last().expect("a migration"))),
        (&["db", "downgrade"], "Reverted 0 migration(s); now at no migration (empty schema).\n".to_owned()),
    ];
    for (command, expected_end) in commands {
        let dir = TempDir::new().expect("temp dir");
        // Two missing levels, as a fresh volume mounted at a parent would have.
        let instance = dir.path().join("brand-new/instance");
        let mut args = vec!["--instance-path", instance.to_str().expect("utf-8 path")];
        args.extend_from_slice(command);
        let (code, stdout, stderr) = run_in(&dir, &args);
        assert_eq!(code, Some(0), "{command:?}: {stderr}");
        assert!(stdout.ends_with(&expected_end), "{command:?}: {stdout}");
        if matches!(command[1], "status" | "history") {
            // Read-only commands report on the empty schema and write nothing, not even the directory.
            assert!(stderr.contains("No database at "), "{command:?}: {stderr}");
            assert!(!dir.path().join("brand-new").exists(), "{command:?} created nothing");
        } else {
            assert!(stderr.contains("INFO: Created instance path at "), "{command:?}: {stderr}");
            assert!(instance.join("rust-api-axum.sqlite").is_file(), "{command:?}: the database is in the new path");
        }
        no_panic_or_backtrace(&stderr);
    }
}

#[test]
fn db_status_on_an_existing_empty_directory_writes_no_database_file() {
    let dir = TempDir::new().expect("temp dir");
    let instance = dir.path().join("instance");
    std::fs::create_dir(&instance).expect("empty instance directory");
    let (code, stdout, stderr) = run_in(&dir, &["--instance-path", instance.to_str().expect("utf-8"), "db", "status"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.ends_with(&none_applied()), "{stdout}");
    assert_eq!(std::fs::read_dir(&instance).expect("dir").count(), 0, "nothing written into the instance path");
}

#[test]
fn no_migrate_on_an_instance_path_that_does_not_exist_yet_refuses_with_its_hint() {
    let dir = TempDir::new().expect("temp dir");
    let instance = dir.path().join("brand-new/instance");
    let instance = instance.to_str().expect("utf-8 path");
    // `db status` first: it must find the path still missing after it ran.
    for args in [
        vec!["--instance-path", instance, "--no-migrate", "db", "status"],
        vec!["--instance-path", instance, "--host", "127.0.0.1", "--port", "0", "--no-migrate"],
    ] {
        let (code, stdout, stderr) = run_in(&dir, &args);
        if args.contains(&"db") {
            // `db status` only reads, so production mode does not stop it, and it writes nothing.
            assert_eq!(code, Some(0), "{args:?}: {stderr}");
            assert!(stdout.ends_with(&none_applied()), "{stdout}");
            assert!(!dir.path().join("brand-new").exists(), "db status created nothing");
            continue;
        }
        assert_eq!(code, Some(1), "{args:?}: {stderr}");
        let errors: Vec<&str> = stderr.lines().filter(|line| line.contains("ERROR")).collect();
        assert_eq!(errors.len(), 1, "one line: {stderr}");
        assert!(errors[0].contains(&all_pending()), "{stderr}");
        assert!(errors[0].contains("run `rust-api-axum db upgrade` first"), "{stderr}");
        assert!(!stderr.contains("unable to open database file"), "{stderr}");
        no_panic_or_backtrace(&stderr);
    }
}

#[test]
fn a_closed_stdout_ends_openapi_and_db_commands_quietly() {
    let dir = TempDir::new().expect("temp dir");
    for args in [&["openapi"][..], &["db", "history"], &["db", "status"]] {
        let mut child = binary()
            .current_dir(dir.path())
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("runs");
        // The reader goes away before anything is written, as `| head -1` does after its line.
        drop(child.stdout.take());
        let output = child.wait_with_output().expect("exits");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
        no_panic_or_backtrace(&stderr);
        assert!(!stderr.contains("ERROR"), "{args:?}: {stderr}");
    }
}

#[test]
fn config_prints_the_merged_configuration_without_its_secrets() {
    let output = binary()
        .env("APP_CONFIG_PORT", "9123")
        .args(["--db", "postgres://app:hunter2-7e1@db.example/app", "config"])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(printed["port"], 9123);
    assert_eq!(printed["host"], "localhost");
    assert!(printed.get("db_url").is_none(), "secret-bearing keys are never printed: {printed}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("hunter2"));
}

#[test]
fn config_reference_prints_the_committed_docs_even_with_a_broken_configuration() {
    let output = binary().env("APP_CONFIG_PORT", "eighty").args(["config", "--reference"]).output().expect("runs");
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/configuration.md"))
        .expect("docs/configuration.md");
    assert_eq!(String::from_utf8_lossy(&output.stdout), committed);
}
