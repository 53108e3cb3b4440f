//! Graceful shutdown: once shutdown begins the server stops accepting, lets a request in flight finish, and does
//! not wait past the grace period for one that never does.

use std::time::Duration;

use tempfile::TempDir;
use test_support::server::TestServer;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::oneshot,
};

use crate::idp::TestIdp;

/// A server with OIDC whose shutdown the test triggers.
async fn start(
    idp: &TestIdp,
    dir: &TempDir,
    grace_secs: u64,
) -> (std::net::SocketAddr, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let secrets = idp.write_client_secrets(dir.path());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = TestServer::new()
        .configure(|config| {
            config.auth.oidc_client_secrets = Some(secrets);
            config.server.shutdown_grace_secs = grace_secs;
        })
        .start_until(async move {
            let _ = stopped.await;
        })
        .await;
    let address = server.address;
    let task = tokio::spawn(async move {
        server.task.await.expect("the serving task ends").expect("serves and stops cleanly");
    });
    (address, stop, task)
}

/// Sends the headers of a create request and the first half of its body, leaving the request in flight.
async fn half_sent_create(address: std::net::SocketAddr, token: &str) -> (TcpStream, &'static [u8]) {
    const BODY: &[u8] = br#"{"name": "finished during shutdown"}"#;
    let mut stream = TcpStream::connect(address).await.expect("connects");
    let head = format!(
        "POST /api/resource/v1/ HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        BODY.len()
    );
    stream.write_all(head.as_bytes()).await.expect("headers");
    stream.write_all(&BODY[..10]).await.expect("half the body");
    (stream, &BODY[10..])
}

#[tokio::test]
async fn a_request_in_flight_finishes_after_shutdown_begins() {
    let idp = TestIdp::start().await;
    let dir = TempDir::new().expect("temp dir");
    let (address, stop, server) = start(&idp, &dir, 25).await;
    let token = idp.jwt().await;
    let (mut stream, rest) = half_sent_create(address, &token).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    stop.send(()).expect("server running");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(TcpStream::connect(address).await.is_err(), "no new connections once shutdown began");

    stream.write_all(rest).await.expect("rest of the body");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("answer");
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    tokio::time::timeout(Duration::from_secs(10), server).await.expect("stops once idle").expect("task");
}

#[tokio::test]
async fn shutdown_does_not_wait_past_the_grace_period() {
    let idp = TestIdp::start().await;
    let dir = TempDir::new().expect("temp dir");
    let (address, stop, server) = start(&idp, &dir, 1).await;
    let token = idp.jwt().await;
    let (_stream, _never_sent) = half_sent_create(address, &token).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.send(()).expect("server running");
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("gives up on the stuck request after the 1 s grace period")
        .expect("task");
}
