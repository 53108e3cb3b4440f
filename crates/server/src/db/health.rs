//! `DbHealth`: whether the database answers, asked at most once per [`HEALTH_TTL`] however often `/healthz` is
//! polled, so probes and load balancers cannot turn the health check into database load (or into the slowest
//! route of the service).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use sea_orm::DatabaseConnection;

/// How long one answer of the database is reused.
pub const HEALTH_TTL: Duration = Duration::from_secs(1);

/// The database's last known health.
#[derive(Debug, Clone)]
pub struct DbHealth {
    db: DatabaseConnection,
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    started: Instant,
    /// Milliseconds after `started` of the last probe, plus one; 0 means never probed.
    probed_at: AtomicU64,
    healthy: AtomicBool,
    probing: AtomicBool,
}

/// Clears the probing flag even when the request that probes is cancelled mid-way.
struct ProbeGuard<'a>(&'a AtomicBool);

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Readiness waits for the database: a replica that cannot reach it should get no traffic.
#[async_trait::async_trait]
impl platform::readiness::ReadinessCheck for DbHealth {
    fn name(&self) -> &'static str {
        "database"
    }

    async fn check(&self) -> bool {
        self.is_healthy().await
    }
}

impl DbHealth {
    /// Health of `db`, not probed yet.
    pub fn new(db: DatabaseConnection) -> Self {
        let inner = Inner {
            started: Instant::now(),
            probed_at: AtomicU64::new(0),
            healthy: AtomicBool::new(false),
            probing: AtomicBool::new(false),
        };
        Self { db, inner: Arc::new(inner) }
    }

    /// Whether the database answered its last probe; probes again when that answer is older than the TTL.
    /// While one request probes, concurrent ones get the previous answer instead of piling onto the database.
    pub async fn is_healthy(&self) -> bool {
        let inner = &self.inner;
        let now = u64::try_from(inner.started.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1;
        let probed_at = inner.probed_at.load(Ordering::Acquire);
        let fresh = probed_at != 0 && now - probed_at < HEALTH_TTL.as_millis() as u64;
        if fresh || (probed_at != 0 && inner.probing.swap(true, Ordering::AcqRel)) {
            return inner.healthy.load(Ordering::Acquire);
        }
        let _guard = ProbeGuard(&inner.probing);
        let span = super::handle::db_span("ping", "SELECT", self.db.get_database_backend());
        let healthy = super::ping(&self.db).await;
        span.finish_as(healthy);
        inner.healthy.store(healthy, Ordering::Release);
        inner.probed_at.store(now, Ordering::Release);
        healthy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{config::DatabaseSettings, db::connect};

    #[tokio::test]
    async fn a_reachable_database_is_healthy_and_the_answer_is_reused() {
        let config = DatabaseSettings { db_url: Some("sqlite::memory:".into()), ..DatabaseSettings::default() };
        let health = DbHealth::new(connect(&config).await.expect("connects"));
        assert!(health.is_healthy().await);
        let first = health.inner.probed_at.load(Ordering::Acquire);
        assert!(health.is_healthy().await);
        assert_eq!(health.inner.probed_at.load(Ordering::Acquire), first, "answered from the last probe");
    }

    #[tokio::test]
    async fn a_closed_pool_is_unhealthy() {
        let config = DatabaseSettings { db_url: Some("sqlite::memory:".into()), ..DatabaseSettings::default() };
        let db = connect(&config).await.expect("connects");
        let health = DbHealth::new(db.clone());
        db.close_by_ref().await.expect("closes");
        assert!(!health.is_healthy().await);
    }
}
