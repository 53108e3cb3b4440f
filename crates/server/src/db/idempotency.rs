//! The `idempotency_keys` table: a key is claimed as the first statement of the transaction of the write it
//! guards and its answer written as the last, so a crash before the commit leaves neither the row nor the key and
//! a commit leaves both. Any store's create can be guarded ([`IdempotencyKeys::write_once`]); expired keys are
//! removed in small batches by [`IdempotencyKeys::purge_expired`].
//!
//! Telling "still running" from "done" across replicas is the database's job, per engine, in the claim itself:
//! PostgreSQL takes a transaction-scoped advisory lock on the key with `pg_try_advisory_xact_lock` (not granted:
//! in flight); MariaDB/MySQL insert with `innodb_lock_wait_timeout=0` (a lock wait on another transaction's
//! uncommitted key fails at once: in flight); SQLite has one writer, so a second claim only ever meets a committed
//! key. A committed key is a unique violation: the caller reads it and is answered from it.

use std::{
    future::Future,
    pin::Pin,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use sea_orm::{
    ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, QueryResult, RuntimeErr, SqlErr, Statement,
    TransactionTrait, Value,
};

use tokio::sync::MutexGuard;

use super::handle::DbHandle;
use crate::domain::idempotency::{
    Claim, Fingerprint, KeyStorageFailed, KeyStore, Once, Settled, StoredAnswer, StoredKey,
};

/// The write a key guards, run inside the key's transaction.
pub type GuardedWrite<'t, T> = Pin<Box<dyn Future<Output = Result<T, DbErr>> + Send + 't>>;

/// Keys removed per statement by [`IdempotencyKeys::purge_expired`]: small enough that a purge never holds the
/// table (or SQLite's one write turn) for long.
pub const PURGE_BATCH: u64 = 500;

/// The idempotency keys of the shared database.
#[derive(Debug, Clone)]
pub struct IdempotencyKeys {
    db: DbHandle,
    retention: Duration,
}

/// How a claim went.
enum Claimed {
    /// The key is this transaction's.
    Fresh,
    /// A committed key is there (or an expired one).
    Taken,
    /// Another transaction holds the key right now.
    Busy,
}

impl IdempotencyKeys {
    /// The keys in `db`, each kept for `retention`.
    pub fn new(db: DbHandle, retention: Duration) -> Self {
        Self { db, retention }
    }

    /// The answer stored for `claim`'s key, settled against its fingerprint; `None` when there is none (or it
    /// expired).
    pub async fn find(&self, claim: &Claim) -> Result<Option<Settled>, DbErr> {
        Ok(self.stored(claim).await?.map(|stored| stored.settle(claim)))
    }

    async fn stored(&self, claim: &Claim) -> Result<Option<StoredKey>, DbErr> {
        let sql = "SELECT fingerprint, status, location, etag, body FROM idempotency_keys \
                   WHERE scope = ? AND idem_key = ? AND expires_at > ?";
        let row = self.db.pool().query_one_raw(self.statement(sql, key_values(claim, [now().into()]))).await?;
        row.map(|row| stored_key(&row)).transpose()
    }

    /// Runs `write` in a transaction that claims `claim`'s key first and stores `answer` of its result last, and
    /// commits; or, when the key is taken, settles the request without running it. A `write` that fails rolls
    /// everything back and leaves no key, so the request may be sent again.
    pub async fn write_once<T>(
        &self,
        claim: &Claim,
        write: impl for<'t> FnOnce(&'t DatabaseTransaction) -> GuardedWrite<'t, T>,
        answer: impl FnOnce(&T) -> StoredAnswer,
    ) -> Result<Once<T>, DbErr> {
        let (_turn, tx) = match self.begin(claim).await? {
            Ok(claimed) => claimed,
            Err(settled) => return Ok(Once::Settled(settled)),
        };
        let written = match write(&tx).await {
            Ok(written) => written,
            Err(error) => {
                rollback(tx).await;
                return Err(error);
            }
        };
        self.store_answer(&tx, claim, &answer(&written)).await?;
        tx.commit().await?;
        Ok(Once::Ran(written))
    }

    /// Stores `answer` for `claim` on its own (a 4xx the guarded write refused with, after it rolled back), unless
    /// the key was taken meanwhile: then what that key says.
    pub async fn record(&self, claim: &Claim, answer: &StoredAnswer) -> Result<Option<Settled>, DbErr> {
        let (_turn, tx) = match self.begin(claim).await? {
            Ok(claimed) => claimed,
            Err(settled) => return Ok(Some(settled)),
        };
        self.store_answer(&tx, claim, answer).await?;
        tx.commit().await?;
        Ok(None)
    }

    /// A transaction (and on SQLite the write turn) that has claimed `claim`'s key, or what the key says when it
    /// is taken. A key that expired but was not purged yet is removed and claimed anew, once.
    async fn begin(
        &self,
        claim: &Claim,
    ) -> Result<Result<(Option<MutexGuard<'_, ()>>, DatabaseTransaction), Settled>, DbErr> {
        for _ in 0..2 {
            let turn = self.db.write_turn().await;
            let tx = self.db.pool().begin().await?;
            match self.claim(&tx, claim).await? {
                Claimed::Fresh => return Ok(Ok((turn, tx))),
                Claimed::Busy => {
                    rollback(tx).await;
                    return Ok(Err(Settled::InFlight));
                }
                Claimed::Taken => {
                    rollback(tx).await;
                    drop(turn);
                }
            }
            if let Some(settled) = self.find(claim).await? {
                return Ok(Err(settled));
            }
            let sql = "DELETE FROM idempotency_keys WHERE scope = ? AND idem_key = ? AND expires_at <= ?";
            let _turn = self.db.write_turn().await;
            self.db.pool().execute_raw(self.statement(sql, key_values(claim, [now().into()]))).await?;
        }
        // Taken twice, and gone when read each time: another request keeps claiming it.
        Ok(Err(Settled::InFlight))
    }

    async fn store_answer(&self, tx: &DatabaseTransaction, claim: &Claim, answer: &StoredAnswer) -> Result<(), DbErr> {
        let sql = "UPDATE idempotency_keys SET status = ?, location = ?, etag = ?, body = ? \
                   WHERE scope = ? AND idem_key = ?";
        let values = answer_values(answer).into_iter().chain(key_values(claim, [])).collect();
        tx.execute_raw(self.statement(sql, values)).await?;
        Ok(())
    }

    /// Claims the key inside `tx`, as its first statement.
    async fn claim(&self, tx: &DatabaseTransaction, claim: &Claim) -> Result<Claimed, DbErr> {
        let columns =
            "INSERT INTO idempotency_keys (scope, idem_key, fingerprint, status, body, created_at, expires_at)";
        let sql = match self.db.backend() {
            DbBackend::Postgres => format!(
                "{columns} SELECT $1, $2, $3, 0, '', $4, $5 WHERE pg_try_advisory_xact_lock(hashtextextended($1 || ' ' || $2, 0))"
            ),
            DbBackend::MySql => {
                format!("SET STATEMENT innodb_lock_wait_timeout = 0 FOR {columns} VALUES (?, ?, ?, 0, '', ?, ?)")
            }
            _ => format!("{columns} VALUES (?, ?, ?, 0, '', ?, ?)"),
        };
        let created = now();
        let expires = created.saturating_add(i64::try_from(self.retention.as_secs()).unwrap_or(i64::MAX));
        let values = vec![
            claim.scope.as_str().into(),
            claim.key.as_str().into(),
            claim.fingerprint.as_str().into(),
            created.into(),
            expires.into(),
        ];
        match tx.execute_raw(Statement::from_sql_and_values(self.db.backend(), sql, values)).await {
            Ok(result) if result.rows_affected() == 1 => Ok(Claimed::Fresh),
            // PostgreSQL: the advisory lock was not granted, so nothing was inserted.
            Ok(_) => Ok(Claimed::Busy),
            Err(error) if matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => Ok(Claimed::Taken),
            Err(error) if is_lock_wait(&error) => Ok(Claimed::Busy),
            Err(error) => Err(error),
        }
    }

    /// Removes up to [`PURGE_BATCH`] keys that expired; how many it removed.
    pub async fn purge_expired(&self) -> Result<u64, DbErr> {
        let sql = match self.db.backend() {
            // MySQL refuses `LIMIT` in an `IN` subquery, and has `DELETE ... LIMIT` instead.
            DbBackend::MySql => "DELETE FROM idempotency_keys WHERE expires_at <= ? LIMIT ?",
            _ => {
                "DELETE FROM idempotency_keys WHERE (scope, idem_key) IN \
                 (SELECT scope, idem_key FROM idempotency_keys WHERE expires_at <= ? LIMIT ?)"
            }
        };
        let values = vec![now().into(), (PURGE_BATCH as i64).into()];
        let _turn = self.db.write_turn().await;
        Ok(self.db.pool().execute_raw(self.statement(sql, values)).await?.rows_affected())
    }

    /// How many keys are stored (the expired among them until they are purged).
    pub async fn count(&self) -> Result<u64, DbErr> {
        let row =
            self.db.pool().query_one_raw(self.statement("SELECT COUNT(*) AS n FROM idempotency_keys", vec![])).await?;
        Ok(row.map(|row| row.try_get::<i64>("", "n")).transpose()?.map_or(0, |n| u64::try_from(n).unwrap_or(0)))
    }

    /// `sql` written with `?` placeholders, numbered for PostgreSQL.
    fn statement(&self, sql: &str, values: Vec<Value>) -> Statement {
        let backend = self.db.backend();
        if backend != DbBackend::Postgres {
            return Statement::from_sql_and_values(backend, sql, values);
        }
        let mut numbered = String::with_capacity(sql.len() + 8);
        for (n, part) in sql.split('?').enumerate() {
            if n > 0 {
                numbered.push_str(&format!("${n}"));
            }
            numbered.push_str(part);
        }
        Statement::from_sql_and_values(backend, numbered, values)
    }
}

