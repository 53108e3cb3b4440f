//! RFC 9457 problem bodies: the one finaliser every error response passes, and the small trait by which an error
//! of any room says its own status and words ([`HttpError`]), so a new kind of failure never edits a central enum.
//!
//! Handlers and layers know what went wrong; only the edge knows where (`instance`) and which request it was
//! (`request_id`). So an error becomes a [`ProblemDraft`] carried as a response extension, and the edge renders
//! it with [`finalize`], which also gives a body to the bare 4xx/5xx statuses that the framework and tower layers
//! answer with (405, 413, a timeout, a panic). Caller input a problem quotes is cut short by [`reflect`].

use std::borrow::Cow;

use axum::{
    body::Body,
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use serde::{Serialize, Serializer, ser::SerializeMap};

/// The media type of every problem body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error that knows how it answers over HTTP: its status and its words, as a [`ProblemDraft`]. Implemented by
/// each room's own error type (authentication, a domain's store errors, request parsing) beside the code that
/// raises it; the app's error type boxes any of them.
pub trait HttpError: std::error::Error + Send + Sync + 'static {
    /// The problem this error answers with. Called once, as the response is built: an error whose cause must not
    /// reach the caller (driver text, internals) logs it here and answers with generic words.
    fn problem(&self) -> ProblemDraft;
}

/// One invalid input field of a validation problem (the body's `errors` list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FieldError {
    /// The field's name: a query parameter or a JSON member.
    pub field: String,
    /// Why the value was refused.
    pub message: String,
}

/// A problem whose `instance` and `request_id` are not known yet: its status, its detail for a person, the
/// invalid fields, extension members and extra headers. It travels as a response extension until the edge renders
/// it with [`finalize`].
#[derive(Debug, Clone)]
pub struct ProblemDraft {
    status: StatusCode,
    detail: Cow<'static, str>,
    errors: Vec<FieldError>,
    /// RFC 9457 extension members, written after the standard ones in this order.
    members: Vec<(Cow<'static, str>, serde_json::Value)>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl ProblemDraft {
    /// A problem with `status` and `detail` (crates.io's `custom(status, detail)`).
    pub fn new(status: StatusCode, detail: impl Into<Cow<'static, str>>) -> Self {
        Self { status, detail: detail.into(), errors: Vec::new(), members: Vec::new(), headers: Vec::new() }
    }

    /// A 400 or 422 naming one invalid field: `field: message`, and the same as the one-entry `errors` list.
    /// Both may quote input (a caller's unknown key), so both are [`reflect`]ed.
    pub fn invalid_field(status: StatusCode, field: &str, message: impl Into<String>) -> Self {
        let (field, message) = (reflect(field).into_owned(), reflect_within(&message.into()).into_owned());
        Self::new(status, format!("{field}: {message}")).with_errors(vec![FieldError { field, message }])
    }

    /// The same problem with `errors` as its list of invalid fields.
    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.errors = errors;
        self
    }

    /// The same problem with the extension member `name` (say `existing_id` on a name clash).
    pub fn with_member(mut self, name: impl Into<Cow<'static, str>>, value: impl Into<serde_json::Value>) -> Self {
        self.members.push((name.into(), value.into()));
        self
    }

    /// The same problem answered with the header `name: value` too (`WWW-Authenticate`, `Retry-After`).
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The status it answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The detail, for a person.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// What of this problem outlives its request, as JSON: the detail, the invalid fields and the extension
    /// members, not the headers, `instance` or `request_id` (those belong to each answer). For an answer that is
    /// given again later (an idempotency key's); [`ProblemDraft::from_kept`] reads it back.
    pub fn kept(&self) -> serde_json::Value {
        let mut kept = serde_json::Map::new();
        kept.insert("detail".into(), self.detail.as_ref().into());
        if !self.errors.is_empty() {
            kept.insert("errors".into(), serde_json::to_value(&self.errors).unwrap_or_default());
        }
        let members: serde_json::Map<String, serde_json::Value> =
            self.members.iter().map(|(name, value)| (name.to_string(), value.clone())).collect();
        if !members.is_empty() {
            kept.insert("members".into(), members.into());
        }
        kept.into()
    }

    /// The problem [`ProblemDraft::kept`] wrote, answered with `status`; `None` when `kept` is not such a value.
    pub fn from_kept(status: StatusCode, kept: &serde_json::Value) -> Option<Self> {
        let detail = kept.get("detail")?.as_str()?.to_owned();
        let mut draft = Self::new(status, detail);
        if let Some(errors) = kept.get("errors") {
            draft.errors = serde_json::from_value(errors.clone()).ok()?;
        }
        if let Some(members) = kept.get("members").and_then(serde_json::Value::as_object) {
            draft.members = members.iter().map(|(name, value)| (Cow::Owned(name.clone()), value.clone())).collect();
        }
        Some(draft)
    }

