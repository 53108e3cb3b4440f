//! OpenID Connect discovery: the endpoints the device flow, refresh and logout need, read from the provider's
//! metadata document once per run, and only when a provider call is actually needed.

use serde::Deserialize;
use url::Url;

use super::AuthError;
use crate::net;

/// The members of the provider metadata the client uses (RFC 8414 / OpenID Connect Discovery).
#[derive(Debug, Deserialize)]
struct Metadata {
    device_authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
    revocation_endpoint: Option<String>,
    token_endpoint_auth_methods_supported: Option<Vec<String>>,
}

/// The provider's endpoints, checked.
#[derive(Debug, Clone)]
pub struct Provider {
    /// Where device logins start (RFC 8628).
    pub device_authorization_endpoint: Url,
    /// Where tokens are polled for and refreshed.
    pub token_endpoint: Url,
    /// Where tokens are revoked (RFC 7009), when the provider offers it.
    pub revocation_endpoint: Option<Url>,
    /// How confidential clients may authenticate, when the provider says.
    pub auth_methods: Option<Vec<String>>,
}

/// Fetches and checks the metadata document at `url`.
pub async fn discover(http: &reqwest::Client, url: &Url) -> Result<Provider, AuthError> {
    let failed = |reason: String| AuthError::Discovery { url: url.to_string(), reason };
    let response = net::send(http, http.get(url.clone()).header("accept", "application/json"))
        .await
        .map_err(|error| failed(net::reason(&error)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(failed(format!("HTTP {status}")));
    }
    let body = response.bytes().await.map_err(|error| failed(net::reason(&error)))?;
    let metadata: Metadata = serde_json::from_slice(&body)
        .map_err(|error| failed(format!("the answer is not provider metadata ({error})")))?;
    parse(url, metadata)
}

fn parse(url: &Url, metadata: Metadata) -> Result<Provider, AuthError> {
    let endpoint = |value: Option<String>, field: &'static str| -> Result<Url, AuthError> {
        let value = value.ok_or(AuthError::MissingEndpoint { url: url.to_string(), field })?;
        Url::parse(&value).map_err(|error| AuthError::Discovery {
            url: url.to_string(),
            reason: format!("{field} {value:?} is not a URL ({error})"),
        })
    };
    Ok(Provider {
        device_authorization_endpoint: endpoint(
            metadata.device_authorization_endpoint,
            "device_authorization_endpoint",
        )?,
        token_endpoint: endpoint(metadata.token_endpoint, "token_endpoint")?,
        revocation_endpoint: metadata
            .revocation_endpoint
            .map(|v| endpoint(Some(v), "revocation_endpoint"))
            .transpose()?,
        auth_methods: metadata.token_endpoint_auth_methods_supported,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(json: &str) -> Metadata {
        serde_json::from_str(json).expect("metadata JSON")
    }

    #[test]
    fn both_device_flow_endpoints_are_required() {
        let url = Url::parse("https://idp/.well-known/openid-configuration").expect("url");
        let error = parse(&url, metadata(r#"{"token_endpoint": "https://idp/token"}"#)).expect_err("no device");
        assert_eq!(
            error.to_string(),
            "the OpenID provider at https://idp/.well-known/openid-configuration does not offer the device \
             authorization grant: its metadata has no device_authorization_endpoint"
        );
        let error =
            parse(&url, metadata(r#"{"device_authorization_endpoint": "https://idp/device"}"#)).expect_err("no token");
        assert!(error.to_string().ends_with("no token_endpoint"), "{error}");
        let provider = parse(
            &url,
            metadata(
                r#"{"device_authorization_endpoint": "https://idp/device", "token_endpoint": "https://idp/token",
                    "revocation_endpoint": "https://idp/revoke", "issuer": "https://idp"}"#,
            ),
        )
        .expect("complete");
        assert_eq!(provider.revocation_endpoint.map(String::from).as_deref(), Some("https://idp/revoke"));
    }
}