impl KeyStore for IdempotencyKeys {
    async fn find(&self, claim: &Claim) -> Result<Option<Settled>, KeyStorageFailed> {
        self.db
            .operation("idempotency_find", "SELECT", async {
                IdempotencyKeys::find(self, claim).await.map_err(|error| KeyStorageFailed(Box::new(error)))
            })
            .await
    }

    async fn record(&self, claim: &Claim, answer: &StoredAnswer) -> Result<Option<Settled>, KeyStorageFailed> {
        self.db
            .operation("idempotency_record", "INSERT", async {
                IdempotencyKeys::record(self, claim, answer).await.map_err(|error| KeyStorageFailed(Box::new(error)))
            })
            .await
    }
}

impl From<super::handle::TimedOut> for KeyStorageFailed {
    fn from(timed_out: super::handle::TimedOut) -> Self {
        Self(Box::new(timed_out))
    }
}

/// Removes expired keys every `every`, a batch at a time, and reports how many are stored through `stored`.
pub fn spawn_purger(
    keys: IdempotencyKeys,
    every: Duration,
    stored: impl Fn(u64) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            loop {
                match keys.purge_expired().await {
                    Ok(removed) if removed >= PURGE_BATCH => tokio::time::sleep(Duration::from_millis(20)).await,
                    Ok(_) => break,
                    Err(error) => {
                        tracing::warn!(error = %error, "cannot remove expired idempotency keys");
                        break;
                    }
                }
            }
            if let Ok(count) = keys.count().await {
                stored(count);
            }
        }
    })
}