    /// The words for a bare status the framework or a layer produced (405, 413, a timeout, a panic).
    pub fn generic(status: StatusCode, headers: &HeaderMap) -> Self {
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

    /// The 404 for a request no route matches; the path is the caller's, so it is [`reflect`]ed.
    pub fn no_route(method: &Method, path: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("No route matches {method} {}", reflect(path)))
    }
}

impl IntoResponse for ProblemDraft {
    fn into_response(mut self) -> Response {
        let mut response = self.status.into_response();
        for (name, value) in std::mem::take(&mut self.headers) {
            response.headers_mut().insert(name, value);
        }
        response.extensions_mut().insert(self);
        response
    }
}

/// The router's fallback: a 404 problem naming the method and path.
pub async fn no_route(method: Method, uri: Uri) -> ProblemDraft {
    ProblemDraft::no_route(&method, uri.path())
}

/// Most characters of a caller's input a problem body repeats, per piece: enough to recognise it, and a 500 kB
/// unknown key or path no longer comes back several times over.
pub const REFLECTED_CHARS: usize = 128;

/// Most characters of a message [`reflect_within`] returns, however many quoted pieces it holds.
const REFLECTED_MESSAGE_CHARS: usize = 8 * REFLECTED_CHARS;

/// A piece of caller input (a path, a field name, a value) as a problem body may quote it: its first
/// [`REFLECTED_CHARS`] characters, and `…` when there were more. Every quote of input goes through here or
/// through [`reflect_within`].
pub fn reflect(input: &str) -> Cow<'_, str> {
    reflect_to(input, REFLECTED_CHARS)
}

/// A message that quotes input in backticks or double quotes (serde's ``unknown field `x` `` and
/// `invalid type: string "x"`, with its `\"` escapes) with each quoted piece [`reflect`]ed, and the whole cut
/// at eight times that as a backstop (a key made of backticks quotes many short pieces).
pub fn reflect_within(message: &str) -> Cow<'_, str> {
    if message.chars().count() <= REFLECTED_CHARS {
        return Cow::Borrowed(message);
    }
    let mut out = String::new();
    let mut rest = message;
    while let Some(open) = rest.find(['`', '"']) {
        let quote = rest.as_bytes()[open];
        out.push_str(&rest[..=open]);
        let inner = &rest[open + 1..];
        let close = quoted_len(inner, quote);
        out.push_str(&reflect(&inner[..close]));
        rest = &inner[close..];
        if let Some(after) = rest.strip_prefix(char::from(quote)) {
            out.push(char::from(quote));
            rest = after;
        }
        if out.len() > 4 * REFLECTED_MESSAGE_CHARS {
            break;
        }
    }
    out.push_str(rest);
    Cow::Owned(reflect_to(&out, REFLECTED_MESSAGE_CHARS).into_owned())
}

/// The length of the quoted text at the start of `text` up to its closing `quote` (skipping `\"` inside double
/// quotes), or all of `text` when it is not closed.
fn quoted_len(text: &str, quote: u8) -> usize {
    let mut escaped = false;
    for (at, byte) in text.bytes().enumerate() {
        match byte {
            _ if escaped => escaped = false,
            b'\\' if quote == b'"' => escaped = true,
            byte if byte == quote => return at,
            _ => {}
        }
    }
    text.len()
}

fn reflect_to(input: &str, chars: usize) -> Cow<'_, str> {
    match input.char_indices().nth(chars) {
        Some((end, _)) => Cow::Owned(format!("{}…", &input[..end])),
        None => Cow::Borrowed(input),
    }
}

/// The rendered body, in RFC 9457's member order with the extensions last.
struct Rendered<'a> {
    draft: &'a ProblemDraft,
    instance: &'a str,
    request_id: Option<&'a str>,
}

impl Serialize for Rendered<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let draft = self.draft;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("type", "about:blank")?;
        map.serialize_entry("title", draft.status.canonical_reason().unwrap_or("Error"))?;
        map.serialize_entry("status", &draft.status.as_u16())?;
        // The last line of defence for input a room quoted without `reflect`: quoted pieces, the instance (the
        // caller's path) and field names are cut here too.
        map.serialize_entry("detail", &reflect_within(&draft.detail))?;
        map.serialize_entry("instance", &reflect(self.instance))?;
        if let Some(request_id) = self.request_id {
            map.serialize_entry("request_id", request_id)?;
        }
        if !draft.errors.is_empty() {
            let errors: Vec<FieldError> = draft
                .errors
                .iter()
                .map(|error| FieldError {
                    field: reflect(&error.field).into_owned(),
                    message: reflect_within(&error.message).into_owned(),
                })
                .collect();
            map.serialize_entry("errors", &errors)?;
        }
        for (name, value) in &draft.members {
            map.serialize_entry(name, value)?;
        }
        map.end()
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
    // Serialising strings and numbers cannot fail; an empty body with the right status beats a panic.
    let body = serde_json::to_vec(&Rendered { draft: &draft, instance, request_id }).unwrap_or_default();
    let (mut parts, _) = response.into_parts();
    parts.status = draft.status;
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

