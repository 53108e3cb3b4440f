//! PostgreSQL alone: `/healthz` and `/readyz` telling when the server goes away, and the original's layout of a
//! role whose `search_path` is its own schema. In a module named after the engine, like `on_every_engine!`'s, so
//! `./scripts/test` leaves it out by module path where no PostgreSQL answers.

use std::time::Duration;

use rust_api_axum::{config::DatabaseSettings, db};
use sea_orm::ConnectionTrait;

use crate::database::{Engine, TestDatabase};

/// A TCP forwarder the test can cut, standing in for a database that goes away.
async fn cuttable_proxy(target: std::net::SocketAddr) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let forwarder = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((mut inbound, _)) = listener.accept().await {
            connections.spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (address, forwarder)
}

/// A connection to the test database with `config`'s settings, and a reader over it.
async fn reader(database: &TestDatabase, adjust_url: impl FnOnce(&mut url::Url)) -> db::reads::Reader {
    let mut url = url::Url::parse(database.url.as_deref().expect("url")).expect("url");
    adjust_url(&mut url);
    let mut config = DatabaseSettings { db_url: Some(url.to_string().into()), ..DatabaseSettings::default() };
    config.db_schema.clone_from(&database.schema);
    let pool = db::connect(&config).await.expect("connects");
    db::prepare_schema(&pool, true).await.expect("migrates");
    db::reads::Reader::new(&pool, &config)
}

fn first(row: &dyn db::reads::Columns) -> Result<String, db::reads::ReadError> {
    row.text(0)
}

#[tokio::test]
async fn reads_are_pipelined_encrypted_as_the_pool_would_be_and_in_the_configured_schema() {
    let database = TestDatabase::create(Engine::Postgres).await;
    let pipelined = reader(&database, |_| {}).await;
    assert_eq!(pipelined.describe(), "pipelined over 4 connections (PostgreSQL)");
    let read = |sql: &'static str| pipelined.rows(sql, &[], first);
    assert_eq!(
        read("SELECT current_schema()::text").await.expect("read"),
        [database.schema.as_deref().expect("schema")]
    );
    // sqlx's default `prefer`: encrypted whenever the server offers TLS (Debian's does, with its snake-oil
    // certificate, which `prefer` accepts as libpq does).
    let offered = read("SHOW ssl").await.expect("read");
    let encrypted = read("SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()").await.expect("read");
    assert_eq!(encrypted, [if offered == ["on"] { "true" } else { "false" }], "TLS offered: {offered:?}");
    let plain = reader(&database, |url| {
        url.query_pairs_mut().append_pair("sslmode", "disable");
    })
    .await;
    let encrypted = plain.rows("SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[], first).await;
    assert_eq!(encrypted.expect("read"), ["false"], "sslmode=disable is plain");
}

#[tokio::test]
async fn reads_reconnect_after_the_server_ends_their_connections() {
    let database = TestDatabase::create(Engine::Postgres).await;
    let pipelined = reader(&database, |_| {}).await;
    let read = || pipelined.rows("SELECT 'ok'", &[], first);
    let mut backends = std::collections::BTreeSet::new();
    for _ in 0..8 {
        backends.extend(pipelined.rows("SELECT pg_backend_pid()::text", &[], first).await.expect("read"));
    }
    assert_eq!(backends.len(), 4, "reads take turns over four connections: {backends:?}");
    let admin = sea_orm::Database::connect(database.url.as_deref().expect("url")).await.expect("admin");
    let pids = backends.into_iter().collect::<Vec<_>>().join(",");
    let sql = format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid IN ({pids}) AND application_name = '{}'",
        db::reads::APPLICATION_NAME
    );
    let ended = admin.query_all_raw(sea_orm::Statement::from_string(sea_orm::DbBackend::Postgres, sql)).await;
    assert_eq!(ended.expect("terminated").len(), 4, "the four read connections, named as operators see them");
    // A read on a connection whose end it has not noticed yet fails (a 503 for its request); each connection is
    // replaced on its next use, so after at most one failure per connection every read succeeds again.
    let mut failures = 0;
    for _ in 0..12 {
        if read().await.is_err() {
            failures += 1;
        }
    }
    assert!(failures <= 4, "{failures} failed reads");
    for _ in 0..8 {
        assert_eq!(read().await.expect("read after reconnecting"), ["ok"]);
    }
}

/// The test database's URL and the address of its server, for a proxy to forward to.
async fn server_address(database: &TestDatabase) -> (url::Url, std::net::SocketAddr) {
    let admin = url::Url::parse(database.url.as_deref().expect("url")).expect("url");
    let target = format!("{}:{}", admin.host_str().expect("host"), admin.port().unwrap_or(5432));
    let target = tokio::net::lookup_host(target).await.expect("resolves").next().expect("address");
    (admin, target)
}

/// A forwarder whose connections can be frozen: silent for good, neither answered nor closed, as behind a dropped
/// network path; connections opened later pass.
async fn freezable_proxy(target: std::net::SocketAddr) -> (std::net::SocketAddr, tokio::sync::watch::Sender<bool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let (freeze, frozen) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let mut frozen = frozen.clone();
            frozen.mark_unchanged();
            tokio::spawn(async move {
                let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else { return };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    _ = frozen.changed() => std::future::pending::<()>().await,
                }
            });
        }
    });
    (address, freeze)
}

