//! Writes that survive retries and races (issue 25) through the client binary: a create that got no answer is
//! sent again with the same `Idempotency-Key` (against a scripted API on a real loopback socket, since the real
//! server always answers), and a rename or delete of a resource that changed since its entity tag was read is
//! refused (412) with one line, unless forced (against the real server).

use std::{
    io::{Read as _, Write as _},
    net::TcpListener,
    thread::JoinHandle,
};

use crate::harness::{Login, World};

/// What the scripted API does with each connection, in turn: `None` reads the request and closes the connection
/// without a word; `Some` sends that whole HTTP/1.1 answer.
type Script = Vec<Option<String>>;

/// A scripted API on a real loopback socket; hands back the heads and bodies of the requests it read, lower-cased.
fn scripted_api(script: Script) -> (String, JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let server = std::thread::spawn(move || {
        let mut requests = Vec::new();
        for reaction in script {
            let (mut stream, _) = listener.accept().expect("accept");
            let request = read_request(&mut stream);
            requests.push(request);
            if let Some(answer) = reaction {
                stream.write_all(answer.as_bytes()).expect("write");
            }
        }
        listener.set_nonblocking(true).expect("non-blocking");
        assert!(listener.accept().is_err(), "no further attempt");
        requests
    });
    (url, server)
}

/// The head and the body its content-length announces, lower-cased.
fn read_request(stream: &mut std::net::TcpStream) -> String {
    let mut request = Vec::new();
    let mut buffer = [0_u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&request).to_ascii_lowercase();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .map_or(0, |value| value.trim().parse::<usize>().expect("length"));
            if request.len() >= end + 4 + length {
                return text;
            }
        }
        let read = stream.read(&mut buffer).expect("read");
        assert!(read > 0, "the request ended early: {text}");
        request.extend_from_slice(&buffer[..read]);
    }
}

fn header<'r>(request: &'r str, name: &str) -> Option<&'r str> {
    request.lines().find_map(|line| line.strip_prefix(&format!("{name}:"))).map(str::trim)
}