fn is_bare_error(response: &Response) -> bool {
    let status = response.status();
    (status.is_client_error() || status.is_server_error())
        && response.headers().get(header::CONTENT_TYPE).map(HeaderValue::as_bytes) != Some(PROBLEM_JSON.as_bytes())
}

/// Turns a panic caught by the catch-panic layer into a 500; the panic hook already logged it.
pub fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ProblemDraft::generic(StatusCode::INTERNAL_SERVER_ERROR, &HeaderMap::new()).into_response()
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
    use serde_json::{Value, json};

    use super::*;

    async fn problem_of(response: Response) -> (StatusCode, HeaderMap, Value) {
        let response = finalize(response, "/where", Some("rid-1"));
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.expect("body").to_bytes();
        (parts.status, parts.headers, serde_json::from_slice(&bytes).expect("problem json"))
    }

    #[tokio::test]
    async fn a_draft_renders_as_problem_json_with_instance_and_request_id() {
        let draft = ProblemDraft::invalid_field(StatusCode::BAD_REQUEST, "name", "too long");
        let (status, headers, problem) = problem_of(draft.into_response()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(headers[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(
            problem,
            json!({"type": "about:blank", "title": "Bad Request", "status": 400, "detail": "name: too long",
                   "instance": "/where", "request_id": "rid-1",
                   "errors": [{"field": "name", "message": "too long"}]})
        );
    }

    #[tokio::test]
    async fn members_come_last_in_their_order_and_headers_are_answered() {
        let draft = ProblemDraft::new(StatusCode::CONFLICT, "taken")
            .with_member("existing_id", 7)
            .with_header(header::RETRY_AFTER, HeaderValue::from(3));
        let response = finalize(draft.into_response(), "/x", None);
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(
            std::str::from_utf8(&bytes).expect("utf-8"),
            r#"{"type":"about:blank","title":"Conflict","status":409,"detail":"taken","instance":"/x","existing_id":7}"#
        );
    }

    #[tokio::test]
    async fn bare_framework_405_keeps_allow_and_gets_a_body() {
        let response = (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "GET,HEAD")]).into_response();
        let (status, headers, problem) = problem_of(response).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(headers[header::ALLOW], "GET,HEAD");
        assert!(problem["detail"].as_str().expect("detail").contains("GET,HEAD"), "{problem}");
    }

    #[tokio::test]
    async fn text_error_from_a_layer_is_replaced() {
        let response = (StatusCode::PAYLOAD_TOO_LARGE, "length limit exceeded").into_response();
        let (status, headers, problem) = problem_of(response).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(headers[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(problem["status"], 413);
    }

    #[tokio::test]
    async fn a_panic_is_a_500_without_its_text() {
        let (status, _, problem) = problem_of(panic_response(Box::new("secret internals"))).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(problem["detail"], "The server failed to process the request");
    }

    #[test]
    fn reflected_input_is_cut_to_128_characters_with_an_ellipsis() {
        assert_eq!(reflect("short"), "short");
        assert_eq!(reflect(&"é".repeat(128)), "é".repeat(128), "128 characters, not bytes, fit");
        assert_eq!(reflect(&"é".repeat(129)), format!("{}…", "é".repeat(128)));
        let quoted = format!(
            "unknown field `{}`, expected `name` or string \"{}\\\"{}\"",
            "k".repeat(500),
            "v".repeat(300),
            "w".repeat(300)
        );
        assert_eq!(
            reflect_within(&quoted),
            format!("unknown field `{}…`, expected `name` or string \"{}…\"", "k".repeat(128), "v".repeat(128))
        );
        assert!(reflect_within(&"`a`".repeat(100_000)).chars().count() <= 1025, "a backstop for many short pieces");
    }

    #[tokio::test]
    async fn a_long_unknown_path_and_long_fields_give_a_short_body() {
        let long = format!("/{}", "a".repeat(100_000));
        let response = ProblemDraft::no_route(&Method::GET, &long)
            .with_errors(vec![FieldError { field: "f".repeat(100_000), message: format!("bad `{long}`") }])
            .into_response();
        let response = finalize(response, &long, Some("rid-1"));
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        assert!(bytes.len() < 1024, "{} bytes", bytes.len());
        let problem: Value = serde_json::from_slice(&bytes).expect("problem json");
        assert_eq!(problem["instance"], format!("/{}…", "a".repeat(127)));
    }

    #[test]
    fn success_passes_untouched() {
        let response = finalize((StatusCode::OK, "fine").into_response(), "/", None);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "text/plain; charset=utf-8");
    }
}
