//! `AppState`: what handlers share, cheap to clone into every request.

use std::sync::Arc;

use crate::{auth::Authenticator, config::Config};

/// Shared, read-only state of the running service.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The merged configuration the service started with.
    pub config: Arc<Config>,
    /// How callers are authenticated.
    pub auth: Authenticator,
}

impl AppState {
    /// State for a service running with `config`, authenticating with `auth`.
    pub fn new(config: Config, auth: Authenticator) -> Self {
        Self { config: Arc::new(config), auth }
    }
}
