//! The HTTP client for every call to the OpenID provider, bounded every way a provider can misbehave: one timeout
//! per call, no redirects (reqwest re-sends a body on 307/308, and an introspection body carries the token), answers
//! read up to [`MAX_ANSWER_BYTES`], and at most `provider_max_in_flight` calls at once, so a provider that accepts
//! connections and never answers cannot gather every request of the server behind it. Also the span each call is
//! traced in, and the adapter that lets the `oauth2` crate send its requests through it.

use std::{future::Future, path::Path, pin::Pin, sync::Arc, time::Duration};

pub use http_client::{ClientError, install_crypto_provider};

use platform::observability::traces::{self, ChildSpan, KeyValue};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Largest answer read from the provider: a JWKS of a few dozen keys or a discovery document is a few KiB, so a
/// megabyte is generous, and a provider (or something in its place) sending more cannot fill the server's memory.
pub const MAX_ANSWER_BYTES: usize = 1 << 20;

/// How long a call waits for a place among the calls in flight before the request gets a 503: short, because a
/// full set of places means the provider is slow for everyone.
pub const WAIT_FOR_PLACE: Duration = Duration::from_millis(250);

/// A client for the provider: `timeout` per call (connecting at most 5 s of it), no redirects, the system's roots
/// plus `ca_cert`. `doctor` uses it as it is; the verifier wraps it in a [`ProviderClient`].
pub fn provider_client(ca_cert: Option<&Path>, timeout: Duration) -> Result<reqwest::Client, ClientError> {
    http_client::build(http_client::Settings {
        user_agent: format!("{}/{}", crate::SERVICE.name, crate::SERVICE.version),
        connect_timeout: timeout.min(Duration::from_secs(5)),
        timeout,
        ca_cert,
    })
}

/// Why a call to the provider gave nothing usable; the text names no token or secret.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Every place for a call in flight stayed taken for [`WAIT_FOR_PLACE`].
    #[error("{0} calls to the provider are in flight already")]
    Busy(usize),
    /// No answer, or an error status.
    #[error("{0}")]
    Http(#[source] reqwest::Error),
    /// The answer was longer than [`MAX_ANSWER_BYTES`].
    #[error("the answer is longer than {MAX_ANSWER_BYTES} bytes")]
    TooLarge,
    /// The answer was not the JSON expected.
    #[error("the answer is not the JSON expected: {0}")]
    Json(#[source] serde_json::Error),
}

/// A JSON document from the provider, and how long the provider says it may be kept (`Cache-Control: max-age`).
pub struct Fetched<T> {
    /// The document.
    pub value: T,
    /// `max-age` of the answer's `Cache-Control`, when it has one.
    pub max_age: Option<Duration>,
}

/// The provider client with its bound on calls in flight; cheap to clone (the places are shared).
#[derive(Clone)]
pub struct ProviderClient {
    http: reqwest::Client,
    places: Arc<Semaphore>,
    max_in_flight: usize,
}

impl ProviderClient {
    /// `http` with at most `max_in_flight` calls at once.
    pub fn new(http: reqwest::Client, max_in_flight: usize) -> Self {
        let max_in_flight = max_in_flight.max(1);
        Self { http, places: Arc::new(Semaphore::new(max_in_flight)), max_in_flight }
    }

    /// A place for one call, or [`CallError::Busy`] after [`WAIT_FOR_PLACE`].
    async fn place(&self) -> Result<OwnedSemaphorePermit, CallError> {
        match tokio::time::timeout(WAIT_FOR_PLACE, self.places.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed; either way there is no place.
            _ => Err(CallError::Busy(self.max_in_flight)),
        }
    }

    /// GETs the provider's JSON document at `url` inside a `GET {purpose}` span of the current request (JWKS,
    /// discovery), so every fetch from the provider is bounded and traced the same way.
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        purpose: &'static str,
    ) -> Result<Fetched<T>, CallError> {
        let _place = self.place().await?;
        let span = provider_span("GET", purpose, url);
        let fetched = async {
            let answer = self.http.get(url).send().await.and_then(reqwest::Response::error_for_status);
            let answer = answer.map_err(CallError::Http)?;
            let max_age = max_age(answer.headers());
            let body = read_capped(answer).await?;
            let value = serde_json::from_slice(&body).map_err(CallError::Json)?;
            Ok(Fetched { value, max_age })
        }
        .await;
        let status = match &fetched {
            Ok(_) => Some(200),
            Err(CallError::Http(error)) => error.status().map(|status| status.as_u16()),
            Err(_) => None,
        };
        span.finish_http(fetched.is_ok(), status);
        fetched
    }

    /// The adapter the `oauth2` crate sends its requests through (introspection), with the same bounds.
    pub fn for_oauth2(&self) -> OAuth2Http {
        OAuth2Http(self.clone())
    }
}

