//! Hot reads: a `SELECT` that sea-query built from the entities, run by the fastest driver for the engine and
//! decoded by position. Writes, migrations and every other query stay on SeaORM's pool (`db/mod.rs`).
//!
//! Why a second way to read: through sqlx's pool a SQLite point read cost ~4 thread hand-offs (each sqlx SQLite
//! connection runs on its own thread) and a PostgreSQL read a pool checkout and a round trip per connection; the
//! figures are in `bench/results/latest.md` ("Against the database driver's ceiling"). Here, SQLite runs the
//! statement on the calling thread (rusqlite, `prepare_cached`), PostgreSQL pipelines every concurrent read over a
//! few connections (tokio-postgres, statements prepared once per connection). What is read is never cached: every
//! call asks the database, so replicas over one database never serve a stale row.

mod postgres;
mod sqlite;

use std::sync::Arc;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, QueryResult, Statement};
use secrecy::ExposeSecret;

use crate::config::{DatabaseSettings, ReadEngine};

pub use self::{
    postgres::{APPLICATION_NAME, PostgresReader},
    sqlite::SqliteReader,
};

/// Runs read-only statements on the database the pool is connected to; cheap to clone (one `Arc`).
#[derive(Debug, Clone)]
pub struct Reader(Arc<Engine>);

/// Which executor runs the reads.
#[derive(Debug)]
#[expect(clippy::large_enum_variant, reason = "one per database, behind the reader's Arc")]
enum Engine {
    /// SeaORM's pool: MySQL/MariaDB, in-memory SQLite (each connection would be its own database), and PostgreSQL
    /// URLs the pipelined reader cannot parse (e.g. `sslmode=verify-full`).
    Pool(DatabaseConnection),
    /// SQLite on the calling thread.
    Sqlite(SqliteReader),
    /// PostgreSQL, pipelined.
    Postgres(PostgresReader),
}

/// A bound value of a read. Only what the reads use; add a variant (and its two driver conversions) for a new type.
#[derive(Debug, Clone, Copy)]
pub enum ReadParam<'a> {
    /// A 64-bit integer (ids, limits).
    Int(i64),
    /// Text.
    Text(&'a str),
}

/// A row's columns by position, whatever driver read it. Reading by position skips formatting and comparing the
/// column aliases of a join on every row.
pub trait Columns {
    /// A 64-bit integer column.
    fn int(&self, index: usize) -> Result<i64, ReadError>;
    /// A text column.
    fn text(&self, index: usize) -> Result<String, ReadError>;
    /// A nullable text column.
    fn optional_text(&self, index: usize) -> Result<Option<String>, ReadError>;
}

/// Why a read failed; the text is for the log, never for the response.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// SeaORM's pool (also decoding its rows).
    #[error(transparent)]
    Pool(#[from] sea_orm::DbErr),
    /// rusqlite.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// tokio-postgres.
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
}

impl Reader {
    /// The reader `config` asks for (`db_reads`): the fastest for the database `db` is connected to, or the pool.
    pub fn new(db: &DatabaseConnection, config: &DatabaseSettings) -> Self {
        let pool = || Engine::Pool(db.clone());
        let engine = match db.get_database_backend() {
            _ if config.db_reads == ReadEngine::Pool => pool(),
            DbBackend::Sqlite if super::database_url(config).is_ok_and(|url| !super::is_in_memory(&url)) => {
                Engine::Sqlite(SqliteReader::for_pool(db))
            }
            DbBackend::Postgres => {
                // tokio-postgres parses the URL again; whatever it says of it is cleaned of secrets.
                let reader =
                    |url: &str| PostgresReader::new(url, config).map_err(|reason| super::without_secrets(&reason, url));
                match config.db_url.as_ref().map(|url| reader(url.expose_secret())) {
                    Some(Ok(reader)) => Engine::Postgres(reader),
                    Some(Err(reason)) => {
                        tracing::info!("PostgreSQL reads go through the connection pool: {reason}");
                        pool()
                    }
                    None => pool(),
                }
            }
            _ => pool(),
        };
        let reader = Self(Arc::new(engine));
        tracing::info!("Database reads run {}", reader.describe());
        reader
    }

