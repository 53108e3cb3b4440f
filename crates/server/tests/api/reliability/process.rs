//! The server process under load meets the operating system: SIGTERM (drain, finish in flight, exit 0), SIGKILL
//! (restart on what is on disk: SQLite's WAL, PostgreSQL's), and two processes writing one SQLite file.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use loadgen::{Figures, Plan, Report, audit, phase};
use sea_orm::{ConnectionTrait, Database, Statement};
use tempfile::TempDir;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::watch,
};

use crate::{
    database::{Engine, TestDatabase},
    helpers::{RunningBinary, binary, free_port},
    idp::TestIdp,
};

/// How long a server keeps serving after SIGTERM: long enough for a balancer to notice `/readyz`, short enough
/// for a test.
const DRAIN: Duration = Duration::from_secs(1);

/// One server process of a scenario: where it listens and what it was started with.
struct Server {
    process: RunningBinary,
}

/// What every server process of a scenario shares: its directory, provider secrets and database.
struct Setup {
    dir: TempDir,
    secrets: PathBuf,
    database: TestDatabase,
}

impl Setup {
    async fn new(idp: &TestIdp, engine: Engine) -> Self {
        let dir = TempDir::new().expect("temp dir");
        let secrets = idp.write_client_secrets(dir.path());
        Self { dir, secrets, database: TestDatabase::create(engine).await }
    }

    fn instance_path(&self) -> PathBuf {
        self.dir.path().join("instance")
    }

    /// Starts the real binary on `port` and waits until it listens.
    fn start(&self, port: u16) -> Server {
        let mut command = binary();
        command
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .arg("--instance-path")
            .arg(self.instance_path())
            .arg("--oidc-secrets")
            .arg(&self.secrets)
            .env("APP_CONFIG_SHUTDOWN_DRAIN_SECS", DRAIN.as_secs().to_string())
            .env("APP_CONFIG_SHUTDOWN_GRACE_SECS", "10");
        if let Some(url) = &self.database.url {
            command.env("APP_CONFIG_DB_URL", url);
        }
        if let Some(schema) = &self.database.schema {
            command.env("APP_CONFIG_DB_SCHEMA", &**schema);
        }
        let mut process = RunningBinary::start(command, self.dir.path());
        process.wait_for("Listening on");
        Server { process }
    }

    /// Every stored `(id, name)` whose name starts with `prefix`, read straight from the database.
    async fn rows(&self, prefix: &str) -> Vec<(i64, String)> {
        let url = match &self.database.url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}?mode=ro", self.instance_path().join("rust-api-axum.sqlite").display()),
        };
        let db = Database::connect(&url).await.expect("the test reaches the database");
        let table = match &self.database.schema {
            Some(schema) => format!("{schema}.resources"),
            None => "resources".to_owned(),
        };
        let sql = format!("SELECT id, name FROM {table} WHERE name LIKE '{prefix}-%'");
        let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.expect("rows");
        let rows = rows
            .iter()
            .map(|row| (row.try_get::<i64>("", "id").expect("id"), row.try_get::<String>("", "name").expect("name")))
            .collect();
        let _ = db.close().await;
        rows
    }
}

fn plan(port: u16, token: &str, prefix: &str) -> Plan {
    Plan {
        base: format!("http://127.0.0.1:{port}"),
        tokens: vec![token.to_owned()],
        clients: 8,
        request_timeout: Duration::from_secs(15),
        name_prefix: prefix.to_owned(),
        keyed: false,
    }
}

/// Starts the load of `plan` in the background; send `true` on the returned sender to stop it.
fn start_load(plan: Plan) -> (watch::Sender<bool>, tokio::task::JoinHandle<Report>) {
    let (stop, stopped) = watch::channel(false);
    let load = tokio::spawn(async move { loadgen::run(&plan, stopped).await });
    (stop, load)
}