/// Unix seconds now.
fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| i64::try_from(since.as_secs()).unwrap_or(i64::MAX))
}

fn key_values<const N: usize>(claim: &Claim, more: [Value; N]) -> Vec<Value> {
    [claim.scope.as_str().into(), claim.key.as_str().into()].into_iter().chain(more).collect()
}

fn answer_values(answer: &StoredAnswer) -> Vec<Value> {
    vec![
        i32::from(answer.status).into(),
        answer.location.clone().into(),
        answer.etag.clone().into(),
        answer.body.clone().into(),
    ]
}

fn stored_key(row: &QueryResult) -> Result<StoredKey, DbErr> {
    let status: i32 = row.try_get("", "status")?;
    Ok(StoredKey {
        fingerprint: Fingerprint::from_stored(row.try_get("", "fingerprint")?),
        answer: StoredAnswer {
            status: u16::try_from(status).map_err(|_| DbErr::Type(format!("stored status {status}")))?,
            location: row.try_get("", "location")?,
            etag: row.try_get("", "etag")?,
            body: row.try_get("", "body")?,
        },
    })
}

/// MariaDB/MySQL's "lock wait timeout exceeded" (1205): with the claim's zero timeout, another transaction holds
/// the key.
fn is_lock_wait(error: &DbErr) -> bool {
    let (DbErr::Exec(RuntimeErr::SqlxError(error)) | DbErr::Query(RuntimeErr::SqlxError(error))) = error else {
        return false;
    };
    match error.as_database_error() {
        Some(database) => database
            .try_downcast_ref::<sea_orm::sqlx::mysql::MySqlDatabaseError>()
            .is_some_and(|mysql| mysql.number() == 1205),
        None => false,
    }
}

