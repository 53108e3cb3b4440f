//! Request and response bodies of the rust-api-axum HTTP API, shared by the server and its client so the two can
//! never disagree about a shape.
//!
//! Only plain data lives here: no validation rules, no HTTP framework types. The server's domain layer parses
//! these into validated types; the client deserialises them as they arrive.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub mod whole_number;

/// Media type of every error body, per RFC 9457.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The release version of the server and its client, which are released together: `APP_VERSION` at build time
/// (the build orchestrator decides releases), else a dev marker. Both `--version`s, the OpenAPI document, the
/// `build_info` metric and both `User-Agent`s say this, never the manifests' `0.0.0`.
pub const VERSION: &str = match option_env!("APP_VERSION") {
    Some(version) => version,
    None => "0.0.0-dev.0",
};

/// The OAuth scopes of the resource API, as the server requires them by default, the client asks for them and the
/// test provider grants them. A deployment may rename them in the server's `oidc` settings.
pub mod scope {
    /// Lets a caller read resources.
    pub const READ: &str = "rust-api-axum-resource-read";
    /// Lets a caller create, change and delete resources.
    pub const WRITE: &str = "rust-api-axum-resource-write";
    /// Both, in the order a `scope` parameter lists them.
    pub const ALL: [&str; 2] = [READ, WRITE];
}

/// Answer of `GET /healthz/`: the service is up and can serve requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"status": "OK"}))]
pub struct Health {
    /// `OK` when every dependency the service needs answered.
    pub status: String,
}

/// Answer of every greeting API version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"message": "Hello World"}))]
pub struct Greeting {
    /// The greeting, e.g. `Hello World`.
    pub message: String,
}

/// An RFC 9457 problem: the body of every 4xx and 5xx answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "type": "about:blank",
    "title": "Not Found",
    "status": 404,
    "detail": "No route matches GET /nope",
    "instance": "/nope",
    "request_id": "5f0c1a2b3c4d5e6f-1"
}))]
pub struct Problem {
    /// URI naming the kind of problem; `about:blank` when the HTTP status says it all.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// Short summary of the kind of problem; the HTTP reason phrase for `about:blank`.
    pub title: String,
    /// The HTTP status code, repeated for clients that only keep the body.
    pub status: u16,
    /// What went wrong in this occurrence, written for a person. Never carries internals on a 5xx.
    pub detail: String,
    /// The request path this problem occurred on.
    pub instance: String,
    /// The request id, also sent as `x-request-id`: quote it when reporting a problem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// One entry per invalid input field, when the problem is a validation failure.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// On a 409 name clash: the id of the resource that already has the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub existing_id: Option<i64>,
}

/// One invalid input field inside a validation [`Problem`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    /// The field's name: a query parameter or a JSON member.
    pub field: String,
    /// Why the value was refused.
    pub message: String,
}

/// Body of `POST /api/resource/v1/` and `PUT /api/resource/v1/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "my resource"}))]
pub struct ResourceInput {
    /// At most 255 characters, not only white space, no control, format (bidi controls, zero-width characters) or
    /// line and paragraph separator characters; stored in NFC without surrounding white space; unique among the
    /// caller's resources.
    /// (The pattern says "not only white space, none of those characters" in JSON Schema terms, for the Basic
    /// Multilingual Plane; keep it equal to greeting v2's `name` parameter and xtask's `TEXT_PATTERN`.)
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]*[^\s\u0000-\u001f\u007f-\u009f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb][^\u0000-\u001f\u007f-\u009f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]*$"
    )]
    pub name: String,
}

/// The owner of a resource, as shown to any reader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OwnerView {
    /// The owner's id.
    pub id: i64,
    /// The OAuth client the owner last used, if the token named one.
    pub client_id: Option<String>,
    /// The owner's display name from their token.
    pub name: String,
}

/// A resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": 1, "name": "my resource", "owner": {"id": 1, "client_id": "rust-api-axum-client", "name": "ada"}, "etag": "\"1.1\""}))]
pub struct ResourceView {
    /// The resource's id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Who owns it.
    pub owner: OwnerView,
    /// Its strong entity tag, quotes included (`"<id>.<version>"`), as the `ETag` header of a single resource says
    /// it: send it back in `If-Match` to change only the version you read, or in `If-None-Match` to read it again
    /// only when it changed. It changes with every change of the resource.
    pub etag: String,
}

/// One page of `GET /api/resource/v1/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ResourceList {
    /// Resources in ascending id order.
    pub resources: Vec<ResourceView>,
    /// Path and query of the next page, when there is one (also sent as a `Link: <...>; rel="next"` header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_serialises_type_under_its_rfc_name_and_omits_empty_members() {
        let problem = Problem {
            problem_type: "about:blank".into(),
            title: "Not Found".into(),
            status: 404,
            detail: "gone".into(),
            instance: "/x".into(),
            request_id: None,
            errors: vec![],
            existing_id: None,
        };
        let json = serde_json::to_value(&problem).expect("serialises");
        assert_eq!(
            json,
            serde_json::json!({"type": "about:blank", "title": "Not Found", "status": 404, "detail": "gone", "instance": "/x"})
        );
        let back: Problem = serde_json::from_value(json).expect("round-trips");
        assert_eq!(back, problem);
    }
}
