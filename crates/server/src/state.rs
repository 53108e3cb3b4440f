//! `AppState`: what handlers share, cheap to clone into every request.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::{
    auth::Authenticator,
    config::Config,
    db::{health::DbHealth, resources::SeaOrmResourceStore},
};

/// Shared, read-only state of the running service.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The merged configuration the service started with.
    pub config: Arc<Config>,
    /// How callers are authenticated.
    pub auth: Authenticator,
    /// The database's health, for `/healthz`.
    pub db_health: DbHealth,
    /// Resources and owners, as the domain sees them.
    pub resources: SeaOrmResourceStore,
}

impl AppState {
    /// State for a service running with `config`, authenticating with `auth`, storing in `db`.
    pub fn new(config: Config, auth: Authenticator, db: DatabaseConnection) -> Self {
        Self {
            config: Arc::new(config),
            auth,
            resources: SeaOrmResourceStore::new(db.clone()),
            db_health: DbHealth::new(db),
        }
    }
}