/// Rolls back now rather than when the transaction is dropped, so the next writer finds the locks free.
async fn rollback(tx: DatabaseTransaction) {
    if let Err(error) = tx.rollback().await {
        tracing::warn!("cannot roll back a guarded write: {error}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        config::DatabaseSettings,
        domain::{
            idempotency::{Fingerprint, IdempotencyKey},
            principal::{DisplayName, Principal},
        },
    };

    async fn keys(retention: Duration) -> IdempotencyKeys {
        let settings = DatabaseSettings { db_url: Some("sqlite::memory:".into()), ..DatabaseSettings::default() };
        let pool = crate::db::connect(&settings).await.expect("connects");
        crate::db::prepare_schema(&pool, true).await.expect("migrates");
        IdempotencyKeys::new(DbHandle::new(pool, &settings), retention)
    }

    fn claim(key: &str, body: &str) -> Claim {
        let principal = Principal {
            subject: "alice".into(),
            client_id: None,
            username: DisplayName::from_claim("alice").expect("visible"),
            scopes: Default::default(),
        };
        let key = IdempotencyKey::parse(key.as_bytes()).expect("key");
        Claim::new(&principal, key, Fingerprint::of("POST", "/x", body.as_bytes()))
    }

    fn answer(body: &str) -> StoredAnswer {
        StoredAnswer { status: 201, location: Some("/x/1".into()), etag: None, body: body.into() }
    }

    #[tokio::test]
    async fn a_write_runs_once_and_its_answer_is_given_again() {
        let keys = keys(Duration::from_secs(60)).await;
        let first = keys
            .write_once(&claim("k", "a"), |_| Box::pin(async { Ok(7) }), |n| answer(&n.to_string()))
            .await
            .expect("ran");
        assert_eq!(first, Once::Ran(7));
        let again = keys
            .write_once(&claim("k", "a"), |_| Box::pin(async { Ok(8) }), |n| answer(&n.to_string()))
            .await
            .expect("settled");
        assert_eq!(again, Once::Settled(Settled::Replay(answer("7"))));
        let other = keys.write_once(&claim("k", "b"), |_| Box::pin(async { Ok(9) }), |_| answer("9")).await;
        assert_eq!(other.expect("settled"), Once::Settled(Settled::Mismatch));
        assert_eq!(keys.count().await.expect("counted"), 1);
    }

    #[tokio::test]
    async fn a_failed_write_leaves_no_key() {
        let keys = keys(Duration::from_secs(60)).await;
        let failed = keys
            .write_once(
                &claim("k", "a"),
                |_| Box::pin(async { Err::<i32, _>(DbErr::Custom("no".into())) }),
                |_| answer("x"),
            )
            .await;
        assert!(failed.is_err());
        assert_eq!(keys.find(&claim("k", "a")).await.expect("read"), None);
        let retried = keys.write_once(&claim("k", "a"), |_| Box::pin(async { Ok(1) }), |_| answer("1")).await;
        assert_eq!(retried.expect("ran"), Once::Ran(1));
    }

    #[tokio::test]
    async fn a_refusal_is_recorded_and_replayed() {
        let keys = keys(Duration::from_secs(60)).await;
        let refused = StoredAnswer { status: 409, location: None, etag: None, body: "{}".into() };
        assert_eq!(keys.record(&claim("k", "a"), &refused).await.expect("recorded"), None);
        assert_eq!(keys.find(&claim("k", "a")).await.expect("read"), Some(Settled::Replay(refused.clone())));
        assert_eq!(keys.record(&claim("k", "a"), &refused).await.expect("known"), Some(Settled::Replay(refused)));
    }

    #[tokio::test]
    async fn expired_keys_are_forgotten_and_purged() {
        let keys = keys(Duration::ZERO).await;
        keys.write_once(&claim("k", "a"), |_| Box::pin(async { Ok(1) }), |_| answer("1")).await.expect("ran");
        assert_eq!(keys.find(&claim("k", "a")).await.expect("read"), None, "expired at once");
        assert_eq!(keys.purge_expired().await.expect("purged"), 1);
        assert_eq!(keys.count().await.expect("counted"), 0);
        let again = keys.write_once(&claim("k", "b"), |_| Box::pin(async { Ok(2) }), |_| answer("2")).await;
        assert_eq!(again.expect("ran"), Once::Ran(2), "an expired key may be used for another request");
    }
}