async fn ready(port: u16) -> bool {
    rust_api_axum::auth::http::install_crypto_provider();
    let url = format!("http://127.0.0.1:{port}/readyz");
    matches!(reqwest::get(&url).await, Ok(r) if r.status() == 200)
}

async fn wait_until_ready(port: u16) {
    let started = Instant::now();
    while !ready(port).await {
        assert!(started.elapsed() < Duration::from_secs(30), "ready within 30 s of a restart");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends the head of a create and half its body, so the request is in flight when the signal arrives.
async fn half_sent_create(port: u16, token: &str, name: &str) -> (TcpStream, Vec<u8>) {
    let body = format!(r#"{{"name": "{name}"}}"#).into_bytes();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.expect("connects");
    let head = format!(
        "POST /api/resource/v1 HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    stream.write_all(&body[..5]).await.expect("half the body");
    (stream, body[5..].to_vec())
}

fn assert_no_errors_but(report: &Report, allowed: &[u16]) {
    let unexpected: Vec<_> = report.statuses.keys().filter(|s| **s >= 300 && !allowed.contains(s)).collect();
    assert!(unexpected.is_empty(), "statuses beyond {allowed:?}: {}", report.summary());
    assert_eq!(report.not_problem_json, 0, "every error is problem+json");
    assert_eq!(report.hung, 0, "no request hung");
}

#[tokio::test]
async fn sigterm_under_load_finishes_in_flight_requests_and_loses_nothing() {
    let idp = TestIdp::start().await;
    let setup = Setup::new(&idp, Engine::Sqlite).await;
    let token = idp.jwt().await;
    let port = free_port();
    let server = setup.start(port);
    let prefix = "sigterm";
    let (stop, load) = start_load(plan(port, &token, prefix));
    tokio::time::sleep(phase()).await;

    let (mut in_flight, rest) = half_sent_create(port, &token, "sigterm-in-flight").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let signalled = Instant::now();
    server.process.signal("TERM");
    // The request in flight finishes during the drain.
    in_flight.write_all(&rest).await.expect("rest of the body");
    let mut answer = String::new();
    in_flight.read_to_string(&mut answer).await.expect("answer");
    assert!(answer.starts_with("HTTP/1.1 201"), "the request in flight completed: {answer}");
    let (code, lines) = tokio::task::spawn_blocking(move || server.process.wait_for_exit()).await.expect("join");
    let exited = signalled.elapsed();
    assert_eq!(code, Some(0), "exit code 0 after SIGTERM: {}", lines.join("\n"));
    assert!(exited < Duration::from_secs(10), "exited within the 10 s grace period: {exited:?}");
    assert!(TcpStream::connect(("127.0.0.1", port)).await.is_err(), "new connections are refused once it is gone");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.send(true).expect("load running");
    let report = load.await.expect("load");

    // Nothing failed during the drain; once the listener closed, new connections were refused (at connect, or
    // reset in the accept backlog the closing listener drops, before the server read a byte of them).
    if let Some(first) = report.first_error_at {
        let after = first.saturating_duration_since(signalled);
        assert!(after >= DRAIN - Duration::from_millis(50), "no request failed during the drain: {}", report.summary());
    }
    assert_no_errors_but(&report, &[]);
    let mut rows = setup.rows(prefix).await;
    let audit = audit(&report, &rows);
    assert!(audit.is_clean(), "{audit:?}");
    rows.retain(|(_, name)| name == "sigterm-in-flight");
    assert_eq!(rows.len(), 1, "the write in flight at SIGTERM is stored");
    Figures::new(
        "SIGTERM under load (SQLite)",
        &report,
        &audit,
        &["SIGTERM with 8 clients and a request in flight; the client errors are connections refused or reset after the drain, when the listener closed"],
        None,
    )
    .publish();
}

/// SIGKILL mid-load, restart on the same storage: it starts cleanly and every acknowledged write is there.
async fn sigkill_under_load_then_restart_keeps_every_acknowledged_write(engine: Engine, scenario: &str) {
    let idp = TestIdp::start().await;
    let setup = Setup::new(&idp, engine).await;
    let token = idp.jwt().await;
    let port = free_port();
    let server = setup.start(port);
    let prefix = format!("sigkill-{}", engine_name(engine));
    let (stop, load) = start_load(plan(port, &token, &prefix));
    tokio::time::sleep(phase()).await;
    server.process.signal("KILL");
    let (code, _) = tokio::task::spawn_blocking(move || server.process.wait_for_exit()).await.expect("join");
    assert_eq!(code, None, "killed by a signal");
    let killed = Instant::now();

    let restarted = setup.start(port);
    wait_until_ready(port).await;
    // From the kill to ready again, the restart included (what a supervisor would see).
    let recovery = killed.elapsed();
    tokio::time::sleep(phase()).await;
    stop.send(true).expect("load running");
    let report = load.await.expect("load");

    // Requests in flight when the process died got no answer (never a wrong one); nothing else failed.
    assert_no_errors_but(&report, &[]);
    assert!(report.acknowledged.len() > 10, "the load wrote before and after the kill: {}", report.summary());
    let audit = audit(&report, &setup.rows(&prefix).await);
    assert!(audit.is_clean(), "{audit:?}");
    let (code, lines) = tokio::task::spawn_blocking(move || restarted.process.terminate()).await.expect("join");
    assert_eq!(code, Some(0));
    assert!(!lines.iter().any(|l| l.contains("ERROR")), "the restart was clean: {}", lines.join("\n"));
    Figures::new(scenario, &report, &audit, &["SIGKILL with 8 clients, restart on the same storage"], Some(recovery))
        .publish();
}

fn engine_name(engine: Engine) -> &'static str {
    match engine {
        Engine::Sqlite => "sqlite",
        Engine::Postgres => "postgres",
        Engine::MySql => "mysql",
    }
}

#[tokio::test]
async fn sqlite_sigkill_under_load_then_restart_keeps_every_acknowledged_write() {
    sigkill_under_load_then_restart_keeps_every_acknowledged_write(Engine::Sqlite, "SIGKILL under load (SQLite)").await;
}

// In a module named after its engine, so `./scripts/test` can leave it out by module path.
mod postgres {
    use super::Engine;

    #[tokio::test]
    async fn sigkill_under_load_then_restart_keeps_every_acknowledged_write() {
        super::sigkill_under_load_then_restart_keeps_every_acknowledged_write(
            Engine::Postgres,
            "SIGKILL under load (PostgreSQL)",
        )
        .await;
    }
}

#[tokio::test]
async fn two_processes_writing_one_sqlite_file_lose_nothing_and_answer_only_documented_statuses() {
    let idp = TestIdp::start().await;
    let setup = Setup::new(&idp, Engine::Sqlite).await;
    let token = idp.jwt().await;
    let ports = [free_port(), free_port()];
    let servers = [setup.start(ports[0]), setup.start(ports[1])];
    let loads: Vec<_> = ports.iter().map(|port| start_load(plan(*port, &token, "shared"))).collect();
    tokio::time::sleep(phase() * 2).await;
    let mut report = Report::default();
    for (stop, load) in loads {
        stop.send(true).expect("load running");
        let part = load.await.expect("load");
        report.merge(part);
    }
    // Both processes create the same names ("shared-c0-0" from each): one 201, the other 409 (the unique
    // constraint); a write that waits for the other process's lock longer than the busy timeout is a 503.
    assert_no_errors_but(&report, &[409, 503]);
    assert_eq!(report.transport_errors, 0, "{}", report.summary());
    let audit = audit(&report, &setup.rows("shared").await);
    assert!(audit.is_clean(), "{audit:?}");
    for server in servers {
        let (code, _) = tokio::task::spawn_blocking(move || server.process.terminate()).await.expect("join");
        assert_eq!(code, Some(0));
    }
    Figures::new("two processes on one SQLite file", &report, &audit, &["two servers, one instance path"], None)
        .publish();
}
