//! Readiness: whether this replica should get traffic now. Its database answers, its OpenID provider's signing
//! keys are loaded (when it authenticates), and it is not shutting down. Liveness is simpler: the process serves.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use crate::{auth::Authenticator, db::health::DbHealth};

/// Longest a readiness check waits for one dependency before calling it not ready.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The shutdown half of readiness, shared by the server loop (which sets it) and `/readyz` (which reads it).
#[derive(Debug, Clone, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    /// From now on `/readyz` answers 503, so load balancers take this replica out before it stops listening.
    pub fn start(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// The parts that are not ready, by the names `/readyz` reports; empty when the replica is ready.
pub async fn not_ready(draining: &Draining, database: &DbHealth, auth: &Authenticator) -> Vec<&'static str> {
    if draining.is_draining() {
        return vec!["shutting down"];
    }
    let database = tokio::time::timeout(CHECK_TIMEOUT, database.is_healthy());
    let keys = async {
        match auth {
            Authenticator::Disabled => true,
            Authenticator::Oidc(verifier) => {
                tokio::time::timeout(CHECK_TIMEOUT, verifier.is_ready()).await.unwrap_or(false)
            }
        }
    };
    let (database, keys) = tokio::join!(database, keys);
    let mut missing = Vec::new();
    if !database.unwrap_or(false) {
        missing.push("database");
    }
    if !keys {
        missing.push("identity provider signing keys");
    }
    missing
}
