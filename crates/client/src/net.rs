//! The one HTTP client for the provider and the API: bounded timeouts, the optional extra CA bundle, and a send
//! function that logs each request under `-d` without ever logging a credential.

use std::{path::Path, sync::Once, time::Duration};

/// Installs ring as rustls' process-wide crypto provider; reqwest refuses to build a client without one.
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

/// A client with 10 s to connect and 30 s per call, trusting the system's roots plus `ca_cert`.
pub fn client(ca_cert: Option<&Path>) -> Result<reqwest::Client, ClientError> {
    install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("rust-api-axum-client/", env!("CARGO_PKG_VERSION")));
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

/// Sends `request`, logging its method, URL, status and duration at debug level. Headers and bodies are never
/// logged here (they carry tokens); callers log form fields through [`describe_form`].
pub async fn send(
    http: &reqwest::Client,
    request: reqwest::RequestBuilder,
) -> Result<reqwest::Response, reqwest::Error> {
    let request = request.build()?;
    let (method, url) = (request.method().clone(), request.url().clone());
    let started = std::time::Instant::now();
    tracing::debug!("{method} {url}");
    let outcome = http.execute(request).await;
    match &outcome {
        Ok(response) => {
            tracing::debug!("{method} {url} -> {} in {} ms", response.status(), started.elapsed().as_millis())
        }
        Err(error) => {
            tracing::debug!("{method} {url} failed after {} ms: {}", started.elapsed().as_millis(), reason(error))
        }
    }
    outcome
}

/// Form fields whose values are credentials.
const SECRET_FIELDS: [&str; 6] = ["client_secret", "device_code", "refresh_token", "token", "code", "password"];

/// `name=value` pairs for the debug log, with every credential replaced by `<redacted>`.
pub fn describe_form(form: &[(&str, String)]) -> String {
    form.iter()
        .map(|(name, value)| {
            let shown = if SECRET_FIELDS.contains(name) { "<redacted>" } else { value.as_str() };
            format!("{name}={shown}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A short reason for a failed request, for people: the innermost cause ("Connection refused") instead of
/// reqwest's nested wrapper text.
pub fn reason(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "the request timed out".to_owned();
    }
    let mut innermost: &dyn std::error::Error = error;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    let cause = innermost.to_string();
    if error.is_connect() { format!("cannot connect ({cause})") } else { cause }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_reach_the_debug_log() {
        let form = [
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", "rt-123".to_owned()),
            ("client_id", "cli".to_owned()),
            ("client_secret", "s".to_owned()),
        ];
        assert_eq!(
            describe_form(&form),
            "grant_type=refresh_token refresh_token=<redacted> client_id=cli client_secret=<redacted>"
        );
    }

    #[test]
    fn a_ca_bundle_without_certificates_is_refused() {
        let dir = tempfile::TempDir::new().expect("temp dir");
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "not a certificate").expect("write");
        let error = client(Some(&path)).expect_err("refused").to_string();
        assert!(error.contains("empty.pem"), "{error}");
        assert!(client(Some(&dir.path().join("absent.pem"))).is_err());
        assert!(client(None).is_ok());
    }

    #[tokio::test]
    async fn a_refused_connection_is_described_in_a_few_words() {
        let http = client(None).expect("client");
        // Port 9 (discard) is closed on loopback in any sane test environment.
        let error = send(&http, http.get("http://127.0.0.1:9/")).await.expect_err("refused");
        let text = reason(&error);
        assert!(text.starts_with("cannot connect ("), "{text}");
    }
}
