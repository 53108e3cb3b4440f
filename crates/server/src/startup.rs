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

use tokio::net::TcpListener;

use crate::{
    apis, app,
    auth::{Authenticator, OidcSettings, SettingsError, TokenVerifier, http::ClientError, jwks::KeyStore},
    config::Config,
    db::{self, DbError},
    guards::{GuardConfigError, Guards},
    ops::{metrics::Metrics, readiness::Draining, routes::RouteTemplates},
    serve::{self, ConnectionLimits},
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
    /// The host name does not resolve.
    #[error("cannot resolve host '{host}': {source}")]
    Resolve {
        /// The configured host.
        host: String,
        /// What the resolver said.
        source: io::Error,
    },
    /// No resolved address could be bound (port in use, address not on this machine, no permission).
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The last address tried.
        address: String,
        /// What the OS said.
        source: io::Error,
    },
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
        let oidc = OidcSettings::from_config(&config)?;
        let metrics = config
            .metrics_enabled
            .then(|| Metrics::new(RouteTemplates::new(&apis::router().into_openapi()), config.db_max_connections));
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
                let counted = metrics.as_ref().map(Metrics::auth).unwrap_or_default();
                let verifier = match key_store {
                    Some(keys) => TokenVerifier::with_keys(settings, keys, counted)?,
                    None => TokenVerifier::new(settings, counted)?,
                };
                Authenticator::Oidc(Arc::new(verifier))
            }
        };
        let guards = Guards::from_config(&config, &auth)?;
        let listener = bind(&config.host, config.port).await?;
        let metrics_listener = match config.metrics_port {
            Some(port) if config.metrics_enabled => Some(bind(&config.host, port).await?),
            _ => None,
        };
        let database = open_database(&config).await?;
        db::prepare_schema(&database, config.auto_migrate).await?;
        if let Some(metrics) = &metrics {
            metrics.observe_pool(database.clone());
        }
        let state = AppState::new(config, auth, database, metrics);
        Ok(Application { listener, metrics_listener, state, guards })
    }
}

/// A bound, ready-to-serve instance of the service.
pub struct Application {
    listener: TcpListener,
    /// The listener of `metrics_port`, when metrics are served apart from the API.
    metrics_listener: Option<TcpListener>,
    state: AppState,
    guards: Guards,
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
        let config = &self.state.config;
        let grace = Duration::from_secs(config.shutdown_grace_secs);
        let drain = Duration::from_secs(config.shutdown_drain_secs);
        let limits = ConnectionLimits {
            header_read_timeout: Duration::from_secs(config.header_read_timeout_secs),
            max_head_bytes: config.max_request_head_bytes,
            max_connections: config.max_connections,
        };
        tracing::info!("Listening on http://{}", self.local_addr());
        if let Some(address) = self.metrics_addr() {
            tracing::info!("Serving metrics on http://{address}/metrics");
        }
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let draining = self.state.draining.clone();
        let begin = async move {
            shutdown.await;
            draining.start();
            if !drain.is_zero() {
                tracing::info!("Shutting down: not ready any more; serving for {}s before closing", drain.as_secs());
                tokio::time::sleep(drain).await;
            }
            tracing::info!("Shutting down: finishing in-flight requests for at most {}s", grace.as_secs());
            let _ = stop_tx.send(true);
        };
        let stopped = |mut stop: tokio::sync::watch::Receiver<bool>| async move {
            // An error means the sender is gone, which happens only after it sent.
            let _ = stop.wait_for(|stop| *stop).await;
        };
        let upkeep = self.state.metrics.clone().map(|metrics| {
            tokio::spawn(async move {
                let mut every = tokio::time::interval(METRICS_UPKEEP);
                loop {
                    every.tick().await;
                    metrics.run_upkeep();
                }
            })
        });
        let trimmer = crate::ops::memory::spawn_trimmer();
        let metrics_server = self.metrics_listener.map(|listener| {
            let service = app::build_metrics_app(self.state.clone());
            serve::serve(listener, service, limits, Draining::default(), stopped(stop_rx.clone()))
        });
        let draining = self.state.draining.clone();
        let service = app::build_app(self.state, self.guards);
        let main_server = serve::serve(self.listener, service, limits, draining, stopped(stop_rx.clone()));
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
        for task in [upkeep, trimmer].into_iter().flatten() {
            task.abort();
        }
        tracing::info!("Stopped");
        Ok(())
    }
}

/// How often recorded latencies are folded into their histogram buckets.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// Prepares the instance path and connects to the configured database: what serving and every `db` command
/// do first, in one place, so a command on a fresh volume finds the directory its SQLite file goes into.
pub async fn open_database(config: &Config) -> Result<sea_orm::DatabaseConnection, StartupError> {
    prepare_instance_path(&config.instance_path)?;
    let url = db::database_url(config)?;
    tracing::info!("Using database {}", db::redact(&url));
    Ok(db::connect(config).await?)
}

/// Creates the instance directory if needed and says which happened, like the original.
fn prepare_instance_path(path: &Path) -> Result<(), StartupError> {
    let error = |source| StartupError::InstancePath { path: path.to_owned(), source };
    let existed = path.is_dir();
    std::fs::create_dir_all(path).map_err(error)?;
    let shown = std::fs::canonicalize(path).map_err(error)?;
    if existed {
        tracing::info!("Using existing instance path at {}", shown.display());
    } else {
        tracing::info!("Created instance path at {}", shown.display());
    }
    Ok(())
}

/// Resolves `host` and binds the first address that accepts, so `localhost` works on IPv4-only and IPv6-only hosts.
async fn bind(host: &str, port: u16) -> Result<TcpListener, StartupError> {
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| StartupError::Resolve { host: host.to_owned(), source })?
        .collect();
    let mut last_error = io::Error::new(io::ErrorKind::NotFound, "the host resolved to no address");
    let mut last_address = format!("{host}:{port}");
    for address in addresses {
        match TcpListener::bind(address).await {
            Ok(listener) => return Ok(listener),
            Err(error) => (last_error, last_address) = (error, address.to_string()),
        }
    }
    Err(StartupError::Bind { address: last_address, source: last_error })
}

/// Listens for SIGINT (Ctrl-C) and SIGTERM (Kubernetes, systemd) from the moment it is called, so a signal that
/// arrives while the server is still starting is not lost; the returned future completes on the first of them.
#[cfg(unix)]
pub fn shutdown_signal() -> io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("Received SIGINT"),
            _ = terminate.recv() => tracing::info!("Received SIGTERM"),
        }
    })
}

/// Listens for Ctrl-C; the returned future completes when it arrives.
#[cfg(not(unix))]
pub fn shutdown_signal() -> io::Result<impl Future<Output = ()> + Send + 'static> {
    Ok(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::info!("Received Ctrl-C");
        }
    })
}
