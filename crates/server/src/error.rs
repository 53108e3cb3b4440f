//! `ApiError` and the RFC 9457 problem bodies: the one place that decides which status and which words a failed
//! request gets, whether the failure came from a handler, an extractor, a panic or the framework itself.

use std::borrow::Cow;

use crate::{auth::AuthError, domain::resources::ResourceError};
use api_types::{FieldError, PROBLEM_JSON, Problem};
use axum::{
    body::Body,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

/// Every way a request can fail, as the API tells it to the caller.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Nothing is mounted at the request's path.
    #[error("No route matches {method} {path}")]
    NoRoute {
        /// The request method.
        method: String,
        /// The request path.
        path: String,
    },
    /// The request's query string or parameters are malformed or invalid.
    #[error("{detail}")]
    BadRequest {
        /// What is wrong, for a person.
        detail: String,
        /// The offending fields, when known.
        errors: Vec<FieldError>,
    },
    /// The body is not JSON (wrong or missing `Content-Type`).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The body is JSON but not what the operation takes (missing, mistyped or unknown fields, invalid values).
    #[error("{detail}")]
    Unprocessable {
        /// Summary for a person.
        detail: String,
        /// One entry per offending field.
        errors: Vec<FieldError>,
    },
    /// The caller is not authenticated, or not allowed, or the identity provider cannot tell.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A resource operation was refused or failed.
    #[error(transparent)]
    Resource(#[from] ResourceError),
    /// The caller used up its rate limit; it may try again after `retry_after_secs` (sent as `Retry-After`).
    #[error("Too many requests; try again in {retry_after_secs} s")]
    TooManyRequests {
        /// Whole seconds until the next request is let through, at least 1.
        retry_after_secs: u64,
    },
    /// The database does not answer.
    #[error("The database is unavailable; try again later")]
    DatabaseUnavailable,
    /// This replica should not get traffic now (`/readyz`): the parts that are not ready, for the operator.
    #[error("Not ready: {}", .0.join(", "))]
    NotReady(Vec<&'static str>),
    /// A bug or an unexpected failure; the cause is logged, never sent.
    #[error("internal error: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    /// A 400 about one query parameter or field.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        let (detail, errors) = one_field(field, message.into());
        Self::BadRequest { detail, errors }
    }

    /// A 422 about one field of a JSON body.
    pub fn unprocessable_field(field: &str, message: impl Into<String>) -> Self {
        let (detail, errors) = one_field(field, message.into());
        Self::Unprocessable { detail, errors }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::NoRoute { .. } => StatusCode::NOT_FOUND,
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Resource(ResourceError::NotFound(_)) => StatusCode::NOT_FOUND,
            Self::Resource(ResourceError::NotOwner(_)) => StatusCode::FORBIDDEN,
            Self::Resource(ResourceError::NameTaken { .. }) => StatusCode::CONFLICT,
            Self::Resource(ResourceError::Storage(_)) | Self::DatabaseUnavailable | Self::NotReady(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Auth(AuthError::MissingToken | AuthError::InvalidToken(..) | AuthError::NotConfigured) => {
                StatusCode::UNAUTHORIZED
            }
            Self::Auth(AuthError::InsufficientScope(_)) => StatusCode::FORBIDDEN,
            Self::Auth(AuthError::ProviderUnavailable) => StatusCode::SERVICE_UNAVAILABLE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// `field: message` for a person, and the same as the problem's one-entry `errors` list.
fn one_field(field: &str, message: String) -> (String, Vec<FieldError>) {
    (format!("{field}: {message}"), vec![FieldError { field: field.to_owned(), message }])
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let extra_header = match &self {
            Self::Auth(error) => bearer_challenge(error).map(|value| (header::WWW_AUTHENTICATE, value)),
            Self::TooManyRequests { retry_after_secs } => {
                Some((header::RETRY_AFTER, HeaderValue::from(*retry_after_secs)))
            }
            _ => None,
        };
        let draft = match self {
            Self::Internal(source) => {
                tracing::error!(error = %source, "internal error");
                ProblemDraft::generic(status, &HeaderMap::new())
            }
            Self::BadRequest { detail, errors } | Self::Unprocessable { detail, errors } => {
                ProblemDraft::new(status, detail).with_errors(errors)
            }
            Self::Resource(ResourceError::Storage(source)) => {
                // Driver text stays in the log: it can name tables, hosts and users.
                tracing::error!(error = %source, "database operation failed");
                ProblemDraft::new(status, ApiError::DatabaseUnavailable.to_string())
            }
            Self::Resource(error @ ResourceError::NameTaken { existing, .. }) => {
                let mut draft = ProblemDraft::new(status, error.to_string());
                draft.existing_id = Some(existing.get());
                draft
            }
            other => ProblemDraft::new(status, other.to_string()),
        };
        let mut response = draft.into_response();
        if let Some((name, value)) = extra_header {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

/// The RFC 6750 `WWW-Authenticate` challenge for an authentication failure (none for a provider outage).
fn bearer_challenge(error: &AuthError) -> Option<HeaderValue> {
    const REALM: &str = "Bearer realm=\"rust-api-axum\"";
    // Quoted-string values: drop the two characters that could break out of the quotes.
    let quoted = |text: &str| text.replace(['"', '\\'], "");
    let value = match error {
        AuthError::MissingToken | AuthError::NotConfigured => REALM.to_owned(),
        AuthError::InvalidToken(_, reason) => {
            format!("{REALM}, error=\"invalid_token\", error_description=\"{}\"", quoted(reason))
        }
        AuthError::InsufficientScope(scope) => {
            format!("{REALM}, error=\"insufficient_scope\", scope=\"{}\"", quoted(scope))
        }
        AuthError::ProviderUnavailable => return None,
    };
    HeaderValue::try_from(value).ok()
}

/// A problem whose `instance` and `request_id` are not known yet: handlers know what went wrong, the edge layer
/// knows where. The edge renders it with [`finalize`]; it travels as a response extension until then.
#[derive(Debug, Clone)]
pub struct ProblemDraft {
    status: StatusCode,
    detail: Cow<'static, str>,
    errors: Vec<FieldError>,
    existing_id: Option<i64>,
}

impl ProblemDraft {
    fn new(status: StatusCode, detail: impl Into<Cow<'static, str>>) -> Self {
        Self { status, detail: detail.into(), errors: Vec::new(), existing_id: None }
    }

    fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.errors = errors;
        self
    }

    /// The words for a bare status the framework or a layer produced (405, 413, a timeout, a panic).
    fn generic(status: StatusCode, headers: &HeaderMap) -> Self {
        let detail: Cow<'static, str> = match status {
            StatusCode::METHOD_NOT_ALLOWED => match headers.get(header::ALLOW).and_then(|v| v.to_str().ok()) {
                Some(allowed) => format!("This resource only allows: {allowed}").into(),
                None => "This resource does not allow the request's method".into(),
            },
            StatusCode::PAYLOAD_TOO_LARGE => "The request body is larger than this server accepts".into(),
            StatusCode::SERVICE_UNAVAILABLE => "The service could not answer in time; try again later".into(),
            StatusCode::NOT_FOUND => "Nothing is here".into(),
            status if status.is_server_error() => "The server failed to process the request".into(),
            _ => "The request cannot be processed".into(),
        };
        Self::new(status, detail)
    }
}

impl IntoResponse for ProblemDraft {
    fn into_response(self) -> Response {
        let mut response = self.status.into_response();
        response.extensions_mut().insert(self);
        response
    }
}

/// Gives every error response a problem+json body: drafts are rendered, and a bare 4xx/5xx made elsewhere (axum's
/// 405, the body limit's 413, the timeout's 503) gets one built from its status. Other responses pass untouched.
pub fn finalize(mut response: Response, instance: &str, request_id: Option<&str>) -> Response {
    let draft = match response.extensions_mut().remove::<ProblemDraft>() {
        Some(draft) => draft,
        None if is_bare_error(&response) => ProblemDraft::generic(response.status(), response.headers()),
        None => return response,
    };
    let status = draft.status;
    let problem = Problem {
        problem_type: "about:blank".into(),
        title: status.canonical_reason().unwrap_or("Error").into(),
        status: status.as_u16(),
        detail: draft.detail.into_owned(),
        instance: instance.to_owned(),
        request_id: request_id.map(str::to_owned),
        errors: draft.errors,
        existing_id: draft.existing_id,
    };
    // Serialising this plain struct cannot fail; an empty body with the right status beats a panic.
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    let (mut parts, _) = response.into_parts();
    parts.status = status;
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

fn is_bare_error(response: &Response) -> bool {
    let status = response.status();
    (status.is_client_error() || status.is_server_error())
        && response.headers().get(header::CONTENT_TYPE).map(HeaderValue::as_bytes) != Some(PROBLEM_JSON.as_bytes())
}

/// Turns a panic caught by the catch-panic layer into a 500; the panic hook in `telemetry` already logged it.
pub fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ProblemDraft::generic(StatusCode::INTERNAL_SERVER_ERROR, &HeaderMap::new()).into_response()
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    async fn problem_of(response: Response) -> (StatusCode, HeaderMap, Problem) {
        let response = finalize(response, "/where", Some("rid-1"));
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.expect("body").to_bytes();
        (parts.status, parts.headers, serde_json::from_slice(&bytes).expect("problem json"))
    }

    #[tokio::test]
    async fn api_error_renders_as_problem_json_with_instance_and_request_id() {
        let (status, headers, problem) = problem_of(ApiError::invalid_field("name", "too long").into_response()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(headers[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(problem.title, "Bad Request");
        assert_eq!(problem.detail, "name: too long");
        assert_eq!(problem.instance, "/where");
        assert_eq!(problem.request_id.as_deref(), Some("rid-1"));
        assert_eq!(problem.errors[0].field, "name");
    }

    #[tokio::test]
    async fn storage_failures_are_503_without_driver_text() {
        let error = ApiError::from(ResourceError::Storage("connection to db.internal:5432 refused for app".into()));
        let (status, _, problem) = problem_of(error.into_response()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(problem.detail, "The database is unavailable; try again later");
    }

    #[tokio::test]
    async fn a_name_clash_names_the_existing_resource() {
        use crate::domain::resources::ResourceId;
        let existing = ResourceId::parse("7").expect("id");
        let error = ApiError::from(ResourceError::NameTaken { name: "x".into(), existing });
        let (status, _, problem) = problem_of(error.into_response()).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(problem.existing_id, Some(7));
        assert!(problem.detail.contains("id 7"), "{}", problem.detail);
    }

    #[tokio::test]
    async fn internal_error_never_leaks_its_cause() {
        let error = ApiError::Internal("password=hunter2 at db.internal:5432".into());
        let (status, _, problem) = problem_of(error.into_response()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!problem.detail.contains("hunter2"), "{}", problem.detail);
    }

    #[tokio::test]
    async fn bare_framework_405_keeps_allow_and_gets_a_body() {
        let response = (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "GET,HEAD")]).into_response();
        let (status, headers, problem) = problem_of(response).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(headers[header::ALLOW], "GET,HEAD");
        assert!(problem.detail.contains("GET,HEAD"), "{}", problem.detail);
    }

    #[tokio::test]
    async fn text_error_from_a_layer_is_replaced() {
        let response = (StatusCode::PAYLOAD_TOO_LARGE, "length limit exceeded").into_response();
        let (status, headers, problem) = problem_of(response).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(headers[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(problem.status, 413);
    }

    #[tokio::test]
    async fn auth_failures_carry_their_rfc_6750_challenge() {
        let cases = [
            (AuthError::MissingToken, 401, Some("Bearer realm=\"rust-api-axum\"")),
            (
                AuthError::invalid(crate::auth::Rejection::Expired, "The access token expired"),
                401,
                Some(
                    "Bearer realm=\"rust-api-axum\", error=\"invalid_token\", error_description=\"The access token expired\"",
                ),
            ),
            (
                AuthError::InsufficientScope("write".into()),
                403,
                Some("Bearer realm=\"rust-api-axum\", error=\"insufficient_scope\", scope=\"write\""),
            ),
            (AuthError::NotConfigured, 401, Some("Bearer realm=\"rust-api-axum\"")),
            (AuthError::ProviderUnavailable, 503, None),
        ];
        for (error, status, challenge) in cases {
            let (actual, headers, problem) = problem_of(ApiError::from(error.clone()).into_response()).await;
            assert_eq!(actual.as_u16(), status, "{error:?}");
            assert_eq!(problem.status, status);
            assert_eq!(
                headers.get(header::WWW_AUTHENTICATE).map(|v| v.to_str().expect("text")),
                challenge,
                "{error:?}"
            );
        }
    }

    #[tokio::test]
    async fn rate_limited_callers_get_429_with_retry_after() {
        let (status, headers, problem) =
            problem_of(ApiError::TooManyRequests { retry_after_secs: 3 }.into_response()).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers[header::RETRY_AFTER], "3");
        assert_eq!((problem.status, problem.title.as_str()), (429, "Too Many Requests"));
        assert_eq!(problem.detail, "Too many requests; try again in 3 s");
    }

    #[test]
    fn success_passes_untouched() {
        let response = finalize((StatusCode::OK, "fine").into_response(), "/", None);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "text/plain; charset=utf-8");
    }
}