/// The body of `answer`, refused beyond [`MAX_ANSWER_BYTES`] whatever `Content-Length` says (a chunked answer
/// has none), without reading more than that.
async fn read_capped(mut answer: reqwest::Response) -> Result<Vec<u8>, CallError> {
    if answer.content_length().is_some_and(|length| length > MAX_ANSWER_BYTES as u64) {
        return Err(CallError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = answer.chunk().await.map_err(CallError::Http)? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(CallError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `max-age` of a `Cache-Control` header (`no-store` and `no-cache` count as 0).
fn max_age(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::CACHE_CONTROL)?.to_str().ok()?;
    value.split(',').map(str::trim).find_map(|directive| {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(Duration::ZERO);
        }
        let seconds = lower.strip_prefix("max-age=")?.trim_matches('"').parse::<u64>().ok()?;
        Some(Duration::from_secs(seconds))
    })
}

/// A CLIENT span for a call to the OpenID provider of the current request, named `{method} {purpose}`
/// (`GET jwks`), with the OTel HTTP client attributes; `url.full` without query, fragment or credentials, which
/// may carry secrets.
pub(crate) fn provider_span(method: &'static str, purpose: &'static str, url: &str) -> ChildSpan {
    traces::client_span(
        || format!("{method} {purpose}"),
        || {
            let mut attributes = vec![KeyValue::new("http.request.method", method)];
            if let Ok(mut parsed) = url::Url::parse(url) {
                if let Some(host) = parsed.host_str() {
                    attributes.push(KeyValue::new("server.address", host.to_owned()));
                }
                if let Some(port) = parsed.port_or_known_default() {
                    attributes.push(KeyValue::new("server.port", i64::from(port)));
                }
                parsed.set_query(None);
                parsed.set_fragment(None);
                // Credentials in the URL must not reach the collector either.
                let _ = parsed.set_password(None);
                let _ = parsed.set_username("");
                attributes.push(KeyValue::new("url.full", String::from(parsed)));
            }
            attributes
        },
    )
}

/// Lets the `oauth2` crate send its requests through our client, so they share its timeouts, trust roots, answer
/// cap and places in flight.
#[derive(Clone)]
pub struct OAuth2Http(ProviderClient);

/// What the `oauth2` adapter fails with: our [`CallError`], which implements `std::error::Error` as it needs.
impl<'c> oauth2::AsyncHttpClient<'c> for OAuth2Http {
    type Error = CallError;
    type Future = Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, Self::Error>> + Send + 'c>>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(async move {
            let _place = self.0.place().await?;
            let (parts, body) = request.into_parts();
            let response = self
                .0
                .http
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(CallError::Http)?;
            let mut builder = http::Response::builder().status(response.status());
            if let Some(headers) = builder.headers_mut() {
                headers.extend(response.headers().clone());
            }
            let body = read_capped(response).await?;
            // The builder only fails on invalid parts, and these came from a valid response.
            Ok(builder.body(body).unwrap_or_default())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_max_age_is_read_and_no_store_means_zero() {
        let with = |value: &str| {
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert(reqwest::header::CACHE_CONTROL, value.parse().expect("header"));
            max_age(&headers)
        };
        assert_eq!(with("public, max-age=120"), Some(Duration::from_secs(120)));
        assert_eq!(with("Max-Age=\"7\""), Some(Duration::from_secs(7)));
        assert_eq!(with("no-store"), Some(Duration::ZERO));
        assert_eq!(with("public"), None);
        assert_eq!(max_age(&reqwest::header::HeaderMap::new()), None);
    }
}
