//! The HTTP client for every call to the OpenID provider: bounded timeouts, the optional extra CA bundle, the span
//! each call is traced in, and the adapter that lets the `oauth2` crate send its requests through it.

use std::{future::Future, path::Path, pin::Pin, time::Duration};

pub use http_client::{ClientError, install_crypto_provider};

use platform::observability::traces::{self, ChildSpan, KeyValue};

/// A client for the provider: 5 s to connect, 10 s per call, the system's roots plus `ca_cert`.
pub fn provider_client(ca_cert: Option<&Path>) -> Result<reqwest::Client, ClientError> {
    http_client::build(http_client::Settings {
        user_agent: format!("{}/{}", crate::SERVICE.name, crate::SERVICE.version),
        connect_timeout: Duration::from_secs(5),
        timeout: Duration::from_secs(10),
        ca_cert,
    })
}

/// GETs the provider's JSON document at `url` inside a `GET {purpose}` span of the current request (JWKS,
/// discovery), so every fetch from the provider is traced the same way.
pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
    purpose: &'static str,
) -> Result<T, reqwest::Error> {
    let span = provider_span("GET", purpose, url);
    let fetched = async { client.get(url).send().await?.error_for_status()?.json().await }.await;
    span.finish_http(fetched.is_ok(), status_of(&fetched));
    fetched
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

/// The status of a failed reqwest call's answer (`error_for_status`), or 200 for a success; `None` when no answer
/// came (connection refused, timeout) or it was not decodable.
pub(crate) fn status_of<T>(outcome: &Result<T, reqwest::Error>) -> Option<u16> {
    match outcome {
        Ok(_) => Some(200),
        Err(error) => error.status().map(|status| status.as_u16()),
    }
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
