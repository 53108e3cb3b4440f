//! [`DbHandle`]: the connected database as every store shares it. It holds what makes stores fast and safe
//! together rather than per store: SeaORM's pool (writes, and reads that are not hot), the [`Reader`] of hot reads,
//! and on SQLite the one write turn of this process, so writers of every table queue in one async mutex instead
//! of meeting in SQLite's sleeping busy handler. [`DbHandle::operation`] wraps each store operation in its span
//! and its time bound, so a store method is only its SQL.

use std::{future::Future, sync::Arc};

use platform::observability::traces::{self, ChildSpan, KeyValue};
use sea_orm::{DatabaseConnection, DbBackend};
use tokio::sync::{Mutex, MutexGuard};

use super::{DB_WAIT, reads::Reader};
use crate::config::DatabaseSettings;

/// The database every store works on; cheap to clone.
#[derive(Debug, Clone)]
pub struct DbHandle {
    pool: DatabaseConnection,
    reader: Reader,
    /// SQLite only: one writer at a time from this process. SQLite allows one writer anyway; concurrent writers
    /// from the pool otherwise meet in its busy handler, which sleeps and retries (p99 of a create was 210 ms at 64
    /// connections). Writers of other processes still wait there, up to the busy timeout.
    write_turn: Option<Arc<Mutex<()>>>,
    /// How long idempotency keys are kept (`idempotency_retention_secs`).
    key_retention: std::time::Duration,
}

/// A store operation that did not finish within [`DB_WAIT`]; stores turn it into their storage error.
#[derive(Debug, thiserror::Error)]
#[error("the database did not answer within {} s", DB_WAIT.as_secs())]
pub struct TimedOut;

impl DbHandle {
    /// The handle of the connected `pool`, reading hot reads as `settings` ask (`db_reads`).
    pub fn new(pool: DatabaseConnection, settings: &DatabaseSettings) -> Self {
        let reader = Reader::new(&pool, settings);
        let write_turn = (pool.get_database_backend() == DbBackend::Sqlite).then(|| Arc::new(Mutex::new(())));
        let key_retention = std::time::Duration::from_secs(settings.idempotency_retention_secs);
        Self { pool, reader, write_turn, key_retention }
    }

    /// SeaORM's pool: writes, transactions, reads that are not hot.
    pub fn pool(&self) -> &DatabaseConnection {
        &self.pool
    }

    /// The hot reads' engine (see `db/reads`).
    pub fn reader(&self) -> &Reader {
        &self.reader
    }

    /// How long idempotency keys are kept.
    pub fn key_retention(&self) -> std::time::Duration {
        self.key_retention
    }

    /// The engine the pool talks to.
    pub fn backend(&self) -> DbBackend {
        self.pool.get_database_backend()
    }

    /// Waits for this process's turn to write (SQLite), or for nothing (servers with row locks). Hold it for the
    /// write's transaction and no longer.
    pub async fn write_turn(&self) -> Option<MutexGuard<'_, ()>> {
        match &self.write_turn {
            Some(turn) => Some(turn.lock().await),
            None => None,
        }
    }

    /// Runs the store operation `work` in a `db.{name}` span of the current request (`verb` is its SQL verb) and
    /// for at most [`DB_WAIT`]: a query on a pooled connection has no timeout of its own, so a database that
    /// stopped answering would otherwise hold the request until the edge's request timeout. A write cut off here is
    /// rolled back by the database when the connection goes (or, if its commit had arrived, is whole).
    pub async fn operation<T, E: From<TimedOut>>(
        &self,
        name: &'static str,
        verb: &'static str,
        work: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let span = db_span(name, verb, self.backend());
        let bounded = async { tokio::time::timeout(DB_WAIT, work).await.unwrap_or_else(|_| Err(TimedOut.into())) };
        traces::in_span(span, bounded).await
    }
}

/// A CLIENT span for a database call of the current request, named `db.<operation>` (`db.get`, `db.ping`), with
/// the OTel database attributes `db.system.name` and `db.operation.name` (the SQL verb).
pub fn db_span(operation: &'static str, verb: &'static str, backend: DbBackend) -> ChildSpan {
    traces::client_span(
        || format!("db.{operation}"),
        || {
            let system = match backend {
                DbBackend::Sqlite => "sqlite",
                DbBackend::Postgres => "postgresql",
                DbBackend::MySql => "mysql",
                // The enum is non-exhaustive; OTel's name for an unknown SQL database.
                _ => "other_sql",
            };
            vec![KeyValue::new("db.system.name", system), KeyValue::new("db.operation.name", verb)]
        },
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn handle() -> DbHandle {
        let settings = DatabaseSettings { db_url: Some("sqlite::memory:".into()), ..DatabaseSettings::default() };
        DbHandle::new(super::super::connect(&settings).await.expect("connects"), &settings)
    }

    #[derive(Debug, PartialEq)]
    struct Failed(&'static str);

    impl From<TimedOut> for Failed {
        fn from(_: TimedOut) -> Self {
            Self("timed out")
        }
    }

    #[tokio::test]
    async fn an_operation_that_never_answers_ends_at_the_bound() {
        let handle = handle().await;
        // Connected first: the pool's own timers run on real time. From here the bound elapses at once.
        tokio::time::pause();
        let never = handle.operation("get", "SELECT", std::future::pending::<Result<(), Failed>>());
        assert_eq!(never.await, Err(Failed("timed out")));
        let quick = handle.operation("get", "SELECT", async { Ok::<_, Failed>(7) });
        assert_eq!(quick.await, Ok(7));
    }

    #[tokio::test]
    async fn every_store_of_a_sqlite_database_shares_one_write_turn() {
        let first = handle().await;
        let second = first.clone();
        let held = first.write_turn().await.expect("SQLite has a write turn");
        let waiting = tokio::time::timeout(Duration::from_millis(50), second.write_turn()).await;
        assert!(waiting.is_err(), "a clone's writer waits for the turn held by another");
        drop(held);
        assert!(second.write_turn().await.is_some());
    }
}
