//! The one HTTP client for the provider and the API: bounded timeouts, the optional extra CA bundle, and a send
//! function that logs each request under `-d` without ever logging a credential.

use std::{path::Path, time::Duration};

pub use http_client::ClientError;

/// A client with 10 s to connect and 30 s per call, trusting the system's roots plus `ca_cert`.
pub fn client(ca_cert: Option<&Path>) -> Result<reqwest::Client, ClientError> {
    http_client::build(http_client::Settings {
        user_agent: format!("rust-api-axum-client/{}", api_types::VERSION),
        connect_timeout: Duration::from_secs(10),
        timeout: Duration::from_secs(30),
        ca_cert,
    })
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
