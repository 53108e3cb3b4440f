//! `bench-limit`: the smallest hyper server that answers like `/healthz/`.
//!
//! Every request, whatever its method or path, gets `200` with `content-type: application/json` and the 15-byte
//! body `{"status":"OK"}`, exactly the body of the real server's health check. There is no routing, no
//! middleware and no logging, so its requests per second are the ceiling that any HTTP framework can reach on this
//! machine with this load generator; `bench/run` reports every figure of the real server as a ratio to it,
//! measured in the same run, interleaved.
//!
//! Usage: `bench-limit [--host ADDR] [--port N]` (or the `PORT` environment variable; default 8081, `0` picks a
//! free port). It prints one line, `listening on http://ADDR:PORT`, to standard output once it accepts
//! connections, and stops on SIGINT or SIGTERM.

use std::{convert::Infallible, net::SocketAddr, process::ExitCode};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming, header, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::{
    net::TcpListener,
    signal::unix::{SignalKind, signal},
};

/// The answer body; the same bytes as the server's `GET /healthz/`.
const BODY: &[u8] = br#"{"status":"OK"}"#;

/// Where to listen, from `--host`/`--port`, then `PORT`, then the defaults.
struct Args {
    host: String,
    port: u16,
}

fn parse_args() -> Result<Args, String> {
    let mut host = String::from("127.0.0.1");
    let mut port = match std::env::var("PORT") {
        Ok(value) => value.parse().map_err(|_| format!("PORT is not a port number: {value}"))?,
        Err(_) => 8081,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => {
                let value = args.next().ok_or("--port needs a value")?;
                port = value.parse().map_err(|_| format!("--port is not a port number: {value}"))?;
            }
            "--host" => host = args.next().ok_or("--host needs a value")?,
            "-h" | "--help" => {
                println!("usage: bench-limit [--host ADDR] [--port N]   (PORT env also works; default 8081)");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument: {other}")),
        }
    }
    Ok(Args { host, port })
}

/// The whole application. `Full` sets `content-length`, hyper adds `date`: the same header set a JSON answer
/// from axum has, minus anything the real server's own layers add.
async fn answer(_request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from_static(BODY)));
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    Ok(response)
}

async fn serve(listener: TcpListener) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Running out of file descriptors under a large sweep must not end the ceiling's run; the client
            // retries and the error shows in its error count.
            Err(_) => continue,
        };
        // The load generator sends one request at a time per connection; without NODELAY a response could wait
        // for Nagle's timer. (axum's `serve` writes each response in one go, so it does not need it either.)
        let _ = stream.set_nodelay(true);
        // One task per connection on the multi-threaded runtime, as axum::serve does; HTTP/1.1 keep-alive is
        // hyper's default, so a connection serves requests until the client closes it.
        tokio::spawn(async move {
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service_fn(answer)).await;
        });
    }
}

async fn run(args: Args) -> Result<(), String> {
    let listener = TcpListener::bind((args.host.as_str(), args.port))
        .await
        .map_err(|error| format!("cannot listen on {}:{}: {error}", args.host, args.port))?;
    let address: SocketAddr = listener.local_addr().map_err(|error| error.to_string())?;
    println!("listening on http://{address}");
    let mut terminate = signal(SignalKind::terminate()).map_err(|error| error.to_string())?;
    tokio::select! {
        () = serve(listener) => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    // The multi-threaded runtime with one worker per core, the same default `#[tokio::main]` gives the server.
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
