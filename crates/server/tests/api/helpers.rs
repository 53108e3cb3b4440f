//! Starting the server for a test and talking to it.

use std::{
    io::{BufRead, BufReader},
    net::{SocketAddr, TcpListener},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use rust_api_axum::config::Config;
use test_support::server::{RunningServer, TestServer};

/// A server running in this test's runtime on a free port, with its own instance directory.
pub struct TestApp {
    pub address: SocketAddr,
    pub client: reqwest::Client,
    _server: RunningServer,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request sent")
    }
}

/// Starts the server as `main` would, but on 127.0.0.1:0 and serving until the test's runtime ends.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    serve(TestServer::new().configure(adjust)).await
}

/// Starts `server` (the shared in-process harness, with whatever it plugs in) and a client for it.
pub async fn serve(server: TestServer) -> TestApp {
    let server = server.start().await;
    rust_api_axum::auth::http::install_crypto_provider();
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    TestApp { address: server.address, client, _server: server }
}

/// The problem+json body of `response`, after checking its media type.
pub async fn problem(response: reqwest::Response) -> api_types::Problem {
    assert_eq!(response.headers()["content-type"], api_types::PROBLEM_JSON, "error responses are problem+json");
    response.json().await.expect("problem body")
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// The server binary, as Cargo built it for these tests.
pub fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rust-api-axum"));
    command.env_remove("APP_CONFIG").env_remove("RUST_LOG");
    for (key, _) in std::env::vars() {
        if key.starts_with("APP_CONFIG_") {
            command.env_remove(key);
        }
    }
    command
}

/// A server binary started in `dir`, with its log lines arriving on a channel.
pub struct RunningBinary {
    child: Child,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl RunningBinary {
    pub fn start(mut command: Command, dir: &Path) -> Self {
        let mut child =
            command.current_dir(dir).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("binary starts");
        let stderr = child.stderr.take().expect("stderr piped");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines, seen: Vec::new() }
    }

    /// Waits (up to 30 s) for a log line containing `needle` and returns it.
    pub fn wait_for(&mut self, needle: &str) -> String {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no log line containing {needle:?}; saw:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// Sends `SIG<name>` (e.g. `TERM`) without waiting for the process to end.
    pub fn signal(&self, name: &str) {
        let status =
            Command::new("kill").args([&format!("-{name}"), &self.child.id().to_string()]).status().expect("kill runs");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Sends SIGTERM and returns the exit code once the process is gone.
    pub fn terminate(self) -> (Option<i32>, Vec<String>) {
        self.signal("TERM");
        self.wait_for_exit()
    }

    /// Waits for the process to end; its exit code and every line it logged.
    pub fn wait_for_exit(mut self) -> (Option<i32>, Vec<String>) {
        let code = self.child.wait().expect("child exits").code();
        self.seen.extend(self.lines.try_iter());
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.seen.push(line);
        }
        (code, std::mem::take(&mut self.seen))
    }
}

impl Drop for RunningBinary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