    /// How the reads run, for the start-up log.
    pub fn describe(&self) -> &'static str {
        match &*self.0 {
            Engine::Pool(_) => "on the connection pool",
            Engine::Sqlite(_) => "on the calling thread (SQLite)",
            Engine::Postgres(_) => "pipelined over 4 connections (PostgreSQL)",
        }
    }

    /// Runs `sql` with `params` and decodes every row with `decode`.
    pub async fn rows<T>(
        &self,
        sql: &str,
        params: &[ReadParam<'_>],
        decode: fn(&dyn Columns) -> Result<T, ReadError>,
    ) -> Result<Vec<T>, ReadError> {
        // The pool's future (sqlx's) is boxed: inline, its size would be this future's on every engine, copied
        // as the request's future is built (27% of a SQLite read's instructions were `memcpy`, `bench/profile`).
        match &*self.0 {
            Engine::Sqlite(reader) => match reader.rows(sql, params, decode) {
                // A read that would have to wait for a lock (rare in WAL mode: a recovering or checkpointing
                // connection) must not wait on this thread: the pool's connection waits on its own thread instead.
                Err(ReadError::Sqlite(error)) if sqlite::is_busy(&error) => {
                    Box::pin(on_pool(reader.pool(), sql, params, decode)).await
                }
                done => done,
            },
            Engine::Postgres(reader) => reader.rows(sql, params, decode).await,
            Engine::Pool(db) => Box::pin(on_pool(db, sql, params, decode)).await,
        }
    }
}

/// Runs a read on SeaORM's pool.
async fn on_pool<T>(
    db: &DatabaseConnection,
    sql: &str,
    params: &[ReadParam<'_>],
    decode: fn(&dyn Columns) -> Result<T, ReadError>,
) -> Result<Vec<T>, ReadError> {
    let values = params.iter().map(|param| match *param {
        ReadParam::Int(value) => sea_orm::Value::from(value),
        ReadParam::Text(value) => sea_orm::Value::from(value),
    });
    let rows = db.query_all_raw(Statement::from_sql_and_values(db.get_database_backend(), sql, values)).await?;
    rows.iter().map(|row| decode(row)).collect()
}

impl Columns for QueryResult {
    fn int(&self, index: usize) -> Result<i64, ReadError> {
        Ok(self.try_get_by_index(index)?)
    }

    fn text(&self, index: usize) -> Result<String, ReadError> {
        Ok(self.try_get_by_index(index)?)
    }

    fn optional_text(&self, index: usize) -> Result<Option<String>, ReadError> {
        Ok(self.try_get_by_index(index)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn sqlite(url: &str) -> (DatabaseConnection, DatabaseSettings) {
        let config = DatabaseSettings { db_url: Some(url.into()), ..DatabaseSettings::default() };
        let db = super::super::connect(&config).await.expect("connects");
        super::super::prepare_schema(&db, true).await.expect("migrates");
        (db, config)
    }

    #[tokio::test]
    async fn a_sqlite_file_is_read_on_the_calling_thread_and_memory_through_the_pool() {
        let dir = tempfile::TempDir::new().expect("temp dir");
        let (db, config) = sqlite(&format!("sqlite://{}", dir.path().join("reads.sqlite").display())).await;
        let reader = Reader::new(&db, &config);
        assert_eq!(reader.describe(), "on the calling thread (SQLite)");
        let one = |row: &dyn Columns| row.int(0);
        assert_eq!(reader.rows("SELECT ? + 1", &[ReadParam::Int(41)], one).await.expect("read"), [42]);
        let (memory, config) = sqlite("sqlite::memory:").await;
        assert_eq!(Reader::new(&memory, &config).describe(), "on the connection pool");
    }

    #[tokio::test]
    async fn db_reads_pool_keeps_a_sqlite_file_s_reads_on_the_pool() {
        let dir = tempfile::TempDir::new().expect("temp dir");
        let (db, mut config) = sqlite(&format!("sqlite://{}", dir.path().join("pool.sqlite").display())).await;
        config.db_reads = ReadEngine::Pool;
        let reader = Reader::new(&db, &config);
        assert_eq!(reader.describe(), "on the connection pool");
        let one = |row: &dyn Columns| row.int(0);
        assert_eq!(reader.rows("SELECT ? + 1", &[ReadParam::Int(41)], one).await.expect("read"), [42]);
    }

    #[test]
    fn a_read_that_meets_a_lock_is_recognised_as_busy() {
        // A rollback-journal database, where a writer's exclusive lock keeps readers out (WAL never does).
        let dir = tempfile::TempDir::new().expect("temp dir");
        let file = dir.path().join("busy.sqlite");
        let holder = rusqlite::Connection::open(&file).expect("opens");
        holder.execute_batch("CREATE TABLE t (x); BEGIN EXCLUSIVE; INSERT INTO t VALUES (1);").expect("locked");
        let reader = rusqlite::Connection::open(&file).expect("opens");
        reader.busy_timeout(std::time::Duration::ZERO).expect("no busy handler, as on the calling thread");
        let error = reader.query_row("SELECT count(*) FROM t", [], |row| row.get::<_, i64>(0)).expect_err("busy");
        assert!(sqlite::is_busy(&error), "{error}");
        let other = reader.query_row("SELEC 1", [], |row| row.get::<_, i64>(0)).expect_err("a syntax error");
        assert!(!sqlite::is_busy(&other), "{other}");
    }
}
