//! PostgreSQL alone: `/healthz` and `/readyz` telling when the server goes away, and the original's layout of a
//! role whose `search_path` is its own schema. In a module named after the engine, like `on_every_engine!`'s, so
//! `./scripts/test` leaves it out by module path where no PostgreSQL answers.

use rust_api_axum::{config::Config, db};
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

#[tokio::test]
async fn healthz_and_resources_answer_503_when_the_server_goes_away() {
    let database = TestDatabase::create(Engine::Postgres).await;
    let admin = url::Url::parse(database.url.as_deref().expect("url")).expect("url");
    let target = format!("{}:{}", admin.host_str().expect("host"), admin.port().unwrap_or(5432));
    let target = tokio::net::lookup_host(target).await.expect("resolves").next().expect("address");
    let (proxy, forwarder) = cuttable_proxy(target).await;
    let mut through_proxy = admin.clone();
    through_proxy.set_port(Some(proxy.port())).expect("port");
    let app = crate::helpers::spawn_app_with(|config| {
        config.db_url = Some(through_proxy.to_string().into());
        config.db_schema.clone_from(&database.schema);
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
    let config = Config { db_url: Some(as_role.to_string().into()), ..Config::default() };
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
    assert_eq!(names, ["owners", "resources", "seaql_migrations"]);
    db.close().await.expect("closes");
    for sql in [format!("DROP SCHEMA {role} CASCADE"), format!("DROP ROLE {role}")] {
        admin_db.execute_unprepared(&sql).await.expect("clean-up");
    }
}
