//! Database outage under load, on PostgreSQL and MariaDB: the server's connections to its database go through a
//! fault proxy that is cut mid-run and restored. While the database is gone, requests that need it answer 503
//! problem+json within the pool's acquire timeout and `/healthz/` and `/readyz` say so; afterwards the same server
//! (no restart) serves again within seconds, and every acknowledged write is stored exactly once.
//!
//! SQLite is not applicable: it is a file opened by the server process itself, with no connection that can fail
//! while the process lives (its failure modes, a full or read-only disk, are another scenario).

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use loadgen::{Ack, Plan, Report};
use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use serde_json::json;
use tokio::sync::watch;

use super::proxy::FaultProxy;
use crate::{
    database::{Engine, TestDatabase},
    helpers::TestApp,
    idp::spawn_app_with_idp,
};

/// The pool's acquire timeout (`db::connect`): the longest a request may wait for a connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// What a request may take beyond the acquire timeout on a busy machine before it counts as hanging.
const SLACK: Duration = Duration::from_secs(3);
/// Longest the service may take to serve again once the database is back.
const RECOVERY_BOUND: Duration = Duration::from_secs(10);
/// Load clients; enough to keep every pooled connection busy.
const CLIENTS: usize = 8;
/// The subject of the client-credentials JWT (`rust-api-axum-test`): owner of every write of the load.
const LOAD_SUBJECT: &str = test_support::idp::JWT_CLIENT.0;

/// How the database goes away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Every connection reset, new ones reset at once: a crashed server or a dropped route.
    Cut,
    /// Nothing answers any more, connections stay open: a partition that drops packets.
    Blackhole,
}

// Each engine's tests sit in a module named after it, so `./scripts/test` can leave them out by module path.
mod postgres {
    use super::{Engine, Fault, database_outage};

    #[tokio::test]
    async fn outage_under_load_answers_503_and_recovers_without_loss() {
        database_outage(Engine::Postgres, "PostgreSQL", Fault::Cut).await;
    }

    /// A silent database: queries on pooled connections get no answer at all, so the store's own bound (the same
    /// 5 s as the pool's acquire timeout) is what answers, long before the 30 s request timeout.
    #[tokio::test]
    async fn blackhole_under_load_answers_503_within_the_acquire_timeout_and_recovers() {
        database_outage(Engine::Postgres, "PostgreSQL", Fault::Blackhole).await;
    }
}

mod mysql {
    use super::{Engine, Fault, database_outage};

    #[tokio::test]
    async fn outage_under_load_answers_503_and_recovers_without_loss() {
        database_outage(Engine::MySql, "MariaDB", Fault::Cut).await;
    }
}

