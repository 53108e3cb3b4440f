//! Extractors whose rejections are problems with the reason instead of axum's plain-text rejections: [`ApiQuery`]
//! rejects with an [`ApiError`]; [`ApiJson`] with a response, which is an `ApiError`'s for everything it checks
//! itself and axum's bare status for a body over the limit (413) or one that could not be read (400), which the
//! edge turns into a problem like any other bare error status (`error::finalize`).
//!
//! Beside them, the conditional-request fields every entity's API reads the same way (RFC 9110 §13.1): what a write
//! expects from `If-Match` ([`expected`], 428 [`IfMatchRequired`] when the configuration requires one), whether
//! `If-None-Match` makes a read a 304 ([`not_modified`]), and the `ETag` header of an answer ([`etag_header`]).

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Query, Request},
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header, request::Parts},
    response::IntoResponse,
};
use serde::de::DeserializeOwned;

use platform::problem::{HttpError, ProblemDraft, reflect, reflect_within};

use crate::{
    domain::etag::{Condition, ETag, Expected, MalformedCondition},
    error::ApiError,
};

/// `Query<T>` whose rejection is a 400 problem naming what failed to parse.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Query::try_from_uri(&parts.uri)
            .map(|Query(value)| Self(value))
            // axum's words quote the caller's unknown key or bad value.
            .map_err(|rejection| ApiError::BadRequest {
                detail: reflect_within(&rejection.body_text()).into_owned(),
                errors: Vec::new(),
            })
    }
}

/// A JSON body: 415 when it is not declared as JSON, 400 when it is not JSON at all, 422 naming the field when
/// it does not fit `T` (missing, mistyped or unknown members). Oversized bodies were already cut off with a 413.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = axum::response::Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let declared_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .map(|media| {
                let media = media.trim().to_ascii_lowercase();
                media == "application/json" || (media.starts_with("application/") && media.ends_with("+json"))
            })
            .unwrap_or(false);
        if !declared_json {
            return Err(ApiError::UnsupportedMediaType(
                "The body must be JSON (Content-Type: application/json)".into(),
            )
            .into_response());
        }
        // A body over the limit fails here with axum's 413, which the edge turns into a problem.
        let bytes = Bytes::from_request(request, state).await.map_err(IntoResponse::into_response)?;
        parse_json(&bytes).map(Self).map_err(IntoResponse::into_response)
    }
}

/// `ETag: "<id>.<version>"`, for an answer that carries one version of a row.
pub fn etag_header(etag: ETag) -> [(HeaderName, HeaderValue); 1] {
    // Digits, a dot and quotes: always a valid header value.
    [(header::ETAG, HeaderValue::try_from(etag.to_string()).unwrap_or(HeaderValue::from_static("\"\"")))]
}

/// The `If-Match` or `If-None-Match` field of the request, if it has one: `Some(Err(_))` when its value is not `*`
/// or a list of entity tags. Several field lines are one list (RFC 9110 §5.3).
fn condition(headers: &HeaderMap, name: HeaderName) -> Option<Result<Condition, MalformedCondition>> {
    let mut lines = headers.get_all(&name).iter().peekable();
    lines.peek()?;
    let mut joined = String::new();
    for line in lines {
        let Ok(text) = line.to_str() else { return Some(Err(MalformedCondition)) };
        if !joined.is_empty() {
            joined.push_str(", ");
        }
        joined.push_str(text);
    }
    Some(Condition::parse(&joined))
}

/// What a write to row `id` expects from the request's `If-Match`; without one, [`IfMatchRequired`] when `required`
/// (the `require_if_match` key). A malformed `If-Match` names no version, so it never lets a write through: the
/// answer is 412 with the current tag, which tells the caller what to send.
pub fn expected(headers: &HeaderMap, id: i64, required: bool) -> Result<Expected, IfMatchRequired> {
    match condition(headers, header::IF_MATCH) {
        None if required => Err(IfMatchRequired),
        None => Ok(Expected::Any),
        Some(condition) => Ok(condition.map_or(Expected::OneOf(Vec::new()), |condition| condition.expected(id))),
    }
}

/// Whether the request's `If-None-Match` names `current` (weak comparison), so a read answers 304. A malformed one
/// matches nothing: the answer is the row, as without one.
pub fn not_modified(headers: &HeaderMap, current: ETag) -> bool {
    condition(headers, header::IF_NONE_MATCH).and_then(Result::ok).is_some_and(|c| c.matches_weakly(current))
}

/// A write without `If-Match` where the configuration (`require_if_match`) requires one.
#[derive(Debug, thiserror::Error)]
#[error("This is changed only conditionally: send If-Match with the ETag you read (or * for any version)")]
pub struct IfMatchRequired;

