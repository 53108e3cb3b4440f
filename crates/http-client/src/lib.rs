//! The outbound HTTP client both binaries use (the server to reach the OpenID provider, the client CLI to reach
//! the provider and the API): one crypto provider (ring), bounded timeouts, and an optional PEM bundle of extra
//! CA certificates for services behind a private CA. One implementation, so a fix to trust handling lands in both.
//! It follows no redirects: on a 307 or 308 reqwest would send the request body again, to wherever the answer
//! points, and the bodies these clients send carry tokens and client secrets.

use std::{path::Path, sync::Once, time::Duration};

/// Installs ring as rustls' process-wide crypto provider; reqwest refuses to build a client without one.
/// Idempotent, so every caller (and every test) can call it.
pub fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Err only means another provider is already installed, which is just as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Why the HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The CA bundle cannot be read or holds no certificate.
    #[error("cannot use CA certificate bundle {path}: {reason}")]
    CaBundle {
        /// The configured bundle.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// reqwest could not build its client.
    #[error("cannot build the HTTP client: {0}")]
    Build(#[source] reqwest::Error),
}

/// How the client behaves.
#[derive(Debug, Clone)]
pub struct Settings<'a> {
    /// Sent as `User-Agent`: `product/version`, with the release version (`api_types::VERSION`).
    pub user_agent: String,
    /// Longest wait for a connection.
    pub connect_timeout: Duration,
    /// Longest wait for a whole call.
    pub timeout: Duration,
    /// PEM bundle trusted in addition to the system's roots.
    pub ca_cert: Option<&'a Path>,
}

/// A client as `settings` describe.
pub fn build(settings: Settings<'_>) -> Result<reqwest::Client, ClientError> {
    install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .connect_timeout(settings.connect_timeout)
        .timeout(settings.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(settings.user_agent);
    if let Some(path) = settings.ca_cert {
        let error = |reason: String| ClientError::CaBundle { path: path.display().to_string(), reason };
        let pem = std::fs::read(path).map_err(|e| error(e.to_string()))?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| error(e.to_string()))?;
        if certificates.is_empty() {
            return Err(error("no PEM certificate in the file".to_owned()));
        }
        builder = builder.tls_certs_merge(certificates);
    }
    builder.build().map_err(ClientError::Build)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(ca_cert: Option<&Path>) -> Settings<'_> {
        Settings {
            user_agent: "test".to_owned(),
            connect_timeout: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            ca_cert,
        }
    }

    #[test]
    fn a_ca_bundle_without_certificates_or_missing_is_refused_naming_the_file() {
        let dir = tempfile::TempDir::new().expect("temp dir");
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "not a certificate").expect("write");
        let error = build(settings(Some(&path))).expect_err("refused").to_string();
        assert!(error.contains("empty.pem"), "{error}");
        let absent = dir.path().join("absent.pem");
        assert!(build(settings(Some(&absent))).expect_err("refused").to_string().contains("absent.pem"));
    }

    #[test]
    fn a_client_without_extra_roots_builds() {
        assert!(build(settings(None)).is_ok());
    }
}
