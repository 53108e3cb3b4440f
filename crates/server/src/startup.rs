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
    app,
    auth::{Authenticator, OidcSettings, SettingsError, TokenVerifier, http::ClientError},
    config::Config,
    db::{self, DbError},
    guards::{GuardConfigError, Guards},
    state::AppState,
};

/// Why the server could not start or keep serving; the binary exits with code 1 on any of these.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
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
    /// Accepting connections failed after start.
    #[error("server failed: {0}")]
    Serve(#[source] io::Error),
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

/// A bound, ready-to-serve instance of the service.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    guards: Guards,
}

impl Application {
    /// Prepares the instance path and binds the configured address; serving starts with [`Self::run_until`].
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        tracing::info!("rust-api-axum {} starting", crate::VERSION);
        prepare_instance_path(&config.instance_path)?;
        let auth = match OidcSettings::from_config(&config)? {
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
                Authenticator::Oidc(Arc::new(TokenVerifier::new(settings)?))
            }
        };
        let guards = Guards::from_config(&config, &auth)?;
        let url = db::database_url(&config)?;
        tracing::info!("Using database {}", db::redact(&url));
        let database = db::connect(&config).await?;
        db::prepare_schema(&database, config.auto_migrate).await?;
        let listener = bind(&config.host, config.port).await?;
        Ok(Self { listener, state: AppState::new(config, auth, database), guards })
    }

    /// The bound address; with port 0 this is where the OS put us.
    pub fn local_addr(&self) -> SocketAddr {
        // A bound listener always has a local address; 0.0.0.0:0 is never reached.
        self.listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Serves until `shutdown` completes, then stops accepting and gives in-flight requests
    /// `shutdown_grace_secs` to finish before returning anyway.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), StartupError> {
        let grace = Duration::from_secs(self.state.config.shutdown_grace_secs);
        tracing::info!("Listening on http://{}", self.local_addr());
        let (begun_tx, begun_rx) = tokio::sync::oneshot::channel::<()>();
        let service = app::build_app(self.state, self.guards);
        // The peer's address travels as `ConnectInfo<SocketAddr>`: the client address for logs and rate limits.
        let connections = axum::ServiceExt::into_make_service_with_connect_info::<SocketAddr>(service);
        let server = axum::serve(self.listener, connections).with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("Shutting down: finishing in-flight requests for at most {}s", grace.as_secs());
            let _ = begun_tx.send(());
        });
        let grace_over = async move {
            match begun_rx.await {
                Ok(()) => tokio::time::sleep(grace).await,
                // The server ended by itself; the select below has already taken its branch.
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! {
            served = server => served.map_err(StartupError::Serve)?,
            () = grace_over => tracing::warn!("Grace period over; dropping the requests still in flight"),
        }
        tracing::info!("Stopped");
        Ok(())
    }
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
