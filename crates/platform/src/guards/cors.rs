//! CORS for browser pages on other origins: tower-http's `CorsLayer`, built from `cors_allowed_origins` and
//! installed only when that list is not empty. A configuration the Fetch standard would not honour is refused at
//! start instead of failing quietly in browsers.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::GuardConfigError;
use crate::edge::REQUEST_ID_HEADER;

/// How long browsers may cache a preflight answer (Chromium caps it at two hours, Firefox at one day).
pub const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// The methods the APIs use.
const METHODS: [Method; 5] = [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE];

/// The CORS layer for `origins`, or `None` when the list is empty (CORS off, no cost). `"*"` alone allows every
/// origin, which the Fetch standard forbids together with credentials.
pub fn layer(origins: &[String], allow_credentials: bool) -> Result<Option<CorsLayer>, GuardConfigError> {
    if origins.is_empty() {
        return Ok(None);
    }
    let allow_origin = if origins.iter().any(|origin| origin == "*") {
        if origins.len() > 1 {
            return Err(GuardConfigError::Cors("\"*\" allows every origin; list no others beside it".into()));
        }
        if allow_credentials {
            return Err(GuardConfigError::Cors(
                "\"*\" cannot be combined with cors_allow_credentials; list the origins instead".into(),
            ));
        }
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().map(|origin| parse_origin(origin)).collect::<Result<Vec<_>, _>>()?)
    };
    let request_headers: [HeaderName; 3] = [header::AUTHORIZATION, header::CONTENT_TYPE, REQUEST_ID_HEADER.clone()];
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods(METHODS)
            .allow_headers(request_headers)
            .expose_headers([REQUEST_ID_HEADER.clone(), header::RETRY_AFTER])
            .allow_credentials(allow_credentials)
            .max_age(PREFLIGHT_MAX_AGE),
    ))
}

/// One origin exactly as browsers send it in `Origin` (`https://app.example.com`, default port omitted, no path):
/// the comparison is byte for byte, so a near miss (`https://app.example.com/`) would never match.
fn parse_origin(origin: &str) -> Result<HeaderValue, GuardConfigError> {
    let refuse = |why: String| GuardConfigError::Cors(format!("\"{origin}\" is not an origin: {why}"));
    let url = url::Url::parse(origin).map_err(|error| refuse(error.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(refuse("only http and https origins exist for pages".into()));
    }
    let canonical = url.origin().ascii_serialization();
    if canonical != origin {
        return Err(refuse(format!("write it as {canonical}")));
    }
    HeaderValue::try_from(canonical).map_err(|error| refuse(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins(list: &[&str]) -> Vec<String> {
        list.iter().map(|origin| (*origin).to_owned()).collect()
    }

    fn refusal(list: &[&str], credentials: bool) -> String {
        layer(&origins(list), credentials).expect_err("refused").to_string()
    }

    #[test]
    fn no_origins_means_no_layer() {
        assert!(layer(&[], false).expect("valid").is_none());
    }

    #[test]
    fn origins_and_the_lone_wildcard_are_accepted() {
        assert!(layer(&origins(&["https://app.example.com", "http://localhost:3000"]), true).expect("valid").is_some());
        assert!(layer(&origins(&["*"]), false).expect("valid").is_some());
    }

    #[test]
    fn bad_origins_are_refused_with_the_fix() {
        let error = refusal(&["https://app.example.com/"], false);
        assert!(
            error.contains("cors_allowed_origins") && error.contains("write it as https://app.example.com"),
            "{error}"
        );
        assert!(refusal(&["https://App.example.com"], false).contains("https://app.example.com"));
        assert!(refusal(&["https://app.example.com:443"], false).contains("write it as https://app.example.com"));
        assert!(refusal(&["app.example.com"], false).contains("not an origin"));
        assert!(refusal(&["ftp://app.example.com"], false).contains("http and https"));
    }

    #[test]
    fn the_wildcard_stands_alone_and_without_credentials() {
        assert!(refusal(&["*"], true).contains("cors_allow_credentials"));
        assert!(refusal(&["*", "https://app.example.com"], false).contains("no others"));
    }
}