impl HttpError for IfMatchRequired {
    fn problem(&self) -> ProblemDraft {
        ProblemDraft::new(StatusCode::PRECONDITION_REQUIRED, self.to_string())
    }
}

/// Deepest nesting of arrays and objects a body may have: the most serde_json's recursion limit lets through (its
/// budget of 128 runs out on the 128th level), so a body the parser could read is never refused here, and one
/// it could not is always refused here, with the same words whatever the target type.
pub const MAX_JSON_DEPTH: usize = 127;

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Checked first, whatever `T` is: serde_json stops at its recursion limit, but with a message that depends
    // on `T` (a 422 "invalid type" when the first `[` meets a field, or nothing at all where a type skips unknown
    // members without a limit). One pass over at most `max_body_bytes`, cheaper than the parse that follows.
    if nested_deeper_than(bytes, MAX_JSON_DEPTH) {
        return Err(ApiError::BadRequest {
            detail: format!("The body is nested deeper than {MAX_JSON_DEPTH} levels of arrays and objects"),
            errors: Vec::new(),
        });
    }
    let syntax = |error: serde_json::Error| ApiError::BadRequest {
        detail: format!("The body is not valid JSON: {error}"),
        errors: Vec::new(),
    };
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if inner.is_syntax() || inner.is_eof() || inner.is_io() {
            return syntax(inner);
        }
        // serde's words quote the caller's keys and values, and the field may be the caller's unknown key: each
        // quoted piece is cut, so a 500 kB key is not answered several times over.
        let message = reflect_within(&strip_position(&inner.to_string())).into_owned();
        let field = match path.as_str() {
            "." | "" => field_named_in(&message).unwrap_or_else(|| "(body)".to_owned()),
            path => reflect(path).into_owned(),
        };
        ApiError::unprocessable_field(&field, message)
    })?;
    // Trailing bytes after the value make the body invalid JSON, not a valid prefix.
    deserializer.end().map_err(syntax)?;
    Ok(value)
}

/// Whether `bytes` opens more than `limit` arrays or objects at once, outside strings. Not a validator: whatever
/// else is wrong with the body is the parser's to say.
fn nested_deeper_than(bytes: &[u8], limit: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &byte in bytes {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// serde_json appends " at line 1 column 9": noise for a client.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message.to_owned(),
    }
}

/// "missing field `name`" and "unknown field `x`, expected ..." name their field only in the message.
fn field_named_in(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let end = start + message[start..].find('`')?;
    Some(message[start..end].to_owned())
}

#[cfg(test)]
mod tests {
    use api_types::ResourceInput;

    use crate::error::FieldError;
    use axum::http::StatusCode;

    use super::*;

