//! The real test OpenID provider, shared with the client's tests (crate `test-support`), and a server
//! configured against it.

use rust_api_axum::config::Config;
use tempfile::TempDir;
pub use test_support::idp::*;

use crate::helpers::{TestApp, spawn_app_with};

/// A fresh provider and the real server configured against it, plus `adjust`; the directory holds the
/// `client_secrets.json` the server reads, so keep it alive as long as the server.
pub async fn spawn_app_with_idp(adjust: impl FnOnce(&mut Config)) -> (TestIdp, TestApp, TempDir) {
    let idp = TestIdp::start().await;
    let dir = TempDir::new().expect("temp dir");
    let secrets = idp.write_client_secrets(dir.path());
    let app = spawn_app_with(|config| {
        config.auth.oidc_client_secrets = Some(secrets);
        adjust(config);
    })
    .await;
    (idp, app, dir)
}
