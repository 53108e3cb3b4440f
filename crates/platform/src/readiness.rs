//! Readiness: whether this replica should get traffic now. It is not shutting down, and every check the
//! application registered passes (its database answers, its provider's keys are loaded). Liveness is simpler: the
//! process serves.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

/// Longest a readiness check may take before it counts as not ready.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// One dependency this replica needs before it takes traffic, as the application registers it.
#[async_trait::async_trait]
pub trait ReadinessCheck: Send + Sync + 'static {
    /// What `/readyz` names when this check fails (`database`).
    fn name(&self) -> &'static str;

    /// Whether the dependency is usable now; answers within [`CHECK_TIMEOUT`] or counts as not ready.
    async fn check(&self) -> bool;
}

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

/// Everything `/readyz` asks: the draining flag and the application's checks, in the order they are reported.
#[derive(Clone, Default)]
pub struct Readiness {
    /// Set when shutdown begins.
    pub draining: Draining,
    checks: Vec<Arc<dyn ReadinessCheck>>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.checks.iter().map(|check| check.name()).collect();
        f.debug_struct("Readiness").field("draining", &self.draining).field("checks", &names).finish()
    }
}

impl Readiness {
    /// Readiness with `draining` and no checks yet.
    pub fn new(draining: Draining) -> Self {
        Self { draining, checks: Vec::new() }
    }

    /// The same, also asking `check`.
    pub fn with_check(mut self, check: impl ReadinessCheck) -> Self {
        self.checks.push(Arc::new(check));
        self
    }

    /// The names of what is not ready, in registration order (all checks run at once); empty when ready.
    pub async fn not_ready(&self) -> Vec<&'static str> {
        if self.draining.is_draining() {
            return vec!["shutting down"];
        }
        let outcomes = futures_util::future::join_all(
            self.checks.iter().map(|check| tokio::time::timeout(CHECK_TIMEOUT, check.check())),
        )
        .await;
        self.checks
            .iter()
            .zip(outcomes)
            .filter(|(_, outcome)| !matches!(outcome, Ok(true)))
            .map(|(check, _)| check.name())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(&'static str, Option<bool>);

    #[async_trait::async_trait]
    impl ReadinessCheck for Fixed {
        fn name(&self) -> &'static str {
            self.0
        }

        async fn check(&self) -> bool {
            match self.1 {
                Some(ready) => ready,
                None => std::future::pending().await,
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn failing_and_hanging_checks_are_named_in_order() {
        let readiness = Readiness::default()
            .with_check(Fixed("database", Some(false)))
            .with_check(Fixed("keys", None))
            .with_check(Fixed("fine", Some(true)));
        assert_eq!(readiness.not_ready().await, ["database", "keys"]);
        readiness.draining.start();
        assert_eq!(readiness.not_ready().await, ["shutting down"]);
    }
}
