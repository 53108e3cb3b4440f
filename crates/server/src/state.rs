//! `AppState`: what handlers share, one `Arc` so that handing it to every request is one reference count.

use std::{ops::Deref, sync::Arc};

use sea_orm::DatabaseConnection;

use crate::{
    auth::Authenticator,
    config::Config,
    db::{health::DbHealth, resources::SeaOrmResourceStore},
    ops::{
        metrics::{AuthMetrics, Metrics},
        readiness::Draining,
    },
};

/// Shared, read-only state of the running service. axum clones the state into every handler call, so it is a
/// single `Arc` rather than a struct of separately counted parts.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

/// The parts of [`AppState`], reached through `Deref` (`state.config`, `state.resources`, ...).
#[derive(Debug)]
pub struct Shared {
    /// The merged configuration the service started with.
    pub config: Config,
    /// How callers are authenticated.
    pub auth: Authenticator,
    /// The database's health, for `/healthz`.
    pub db_health: DbHealth,
    /// Resources and owners, as the domain sees them.
    pub resources: SeaOrmResourceStore,
    /// The Prometheus registry, when metrics are enabled.
    pub metrics: Option<Metrics>,
    /// Where the extractors count authentication decisions (records nothing without metrics).
    pub auth_metrics: AuthMetrics,
    /// Set when shutdown begins, so `/readyz` turns 503 first.
    pub draining: Draining,
}

impl AppState {
    /// State for a service running with `config`, authenticating with `auth`, storing in `db`, counting into
    /// `metrics` when given.
    pub fn new(config: Config, auth: Authenticator, db: DatabaseConnection, metrics: Option<Metrics>) -> Self {
        Self(Arc::new(Shared {
            config,
            auth,
            resources: SeaOrmResourceStore::new(db.clone()),
            db_health: DbHealth::new(db),
            auth_metrics: metrics.as_ref().map(Metrics::auth).unwrap_or_default(),
            metrics,
            draining: Draining::default(),
        }))
    }
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}
