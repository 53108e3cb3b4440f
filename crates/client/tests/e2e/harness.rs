//! A test world: the provider, the API server in-process on port 0 with its own SQLite database, and a private
//! home directory for the client (HOME, XDG_CONFIG_HOME and XDG_CACHE_HOME), so nothing touches the real one.
//! Runs the client binary and, when it asks for a login, approves (or denies) it at the provider.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use tempfile::TempDir;
use test_support::server::{RunningServer, TestServer};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, BufReader},
    process::Command,
};

use crate::{approve, idp::TestIdp};

/// Longest a single client run may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// The provider, the server and a home directory for the client.
pub struct World {
    pub idp: TestIdp,
    pub api_url: String,
    pub home: TempDir,
    /// The private CA of a provider served over HTTPS, as a PEM file.
    pub ca_cert: Option<PathBuf>,
    server_dir: TempDir,
    _server: RunningServer,
}

/// How a client run ended.
#[derive(Debug)]
pub struct Outcome {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// Asserts exit code 0 and returns standard output.
    pub fn success(&self) -> &str {
        assert_eq!(self.code, Some(0), "the client failed:\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        &self.stdout
    }

    /// Asserts exit code `code` and returns standard error.
    pub fn failure(&self, code: i32) -> &str {
        assert_eq!(self.code, Some(code), "unexpected exit:\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        &self.stderr
    }

    /// Whether the client asked for a device login.
    pub fn prompted(&self) -> bool {
        self.stderr.contains("To log in, open")
    }
}

/// What to do when the client prints its device-flow prompt.
#[derive(Debug, Clone, Copy)]
pub enum Login<'u> {
    /// Fail the test if the client asks for a login.
    NotExpected,
    /// Approve it as this user.
    Approve(&'u str),
    /// Deny it.
    Deny,
}

impl World {
    /// Starts the provider and the server configured against it.
    pub async fn start() -> Self {
        let server_dir = TempDir::new().expect("temp dir");
        Self::start_with(TestIdp::start().await, server_dir, None).await
    }

    /// Like [`World::start`], but the provider serves HTTPS with a certificate from a private CA, which the
    /// server trusts through its `ca_cert` setting.
    pub async fn start_tls() -> Self {
        let server_dir = TempDir::new().expect("temp dir");
        let (ca, cert, key) = test_support::tls::private_ca(server_dir.path());
        let idp = TestIdp::start_tls(&cert, &key, &std::fs::read(&ca).expect("CA PEM")).await;
        Self::start_with(idp, server_dir, Some(ca)).await
    }

    async fn start_with(idp: TestIdp, server_dir: TempDir, ca_cert: Option<PathBuf>) -> Self {
        let secrets = idp.write_client_secrets(server_dir.path());
        let server = TestServer::new()
            .configure(|config| {
                config.auth.oidc_client_secrets = Some(secrets);
                config.observability.access_log = false;
                config.auth.ca_cert.clone_from(&ca_cert);
            })
            .start()
            .await;
        let api_url = server.url("");
        Self { idp, api_url, home: TempDir::new().expect("temp dir"), ca_cert, server_dir, _server: server }
    }

    /// The client binary with this world's private home and no configuration of its own.
    pub fn bare_command(&self) -> Command {
        bare_command(self.home.path())
    }

    /// The client binary configured (by flags) for this world's provider and server.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = self.bare_command();
        command
            .args(["--client-id", crate::idp::CLI_CLIENT, "--discovery-url", &self.idp.discovery_url()])
            .args(["--api-url", &self.api_url])
            .args(args);
        command
    }

    /// Runs the client with `args`, handling a login prompt as `login` says.
    pub async fn run(&self, args: &[&str], login: Login<'_>) -> Outcome {
        let ca_pem = self.ca_cert.as_ref().map(|path| std::fs::read(path).expect("CA PEM"));
        run_trusting(self.command(args), login, ca_pem.as_deref()).await
    }

    /// The server's SQLite database file.
    pub fn database_file(&self) -> PathBuf {
        self._server.instance.path().join("instance").join(rust_api_axum::db::DEFAULT_SQLITE_FILE)
    }

    /// Where the server keeps its files (and the private CA of an HTTPS world).
    pub fn server_dir(&self) -> &Path {
        self.server_dir.path()
    }

    /// The client's token cache files.
    pub fn cache_files(&self) -> Vec<PathBuf> {
        let dir = self.home.path().join("cache/rust-api-axum-client");
        let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
        entries
            .map(|entry| entry.expect("dir entry").path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .collect()
    }

    /// The one token cache entry, as JSON.
    pub fn cache(&self) -> serde_json::Value {
        let files = self.cache_files();
        assert_eq!(files.len(), 1, "exactly one cache file: {files:?}");
        serde_json::from_slice(&std::fs::read(&files[0]).expect("read cache")).expect("cache JSON")
    }

    /// Replaces the one token cache entry.
    pub fn write_cache(&self, value: &serde_json::Value) {
        let files = self.cache_files();
        std::fs::write(&files[0], serde_json::to_vec(value).expect("JSON")).expect("write cache");
    }
}

/// The client binary with `home` as HOME and XDG base, and no inherited logging configuration.
pub fn bare_command(home: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rust-api-axum-client"));
    command
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Runs `command` to its end; when it prints a device-flow prompt, approves or denies the login at the provider.
pub async fn run(command: Command, login: Login<'_>) -> Outcome {
    run_trusting(command, login, None).await
}

/// [`run`] against a provider whose certificate comes from the private CA `ca_pem`.
async fn run_trusting(mut command: Command, login: Login<'_>, ca_pem: Option<&[u8]>) -> Outcome {
    let run = async {
        let mut child = command.spawn().expect("the client starts");
        let mut stdout = child.stdout.take().expect("stdout piped");
        let stdout = tokio::spawn(async move {
            let mut text = String::new();
            let _ = stdout.read_to_string(&mut text).await;
            text
        });
        let mut lines = BufReader::new(child.stderr.take().expect("stderr piped")).lines();
        let mut stderr = String::new();
        while let Ok(Some(line)) = lines.next_line().await {
            stderr.push_str(&line);
            stderr.push('\n');
            let Some(uri) = verification_uri_complete(&line) else { continue };
            match login {
                Login::NotExpected => panic!("the client asked for a login:\n{stderr}"),
                Login::Approve(user) => approve::approve(&uri, user, ca_pem).await,
                Login::Deny => approve::deny(&uri).await,
            }
        }
        let status = child.wait().await.expect("the client exits");
        Outcome { code: status.code(), stdout: stdout.await.expect("stdout read"), stderr }
    };
    tokio::time::timeout(RUN_TIMEOUT, run).await.expect("the client finishes within a minute")
}

/// The URL with the user code filled in, from a prompt line such as
/// `(or open http://127.0.0.1:1234/device?user_code=ABCD-EFGH, which has the code filled in).`
fn verification_uri_complete(line: &str) -> Option<String> {
    line.split_whitespace()
        .find(|word| word.starts_with("http") && word.contains("user_code="))
        .map(|word| word.trim_end_matches([',', '.', ')']).to_owned())
}
