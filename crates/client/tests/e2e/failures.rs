//! Failures a user meets, each a clear one-line message and the documented exit code, never a panic: a denied
//! login, a wrong or unreachable discovery URL, an unreachable API, and problems from the API.

use crate::harness::{Login, World};

fn assert_no_panic(stderr: &str) {
    assert!(!stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_login_exits_1_with_a_clear_message() {
    let world = World::start().await;
    let run = world.run(&["greet"], Login::Deny).await;
    let stderr = run.failure(1);
    assert!(run.prompted());
    assert!(stderr.ends_with("error: login denied at the OpenID provider: End-User aborted interaction\n"), "{stderr}");
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(world.cache_files().is_empty(), "nothing is cached");
    assert_no_panic(stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_discovery_url_exits_1_with_a_clear_message() {
    let world = World::start().await;
    let wrong = format!("{}/nope/.well-known/openid-configuration", world.idp.issuer);
    let mut command = world.bare_command();
    command.args(["--client-id", "rust-api-axum-client", "--discovery-url", &wrong, "--api-url", &world.api_url]);
    let run = crate::harness::run(command, Login::NotExpected).await;
    assert_eq!(
        run.failure(1),
        format!(
            "error: OpenID discovery at {wrong} failed: HTTP 404 Not Found; check --discovery-url (\"discovery_url\")\n"
        )
    );

    // Nothing listening there at all.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let mut command = world.bare_command();
    command.args(["--client-id", "rust-api-axum-client", "--discovery-url", &closed, "--api-url", &world.api_url]);
    let run = crate::harness::run(command, Login::NotExpected).await;
    let stderr = run.failure(1);
    assert!(
        stderr.starts_with(&format!(
            "error: OpenID discovery at {closed}/.well-known/openid-configuration failed: cannot connect"
        )),
        "{stderr}"
    );
    assert_no_panic(stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_problems_and_an_unreachable_api_exit_1() {
    let world = World::start().await;
    world.run(&["login"], Login::Approve("ada")).await.success();

    let run = world.run(&["resource", "get", "999999"], Login::NotExpected).await;
    let stderr = run.failure(1);
    assert!(stderr.starts_with("error: Not Found: "), "{stderr}");
    assert!(stderr.contains("request id "), "the request id is quoted for reports: {stderr}");

    let run = world.run(&["--output", "json", "resource", "get", "999999"], Login::NotExpected).await;
    run.failure(1);
    let problem: api_types::Problem = serde_json::from_str(&run.stdout).expect("the problem body on stdout");
    assert_eq!(problem.status, 404);

    let closed = format!("http://127.0.0.1:{}", free_port());
    let mut command = world.bare_command();
    command.args(["--client-id", "rust-api-axum-client", "--discovery-url", &world.idp.discovery_url()]);
    command.args(["--api-url", &closed, "greet"]);
    let run = crate::harness::run(command, Login::NotExpected).await;
    let stderr = run.failure(1);
    assert!(
        stderr.starts_with(&format!("error: cannot reach the API at {closed}/api/greeting/v3/: cannot connect")),
        "{stderr}"
    );
    assert_no_panic(stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_behind_a_private_ca_is_trusted_only_with_ca_cert() {
    let world = World::start_tls().await;
    assert!(world.idp.issuer.starts_with("https://"), "{}", world.idp.issuer);

    let untrusting = world.run(&["greet"], Login::NotExpected).await;
    let stderr = untrusting.failure(1);
    assert!(
        stderr.starts_with(&format!("error: OpenID discovery at {} failed: ", world.idp.discovery_url())),
        "{stderr}"
    );
    assert!(
        stderr.ends_with(
            "(invalid peer certificate: UnknownIssuer); for a provider behind a private CA, pass its CA \
                          bundle with --ca-cert (\"ca_cert\")\n"
        ),
        "the reason names the certificate problem and the remedy: {stderr}"
    );
    assert_no_panic(stderr);

    let ca = world.ca_cert.clone().expect("the world's CA");
    let trusting = world.run(&["--ca-cert", ca.to_str().expect("utf-8"), "greet"], Login::Approve("ada")).await;
    assert_eq!(trusting.success(), "Hello ada\n", "discovery, device flow and token polling over TLS");

    let empty = world.server_dir().join("empty.pem");
    std::fs::write(&empty, "no certificate here").expect("write");
    let run = world.run(&["--ca-cert", empty.to_str().expect("utf-8"), "greet"], Login::NotExpected).await;
    assert!(run.failure(2).contains("empty.pem"), "a useless bundle is a configuration error: {}", run.stderr);
}

/// A loopback port nobody listens on (free a moment ago).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port()
}
