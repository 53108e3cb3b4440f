//! The one migration history on every engine: up, down and up again, revision-1 rows surviving the upgrade,
//! production mode refusing a schema that is behind. Counted from the Migrator, so the migrations that
//! `cargo xtask new-entity` appends take part (their `down` included) without an edit here.

use migration::{Migrator, MigratorTrait};
use rust_api_axum::{
    config::{Config, ReadEngine},
    db::{self, DbError, commands, handle::DbHandle, resources::SeaOrmResourceStore},
    domain::{
        name::Name,
        principal::{DisplayName, Principal},
        resources::{self, ResourceStore},
    },
};
use sea_orm::ConnectionTrait;
use tempfile::TempDir;

use crate::database::{Engine, TestDatabase, on_every_engine};

async fn status(db: &sea_orm::DatabaseConnection) -> String {
    let mut out = Vec::new();
    commands::run(db, rust_api_axum::cli::DbCommand::Status, &mut out).await.expect("status");
    String::from_utf8(out).expect("utf-8")
}

async fn migrations_go_up_down_and_up_again_keeping_data(engine: Engine) {
    let dir = TempDir::new().expect("temp dir");
    let database = TestDatabase::create(engine).await;
    let mut config = Config::default();
    config.database.instance_path = dir.path().to_owned();
    database.configure(&mut config);
    let db = db::connect(&config.database).await.expect("connects");

    let all = Migrator::migrations().len();
    let refused = db::prepare_schema(&db, false).await.expect_err("production mode refuses a blank schema");
    assert!(matches!(refused, DbError::SchemaBehind { pending, .. } if pending == all), "{refused}");
    assert!(refused.to_string().contains("rust-api-axum db upgrade"), "{refused}");
    assert!(status(&db).await.ends_with(&format!("0 applied, {all} pending\n")));

    // Revision 1 holds rows without owners; revision 2 must keep them.
    Migrator::up(&db, Some(1)).await.expect("revision 1");
    db.execute_unprepared("INSERT INTO resources (name) VALUES ('kept one'), ('kept two')").await.expect("rows");
    Migrator::up(&db, Some(1)).await.expect("revision 2");
    // Revision 3 gives the kept rows their first version.
    Migrator::up(&db, Some(1)).await.expect("revision 3");
    assert!(status(&db).await.ends_with(&format!("3 applied, {} pending\n", all - 3)));
    config.database.db_reads = ReadEngine::Pool;
    let store = SeaOrmResourceStore::new(DbHandle::new(db.clone(), &config.database));
    let page = resources::list(&store, None, 10).await.expect("list");
    let kept: Vec<(i64, &str, &str, i64)> = page
        .resources
        .iter()
        .map(|r| (r.id.get(), r.name.as_str(), r.owner.subject.as_str(), r.version.get()))
        .collect();
    assert_eq!(
        kept,
        [(1, "kept one", "urn:rust-api-axum:unowned", 1), (2, "kept two", "urn:rust-api-axum:unowned", 1)]
    );
    let caller = Principal {
        subject: "alice".into(),
        client_id: None,
        username: DisplayName::from_claim("Alice").expect("visible"),
        scopes: Default::default(),
    };
    let fresh = store.create(&caller, &Name::parse("fresh").expect("name")).await.expect("ids continue after copy");
    assert_eq!(fresh.id.get(), 3);

    Migrator::down(&db, Some(1)).await.expect("back to revision 2, without versions");
    Migrator::down(&db, Some(1)).await.expect("back to revision 1");
    let rows = db.query_all_raw(sea_orm::Statement::from_string(
        db.get_database_backend(),
        "SELECT id, name FROM resources ORDER BY id",
    ));
    assert_eq!(rows.await.expect("select").len(), 3, "names and ids survive the downgrade");
    Migrator::down(&db, None).await.expect("all the way down");
    assert!(status(&db).await.ends_with(&format!("0 applied, {all} pending\n")));
    Migrator::up(&db, None).await.expect("and up again");
    db::prepare_schema(&db, false).await.expect("production mode accepts the current schema");
    // Every later revision's `down` too, from the top.
    Migrator::down(&db, None).await.expect("all the way down from the latest revision");
    assert!(status(&db).await.ends_with(&format!("0 applied, {all} pending\n")));
    Migrator::up(&db, None).await.expect("and up once more");
}

on_every_engine!(migrations_go_up_down_and_up_again_keeping_data);
