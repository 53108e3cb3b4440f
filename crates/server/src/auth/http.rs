//! The HTTP client for every call to the OpenID provider: bounded timeouts, the optional extra CA bundle, and the
//! adapter that lets the `oauth2` crate send its requests through it.

use std::{future::Future, path::Path, pin::Pin, time::Duration};

pub use http_client::{ClientError, install_crypto_provider};

use crate::ops::traces;

/// A client for the provider: 5 s to connect, 10 s per call, the system's roots plus `ca_cert`.
pub fn provider_client(ca_cert: Option<&Path>) -> Result<reqwest::Client, ClientError> {
    http_client::build(http_client::Settings {
        user_agent: format!("rust-api-axum/{}", crate::VERSION),
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
    let span = traces::provider_span("GET", purpose, url);
    let fetched = async { client.get(url).send().await?.error_for_status()?.json().await }.await;
    span.finish_http(fetched.is_ok(), traces::status_of(&fetched));
    fetched
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