/// A 201 with the created resource, as a replay of the first attempt's answer.
fn replayed_created() -> String {
    let body = r#"{"id": 1, "name": "alpha", "owner": {"id": 1, "client_id": null, "name": "ada"}, "etag": "1-a"}"#;
    format!(
        "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: {}\r\netag: \"1-a\"\r\n\
         location: /api/resource/v1/1\r\nidempotent-replayed: true\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_that_got_no_answer_is_sent_again_with_the_same_key() {
    let world = World::start().await;
    world.run(&["login"], Login::Approve("ada")).await.success();
    let create = |api_url: &str, debug: bool| {
        let mut command = world.bare_command();
        command.args(["--client-id", crate::idp::CLI_CLIENT, "--discovery-url", &world.idp.discovery_url()]);
        command.args(["--api-url", api_url, "resource", "create", "alpha"]);
        if debug {
            command.arg("-d");
        }
        crate::harness::run(command, Login::NotExpected)
    };

    // The first connection is dropped without an answer; the second attempt gets the first one's answer replayed.
    let (url, api) = scripted_api(vec![None, Some(replayed_created())]);
    let run = create(&url, false).await;
    assert_eq!(run.success(), "Created resource 1 \"alpha\" (etag \"1-a\").\n", "a replay is a success");
    assert_eq!(run.stderr, "", "retries and replays are noted only under -d");
    let requests = api.join().expect("the scripted API");
    assert_eq!(requests.len(), 2);
    let key = header(&requests[0], "idempotency-key").expect("a key");
    assert_eq!(key.len(), 36, "a UUID: {key}");
    assert_eq!(header(&requests[1], "idempotency-key"), Some(key), "the same key on the retry");
    assert!(requests.iter().all(|request| request.ends_with(r#"{"name":"alpha"}"#)), "{requests:?}");

    // Another run is another create: a fresh key; -d tells about the retry and the replay.
    let (url, api) = scripted_api(vec![None, Some(replayed_created())]);
    let run = create(&url, true).await;
    run.success();
    assert!(run.stderr.contains("with the same idempotency key"), "{}", run.stderr);
    assert!(run.stderr.contains("replayed its answer"), "{}", run.stderr);
    let requests = api.join().expect("the scripted API");
    let again = header(&requests[0], "idempotency-key").expect("a key");
    assert_ne!(again, key, "fresh for every create");
    assert_eq!(header(&requests[1], "idempotency-key"), Some(again));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_that_never_gets_an_answer_gives_up_after_four_attempts() {
    let world = World::start().await;
    world.run(&["login"], Login::Approve("ada")).await.success();
    let (url, api) = scripted_api(vec![None, None, None, None]);
    let mut command = world.bare_command();
    command.args(["--client-id", crate::idp::CLI_CLIENT, "--discovery-url", &world.idp.discovery_url()]);
    command.args(["--api-url", &url, "resource", "create", "alpha"]);
    let run = crate::harness::run(command, Login::NotExpected).await;
    let stderr = run.failure(1);
    assert!(stderr.starts_with(&format!("error: cannot reach the API at {url}/api/resource/v1/: ")), "{stderr}");
    assert!(stderr.ends_with(" (after 4 attempts)\n") && stderr.lines().count() == 1, "{stderr}");
    let requests = api.join().expect("the scripted API");
    let keys: Vec<_> = requests.iter().map(|request| header(request, "idempotency-key")).collect();
    assert!(keys.len() == 4 && keys[0].is_some() && keys.iter().all(|key| *key == keys[0]), "{keys:?}");
}

/// The entity tag of `resource get ID --output json`, as the server's body member says it.
async fn etag(world: &World, id: &str) -> String {
    let shown = world.run(&["--output", "json", "resource", "get", id], Login::NotExpected).await;
    let body: serde_json::Value = serde_json::from_str(shown.success()).expect("JSON");
    let etag = body["etag"].as_str().expect("an etag member").to_owned();
    assert!(!etag.is_empty(), "{body}");
    etag
}

/// Needs the server side of issue 25 (entity tags, `If-Match`, 412).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_since_the_read_is_refused_unless_forced() {
    let world = World::start().await;
    world.run(&["login"], Login::Approve("ada")).await.success();
    let created = world.run(&["resource", "create", "alpha"], Login::NotExpected).await;
    let line = created.success().to_owned();
    assert!(line.starts_with("Created resource ") && line.contains(" \"alpha\" (etag \""), "{line}");
    let id = line["Created resource ".len()..].split(' ').next().expect("id").to_owned();

    // What a person reads, and the tag it shows.
    let shown = world.run(&["resource", "get", &id], Login::NotExpected).await;
    let text = shown.success();
    assert_eq!(text.lines().next(), Some("ID  NAME   OWNER  ETAG"), "{text}");
    let read = etag(&world, &id).await;
    assert!(text.contains(&read), "{text}");

    // Someone else changes it (the client reads the current tag first, so this one passes).
    let renamed = world.run(&["resource", "rename", &id, "beta"], Login::NotExpected).await;
    assert!(
        renamed.success().starts_with(&format!("Renamed resource {id} to \"beta\" (etag \"")),
        "{}",
        renamed.stdout
    );
    assert_ne!(etag(&world, &id).await, read, "a change makes a new tag");

    // The tag read before that change is stale now: one line, exit 1, nothing changed.
    let stale = world.run(&["resource", "rename", &id, "gamma", "--if-match", &read], Login::NotExpected).await;
    let stderr = stale.failure(1);
    let expected = format!("error: resource {id} changed since you read it; read it again or use --force");
    assert!(stderr.starts_with(&expected) && stderr.lines().count() == 1, "{stderr}");
    assert!(stale.stdout.is_empty(), "{}", stale.stdout);
    let stale = world.run(&["resource", "delete", &id, "--if-match", &read], Login::NotExpected).await;
    assert!(stale.failure(1).starts_with(&expected), "{}", stale.stderr);
    let json = ["--output", "json", "resource", "delete", &id, "--if-match", &read];
    let stale = world.run(&json, Login::NotExpected).await;
    stale.failure(1);
    let problem: api_types::Problem = serde_json::from_str(&stale.stdout).expect("the problem on stdout");
    assert_eq!(problem.status, 412);
    let shown = world.run(&["resource", "get", &id], Login::NotExpected).await;
    assert!(shown.success().contains("beta"), "{}", shown.stdout);

    // --force changes it whatever its tag; the current tag works too.
    let forced = world.run(&["resource", "rename", &id, "gamma", "--force"], Login::NotExpected).await;
    assert!(forced.success().starts_with(&format!("Renamed resource {id} to \"gamma\"")), "{}", forced.stdout);
    let current = etag(&world, &id).await;
    let deleted = world.run(&["resource", "delete", &id, "--if-match", &current], Login::NotExpected).await;
    assert_eq!(deleted.success(), format!("Deleted resource {id}.\n"));
}

/// Needs the server side of issue 25: `--force` skips the read and the header, and deletes whatever the tag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_delete_needs_no_tag() {
    let world = World::start().await;
    world.run(&["login"], Login::Approve("ada")).await.success();
    let created = world.run(&["--output", "json", "resource", "create", "doomed"], Login::NotExpected).await;
    let body: serde_json::Value = serde_json::from_str(created.success()).expect("JSON");
    assert!(body["etag"].as_str().is_some_and(|etag| !etag.is_empty()), "the create's body has its tag: {body}");
    let id = body["id"].as_i64().expect("id").to_string();
    world.run(&["resource", "rename", &id, "changed"], Login::NotExpected).await.success();
    let deleted = world.run(&["resource", "delete", &id, "--force"], Login::NotExpected).await;
    assert_eq!(deleted.success(), format!("Deleted resource {id}.\n"));
    let gone = world.run(&["resource", "get", &id], Login::NotExpected).await;
    assert!(gone.failure(1).starts_with("error: Not Found: "), "{}", gone.stderr);
}
