//! `AppState`: what handlers share, one `Arc` so that handing it to every request is one reference count. It holds
//! the application's parts only; the platform's (metrics, readiness, the draining flag) are wired in `startup`.

use std::{ops::Deref, sync::Arc};

use crate::{
    auth::{Authenticator, extract::AuthState, metrics::AuthMetrics},
    config::ApiSettings,
    db::{handle::DbHandle, health::DbHealth, idempotency::IdempotencyKeys, resources::SeaOrmResourceStore},
    idempotency::Idempotency,
};

/// Shared, read-only state of the running service. axum clones the state into every handler call, so it is a
/// single `Arc` rather than a struct of separately counted parts.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

/// The parts of [`AppState`], reached through `Deref` (`state.auth`, `state.resources`, `state.db`, ...).
#[derive(Debug)]
pub struct Shared {
    /// How callers are authenticated.
    pub auth: Authenticator,
    /// Where the extractors count authentication decisions (records nothing without metrics).
    pub auth_metrics: AuthMetrics,
    /// The database's health, for `/healthz`.
    pub db_health: DbHealth,
    /// Resources and owners, as the domain sees them.
    pub resources: SeaOrmResourceStore,
    /// Stored idempotency keys, as create handlers read them before a write (the write stores its own).
    pub keys: IdempotencyKeys,
    /// The keys running on this replica, and their outcome counters.
    pub idempotency: Idempotency,
    /// The database every store shares. The stores of generated entities (`cargo xtask new-entity`) are made from
    /// it per request by their API's `FromRef<AppState>`, so adding an entity adds no field here.
    pub db: DbHandle,
    /// The `api` section: rules every API applies (whether writes need `If-Match`).
    pub api: ApiSettings,
}

impl AppState {
    /// State for a service authenticating with `auth` (counting into `auth_metrics`) and storing in `db`, with the
    /// default `api` section and idempotency keys' outcomes not counted.
    pub fn new(auth: Authenticator, auth_metrics: AuthMetrics, db: DbHandle) -> Self {
        Self::wired(auth, auth_metrics, db, ApiSettings::default(), Idempotency::default())
    }

    /// [`AppState::new`] with the `api` section `api`, counting idempotency keys' outcomes into `idempotency`.
    pub fn wired(
        auth: Authenticator,
        auth_metrics: AuthMetrics,
        db: DbHandle,
        api: ApiSettings,
        idempotency: Idempotency,
    ) -> Self {
        Self(Arc::new(Shared {
            auth,
            auth_metrics,
            db_health: DbHealth::new(db.pool().clone()),
            resources: SeaOrmResourceStore::new(db.clone()),
            keys: IdempotencyKeys::new(db.clone(), db.key_retention()),
            idempotency,
            db,
            api,
        }))
    }
}

impl AuthState for AppState {
    fn authenticator(&self) -> &Authenticator {
        &self.auth
    }

    fn auth_metrics(&self) -> &AuthMetrics {
        &self.auth_metrics
    }
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::{
        auth::{OidcSettings, TokenVerifier},
        config::{Config, secret_json},
    };

    const DB_PASSWORD: &str = "db-pa55word-7f3";
    const CLIENT_SECRET: &str = "oidc-client-secret-9c1";

    #[tokio::test]
    async fn no_debug_output_of_the_configuration_or_the_state_shows_a_secret() {
        let mut config = Config::default();
        config.database.db_url = Some(format!("postgres://app:{DB_PASSWORD}@db.example:5432/app").into());
        config.auth.web =
            Some(secret_json(&json!({"client_id": "api", "client_secret": CLIENT_SECRET, "issuer": "https://idp"})));
        let settings = OidcSettings::from_settings(&config.auth).expect("valid").expect("configured");
        let verifier = TokenVerifier::new(settings, AuthMetrics::default()).expect("verifier");
        // The state's own database connection is in memory; the secret URL is the configuration's.
        let memory = crate::config::DatabaseSettings { db_url: Some("sqlite::memory:".into()), ..Default::default() };
        let db = DbHandle::new(crate::db::connect(&memory).await.expect("sqlite"), &memory);
        let state = AppState::new(Authenticator::Oidc(Arc::new(verifier)), AuthMetrics::default(), db);

        for shown in [format!("{config:?}"), format!("{config:#?}"), format!("{state:?}"), format!("{state:#?}")] {
            for secret in [DB_PASSWORD, CLIENT_SECRET] {
                assert!(!shown.contains(secret), "{secret} shown in {shown}");
            }
        }
        assert!(format!("{config:?}").contains("otel_service_name"), "the rest of the configuration is shown");
    }
}
