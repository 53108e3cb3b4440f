//! `AppState`: what handlers share, one `Arc` so that handing it to every request is one reference count.

use std::{ops::Deref, sync::Arc};

use sea_orm::DatabaseConnection;

use crate::{
    auth::Authenticator,
    config::Config,
    db::{health::DbHealth, resources::SeaOrmResourceStore},
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
}

impl AppState {
    /// State for a service running with `config`, authenticating with `auth`, storing in `db`.
    pub fn new(config: Config, auth: Authenticator, db: DatabaseConnection) -> Self {
        Self(Arc::new(Shared {
            config,
            auth,
            resources: SeaOrmResourceStore::new(db.clone()),
            db_health: DbHealth::new(db),
        }))
    }
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}
