//! Harness of the deployment tests: the image under test, podman under the tests' own `containers.conf`,
//! containers and pods removed when a test ends, loopback ports, a scratch PostgreSQL schema, and the chart
//! renderer (`deploy/tests/tools/render.py`, Helm's SDK from PyPI).
//!
//! `./scripts/test` builds the image (`scripts/build-image`) and sets `TEST_IMAGE`/`TEST_IMAGE_VERSION`; when
//! podman cannot run there it filters the tests that need it out and says so (under `CI=true` it fails instead).

use std::{
    path::{Path, PathBuf},
    process::Output,
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use sea_orm::{ConnectionTrait, Database};
use serde_json::Value;
use tokio::process::Command;

/// The repository's root, where scripts, the chart and the Containerfiles live.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn required(variable: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| {
        panic!("{variable} is not set: ./scripts/test builds the image and sets it, or filters these tests out")
    })
}

/// The image under test, as `scripts/build-image` tagged it.
pub fn image() -> String {
    required("TEST_IMAGE")
}

/// The `APP_VERSION` the image under test was built with.
pub fn image_version() -> String {
    required("TEST_IMAGE_VERSION")
}

/// A podman command under the tests' `containers.conf` (runc, ulimits), so the machine's settings stay as they are.
pub fn podman() -> Command {
    let mut command = Command::from(podman_blocking());
    command.kill_on_drop(true);
    command
}

/// [`podman`] for cleanup in `Drop`, where the test's runtime may already be gone.
pub fn podman_blocking() -> std::process::Command {
    let mut command = std::process::Command::new("podman");
    command.env("CONTAINERS_CONF", repo_root().join("deploy/tests/containers.conf"));
    command
}

/// The `/proc/PID/status` fields of a process (`Uid`, `CapEff`, `NoNewPrivs`, ...), as the kernel reports them.
pub fn process_status(pid: u64) -> Vec<(String, String)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.split_whitespace().collect::<Vec<_>>().join(" ")))
        .collect()
}

/// Runs podman with `args`; its output, whatever the exit code.
pub async fn podman_output(args: &[&str]) -> Output {
    podman().args(args).output().await.unwrap_or_else(|e| panic!("podman {args:?} cannot start: {e}"))
}

