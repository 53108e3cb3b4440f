//! The connection loop from outside: HTTP/2 with prior knowledge beside HTTP/1.1 on one port, however the
//! preface arrives, and the cap on connections served at once.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};

use crate::helpers::spawn_app;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame: length 0, type 4, no flags, stream 0.
const EMPTY_SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];

#[tokio::test]
async fn http2_with_prior_knowledge_is_served_on_the_http1_port() {
    let app = spawn_app().await;
    let stream = TcpStream::connect(app.address).await.expect("connects");
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(connection);
    for _ in 0..2 {
        let request = hyper::Request::get(format!("http://{}/api/greeting/v1/", app.address))
            .body(Empty::<Bytes>::new())
            .expect("a request");
        let response = sender.send_request(request).await.expect("an answer");
        assert_eq!(response.version(), hyper::Version::HTTP_2);
        assert_eq!(response.status(), 200);
        let body = response.into_body().collect().await.expect("a body").to_bytes();
        assert_eq!(body.as_ref(), br#"{"message":"Hello World"}"#);
    }
    assert_eq!(app.get("/api/greeting/v1/").await.status(), 200, "HTTP/1.1 on the same port");
}

#[tokio::test]
async fn a_preface_that_arrives_in_pieces_is_still_http2() {
    let app = spawn_app().await;
    let mut stream = TcpStream::connect(app.address).await.expect("connects");
    for piece in [&PREFACE[..1], &PREFACE[1..7], &PREFACE[7..]] {
        stream.write_all(piece).await.expect("writes");
        stream.flush().await.expect("flushes");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stream.write_all(EMPTY_SETTINGS).await.expect("writes");
    // An HTTP/1 server would answer `HTTP/1.1 400`; an HTTP/2 server's first frame is its SETTINGS.
    let mut frame_head = [0_u8; 9];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut frame_head))
        .await
        .expect("answers in time")
        .expect("reads a frame head");
    assert_eq!(frame_head[3], 4, "a SETTINGS frame, not {:?}", String::from_utf8_lossy(&frame_head));
}

#[tokio::test]
async fn a_request_that_merely_starts_with_p_is_http1() {
    let app = spawn_app().await;
    let mut stream = TcpStream::connect(app.address).await.expect("connects");
    // "P" is where POST, PUT and PATCH part from the preface: one byte alone must not be mistaken for it.
    stream.write_all(b"P").await.expect("writes");
    tokio::time::sleep(Duration::from_millis(50)).await;
    stream
        .write_all(b"UT /api/greeting/v1/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        .await
        .expect("writes");
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut answer))
        .await
        .expect("answers in time")
        .expect("reads");
    assert!(answer.starts_with("HTTP/1.1 405"), "PUT on a GET route: {answer}");
}

#[tokio::test]
async fn beyond_max_connections_a_new_connection_waits_until_one_closes() {
    let app = crate::helpers::spawn_app_with(|config| config.limits.max_connections = 2).await;
    let request = b"GET /api/greeting/v1/ HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(app.address).await.expect("connects");
        stream.write_all(request).await.expect("writes");
        let mut answer = [0_u8; 12];
        stream.read_exact(&mut answer).await.expect("answered");
        assert_eq!(&answer, b"HTTP/1.1 200");
        held.push(stream);
    }
    // The kernel completes the handshake, but the server does not accept it while two connections are open.
    let mut waiting = TcpStream::connect(app.address).await.expect("connects (the listen queue)");
    waiting.write_all(request).await.expect("writes");
    let mut answer = [0_u8; 12];
    let early = tokio::time::timeout(Duration::from_millis(500), waiting.read_exact(&mut answer)).await;
    assert!(early.is_err(), "a third connection was served while two were open");
    drop(held.pop());
    tokio::time::timeout(Duration::from_secs(5), waiting.read_exact(&mut answer))
        .await
        .expect("served once a connection closed")
        .expect("reads");
    assert_eq!(&answer, b"HTTP/1.1 200");
}
