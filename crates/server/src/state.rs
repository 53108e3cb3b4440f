//! `AppState`: what handlers share, cheap to clone into every request.

use std::sync::Arc;

use crate::config::Config;

/// Shared, read-only state of the running service.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The merged configuration the service started with.
    pub config: Arc<Config>,
}

impl AppState {
    /// State for a service running with `config`.
    pub fn new(config: Config) -> Self {
        Self { config: Arc::new(config) }
    }
}
