//! The `idempotency_keys` table: a key is stored with its answer as the last statement of the transaction of the
//! write it guards, so a crash before the commit leaves neither the row nor the key and a commit leaves both. Any
//! store's create can be guarded ([`IdempotencyKeys::write_once`]); expired keys are removed in small batches by
//! [`IdempotencyKeys::purge_expired`].
//!
//! One statement, not a claim first and the answer after: a claim-first design (an advisory lock or a zero lock
//! wait to answer 409 across replicas, then an update with the answer) cost a SQLite create 31-36% of its
//! requests/s, over the 25% budget (bench/results). A second request with a key that another transaction is
//! writing (another replica's) meets it in the database instead: its own insert of the key waits on the unique
//! key (or SQLite's one writer) until the first commits, then fails, rolls its write back and is answered from the
//! stored key. On one replica the API answers such a request 409 at once (`crate::idempotency`).

use std::{
    future::Future,
    pin::Pin,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use sea_orm::{
    ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, QueryResult, SqlErr, Statement, TransactionTrait, Value,
};

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

    /// Runs `write` in a transaction, stores `answer` of its result with the key as the last statement, and
    /// commits; or, when the key is stored already (now or by a transaction that was running meanwhile), rolls
    /// the write back and settles the request from the stored key. A `write` that fails for another reason rolls
    /// everything back and leaves no key, so the request may be sent again.
    pub async fn write_once<T>(
        &self,
        claim: &Claim,
        write: impl for<'t> FnOnce(&'t DatabaseTransaction) -> GuardedWrite<'t, T>,
        answer: impl FnOnce(&T) -> StoredAnswer,
    ) -> Result<Once<T>, DbErr> {
        let turn = self.db.write_turn().await;
        let tx = self.db.pool().begin().await?;
        let written = match write(&tx).await {
            Ok(written) => written,
            Err(error) => {
                rollback(tx).await;
                drop(turn);
                // Failing because the same request already ran (its name is taken by its own first attempt) is
                // answered from the key that attempt stored.
                return match self.stored_for(claim).await? {
                    Some(settled) => Ok(Once::Settled(settled)),
                    None => Err(error),
                };
            }
        };
        if self.store(&tx, claim, &answer(&written)).await? {
            tx.commit().await?;
            return Ok(Once::Ran(written));
        }
        rollback(tx).await;
        drop(turn);
        Ok(Once::Settled(self.stored_for(claim).await?.unwrap_or(Settled::InFlight)))
    }

    /// Stores `answer` for `claim` on its own (a 4xx the guarded write refused with, after it rolled back), unless
    /// the key is stored already: then what that key says.
    pub async fn record(&self, claim: &Claim, answer: &StoredAnswer) -> Result<Option<Settled>, DbErr> {
        let turn = self.db.write_turn().await;
        let tx = self.db.pool().begin().await?;
        if self.store(&tx, claim, answer).await? {
            tx.commit().await?;
            return Ok(None);
        }
        rollback(tx).await;
        drop(turn);
        Ok(Some(self.stored_for(claim).await?.unwrap_or(Settled::InFlight)))
    }

    /// What the stored key of `claim` says. A key that expired but was not purged yet is removed here, and `None`
    /// returned: the caller answers "in flight" (retry), and the retry stores the key anew.
    async fn stored_for(&self, claim: &Claim) -> Result<Option<Settled>, DbErr> {
        if let Some(settled) = self.find(claim).await? {
            return Ok(Some(settled));
        }
        let sql = "DELETE FROM idempotency_keys WHERE scope = ? AND idem_key = ? AND expires_at <= ?";
        let _turn = self.db.write_turn().await;
        self.db.pool().execute_raw(self.statement(sql, key_values(claim, [now().into()]))).await?;
        Ok(None)
    }

    /// Inserts the key with `answer` inside `tx`; `false` when the key is there already (a unique violation,
    /// after waiting for a transaction that was writing it).
    async fn store(&self, tx: &DatabaseTransaction, claim: &Claim, answer: &StoredAnswer) -> Result<bool, DbErr> {
        let sql = "INSERT INTO idempotency_keys \
                   (scope, idem_key, fingerprint, status, location, etag, body, created_at, expires_at) \
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)";
        let created = now();
        let expires = created.saturating_add(i64::try_from(self.retention.as_secs()).unwrap_or(i64::MAX));
        let values = key_values(claim, [claim.fingerprint.as_str().into()])
            .into_iter()
            .chain(answer_values(answer))
            .chain([created.into(), expires.into()])
            .collect();
        match tx.execute_raw(self.statement(sql, values)).await {
            Ok(_) => Ok(true),
            Err(error) if matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => Ok(false),
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