async fn database_outage(engine: Engine, label: &str, fault: Fault) {
    let database = TestDatabase::create(engine).await;
    let direct = database.url.clone().expect("a server database has a URL");
    let upstream = upstream_of(&direct).await;
    let proxy = FaultProxy::start(upstream).await;
    let proxied = through_port(&direct, proxy.port());
    let (idp, app, _dir) = spawn_app_with_idp(|config| {
        database.configure(config);
        config.database.db_url = Some(proxied.into());
    })
    .await;
    let token = idp.jwt().await;
    let prefix = unique_prefix(&format!("{label}-{fault:?}"));
    let bound = ACQUIRE_TIMEOUT + SLACK;
    let plan = |phase: &str| Plan {
        base: format!("http://{}", app.address),
        tokens: vec![token.clone()],
        clients: CLIENTS,
        request_timeout: ACQUIRE_TIMEOUT * 2,
        name_prefix: format!("{prefix}-{phase}"),
        keyed: false,
    };
    let phase = loadgen::phase();

    // Phase 1: healthy. Every answer is a success, so the statuses later are the fault's doing.
    let before = loadgen::run_for(&plan("before"), phase).await;
    assert!(before.sent > 0 && before.count(200..=299) == before.sent, "{label}: before the outage: {before:?}");
    // Otherwise the fault below would miss the server's connections and prove nothing.
    assert!(proxy.accepted() > 0, "{label}: the server reaches its database through the proxy");

    // Phase 2: the database is gone. The load runs on while single requests are timed: each must fail fast and
    // cleanly, as must the health endpoints.
    let (stop, stopped) = watch::channel(false);
    let down_plan = plan("down");
    match fault {
        Fault::Cut => proxy.cut(),
        Fault::Blackhole => proxy.blackhole(),
    }
    let down_load = tokio::spawn(async move { loadgen::run(&down_plan, stopped).await });
    let probes = async {
        let (healthz, readyz, list, write) = tokio::join!(
            timed(&app, reqwest::Method::GET, "/healthz/", None, None),
            timed(&app, reqwest::Method::GET, "/readyz", None, None),
            timed(&app, reqwest::Method::GET, "/api/resource/v1?limit=5", Some(&token), None),
            timed(&app, reqwest::Method::POST, "/api/resource/v1", Some(&token), Some(format!("{prefix}-probe"))),
        );
        [("/healthz/", healthz), ("/readyz", readyz), ("list", list), ("create", write)]
    };
    let (probes, ()) = tokio::join!(probes, tokio::time::sleep(phase));
    for (what, (status, problem_json, took)) in &probes {
        assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE, "{label}: {what} while the database is down");
        assert!(problem_json, "{label}: {what} while the database is down answers problem+json");
        assert!(*took < bound, "{label}: {what} took {took:?} while the database is down");
    }

    // Phase 3: the database is back; the same server must serve again by itself.
    proxy.restore();
    let restored = Instant::now();
    let accepted_while_down = proxy.accepted();
    stop.send_replace(true);
    let after_plan = plan("after");
    let (stop, stopped) = watch::channel(false);
    let after_load = tokio::spawn(async move { loadgen::run(&after_plan, stopped).await });
    let (first_write, ready) =
        tokio::join!(first_acknowledged_write(&app, &token, &prefix, restored), first_ready(&app, restored));
    let (first_write, recovery) = first_write;
    // Recovery came from new connections (the pool replaced the broken ones), not from a connection that
    // survived the fault.
    assert!(proxy.accepted() > accepted_while_down, "{label}: the pool connected again after the outage");
    tokio::time::sleep(phase.saturating_sub(restored.elapsed())).await;
    stop.send_replace(true);
    let down = down_load.await.expect("the load during the outage ran");
    let after = after_load.await.expect("the load after the outage ran");

    assert!(down.count(503..=503) > 0, "{label}: the load saw the outage: {down:?}");
    assert!(after.count(200..=299) > 0, "{label}: the load succeeds again after the outage: {after:?}");
    for (phase, report) in [("down", &down), ("after", &after)] {
        let unexpected: Vec<_> = report.statuses.keys().filter(|s| !(200..300).contains(*s) && **s != 503).collect();
        assert!(unexpected.is_empty(), "{label}: {phase}: answers other than success or 503: {report:?}");
    }
    let mut report = Report::sum([before, down, after]);
    report.acknowledged.push(first_write);
    assert_eq!(report.hung, 0, "{label}: no request hangs: {report:?}");
    assert_eq!(report.transport_errors, 0, "{label}: the server itself stayed up: {report:?}");
    assert_eq!(report.not_problem_json, 0, "{label}: every error is problem+json");

    let rows = stored_rows(&database, &direct, &prefix).await;
    for (id, name, subject) in &rows {
        // A write that failed is either absent or whole: one row, with its owner, never a fragment.
        assert_eq!(subject.as_deref(), Some(LOAD_SUBJECT), "{label}: row {id} {name:?} is whole and owned");
    }
    let pairs: Vec<(i64, String)> = rows.into_iter().map(|(id, name, _)| (id, name)).collect();
    let audit = loadgen::audit(&report, &pairs);
    assert!(audit.is_clean(), "{label}: acknowledged writes stored exactly once: {audit:?}");
    assert!(audit.checked > 0, "{label}: some writes were acknowledged");
    println!("{label}: first acknowledged write {recovery:?} and /readyz 200 {ready:?} after the database returned");
    let (scenario, fault) = match fault {
        Fault::Cut => (
            format!("database outage ({label})"),
            format!("database connections cut (reset) for {:.1} s under load", phase_down(&probes, phase)),
        ),
        Fault::Blackhole => (
            format!("database blackhole ({label})"),
            format!("database connections silent (blackhole) for {:.1} s under load", phase_down(&probes, phase)),
        ),
    };
    loadgen::Figures::new(&scenario, &report, &audit, &[&fault], Some(recovery)).publish();
}

/// How long the database was down: the phase, or longer when a probe took longer.
fn phase_down(probes: &[(&str, (StatusCode, bool, Duration))], phase: Duration) -> f64 {
    probes.iter().map(|(_, (_, _, took))| *took).max().unwrap_or_default().max(phase).as_secs_f64()
}

