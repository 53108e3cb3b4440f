//! Starting and stopping the server: the instance path, binding the socket, serving until a shutdown signal, and
//! the bounded wait for in-flight requests. The tests use [`Application`] exactly as `main` does, on port 0.

use std::{
    future::Future,
    io,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use platform::{
    guards::{GuardConfigError, GuardWiring, Guards},
    listen::{self, ListenError},
    memory,
    observability::{metrics::Metrics, metrics::RequestMetrics},
    probes,
    readiness::{Draining, Readiness},
    serve::{self, ConnectionLimits},
};
use tokio::net::TcpListener;

use crate::{
    app,
    auth::{
        Authenticator, OidcSettings, SettingsError, SigningKeysLoaded, TokenVerifier, http::ClientError,
        jwks::KeyStore, metrics::AuthMetrics,
    },
    config::{Config, DatabaseSettings},
    db::{self, DbError, handle::DbHandle},
    docs::pages,
    idempotency::{self, Idempotency},
    state::AppState,
};

/// Why the server could not start or keep serving; [`StartupError::exit_code`] says which code the binary exits
/// with (1 or 2).
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// SIGINT and SIGTERM cannot be listened for, so the server could not be stopped gracefully.
    #[error("cannot listen for signals: {0}")]
    Signals(#[source] io::Error),
    /// The instance path is not a directory we can create or use.
    #[error("cannot use instance path {}: {source}", path.display())]
    InstancePath {
        /// The configured path.
        path: PathBuf,
        /// What the file system said.
        source: io::Error,
    },
    /// The host does not resolve, or no address of it could be bound (port in use, no permission).
    #[error(transparent)]
    Listen(#[from] ListenError),
    /// The database is unusable, unreachable, or behind in production mode.
    #[error(transparent)]
    Database(#[from] DbError),
    /// The OIDC configuration is unusable.
    #[error(transparent)]
    Oidc(#[from] SettingsError),
    /// A guard setting (CORS origins, trusted proxies, rate limits) cannot work.
    #[error(transparent)]
    Guards(#[from] GuardConfigError),
    /// The client for the OpenID provider cannot be built (e.g. a bad CA bundle).
    #[error(transparent)]
    ProviderClient(#[from] ClientError),
}

impl StartupError {
    /// 2 for configuration mistakes (like bad flags), 1 for everything the environment refused.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Oidc(_) | Self::ProviderClient(_) | Self::Guards(_) => 2,
            Self::Database(error) => error.exit_code(),
            _ => 1,
        }
    }
}

/// What [`Application::build`] starts from: the configuration and, for tests, parts to plug in instead of the real
/// ones (see [`ApplicationBuilder::key_store`]).
#[must_use]
pub struct ApplicationBuilder {
    config: Config,
    key_store: Option<Arc<dyn KeyStore>>,
}

impl ApplicationBuilder {
    /// Verifies JWTs against `keys` (say a [`StaticKeyStore`](crate::auth::jwks::StaticKeyStore)) instead of the
    /// provider's JWKS, so HTTP-level authentication tests need no provider. Applies only when the configuration
    /// has OIDC settings; opaque tokens are still introspected at the provider.
    pub fn key_store(mut self, keys: Arc<dyn KeyStore>) -> Self {
        self.key_store = Some(keys);
        self
    }

    /// Checks the configuration, binds the configured address, prepares the instance path and the database;
    /// serving starts with [`Application::run_until`]. Configuration mistakes and a port in use fail before
    /// anything is created or migrated.
    pub async fn build(self) -> Result<Application, StartupError> {
        let Self { config, key_store } = self;
        tracing::info!("rust-api-axum {} starting", crate::VERSION);
        let oidc = OidcSettings::from_settings(&config.auth)?;
        let metrics = config.observability.metrics_enabled.then(|| Metrics::new(&crate::SERVICE));
        let auth_metrics = metrics.as_ref().map(AuthMetrics::register).unwrap_or_default();
        let auth = match oidc {
            None => {
                tracing::warn!("Running without any authentication/authorisation");
                Authenticator::Disabled
            }
            Some(settings) => {
                tracing::info!(
                    "Accepting bearer tokens from {} for audience {}",
                    settings.issuer,
                    settings.audiences.join(", ")
                );
                let verifier = match key_store {
                    Some(keys) => TokenVerifier::with_keys(settings, keys, auth_metrics.clone())?,
                    None => TokenVerifier::new(settings, auth_metrics.clone())?,
                };
                Authenticator::Oidc(Arc::new(verifier))
            }
        };
        let wiring = GuardWiring {
            subjects: match &auth {
                Authenticator::Oidc(verifier) => Some(verifier.clone()),
                Authenticator::Disabled => None,
            },
            unlimited: app::unlimited_paths(),
            pages: Some(pages::policies(auth.settings())),
        };
        let guards = Guards::new(&config.guards, wiring)?;
        let listener = listen::bind(&config.server.host, config.server.port).await?;
        let metrics_listener = match (&metrics, config.observability.metrics_port) {
            (Some(_), Some(port)) => Some(listen::bind(&config.server.host, port).await?),
            _ => None,
        };
        let database = open_database(&config.database).await?;
        db::prepare_schema(&database, config.database.auto_migrate).await?;
        if let Some(metrics) = &metrics {
            db::metrics::observe_pool(metrics, database.clone(), config.database.db_max_connections);
        }
        let db = DbHandle::new(database, &config.database);
        let keys = match &auth {
            Authenticator::Oidc(verifier) => Some(SigningKeysLoaded(verifier.clone())),
            Authenticator::Disabled => None,
        };
        let idempotency = metrics.as_ref().map(Idempotency::register).unwrap_or_default();
        let state = AppState::wired(auth, auth_metrics, db, config.api.clone(), idempotency);
        let draining = Draining::default();
        // `/readyz` and `/healthz` share one cached database health, so probes cost one ping a second at most.
        let mut readiness = Readiness::new(draining.clone()).with_check(state.db_health.clone());
        if let Some(keys) = keys {
            readiness = readiness.with_check(keys);
        }
        Ok(Application { listener, metrics_listener, config, state, guards, metrics, readiness, draining })
    }
}

/// A bound, ready-to-serve instance of the service.
pub struct Application {
    listener: TcpListener,
    /// The listener of `metrics_port`, when metrics are served apart from the API.
    metrics_listener: Option<TcpListener>,
    config: Config,
    state: AppState,
    guards: Guards,
    /// The registry, when metrics are on.
    metrics: Option<Metrics>,
    readiness: Readiness,
    /// Set when shutdown begins: `/readyz` turns 503 and HTTP/1 answers carry `Connection: close`.
    draining: Draining,
}

impl Application {
    /// The service as `config` describes it, bound and ready to serve: [`ApplicationBuilder::build`] with the real
    /// parts. `main` starts the server this way.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        Self::builder(config).build().await
    }

    /// A builder for the service as `config` describes it, where tests can plug in parts.
    pub fn builder(config: Config) -> ApplicationBuilder {
        ApplicationBuilder { config, key_store: None }
    }

    /// The bound address; with port 0 this is where the OS put us.
    pub fn local_addr(&self) -> SocketAddr {
        // A bound listener always has a local address; 0.0.0.0:0 is never reached.
        self.listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The address of the metrics listener, when `metrics_port` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().and_then(|listener| listener.local_addr().ok())
    }

    /// Serves until `shutdown` completes. Then `/readyz` turns 503 at once and requests are still served for
    /// `shutdown_drain_secs` (so load balancers stop sending), the listeners close, and in-flight requests get
    /// `shutdown_grace_secs` to finish before this returns anyway.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), StartupError> {
        let Self { listener, metrics_listener, config, state, guards, metrics, readiness, draining } = self;
        let grace = Duration::from_secs(config.server.shutdown_grace_secs);
        let drain = Duration::from_secs(config.server.shutdown_drain_secs);
        let limits = ConnectionLimits::from(&config.limits);
        let local = listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        tracing::info!("Listening on http://{local}");
        if let Some(address) = metrics_listener.as_ref().and_then(|listener| listener.local_addr().ok()) {
            tracing::info!("Serving metrics on http://{address}/metrics");
        }
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let begin = {
            let draining = draining.clone();
            async move {
                shutdown.await;
                draining.start();
                if !drain.is_zero() {
                    tracing::info!(
                        "Shutting down: not ready any more; serving for {}s before closing",
                        drain.as_secs()
                    );
                    tokio::time::sleep(drain).await;
                }
                tracing::info!("Shutting down: finishing in-flight requests for at most {}s", grace.as_secs());
                let _ = stop_tx.send(true);
            }
        };
        let stopped = |mut stop: tokio::sync::watch::Receiver<bool>| async move {
            // An error means the sender is gone, which happens only after it sent.
            let _ = stop.wait_for(|stop| *stop).await;
        };
        let upkeep = metrics.clone().map(|metrics| {
            tokio::spawn(async move {
                let mut every = tokio::time::interval(METRICS_UPKEEP);
                loop {
                    every.tick().await;
                    metrics.run_upkeep();
                }
            })
        });
        let trimmer = memory::spawn_trimmer();
        let stored_keys = metrics.as_ref().map(|registry| {
            registry.gauge(idempotency::KEYS_STORED, "Idempotency keys stored (expired ones until purged).", &[])
        });
        let purger = db::idempotency::spawn_purger(state.keys.clone(), KEY_PURGE_EVERY, move |count| {
            if let Some(gauge) = &stored_keys {
                gauge.set(count as f64);
            }
        });
        let oidc = state.auth.settings().cloned();
        let mut platform_routes = probes::routes(readiness);
        let mut metrics_server = None;
        if let Some(registry) = &metrics {
            let scrape = probes::metrics_routes(registry.clone());
            match metrics_listener {
                Some(listener) => {
                    let service = app::build_metrics_app(scrape, &config.limits, &config.observability);
                    let stop = stopped(stop_rx.clone());
                    metrics_server = Some(serve::serve(listener, service, limits, Draining::default(), stop));
                }
                None => platform_routes = platform_routes.merge(scrape),
            }
        }
        let routes = app::routes(state, app::openapi(oidc.as_ref()), oidc.as_ref(), platform_routes);
        let request_metrics = metrics.as_ref().map(|registry| RequestMetrics::new(registry, routes.templates()));
        let service = app::build_app(routes, &config.limits, &config.observability, guards, request_metrics);
        let main_server = serve::serve(listener, service, limits, draining, stopped(stop_rx.clone()));
        let servers = async move {
            match metrics_server {
                Some(metrics_server) => drop(tokio::join!(main_server, metrics_server)),
                None => main_server.await,
            }
        };
        let grace_over = async move {
            stopped(stop_rx).await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            () = servers => {}
            () = grace_over => tracing::warn!("Grace period over; dropping the requests still in flight"),
            // `begin` never completes before the servers stop; it only has to be polled.
            () = async { begin.await; std::future::pending::<()>().await } => {}
        }
        for task in [upkeep, trimmer, Some(purger)].into_iter().flatten() {
            task.abort();
        }
        tracing::info!("Stopped");
        Ok(())
    }
}

/// How often expired idempotency keys are removed (and the stored count refreshed).
const KEY_PURGE_EVERY: Duration = Duration::from_secs(60);

/// How often recorded latencies are folded into their histogram buckets.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// Prepares the instance path and connects to the configured database: what serving and every `db` command
/// do first, in one place, so a command on a fresh volume finds the directory its SQLite file goes into.
pub async fn open_database(config: &DatabaseSettings) -> Result<sea_orm::DatabaseConnection, StartupError> {
    prepare_instance_path(&config.instance_path)?;
    let url = db::database_url(config)?;
    tracing::info!("Using database {}", db::redact(&url));
    Ok(db::connect(config).await?)
}

/// Creates the instance directory if needed and says which happened, like the original.
fn prepare_instance_path(path: &Path) -> Result<(), StartupError> {
    let error = |source| StartupError::InstancePath { path: path.to_owned(), source };
    let existed = path.is_dir();
    db::create_private_dir(path).map_err(error)?;
    let shown = std::fs::canonicalize(path).map_err(error)?;
    if existed {
        tracing::info!("Using existing instance path at {}", shown.display());
    } else {
        tracing::info!("Created instance path at {}", shown.display());
    }
    Ok(())
}
