//! `ApiError`: what a handler or an extractor returns when a request fails. It holds the request-level failures
//! (a malformed query, a body that does not fit, an unexpected error) itself, and any other room's error that
//! implements the platform's [`HttpError`] (authentication, a domain's store), so each kind of failure says its
//! own status and words beside the code that raises it, and a new entity never edits this file. The edge renders
//! every one as problem+json. `responses` declares the problem answers many operations share, for the OpenAPI
//! document.

pub mod responses;

use axum::{
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
pub use platform::problem::{FieldError, HttpError, ProblemDraft};
use platform::problem::{reflect, reflect_within};

/// Every way a request can fail, as the API tells it to the caller.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
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
        /// What is wrong, for a person.
        detail: String,
        /// The offending fields.
        errors: Vec<FieldError>,
    },
    /// The database does not answer.
    #[error("The database is unavailable; try again later")]
    DatabaseUnavailable,
    /// A bug or an unexpected failure; the cause is logged, never sent.
    #[error("internal error: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A failure of another room that knows its own answer (authentication, a domain's store).
    #[error("{0}")]
    Domain(Box<dyn HttpError>),
}

/// Any room's error converts with `?`: it knows its own answer.
impl<E: HttpError> From<E> for ApiError {
    fn from(error: E) -> Self {
        Self::Domain(Box::new(error))
    }
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

    /// The problem this error answers with; an internal error's cause goes to the log here.
    fn into_problem(self) -> ProblemDraft {
        match self {
            Self::BadRequest { detail, errors } => {
                ProblemDraft::new(StatusCode::BAD_REQUEST, detail).with_errors(errors)
            }
            Self::Unprocessable { detail, errors } => {
                ProblemDraft::new(StatusCode::UNPROCESSABLE_ENTITY, detail).with_errors(errors)
            }
            Self::UnsupportedMediaType(detail) => ProblemDraft::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, detail),
            error @ Self::DatabaseUnavailable => ProblemDraft::new(StatusCode::SERVICE_UNAVAILABLE, error.to_string()),
            Self::Internal(source) => {
                tracing::error!(error = %source, "internal error");
                ProblemDraft::generic(StatusCode::INTERNAL_SERVER_ERROR, &HeaderMap::new())
            }
            Self::Domain(error) => error.problem(),
        }
    }
}

/// `field: message` for a person, and the same as the problem's one-entry `errors` list.
fn one_field(field: &str, message: String) -> (String, Vec<FieldError>) {
    // The field may be a caller's key and the message may quote the caller's value.
    let (field, message) = (reflect(field).into_owned(), reflect_within(&message).into_owned());
    (format!("{field}: {message}"), vec![FieldError { field, message }])
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.into_problem().into_response()
    }
}

#[cfg(test)]
mod tests {
    use api_types::{PROBLEM_JSON, Problem};
    use axum::http::header;
    use http_body_util::BodyExt;

    use super::*;

    async fn problem_of(error: ApiError) -> (StatusCode, HeaderMap, Problem) {
        let response = platform::problem::finalize(error.into_response(), "/where", Some("rid-1"));
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.expect("body").to_bytes();
        (parts.status, parts.headers, serde_json::from_slice(&bytes).expect("problem json"))
    }

    #[tokio::test]
    async fn api_error_renders_as_the_documented_problem_with_instance_and_request_id() {
        let (status, headers, problem) = problem_of(ApiError::invalid_field("name", "too long")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(headers[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(problem.title, "Bad Request");
        assert_eq!(problem.detail, "name: too long");
        assert_eq!(problem.instance, "/where");
        assert_eq!(problem.request_id.as_deref(), Some("rid-1"));
        assert_eq!(problem.errors[0].field, "name");
    }

    #[tokio::test]
    async fn internal_error_never_leaks_its_cause() {
        let (status, _, problem) = problem_of(ApiError::Internal("password=hunter2 at db.internal:5432".into())).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!problem.detail.contains("hunter2"), "{}", problem.detail);
    }

    #[derive(Debug, thiserror::Error)]
    #[error("teapot")]
    struct Teapot;

    impl HttpError for Teapot {
        fn problem(&self) -> ProblemDraft {
            ProblemDraft::new(StatusCode::IM_A_TEAPOT, "I am a teapot").with_member("spout", 1)
        }
    }

    #[tokio::test]
    async fn another_room_s_error_answers_with_its_own_status_and_words() {
        fn brew() -> Result<(), Teapot> {
            Err(Teapot)
        }
        let error = (|| -> Result<(), ApiError> { Ok(brew()?) })().expect_err("converted with ?");
        let (status, _, problem) = problem_of(error).await;
        assert_eq!((status.as_u16(), problem.detail.as_str()), (418, "I am a teapot"));
    }
}
