//! The HTTP client for every call to the OpenID provider: bounded timeouts, the optional extra CA bundle, and the
//! adapter that lets the `oauth2` crate send its requests through it.

use std::{future::Future, path::Path, pin::Pin, sync::Once, time::Duration};

/// Installs ring as rustls' process-wide crypto provider; reqwest refuses to build a client without one.
/// Idempotent, so the server, the tests and the client can all call it.
pub fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Err only means another provider is already installed, which is just as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Why the provider client could not be built.
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

/// A client for the provider: 5 s to connect, 10 s per call, the system's roots plus `ca_cert`.
pub fn provider_client(ca_cert: Option<&Path>) -> Result<reqwest::Client, ClientError> {
    install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .user_agent(concat!("rust-api-axum/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = ca_cert {
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

/// Lets the `oauth2` crate send its requests through our client, so they share its timeouts and trust roots.
#[derive(Clone)]
pub struct OAuth2Http(pub reqwest::Client);

impl<'c> oauth2::AsyncHttpClient<'c> for OAuth2Http {
    type Error = reqwest::Error;
    type Future = Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, Self::Error>> + Send + 'c>>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let response =
                self.0.request(parts.method, parts.uri.to_string()).headers(parts.headers).body(body).send().await?;
            let mut builder = http::Response::builder().status(response.status());
            if let Some(headers) = builder.headers_mut() {
                headers.extend(response.headers().clone());
            }
            let body = response.bytes().await?.to_vec();
            // The builder only fails on invalid parts, and these came from a valid response.
            Ok(builder.body(body).unwrap_or_default())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_bundle_without_certificates_is_refused() {
        let dir = tempfile::TempDir::new().expect("temp dir");
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "not a certificate").expect("write");
        let error = provider_client(Some(&path)).expect_err("refused").to_string();
        assert!(error.contains("empty.pem"), "{error}");
        assert!(provider_client(Some(&dir.path().join("absent.pem"))).is_err());
    }

    #[test]
    fn a_client_without_extra_roots_builds() {
        assert!(provider_client(None).is_ok());
    }
}
