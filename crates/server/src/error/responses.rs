//! Problem responses many operations share, declared once for the OpenAPI document.

use api_types::Problem;
use utoipa::IntoResponses;

/// Failures of any operation that reads with the read scope.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum ReadAccessProblems {
    /// No, a malformed, an expired or a foreign bearer token; see `WWW-Authenticate`.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// The token lacks the read scope.
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
    /// The database or the identity provider is unavailable.
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(Problem),
    /// Any other failure.
    #[response(status = "default", content_type = "application/problem+json")]
    Other(Problem),
}

/// Failures of any operation that changes resources with the write scope.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum WriteAccessProblems {
    /// No, a malformed, an expired or a foreign bearer token; see `WWW-Authenticate`.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// The token lacks the write scope, or the resource belongs to someone else.
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
    /// The database or the identity provider is unavailable.
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(Problem),
    /// Any other failure.
    #[response(status = "default", content_type = "application/problem+json")]
    Other(Problem),
}

/// Failures of a JSON request body.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum BodyProblems {
    /// The body is not valid JSON or is nested deeper than 127 levels (or the id is not a positive integer).
    #[response(status = 400, content_type = "application/problem+json")]
    Malformed(Problem),
    /// The body is larger than `max_body_bytes` (1 MiB unless configured).
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(Problem),
    /// The body is not declared as JSON.
    #[response(status = 415, content_type = "application/problem+json")]
    NotJson(Problem),
    /// The body does not fit: `errors` lists each field.
    #[response(status = 422, content_type = "application/problem+json")]
    Invalid(Problem),
}
