//! The command line without a provider: help and version, the configuration file and its defaults, and usage
//! errors (exit 2) that name the flag and the configuration key.

use tempfile::TempDir;

use crate::harness::{Login, bare_command, run};

async fn client(home: &TempDir, args: &[&str]) -> crate::harness::Outcome {
    let mut command = bare_command(home.path());
    command.args(args);
    run(command, Login::NotExpected).await
}

#[tokio::test]
async fn help_shows_the_version_and_both_configuration_groups() {
    let home = TempDir::new().expect("tmp");
    let help = client(&home, &["-h"]).await;
    let text = help.success();
    assert!(text.starts_with("rust-api-axum-client - 0.0.0-dev.0\n"), "{text}");
    let file = text.find("File Configuration:").expect("file group");
    let manual = text.find("Manual Configuration:").expect("manual group");
    assert!(file < manual, "{text}");
    assert!(text[file..manual].contains("--config <CONFIG>"), "{text}");
    for flag in ["--client-id <ID>", "--client-secret <SECRET>", "--discovery-url <URL>", "--api-url <URL>"] {
        assert!(text[manual..].contains(flag), "{flag} in {text}");
    }
    for command in ["login", "logout", "greet", "resource"] {
        assert!(text.contains(&format!("  {command} ")), "{command} in {text}");
    }
    let version = client(&home, &["-V"]).await;
    assert_eq!(version.success(), "rust-api-axum-client 0.0.0-dev.0\n");
}

#[tokio::test]
async fn missing_settings_are_usage_errors_naming_the_flag_and_the_key() {
    let home = TempDir::new().expect("tmp");
    let run = client(&home, &["greet"]).await;
    assert_eq!(
        run.failure(2),
        "error: no OAuth client id configured: pass --client-id or set \"client_id\" in the configuration file\n"
    );
    let run = client(&home, &["--client-id", "x", "--discovery-url", "http://127.0.0.1:9", "greet"]).await;
    assert_eq!(
        run.failure(2),
        "error: no API URL configured: pass --api-url or set \"api_url\" in the configuration file\n",
        "checked before any login is attempted"
    );
    let run = client(&home, &["--output", "yaml"]).await;
    assert!(run.failure(2).contains("invalid value 'yaml'"), "{}", run.stderr);
    let run = client(&home, &["resource", "get", "not-a-number"]).await;
    run.failure(2);
}

#[tokio::test]
async fn plain_http_to_another_host_is_warned_about_once_per_url_even_when_quiet() {
    let home = TempDir::new().expect("tmp");
    let remote = ["--client-id", "x", "--discovery-url", "http://idp.example/", "--api-url", "http://api.example/"];
    // `logout` with nothing cached asks nobody anything, so the hosts need not exist.
    let run = client(&home, &[&remote[..], &["-q", "logout"]].concat()).await;
    assert_eq!(run.success(), "Not logged in.\n");
    let warnings: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(warnings.len(), 2, "{}", run.stderr);
    assert!(warnings[0].starts_with("warning: --discovery-url http://idp.example/"), "{}", run.stderr);
    assert!(warnings[1].starts_with("warning: --api-url http://api.example/"), "{}", run.stderr);
    let local = ["--client-id", "x", "--discovery-url", "http://127.0.0.1:9", "--api-url", "http://localhost:9"];
    let run = client(&home, &[&local[..], &["logout"]].concat()).await;
    assert_eq!((run.success(), run.stderr.as_str()), ("Not logged in.\n", ""), "the loopback stays on the machine");
}

#[tokio::test]
async fn the_configuration_file_is_read_from_the_originals_location_and_flags_override_it() {
    let home = TempDir::new().expect("tmp");
    let etc = home.path().join("etc");
    std::fs::create_dir_all(&etc).expect("mkdir");
    std::fs::write(
        etc.join("rust-api-axum-client.json"),
        r#"{"client_id": "from-file", "discovery_url": "http://127.0.0.1:9/from-file", "api_url": "http://127.0.0.1:9"}"#,
    )
    .expect("write");
    // Port 9 is closed: the run fails at discovery, which shows which URL was used.
    let run = client(&home, &["greet"]).await;
    assert!(run.failure(1).contains("discovery at http://127.0.0.1:9/from-file/.well-known"), "{}", run.stderr);
    let run = client(&home, &["--discovery-url", "http://127.0.0.1:9/from-flag", "greet"]).await;
    assert!(run.failure(1).contains("discovery at http://127.0.0.1:9/from-flag/.well-known"), "{}", run.stderr);

    std::fs::write(etc.join("rust-api-axum-client.json"), r#"{"client_id": "x", "discovery": "typo"}"#).expect("write");
    let run = client(&home, &["greet"]).await;
    let stderr = run.failure(2);
    assert!(stderr.contains("rust-api-axum-client.json is invalid: unknown field `discovery`"), "{stderr}");

    let other = home.path().join("other.json");
    let run = client(&home, &["-c", other.to_str().expect("utf-8"), "greet"]).await;
    assert!(run.failure(2).contains("other.json cannot be read"), "{}", run.stderr);
}