    fn conditions(name: HeaderName, lines: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(name.clone(), HeaderValue::from_static(line));
        }
        headers
    }

    #[test]
    fn several_condition_lines_are_one_list_and_a_malformed_one_spoils_it() {
        use crate::domain::etag::Version;
        let current = ETag::new(7, Version::from_stored(3));
        assert_eq!(expected(&HeaderMap::new(), 7, false).expect("optional"), Expected::Any);
        assert!(expected(&HeaderMap::new(), 7, true).is_err(), "required");
        let two = conditions(header::IF_MATCH, &[r#""7.1""#, r#""7.3""#]);
        assert!(expected(&two, 7, true).expect("present").admits(current.version()), "the second line counts");
        let spoilt = conditions(header::IF_MATCH, &[r#""7.3""#, "7.3"]);
        assert_eq!(expected(&spoilt, 7, false).expect("present"), Expected::OneOf(Vec::new()), "names no version");
        assert!(not_modified(&conditions(header::IF_NONE_MATCH, &["\"1.1\"", "W/\"7.3\""]), current));
        assert!(!not_modified(&conditions(header::IF_NONE_MATCH, &["\"7.3\"", "7.3"]), current), "malformed");
        assert_eq!(IfMatchRequired.problem().status(), StatusCode::PRECONDITION_REQUIRED);
    }

    fn refusal(body: &str) -> (StatusCode, String, Vec<FieldError>) {
        match parse_json::<ResourceInput>(body.as_bytes()) {
            Ok(value) => panic!("accepted {value:?}"),
            Err(error @ ApiError::BadRequest { .. }) => (StatusCode::BAD_REQUEST, error.to_string(), Vec::new()),
            Err(ApiError::Unprocessable { detail, errors }) => (StatusCode::UNPROCESSABLE_ENTITY, detail, errors),
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn valid_body_parses() {
        assert_eq!(parse_json::<ResourceInput>(br#"{"name":"x"}"#).expect("valid").name, "x");
    }

    #[test]
    fn malformed_json_is_400() {
        for body in ["{", "not json", r#"{"name":"x"} trailing"#, ""] {
            assert_eq!(refusal(body).0, StatusCode::BAD_REQUEST, "{body}");
        }
    }

    #[test]
    fn deeply_nested_bodies_are_400_whatever_the_type() {
        let deep = "[".repeat(100_000);
        for body in [
            deep.clone(),
            format!("{{\"name\": {deep}"),
            format!("{{\"x\": {deep}"),
            format!("{}{}", "[".repeat(128), "]".repeat(128)),
            format!("{{\"name\": \"x\", \"a\": {}", "{\"a\":".repeat(50_000)),
        ] {
            let (status, detail, _) = refusal(&body);
            assert_eq!(status, StatusCode::BAD_REQUEST, "{}", &body[..20]);
            assert_eq!(detail, "The body is nested deeper than 127 levels of arrays and objects");
        }
        assert!(parse_json::<serde_json::Value>("[".repeat(100_000).as_bytes()).is_err());
    }

    #[test]
    fn depth_counts_only_brackets_outside_strings() {
        assert!(!nested_deeper_than(format!("{}{}", "[".repeat(128), "]".repeat(128)).as_bytes(), 128));
        assert!(nested_deeper_than("[".repeat(129).as_bytes(), 128));
    }

    #[test]
    fn the_depth_limit_is_exactly_serde_jsons() {
        let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let at_limit = nested(MAX_JSON_DEPTH);
        assert!(serde_json::from_str::<serde_json::Value>(&at_limit).is_ok(), "serde_json reads the limit");
        assert!(!nested_deeper_than(at_limit.as_bytes(), MAX_JSON_DEPTH), "and so do we");
        let beyond = nested(MAX_JSON_DEPTH + 1);
        assert!(serde_json::from_str::<serde_json::Value>(&beyond).is_err(), "serde_json stops one level beyond");
        assert!(nested_deeper_than(beyond.as_bytes(), MAX_JSON_DEPTH), "where we refuse first");
        let quoted = format!("{{\"name\": \"{}\\\"{}\"}}", "[".repeat(500), "{".repeat(500));
        assert!(!nested_deeper_than(quoted.as_bytes(), 128), "{quoted}");
        assert_eq!(parse_json::<ResourceInput>(quoted.as_bytes()).expect("valid").name.len(), 1001);
        assert!(!nested_deeper_than(b"[]]]]]]][[", 2), "closing brackets never go below zero");
    }

    #[test]
    fn reflected_keys_and_values_are_cut_so_a_huge_key_gives_a_short_answer() {
        let key = "k".repeat(500 * 1024);
        let (status, detail, errors) = refusal(&format!(r#"{{"name": "x", "{key}": 1}}"#));
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(errors[0].field, format!("{}…", "k".repeat(128)));
        assert!(detail.len() + errors[0].message.len() < 2048, "{detail}");
        #[derive(Debug, serde::Deserialize)]
        #[expect(dead_code, reason = "only its parsing is tested")]
        struct Number {
            n: u32,
        }
        let value = "v".repeat(500 * 1024);
        let Err(ApiError::Unprocessable { detail, errors }) =
            parse_json::<Number>(format!(r#"{{"n": "{value}"}}"#).as_bytes())
        else {
            panic!("a string for a number is refused")
        };
        assert_eq!(errors[0].message, format!("invalid type: string \"{}…\", expected u32", "v".repeat(128)));
        assert!(detail.len() < 1024, "{detail}");
    }

    #[test]
    fn shape_errors_are_422_naming_the_field() {
        let (status, _, errors) = refusal("{}");
        assert_eq!((status, errors[0].field.as_str()), (StatusCode::UNPROCESSABLE_ENTITY, "name"));
        assert_eq!(errors[0].message, "missing field `name`");
        let (_, _, errors) = refusal(r#"{"name": 5}"#);
        assert_eq!(errors[0].field, "name");
        assert!(errors[0].message.starts_with("invalid type: integer `5`, expected a string"), "{}", errors[0].message);
        let (_, _, errors) = refusal(r#"{"name": "x", "owner": 1}"#);
        assert_eq!(errors[0].field, "owner");
        let (status, _, errors) = refusal(r#""just text""#);
        assert_eq!((status, errors[0].field.as_str()), (StatusCode::UNPROCESSABLE_ENTITY, "(body)"));
    }
}
