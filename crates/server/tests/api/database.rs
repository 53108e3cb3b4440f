//! A fresh database per test on each engine: a temporary SQLite file, a PostgreSQL schema in the server named by
//! `TEST_POSTGRES_URL`, or a MySQL/MariaDB database in the server named by `TEST_MYSQL_URL`. Dropped afterwards,
//! so tests run in parallel and leave nothing behind.
//!
//! A test that needs a PostgreSQL or MariaDB server sits in a module named after its engine (`postgres`, `mysql`),
//! as `on_every_engine!` writes them: `./scripts/test` leaves an engine's tests out by that module path when its
//! server does not answer (and fails instead under `CI=true`). [`TestDatabase::create`] refuses a test outside
//! such a module, so a new test cannot slip past the rule.

use std::{
    hash::{BuildHasher, RandomState},
    sync::atomic::{AtomicU64, Ordering},
};

use rust_api_axum::config::{Config, DbSchema};
use sea_orm::{ConnectionTrait, Database};

/// The database engines the resource suite runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
    MySql,
}

/// A database (or schema) that exists for one test.
pub struct TestDatabase {
    /// `db_url` for the server (`None`: the default SQLite file in the instance path).
    pub url: Option<String>,
    /// `db_schema` for the server (PostgreSQL only).
    pub schema: Option<DbSchema>,
    cleanup: Option<(String, String)>,
}

fn admin_url(variable: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| {
        panic!("{variable} is not set: ./scripts/test sets it when the server answers, or filters these tests out")
    })
}

fn unique_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let salt = RandomState::new().hash_one(std::process::id()) & 0xffff_ffff;
    format!("t_{salt:08x}_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// The module a test of `engine` must sit in.
fn module_of(engine: Engine) -> &'static str {
    match engine {
        Engine::Sqlite => "sqlite",
        Engine::Postgres => "postgres",
        Engine::MySql => "mysql",
    }
}

/// Panics unless the running test's path has a module named after `engine`. libtest (and so nextest) runs each
/// test on a thread named after its path; on any other thread there is nothing to check.
fn assert_in_engine_module(engine: Engine) {
    let thread = std::thread::current();
    let Some(test) = thread.name().filter(|name| name.contains("::")) else { return };
    let module = module_of(engine);
    let in_module = test.rsplit_once("::").is_some_and(|(path, _)| path.split("::").any(|segment| segment == module));
    assert!(
        in_module,
        "{test} needs a {engine:?} server but is not in a `{module}` module: ./scripts/test skips engine suites by \
         module path, so put it in `mod {module}` (on_every_engine! does)"
    );
}

impl TestDatabase {
    pub async fn create(engine: Engine) -> Self {
        if engine != Engine::Sqlite {
            assert_in_engine_module(engine);
        }
        match engine {
            Engine::Sqlite => Self { url: None, schema: None, cleanup: None },
            Engine::Postgres => {
                let admin = admin_url("TEST_POSTGRES_URL");
                let schema = unique_name();
                execute(&admin, &format!("CREATE SCHEMA {schema}")).await;
                Self {
                    url: Some(admin.clone()),
                    schema: Some(schema.parse().expect("a plain identifier")),
                    cleanup: Some((admin, format!("DROP SCHEMA {schema} CASCADE"))),
                }
            }
            Engine::MySql => {
                let admin = admin_url("TEST_MYSQL_URL");
                let database = unique_name();
                execute(&admin, &format!("CREATE DATABASE {database} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")).await;
                Self {
                    url: Some(format!("{}/{database}", admin.trim_end_matches('/'))),
                    schema: None,
                    cleanup: Some((admin, format!("DROP DATABASE {database}"))),
                }
            }
        }
    }

    /// Points `config` at this database.
    pub fn configure(&self, config: &mut Config) {
        config.database.db_url = self.url.clone().map(Into::into);
        config.database.db_schema.clone_from(&self.schema);
    }
}

async fn execute(url: &str, sql: &str) {
    let db = Database::connect(url).await.unwrap_or_else(|e| {
        panic!(
            "cannot log in to the test database server at {} ({e}): point TEST_POSTGRES_URL / TEST_MYSQL_URL at a \
             server and a login that may create schemas and databases, or run ./scripts/test, which skips an engine \
             it cannot log in to",
            rust_api_axum::db::redact(url)
        )
    });
    db.execute_unprepared(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    let _ = db.close().await;
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((admin, sql)) = self.cleanup.take() else { return };
        // Drop runs inside the test's runtime, which cannot be blocked on: clean up from a thread of its own.
        let cleaned = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(execute(&admin, &sql));
        })
        .join();
        if cleaned.is_err() {
            eprintln!("warning: a test database was not dropped");
        }
    }
}

/// Defines `mod sqlite`, `mod postgres` and `mod mysql`, each with one test per listed `async fn(Engine)`.
macro_rules! on_every_engine {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $test() { super::$test($crate::database::Engine::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test] async fn $test() { super::$test($crate::database::Engine::Postgres).await })*
        }
        mod mysql {
            $(#[tokio::test] async fn $test() { super::$test($crate::database::Engine::MySql).await })*
        }
    };
}
pub(crate) use on_every_engine;

#[test]
fn a_test_of_an_engine_outside_a_module_named_after_it_is_refused() {
    // This test's own thread is `database::a_test_of_...`: no `postgres` or `mysql` module on its path.
    for engine in [Engine::Postgres, Engine::MySql] {
        assert!(std::panic::catch_unwind(|| assert_in_engine_module(engine)).is_err(), "{engine:?}");
    }
}
