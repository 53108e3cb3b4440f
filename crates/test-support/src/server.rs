//! The one way tests start the server in-process: exactly what `main` builds ([`Application::builder`]), on
//! 127.0.0.1 port 0 with a fresh instance directory, optionally with a key store plugged in, serving until the
//! test's runtime ends or until the test says stop. With `TEST_LOG=1` its log lines go to stderr.

use std::{future::Future, net::SocketAddr, sync::Arc};

use platform::observability::logs;
use rust_api_axum::{
    auth::jwks::KeyStore,
    config::Config,
    startup::{Application, StartupError},
};
use tempfile::TempDir;
use tokio::task::JoinHandle;

/// A server to start: its configuration and the parts plugged in.
#[must_use]
pub struct TestServer {
    config: Config,
    key_store: Option<Arc<dyn KeyStore>>,
    instance: TempDir,
}

/// A server serving in the test's runtime.
pub struct RunningServer {
    /// Where it listens.
    pub address: SocketAddr,
    /// Its serving task: ends with `run_until`'s result once the shutdown future given to
    /// [`TestServer::start_until`] completes.
    pub task: JoinHandle<Result<(), StartupError>>,
    /// Its instance directory (the default SQLite database lives here), removed when this is dropped.
    pub instance: TempDir,
}

impl RunningServer {
    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }
}

impl TestServer {
    /// The default configuration, on 127.0.0.1 port 0 with a fresh instance directory.
    pub fn new() -> Self {
        let instance = tempfile::TempDir::new().expect("a temp dir for the instance path");
        let mut config = Config::default();
        config.server.host = "127.0.0.1".into();
        config.server.port = 0;
        config.database.instance_path = instance.path().join("instance");
        Self { config, key_store: None, instance }
    }

    /// Changes the configuration.
    pub fn configure(mut self, adjust: impl FnOnce(&mut Config)) -> Self {
        adjust(&mut self.config);
        self
    }

    /// Verifies JWTs against `keys` instead of the provider's JWKS (see `ApplicationBuilder::key_store`).
    pub fn key_store(mut self, keys: Arc<dyn KeyStore>) -> Self {
        self.key_store = Some(keys);
        self
    }

    /// Builds the server; the error when it refuses to start.
    pub async fn build(self) -> Result<(Application, TempDir), StartupError> {
        logs::init_for_tests(&self.config.observability);
        let mut builder = Application::builder(self.config);
        if let Some(keys) = self.key_store {
            builder = builder.key_store(keys);
        }
        Ok((builder.build().await?, self.instance))
    }

    /// Starts the server, serving until the test's runtime ends.
    pub async fn start(self) -> RunningServer {
        self.start_until(std::future::pending()).await
    }

    /// Starts the server, serving until `shutdown` completes (then it drains and stops as on SIGTERM).
    pub async fn start_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> RunningServer {
        // Boxed: the start-up future is deep, and every test's future would otherwise carry its whole layout.
        let (app, instance) = Box::pin(self.build()).await.expect("the server starts");
        let address = app.local_addr();
        let task = tokio::spawn(app.run_until(shutdown));
        RunningServer { address, task, instance }
    }
}

impl Default for TestServer {
    fn default() -> Self {
        Self::new()
    }
}