#[tokio::test]
async fn a_read_connection_that_stops_answering_is_replaced() {
    let database = TestDatabase::create(Engine::Postgres).await;
    let (_, target) = server_address(&database).await;
    let (proxy, freeze) = freezable_proxy(target).await;
    let pipelined = reader(&database, |url| url.set_port(Some(proxy.port())).expect("port")).await;
    let read = || pipelined.rows("SELECT 'ok'", &[], first);
    for _ in 0..8 {
        assert_eq!(read().await.expect("read"), ["ok"], "all four connections open and answering");
    }
    freeze.send_replace(true);
    // One read per connection, abandoned after 1.5 s without an answer (the store abandons them after 5 s).
    let abandon = || tokio::time::timeout(Duration::from_millis(1500), read());
    let abandoned = tokio::join!(abandon(), abandon(), abandon(), abandon());
    let abandoned = [abandoned.0.is_err(), abandoned.1.is_err(), abandoned.2.is_err(), abandoned.3.is_err()];
    assert_eq!(abandoned, [true; 4], "the frozen connections answered nothing");
    // Each connection was marked stuck when its read was abandoned, so these reads go to new connections instead
    // of queueing behind the silent ones.
    for _ in 0..8 {
        let answer = tokio::time::timeout(Duration::from_secs(5), read()).await;
        assert_eq!(answer.expect("answered, not queued behind a silent connection").expect("read"), ["ok"]);
    }
}

#[tokio::test]
async fn healthz_and_resources_answer_503_when_the_server_goes_away() {
    let database = TestDatabase::create(Engine::Postgres).await;
    let (admin, target) = server_address(&database).await;
    let (proxy, forwarder) = cuttable_proxy(target).await;
    let mut through_proxy = admin.clone();
    through_proxy.set_port(Some(proxy.port())).expect("port");
    let app = crate::helpers::spawn_app_with(|config| {
        config.database.db_url = Some(through_proxy.to_string().into());
        config.database.db_schema.clone_from(&database.schema);
    })
    .await;
    assert_eq!(app.get("/healthz").await.status(), 200);

    forwarder.abort();
    let _ = forwarder.await;
    // The health answer is reused for a second; the outage must show within a few.
    let mut response = app.get("/healthz").await;
    for _ in 0..50 {
        if response.status() == 503 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        response = app.get("/healthz").await;
    }
    assert_eq!(response.status(), 503);
    let problem = crate::helpers::problem(response).await;
    assert_eq!(problem.detail, "The database is unavailable; try again later");
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 503, "not ready while the database is away");
    assert_eq!(crate::helpers::problem(ready).await.detail, "Not ready: database");
    assert_eq!(app.get("/livez").await.status(), 200, "alive all the same: a restart would not bring it back");
}

/// The original's PostgreSQL layout: a role whose `search_path` is its own schema, no `db_schema` needed.
#[tokio::test]
async fn a_role_with_its_own_schema_works_without_db_schema() {
    let database = TestDatabase::create(Engine::Postgres).await;
    let admin = database.url.clone().expect("url");
    let role = format!("{}_role", database.schema.as_deref().expect("schema"));
    let admin_db = sea_orm::Database::connect(&admin).await.expect("admin");
    for sql in [
        format!("CREATE ROLE {role} LOGIN"),
        format!("CREATE SCHEMA {role} AUTHORIZATION {role}"),
        format!("ALTER ROLE {role} SET search_path TO {role}"),
    ] {
        admin_db.execute_unprepared(&sql).await.expect("set-up");
    }
    let mut as_role = url::Url::parse(&admin).expect("url");
    as_role.set_username(&role).expect("user");
    let config = DatabaseSettings { db_url: Some(as_role.to_string().into()), ..DatabaseSettings::default() };
    let db = db::connect(&config).await.expect("connects as the role");
    db::prepare_schema(&db, true).await.expect("migrates into the role's schema");
    let tables = admin_db
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!("SELECT table_name FROM information_schema.tables WHERE table_schema = '{role}' ORDER BY 1"),
        ))
        .await
        .expect("tables");
    let names: Vec<String> = tables.iter().map(|row| row.try_get("", "table_name").expect("name")).collect();
    // The migrations' tables (an entity `cargo xtask new-entity` added among them) are in the role's schema.
    for table in ["owners", "resources", "seaql_migrations"] {
        assert!(names.iter().any(|name| name == table), "{table} is missing: {names:?}");
    }
    db.close().await.expect("closes");
    for sql in [format!("DROP SCHEMA {role} CASCADE"), format!("DROP ROLE {role}")] {
        admin_db.execute_unprepared(&sql).await.expect("clean-up");
    }
}

/// A database's own words reach the log (the connection error); in the text format a newline in them must not
/// start a line of its own that a reader would take for the server's.
#[test]
fn a_database_error_cannot_forge_a_log_line() {
    let admin = std::env::var("TEST_POSTGRES_URL").expect("TEST_POSTGRES_URL (./scripts/test sets it)");
    let mut url = url::Url::parse(&admin).expect("url");
    url.set_path("/nope%0A[2026-01-01 00:00:00,000] INFO: forged");
    let dir = tempfile::TempDir::new().expect("temp dir");
    let output = crate::helpers::binary()
        .current_dir(dir.path())
        .args(["--port", "0", "--db", url.as_str()])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("forged"), "the database named the database it does not have: {stderr}");
    assert!(!stderr.lines().any(|line| line.starts_with("[2026-01-01")), "a forged line: {stderr}");
    assert!(stderr.lines().all(|line| line.starts_with('[')), "every line is the server's: {stderr}");
}
