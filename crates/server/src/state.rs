//! `AppState`: what handlers share, one `Arc` so that handing it to every request is one reference count.

use std::{ops::Deref, sync::Arc};

use sea_orm::DatabaseConnection;

use crate::{
    auth::Authenticator,
    config::Config,
    db::{health::DbHealth, reads::Reader, resources::SeaOrmResourceStore},
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
        let reader = Reader::new(&db, &config);
        Self(Arc::new(Shared {
            config,
            auth,
            resources: SeaOrmResourceStore::new(db.clone(), reader),
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::{
        apis,
        auth::{OidcSettings, TokenVerifier},
        config::secret_json,
        ops::routes::RouteTemplates,
    };

    const DB_PASSWORD: &str = "db-pa55word-7f3";
    const CLIENT_SECRET: &str = "oidc-client-secret-9c1";
    const TEST_CLIENT_SECRET: &str = "original-test-client-secret-2e8";

    #[tokio::test]
    async fn no_debug_output_of_the_configuration_or_the_state_shows_a_secret() {
        let config = Config {
            db_url: Some(format!("postgres://app:{DB_PASSWORD}@db.example:5432/app").into()),
            web: Some(secret_json(
                &json!({"client_id": "api", "client_secret": CLIENT_SECRET, "issuer": "http://idp"}),
            )),
            client: serde_json::from_value(json!({"client_secret": TEST_CLIENT_SECRET})).expect("ignored"),
            ..Config::default()
        };
        let settings = OidcSettings::from_config(&config).expect("valid").expect("configured");
        let verifier = TokenVerifier::new(settings, AuthMetrics::default()).expect("verifier");
        // The state's own database connection is in memory; the secret URL is the configuration's.
        let db = sea_orm::Database::connect("sqlite::memory:").await.expect("sqlite");
        let metrics = Metrics::new(RouteTemplates::new(&apis::openapi(None)), 1);
        let state = AppState::new(config.clone(), Authenticator::Oidc(Arc::new(verifier)), db, Some(metrics));

        for shown in [format!("{config:?}"), format!("{config:#?}"), format!("{state:?}"), format!("{state:#?}")] {
            for secret in [DB_PASSWORD, CLIENT_SECRET, TEST_CLIENT_SECRET] {
                assert!(!shown.contains(secret), "{secret} shown in {shown}");
            }
        }
        assert!(format!("{config:?}").contains("otel_service_name"), "the rest of the configuration is shown");
    }
}