/// One request and how it was answered: status, whether the body is problem+json, and how long it took.
async fn timed(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    create: Option<String>,
) -> (StatusCode, bool, Duration) {
    let started = Instant::now();
    let mut request = app.client.request(method, app.url(path)).timeout(ACQUIRE_TIMEOUT * 2);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(name) = create {
        request = request.json(&json!({ "name": name }));
    }
    let response = request.send().await.unwrap_or_else(|e| panic!("{path} answers (does not hang): {e}"));
    let problem_json = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(api_types::PROBLEM_JSON.as_bytes()));
    (response.status(), problem_json, started.elapsed())
}

/// Creates resources until one is acknowledged; returns it and the time since `since`.
async fn first_acknowledged_write(app: &TestApp, token: &str, prefix: &str, since: Instant) -> (Ack, Duration) {
    for n in 0.. {
        assert!(
            since.elapsed() < RECOVERY_BOUND,
            "no write acknowledged {RECOVERY_BOUND:?} after the database returned"
        );
        let name = format!("{prefix}-recovery-{n}");
        let response = app
            .client
            .post(app.url("/api/resource/v1"))
            .bearer_auth(token)
            .json(&json!({ "name": name }))
            .timeout(ACQUIRE_TIMEOUT * 2)
            .send()
            .await
            .expect("the server answers");
        if response.status() == StatusCode::CREATED {
            let view: api_types::ResourceView = response.json().await.expect("the created resource");
            return (Ack { id: view.id, name }, since.elapsed());
        }
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "only 503 until the database serves");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    unreachable!("the loop returns or fails")
}

/// Polls `/readyz` until it answers 200; returns the time since `since`.
async fn first_ready(app: &TestApp, since: Instant) -> Duration {
    loop {
        assert!(since.elapsed() < RECOVERY_BOUND, "/readyz not 200 {RECOVERY_BOUND:?} after the database returned");
        if app.get("/readyz").await.status() == StatusCode::OK {
            return since.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A name prefix no other run uses (hyphens only: `_` is a wildcard in the `LIKE` that finds the rows).
fn unique_prefix(label: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos();
    format!("outage-{}-{}-{nanos}", label.to_ascii_lowercase(), std::process::id())
}

/// The database server's address in `url`.
async fn upstream_of(url: &str) -> SocketAddr {
    let parsed = url::Url::parse(url).expect("the database URL parses");
    let host = parsed.host_str().expect("the database URL names a host");
    let port = parsed.port().unwrap_or(if parsed.scheme().starts_with("postgres") { 5432 } else { 3306 });
    tokio::net::lookup_host((host, port)).await.expect("the database host resolves").next().expect("an address")
}

/// `url` pointed at the proxy on `port`.
fn through_port(url: &str, port: u16) -> String {
    let mut parsed = url::Url::parse(url).expect("the database URL parses");
    parsed.set_host(Some("127.0.0.1")).expect("a host can be set");
    parsed.set_port(Some(port)).expect("a port can be set");
    parsed.to_string()
}

/// `(id, name, owner subject)` of every stored resource of this run, read directly (not through the proxy).
async fn stored_rows(database: &TestDatabase, url: &str, prefix: &str) -> Vec<(i64, String, Option<String>)> {
    let db = Database::connect(url).await.expect("the test reads the database directly");
    let backend = db.get_database_backend();
    let qualify = |table: &str| match (&database.schema, backend) {
        (Some(schema), DbBackend::Postgres) => format!("{schema}.{table}"),
        _ => table.to_owned(),
    };
    let sql = format!(
        "SELECT r.id, r.name, o.subject FROM {} r LEFT JOIN {} o ON o.id = r.owner_id WHERE r.name LIKE '{prefix}%'",
        qualify("resources"),
        qualify("owners")
    );
    let rows = db.query_all_raw(Statement::from_string(backend, sql)).await.expect("the rows of this run");
    let rows: Vec<_> = rows
        .iter()
        .map(|row| {
            let id: i64 = row.try_get_by_index(0).expect("id");
            let name: String = row.try_get_by_index(1).expect("name");
            let subject: Option<String> = row.try_get_by_index(2).expect("subject");
            (id, name, subject)
        })
        .collect();
    let _ = db.close().await;
    rows
}