/// Runs podman with `args` and panics with its stderr unless it succeeds; its stdout.
pub async fn podman_ok(args: &[&str]) -> String {
    let output = podman_output(args).await;
    assert!(output.status.success(), "podman {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("podman prints UTF-8")
}

/// `podman inspect` of one object, as JSON.
pub async fn inspect(kind: &str, name: &str) -> Value {
    let text = podman_ok(&[kind, "inspect", name]).await;
    let mut all: Vec<Value> = serde_json::from_str(&text).expect("inspect prints a JSON array");
    assert_eq!(all.len(), 1, "one {kind} named {name}");
    all.remove(0)
}

/// A name no other test (or earlier run) uses, for containers, pods and volumes.
pub fn unique_name(what: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!("raa-test-{what}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A container removed (with its anonymous volumes) when the test ends, passed or not.
pub struct Container {
    /// Its name.
    pub name: String,
}

impl Container {
    /// Starts `podman run --detach --name <unique> ARGS...`; ARGS end with the image and its command.
    pub async fn run(what: &str, args: &[&str]) -> Self {
        let name = unique_name(what);
        let mut all = vec!["run", "--detach", "--name", &name];
        all.extend_from_slice(args);
        podman_ok(&all).await;
        Self { name }
    }

    /// The container's log so far (the server's stderr), for failure messages.
    pub async fn logs(&self) -> String {
        let output = podman_output(&["logs", &self.name]).await;
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
    }

    /// `podman stop` with `timeout_secs` before podman resorts to SIGKILL; how long it took and the exit code.
    pub async fn stop(&self, timeout_secs: u32) -> (Duration, i64) {
        let started = Instant::now();
        podman_ok(&["stop", "--time", &timeout_secs.to_string(), &self.name]).await;
        let elapsed = started.elapsed();
        let state = inspect("container", &self.name).await;
        (elapsed, state["State"]["ExitCode"].as_i64().expect("exit code"))
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        // Synchronous on purpose: the runtime may be gone by now.
        let _ = podman_blocking().args(["rm", "--force", "--volumes", "--time", "0", &self.name]).output();
    }
}

/// A free port on 127.0.0.1 (bound and released: good enough when the server binds it moments later).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local address").port()
}

/// A plain HTTP client for calls to the service on loopback.
pub fn http() -> reqwest::Client {
    // Nothing here speaks TLS, but reqwest builds no client without a rustls provider.
    http_client::install_crypto_provider();
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("HTTP client")
}

/// Polls `url` until it answers `200`; `Err` says what it last saw when `timeout` passes.
pub async fn wait_for_200(url: &str, timeout: Duration) -> Result<(), String> {
    let client = http();
    let deadline = Instant::now() + timeout;
    let mut last = String::from("no answer yet");
    while Instant::now() < deadline {
        match client.get(url).send().await {
            Ok(response) if response.status() == 200 => return Ok(()),
            Ok(response) => last = format!("status {}", response.status()),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!("{url} did not answer 200 within {timeout:?}: {last}"))
}

/// A PostgreSQL schema of its own in the server named by `TEST_POSTGRES_URL`, dropped when the test ends.
pub struct ScratchSchema {
    /// The server's URL (the schema is chosen with `db_schema`).
    pub url: String,
    /// The schema's name.
    pub schema: String,
}

impl ScratchSchema {
    /// Creates the schema.
    pub async fn create() -> Self {
        let url = required("TEST_POSTGRES_URL");
        let schema = unique_name("schema").replace('-', "_");
        execute(&url, &format!("CREATE SCHEMA {schema}")).await;
        Self { url, schema }
    }

    /// Rows of `sql` (which names tables with the schema, `{schema}.resources`), each as JSON of text values.
    pub async fn query(&self, sql: &str) -> Vec<Value> {
        let db = Database::connect(&self.url).await.expect("connect to the test PostgreSQL");
        let rows = db
            .query_all_raw(sea_orm::Statement::from_string(db.get_database_backend(), sql.to_owned()))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.iter()
            .map(|row| {
                let mut object = serde_json::Map::new();
                for column in row.column_names() {
                    let value: Option<String> = row.try_get("", &column).ok();
                    object.insert(column, value.map_or(Value::Null, Value::String));
                }
                Value::Object(object)
            })
            .collect()
    }
}

impl Drop for ScratchSchema {
    fn drop(&mut self) {
        let (url, sql) = (self.url.clone(), format!("DROP SCHEMA {} CASCADE", self.schema));
        // Drop runs inside the test's runtime: do the cleanup on a thread with its own.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map(|rt| rt.block_on(execute(&url, &sql)))
        })
        .join();
    }
}

async fn execute(url: &str, sql: &str) {
    let db = Database::connect(url).await.unwrap_or_else(|e| panic!("cannot reach the test PostgreSQL: {e}"));
    db.execute_unprepared(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    let _ = db.close().await;
}

/// The Helm chart, rendered offline by `deploy/tests/tools/render.py` with the venv `./scripts/test` installs.
pub mod chart {
    use super::*;

    /// The chart's directory.
    pub fn dir() -> PathBuf {
        repo_root().join("deploy/helm/rust-api-axum")
    }

    /// The venv's Python, which has Helm's SDK and kubernetes-validate.
    pub fn python() -> PathBuf {
        let python = repo_root().join("deploy/tests/.venv/bin/python");
        assert!(python.is_file(), "{} is missing: ./scripts/test creates the venv", python.display());
        python
    }

    /// One rendered manifest: where it came from, the file it was written to, and its parsed content.
    #[derive(Debug, Clone)]
    pub struct Manifest {
        /// The chart template it came from.
        pub template: String,
        /// The file holding this one document.
        pub file: PathBuf,
        /// The parsed document.
        pub doc: Value,
    }

    impl Manifest {
        /// Its `kind`.
        pub fn kind(&self) -> &str {
            self.doc["kind"].as_str().unwrap_or_default()
        }
    }

    /// Renders the chart with the value files `values` (relative to the repository) and then `set` (JSON
    /// merged last), writing one file per document into `out`. `Err` carries the renderer's message.
    pub async fn render(values: &[&str], set: Option<&Value>, out: &Path) -> Result<Vec<Manifest>, String> {
        render_release("rust-api-axum", values, set, out).await
    }

    /// [`render`] as release `release` (which names every object), for installs that must not collide.
    pub async fn render_release(
        release: &str,
        values: &[&str],
        set: Option<&Value>,
        out: &Path,
    ) -> Result<Vec<Manifest>, String> {
        let mut command = Command::new(python());
        command.arg(repo_root().join("deploy/tests/tools/render.py")).arg(dir()).arg("--name").arg(release);
        for file in values {
            command.arg("-f").arg(repo_root().join(file));
        }
        if let Some(set) = set {
            command.arg("--set-json").arg(set.to_string());
        }
        command.arg("--out").arg(out);
        let output = command.output().await.expect("render.py starts");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let answer: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
            panic!("render.py printed no JSON: {stdout}\n{}", String::from_utf8_lossy(&output.stderr))
        });
        if answer["ok"] != Value::Bool(true) {
            assert!(!output.status.success(), "render.py reported an error but exited 0");
            return Err(answer["error"].as_str().unwrap_or_default().to_owned());
        }
        assert!(output.status.success(), "render.py exited {:?}", output.status);
        Ok(answer["manifests"]
            .as_array()
            .expect("manifests")
            .iter()
            .map(|m| Manifest {
                template: m["template"].as_str().expect("template").to_owned(),
                file: PathBuf::from(m["file"].as_str().expect("file")),
                doc: m["doc"].clone(),
            })
            .collect())
    }

    /// The one manifest of `kind`.
    pub fn only<'a>(manifests: &'a [Manifest], kind: &str) -> &'a Manifest {
        let mut found = manifests.iter().filter(|m| m.kind() == kind);
        let first = found.next().unwrap_or_else(|| panic!("no {kind} rendered"));
        assert!(found.next().is_none(), "more than one {kind} rendered");
        first
    }
}
