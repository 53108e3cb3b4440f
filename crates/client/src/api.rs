//! The rust-api-axum API as typed calls, with the bodies shared with the server (`api-types`), so the client can
//! never disagree with the API about a shape. Every call carries the session's access token; a 401 makes the
//! session renew the token once and the call is retried once.
//!
//! Writes survive retries and races (issue 25, the policy in [`crate::writes`]): a create carries a fresh
//! `Idempotency-Key` and is sent again, with the same key, when no answer came or the server or a gateway asked
//! for it; a rename or delete sends `If-Match` with the resource's entity tag, so a change made in between is a
//! 412, not overwritten.

use api_types::{Greeting, Problem, ResourceInput, ResourceList, ResourceView};
use reqwest::{Method, StatusCode, header};
use secrecy::ExposeSecret;
use serde::{Deserialize as _, de::DeserializeOwned};
use url::Url;

use crate::{
    auth::{Session, oauth::Secret},
    error::Error,
    net,
    writes::{self, Outcome},
};

/// Upper bound on pages `list` follows, in case a server kept sending the same `next` link.
const MAX_PAGES: usize = 10_000;

/// A decoded answer together with the JSON body as the API sent it (for `--output json`).
#[derive(Debug)]
pub struct Reply<T> {
    /// The typed body.
    pub value: T,
    /// The body as sent, unknown members included.
    pub body: serde_json::Value,
    /// The entity tag, as an `If-Match` value: the `ETag` header, else the body's `etag` member (quoted).
    pub etag: Option<String>,
}

/// Why an API call failed; the binary exits with code 1 on any of these.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The API answered with an RFC 9457 problem.
    #[error("{}", describe_problem(problem))]
    Problem {
        /// The problem.
        problem: Box<Problem>,
        /// The body as sent.
        body: serde_json::Value,
    },
    /// A rename or delete found the resource changed since its entity tag was read (412).
    #[error("resource {id} changed since you read it; read it again or use --force{}", quoted(request_id))]
    Changed {
        /// The resource.
        id: i64,
        /// The request id of the answer, when its problem named one.
        request_id: Option<String>,
        /// The problem document, when the answer was one.
        body: Option<serde_json::Value>,
    },
    /// The server takes changes to this resource only with `If-Match` (428), and `--force` left it out.
    #[error(
        "the server changes resource {id} only if its entity tag is sent (428 Precondition Required): run the \
         command without --force, which reads the tag first{}",
        quoted(request_id)
    )]
    TagRequired {
        /// The resource.
        id: i64,
        /// The request id of the answer, when its problem named one.
        request_id: Option<String>,
        /// The problem document, when the answer was one.
        body: Option<serde_json::Value>,
    },
    /// The server refused a create's `Idempotency-Key` (a 422 about the key, not the body).
    #[error(
        "the server refused this create's Idempotency-Key ({}); running the command again sends a new key",
        describe_problem(problem)
    )]
    KeyRefused {
        /// The problem.
        problem: Box<Problem>,
        /// The body as sent.
        body: serde_json::Value,
    },
    /// No idempotency key could be made (the operating system's random generator failed).
    #[error("cannot make an idempotency key: {0}")]
    NoKey(String),
    /// The API could not be reached.
    #[error("cannot reach the API at {url}: {reason}")]
    Unreachable {
        /// The URL called.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The API answered something the client does not understand.
    #[error("unexpected answer from the API at {url}: {reason}")]
    Unexpected {
        /// The URL called.
        url: String,
        /// What was wrong with the answer.
        reason: String,
    },
}

impl ApiError {
    /// The problem document the API sent, when the failure is one (printed on standard output for scripts).
    pub fn problem_body(&self) -> Option<&serde_json::Value> {
        match self {
            Self::Problem { body, .. } | Self::KeyRefused { body, .. } => Some(body),
            Self::Changed { body, .. } | Self::TagRequired { body, .. } => body.as_ref(),
            Self::NoKey(_) | Self::Unreachable { .. } | Self::Unexpected { .. } => None,
        }
    }
}

/// ` [request id ...]` when there is one, for the lines that do not quote the whole problem.
fn quoted(request_id: &Option<String>) -> String {
    request_id.as_ref().map(|id| format!(" [request id {id}]")).unwrap_or_default()
}

/// `title: detail`, then what else the problem carries: invalid fields, the clashing resource, the request id
/// to quote when reporting it.
fn describe_problem(problem: &Problem) -> String {
    let mut text = format!("{}: {}", problem.title, problem.detail);
    let mut extra: Vec<String> = problem.errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect();
    if let Some(id) = problem.existing_id {
        extra.push(format!("existing resource id {id}"));
    }
    if let Some(request_id) = &problem.request_id {
        extra.push(format!("request id {request_id}"));
    }
    if !extra.is_empty() {
        text.push_str(&format!(" [{}]", extra.join("; ")));
    }
    text
}

/// One answer, read completely.
#[derive(Debug)]
struct Answer {
    url: String,
    status: StatusCode,
    content_type: String,
    /// The `ETag` header.
    etag: Option<String>,
    /// The `Retry-After` header.
    retry_after: Option<String>,
    /// Whether the server replayed the first answer to this idempotency key.
    replayed: bool,
    body: Vec<u8>,
}

/// What a call adds to the plain request: headers, and whether it may be sent again (only with an
/// `Idempotency-Key`, which makes that safe).
#[derive(Debug, Default)]
struct Extra {
    headers: Vec<(&'static str, String)>,
    retry: bool,
}

impl Extra {
    /// A create's: a fresh key, sent again as [`writes::next_delay`] says.
    fn idempotent() -> Result<Self, ApiError> {
        let key = writes::idempotency_key().map_err(|error| ApiError::NoKey(error.to_string()))?;
        Ok(Self { headers: vec![(writes::IDEMPOTENCY_KEY, key)], retry: true })
    }

    /// A rename's or delete's: `If-Match` with `etag` when there is one.
    fn if_match(etag: Option<&str>) -> Self {
        let headers = etag.map(|etag| vec![(header::IF_MATCH.as_str(), etag.to_owned())]).unwrap_or_default();
        Self { headers, retry: false }
    }
}

/// The API client: base URL, HTTP client, and the session that supplies tokens.
pub struct Api<'a> {
    http: &'a reqwest::Client,
    base: Url,
    session: Session<'a>,
}

impl<'a> Api<'a> {
    /// Calls below `base` (which ends in `/`), authenticated by `session`.
    pub fn new(http: &'a reqwest::Client, base: &Url, session: Session<'a>) -> Self {
        Self { http, base: base.clone(), session }
    }

    /// `GET /api/greeting/v3/`: greets the logged-in user.
    pub async fn greet(&mut self) -> Result<Reply<Greeting>, Error> {
        let answer = self.call(Method::GET, "api/greeting/v3/", &[], None, &Extra::default()).await?;
        Ok(decode(answer)?)
    }

    /// `GET /api/resource/v1/`, following `next` until the last page; the reply's body holds every resource.
    pub async fn list(&mut self, limit: Option<u32>) -> Result<Reply<ResourceList>, Error> {
        let mut query: Vec<(String, String)> =
            limit.map(|l| vec![("limit".to_owned(), l.to_string())]).unwrap_or_default();
        let mut resources = Vec::new();
        let mut bodies = Vec::new();
        for _ in 0..MAX_PAGES {
            let answer = self.call(Method::GET, "api/resource/v1/", &query, None, &Extra::default()).await?;
            let page: Reply<ResourceList> = decode(answer)?;
            if let Some(items) = page.body.get("resources").and_then(serde_json::Value::as_array) {
                bodies.extend(items.iter().cloned());
            }
            resources.extend(page.value.resources);
            // The next page's query is taken from the `next` link and sent to our own base URL, so paging works
            // behind a reverse proxy that adds a path prefix the server does not know about.
            match page.value.next.as_deref().map(next_query) {
                Some(next) if !next.is_empty() && next != query => query = next,
                _ => break,
            }
        }
        let body = serde_json::json!({ "resources": bodies });
        Ok(Reply { value: ResourceList { resources, next: None }, body, etag: None })
    }

    /// `GET /api/resource/v1/{id}`.
    pub async fn get(&mut self, id: i64) -> Result<Reply<ResourceView>, Error> {
        let answer = self.call(Method::GET, &format!("api/resource/v1/{id}"), &[], None, &Extra::default()).await?;
        Ok(decode(answer)?)
    }

    /// `POST /api/resource/v1/`: a new resource owned by the caller, with a fresh `Idempotency-Key`; sent again
    /// with the same key while [`writes::next_delay`] says so. A replayed answer is the answer.
    pub async fn create(&mut self, name: &str) -> Result<Reply<ResourceView>, Error> {
        let input = ResourceInput { name: name.to_owned() };
        let answer = self.call(Method::POST, "api/resource/v1/", &[], Some(&input), &Extra::idempotent()?).await?;
        if answer.replayed {
            tracing::debug!("the server replayed its answer to an earlier attempt of this create");
        }
        if answer.status == StatusCode::UNPROCESSABLE_ENTITY {
            return Err(key_failure(answer).into());
        }
        Ok(decode(answer)?)
    }

    /// `PUT /api/resource/v1/{id}`: renames one of the caller's resources, if it is still as `expected` says.
    pub async fn rename(&mut self, id: i64, name: &str, expected: Expected) -> Result<Reply<ResourceView>, Error> {
        let input = ResourceInput { name: name.to_owned() };
        let extra = self.precondition(id, expected).await?;
        let answer = self.call(Method::PUT, &format!("api/resource/v1/{id}"), &[], Some(&input), &extra).await?;
        if answer.status.is_success() { Ok(decode(answer)?) } else { Err(precondition_failure(answer, id).into()) }
    }

    /// `DELETE /api/resource/v1/{id}`, if it is still as `expected` says.
    pub async fn delete(&mut self, id: i64, expected: Expected) -> Result<(), Error> {
        let extra = self.precondition(id, expected).await?;
        let answer = self.call(Method::DELETE, &format!("api/resource/v1/{id}"), &[], None, &extra).await?;
        if answer.status.is_success() { Ok(()) } else { Err(precondition_failure(answer, id).into()) }
    }

    /// The `If-Match` a change of resource `id` sends: the tag given, the one read now, or none with `--force`.
    async fn precondition(&mut self, id: i64, expected: Expected) -> Result<Extra, Error> {
        Ok(match expected {
            Expected::Any => Extra::default(),
            Expected::Tag(etag) => Extra::if_match(Some(&etag)),
            Expected::Current => {
                let current = self.get(id).await?;
                if current.etag.is_none() {
                    // A server from before entity tags: it would not honour If-Match either.
                    tracing::debug!("resource {id} came without an entity tag; changing it without If-Match");
                }
                Extra::if_match(current.etag.as_deref())
            }
        })
    }

    /// Sends the request with the session's token; on a 401 renews the token once and sends it once more.
    async fn call(
        &mut self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<&ResourceInput>,
        extra: &Extra,
    ) -> Result<Answer, Error> {
        let url = self.base.join(path).map_err(|error| ApiError::Unexpected {
            url: format!("{}{path}", self.base),
            reason: format!("cannot build the URL ({error})"),
        })?;
        let request = Request { method, url: &url, query, body, extra };
        let token = self.session.access_token().await?;
        let answer = request.send(self.http, &token).await?;
        if answer.status != StatusCode::UNAUTHORIZED {
            return Ok(answer);
        }
        match self.session.renew().await? {
            Some(token) => Ok(request.send(self.http, &token).await?),
            None => Ok(answer),
        }
    }
}

/// What a rename or delete expects of the resource it changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// As it is now: read its entity tag first and send it as `If-Match`.
    Current,
    /// As this entity tag (an `If-Match` value) says, e.g. one read by an earlier `resource get`.
    Tag(String),
    /// Anything (`--force`): no read, no `If-Match`.
    Any,
}

/// One call, as often as it is sent.
struct Request<'r> {
    method: Method,
    url: &'r Url,
    query: &'r [(String, String)],
    body: Option<&'r ResourceInput>,
    extra: &'r Extra,
}

impl Request<'_> {
    /// Sends it with `token`; one with a key is sent again, with the same key, while [`writes::next_delay`] says
    /// so. What the last attempt came back with is the result.
    async fn send(&self, http: &reqwest::Client, token: &Secret) -> Result<Answer, ApiError> {
        let mut attempt = 1;
        loop {
            let result = self.send_once(http, token).await;
            let outcome = match &result {
                Ok(answer) => {
                    Outcome::Answer { status: answer.status.as_u16(), retry_after: answer.retry_after.as_deref() }
                }
                Err(Failed::NoAnswer(_)) => Outcome::NoAnswer,
                Err(Failed::NotSent(_)) => return result.map_err(Failed::into_error),
            };
            let delay = if self.extra.retry { writes::next_delay(outcome, attempt, writes::jitter()) } else { None };
            let Some(delay) = delay else {
                return result.map_err(|failed| match failed.into_error() {
                    ApiError::Unreachable { url, reason } if attempt > 1 => {
                        ApiError::Unreachable { url, reason: format!("{reason} (after {attempt} attempts)") }
                    }
                    error => error,
                });
            };
            let what = match &result {
                Ok(answer) => format!("HTTP {}", answer.status),
                Err(Failed::NoAnswer(ApiError::Unreachable { reason, .. })) => reason.clone(),
                Err(failed) => failed.to_string(),
            };
            tracing::debug!(
                "{} {}: {what}; attempt {} of {} in {} ms, with the same idempotency key",
                self.method,
                self.url,
                attempt + 1,
                writes::MAX_ATTEMPTS,
                delay.as_millis()
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    async fn send_once(&self, http: &reqwest::Client, token: &Secret) -> Result<Answer, Failed> {
        let mut request = http
            .request(self.method.clone(), self.url.clone())
            .bearer_auth(token.expose_secret())
            .header(header::ACCEPT, "application/json, application/problem+json");
        for (name, value) in &self.extra.headers {
            request = request.header(*name, value);
        }
        if !self.query.is_empty() {
            request = request.query(self.query);
        }
        if let Some(body) = self.body {
            request = request.json(body);
        }
        let url = self.url.to_string();
        let failed = |error: reqwest::Error| {
            Failed::NoAnswer(ApiError::Unreachable { url: url.clone(), reason: net::reason(&error) })
        };
        let response = net::send(http, request).await.map_err(|error| {
            if error.is_builder() {
                Failed::NotSent(ApiError::Unexpected { url: url.clone(), reason: net::reason(&error) })
            } else {
                failed(error)
            }
        })?;
        let status = response.status();
        let text =
            |name: header::HeaderName| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let content_type = text(header::CONTENT_TYPE).unwrap_or_else(|| "no content type".to_owned());
        let etag = text(header::ETAG);
        let retry_after = text(header::RETRY_AFTER);
        let replayed = response
            .headers()
            .get(writes::IDEMPOTENT_REPLAYED)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
        // An answer cut off in its body is no answer: the server may have acted, so only a key makes retrying safe.
        let body = response.bytes().await.map_err(failed)?.to_vec();
        Ok(Answer { url, status, content_type, etag, retry_after, replayed, body })
    }
}

/// Why an attempt brought no answer.
#[derive(Debug, thiserror::Error)]
enum Failed {
    /// The request could not even be built; sending it again cannot help.
    #[error(transparent)]
    NotSent(ApiError),
    /// It was sent (or tried to be), and no answer came back.
    #[error(transparent)]
    NoAnswer(ApiError),
}

impl Failed {
    fn into_error(self) -> ApiError {
        match self {
            Self::NotSent(error) | Self::NoAnswer(error) => error,
        }
    }
}

/// The typed body of a successful answer, or the failure it describes.
fn decode<T: DeserializeOwned>(answer: Answer) -> Result<Reply<T>, ApiError> {
    if !answer.status.is_success() {
        return Err(failure(answer));
    }
    let unexpected = |reason: String| ApiError::Unexpected { url: answer.url.clone(), reason };
    let body: serde_json::Value = serde_json::from_slice(&answer.body).map_err(|_| {
        unexpected(format!("HTTP {} with a body that is not JSON ({})", answer.status, answer.content_type))
    })?;
    let value = T::deserialize(&body).map_err(|error| {
        unexpected(format!(
            "HTTP {} with a body of another shape than {} ({error})",
            answer.status,
            short_type_name::<T>()
        ))
    })?;
    let etag = answer.etag.as_deref().and_then(writes::if_match).or_else(|| {
        let member = body.get("etag").and_then(serde_json::Value::as_str)?;
        writes::if_match(member)
    });
    Ok(Reply { value, body, etag })
}

/// The problem in a failed answer; something else (a proxy's HTML page) is reported by status and media type.
fn failure(answer: Answer) -> ApiError {
    if let Ok(body) = serde_json::from_slice::<serde_json::Value>(&answer.body)
        && let Ok(problem) = Problem::deserialize(&body)
    {
        return ApiError::Problem { problem: Box::new(problem), body };
    }
    ApiError::Unexpected {
        url: answer.url,
        reason: format!("HTTP {} with a body that is not a problem document ({})", answer.status, answer.content_type),
    }
}

/// A failed create: a 422 about its `Idempotency-Key` (the key named as a field, or no field named and the key
/// in the words) said as such; anything else as [`failure`] says it.
fn key_failure(answer: Answer) -> ApiError {
    match failure(answer) {
        ApiError::Problem { problem, body } if about_the_key(&problem) => ApiError::KeyRefused { problem, body },
        error => error,
    }
}

fn about_the_key(problem: &Problem) -> bool {
    let named = |text: &str| text.to_ascii_lowercase().contains("idempotency");
    if problem.errors.is_empty() {
        problem.status == 422 && (named(&problem.detail) || named(&problem.problem_type) || named(&problem.title))
    } else {
        problem.errors.iter().any(|error| named(&error.field))
    }
}

/// A failed rename or delete of resource `id`: a 412 (it changed since its tag was read) and a 428 (the server
/// wants a tag) said as such; anything else as [`failure`] says it.
/// The status alone decides, so an answer without a problem document (a proxy's) says the same.
fn precondition_failure(answer: Answer, id: i64) -> ApiError {
    let status = answer.status;
    let error = failure(answer);
    if status != StatusCode::PRECONDITION_FAILED && status != StatusCode::PRECONDITION_REQUIRED {
        return error;
    }
    let (request_id, body) = match error {
        ApiError::Problem { problem, body } => (problem.request_id, Some(body)),
        _ => (None, None),
    };
    if status == StatusCode::PRECONDITION_FAILED {
        ApiError::Changed { id, request_id, body }
    } else {
        ApiError::TagRequired { id, request_id, body }
    }
}

fn short_type_name<T>() -> &'static str {
    let name = std::any::type_name::<T>();
    name.rsplit("::").next().unwrap_or(name)
}

/// The query of a `next` link (path and query, possibly absolute), as pairs.
fn next_query(next: &str) -> Vec<(String, String)> {
    let Ok(base) = Url::parse("http://next.invalid/") else { return Vec::new() };
    base.join(next).map(|url| url.query_pairs().into_owned().collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            url: "http://api/x".into(),
            status: StatusCode::from_u16(status).expect("status"),
            content_type: "application/json".into(),
            etag: None,
            retry_after: None,
            replayed: false,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn problems_are_read_with_everything_worth_saying() {
        let body = r#"{"type": "about:blank", "title": "Conflict", "status": 409, "instance": "/api/resource/v1",
                       "detail": "You already have a resource named \"x\"", "existing_id": 3, "request_id": "r-1"}"#;
        let error = failure(answer(409, body));
        assert_eq!(
            error.to_string(),
            "Conflict: You already have a resource named \"x\" [existing resource id 3; request id r-1]"
        );
    }

    #[test]
    fn unexpected_bodies_are_failures_not_panics() {
        let error = failure(answer(502, "<html>bad gateway</html>"));
        assert_eq!(
            error.to_string(),
            "unexpected answer from the API at http://api/x: HTTP 502 Bad Gateway with a body that is not a problem \
             document (application/json)"
        );
        let error = decode::<Greeting>(answer(200, r#"{"greeting": "hi"}"#)).expect_err("wrong shape").to_string();
        assert!(error.contains("another shape than Greeting") && error.contains("missing field `message`"), "{error}");
        let error = decode::<Greeting>(answer(200, "hi")).expect_err("not JSON").to_string();
        assert!(error.contains("not JSON"), "{error}");
        let reply = decode::<Greeting>(answer(200, r#"{"message": "Hello ada", "extra": 1}"#)).expect("decodes");
        assert_eq!((reply.value.message.as_str(), &reply.body["extra"]), ("Hello ada", &serde_json::json!(1)));
    }

    fn problem(status: u16, extra: &str) -> String {
        format!(
            r#"{{"type": "about:blank", "title": "T", "status": {status}, "instance": "/api/resource/v1/7",
                "detail": "D", "request_id": "r-9"{extra}}}"#
        )
    }

    #[test]
    fn stale_and_missing_entity_tags_are_one_line_each() {
        let error = precondition_failure(answer(412, &problem(412, "")), 7);
        assert_eq!(
            error.to_string(),
            "resource 7 changed since you read it; read it again or use --force [request id r-9]"
        );
        assert!(error.problem_body().is_some(), "scripts still get the problem");
        let error = precondition_failure(answer(412, ""), 7);
        assert_eq!(error.to_string(), "resource 7 changed since you read it; read it again or use --force");
        assert!(error.problem_body().is_none());
        let error = precondition_failure(answer(428, &problem(428, "")), 7).to_string();
        assert!(error.starts_with("the server changes resource 7 only if its entity tag is sent"), "{error}");
        assert!(error.contains("without --force") && error.ends_with("[request id r-9]"), "{error}");
        let error = precondition_failure(answer(403, &problem(403, "")), 7);
        assert_eq!(error.to_string(), "T: D [request id r-9]", "other problems as they are");
    }

    #[test]
    fn a_refused_key_is_told_apart_from_a_refused_name() {
        let key = problem(422, "").replace("\"D\"", "\"Idempotency-Key reused with another request\"");
        let error = key_failure(answer(422, &key)).to_string();
        assert_eq!(
            error,
            "the server refused this create's Idempotency-Key (T: Idempotency-Key reused with another request \
             [request id r-9]); running the command again sends a new key"
        );
        let field = problem(422, r#", "errors": [{"field": "Idempotency-Key", "message": "too long"}]"#);
        assert!(key_failure(answer(422, &field)).to_string().starts_with("the server refused this create's"));
        let name = problem(422, r#", "errors": [{"field": "name", "message": "must not be empty"}]"#);
        assert_eq!(key_failure(answer(422, &name)).to_string(), "T: D [name: must not be empty; request id r-9]");
        assert_eq!(key_failure(answer(422, &problem(422, ""))).to_string(), "T: D [request id r-9]");
    }

    #[test]
    fn the_entity_tag_comes_from_the_header_else_the_body() {
        let body = r#"{"id": 7, "name": "a", "owner": {"id": 1, "client_id": null, "name": "ada"}, "etag": "2-b"}"#;
        let mut tagged = answer(200, body);
        tagged.etag = Some("\"1-a\"".into());
        assert_eq!(decode::<ResourceView>(tagged).expect("decodes").etag.as_deref(), Some("\"1-a\""));
        assert_eq!(decode::<ResourceView>(answer(200, body)).expect("decodes").etag.as_deref(), Some("\"2-b\""));
    }

    #[test]
    fn writes_carry_their_headers() {
        let create = Extra::idempotent().expect("a key");
        assert!(create.retry);
        let [(name, key)] = create.headers.as_slice() else { panic!("one header: {:?}", create.headers) };
        assert_eq!((*name, key.len()), ("Idempotency-Key", 36));
        assert_ne!(Extra::idempotent().expect("a key").headers, create.headers, "fresh for every create");
        let change = Extra::if_match(Some("\"1-a\""));
        assert_eq!((change.headers, change.retry), (vec![("if-match", "\"1-a\"".to_owned())], false));
        assert!(Extra::if_match(None).headers.is_empty());
        assert!(Extra::default().headers.is_empty() && !Extra::default().retry);
    }

    /// What [`FakeApi`] does with each connection, in turn.
    enum Reaction {
        /// Reads the request and closes the connection without a word.
        Drop,
        /// Reads the request and sends this (the whole HTTP/1.1 answer).
        Answer(String),
    }

    fn http_answer(status: &str, headers: &str, body: &str) -> Reaction {
        Reaction::Answer(format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\
             {headers}\r\n{body}",
            body.len()
        ))
    }

    /// An API on a real loopback socket that reacts to one connection after the other as scripted and hands
    /// back the requests' heads (lower-cased) with its listener.
    struct FakeApi {
        url: Url,
        server: std::thread::JoinHandle<(Vec<String>, std::net::TcpListener)>,
    }

    impl FakeApi {
        fn start(script: Vec<Reaction>) -> Self {
            use std::io::{Read as _, Write as _};
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let url = Url::parse(&format!("http://{}/api/resource/v1/", listener.local_addr().expect("address")))
                .expect("URL");
            let server = std::thread::spawn(move || {
                let mut heads = Vec::new();
                for reaction in script {
                    let (mut stream, _) = listener.accept().expect("accept");
                    let mut request = Vec::new();
                    let mut buffer = [0_u8; 4096];
                    // The head and the body its content-length announces.
                    let complete = |request: &[u8]| {
                        let text = String::from_utf8_lossy(request).to_ascii_lowercase();
                        let Some(end) = text.find("\r\n\r\n") else { return false };
                        let length = text[..end]
                            .lines()
                            .find_map(|line| line.strip_prefix("content-length:"))
                            .map_or(0, |value| value.trim().parse::<usize>().expect("length"));
                        request.len() >= end + 4 + length
                    };
                    while !complete(&request) {
                        let read = stream.read(&mut buffer).expect("read");
                        assert!(read > 0, "the request ended early");
                        request.extend_from_slice(&buffer[..read]);
                    }
                    heads.push(String::from_utf8_lossy(&request).to_ascii_lowercase());
                    if let Reaction::Answer(answer) = reaction {
                        stream.write_all(answer.as_bytes()).expect("write");
                    }
                }
                (heads, listener)
            });
            Self { url, server }
        }

        /// The requests' heads; asserts that no further connection came.
        fn requests(self) -> Vec<String> {
            let (heads, listener) = self.server.join().expect("the fake API");
            listener.set_nonblocking(true).expect("non-blocking");
            assert!(listener.accept().is_err(), "no further attempt");
            heads
        }
    }

    fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
        head.lines().find_map(|line| line.strip_prefix(&format!("{name}:"))).map(str::trim)
    }

    const CREATED: &str =
        r#"{"id": 1, "name": "alpha", "owner": {"id": 1, "client_id": null, "name": "ada"}, "etag": "\"1.1\""}"#;

    async fn create(api: &FakeApi, extra: &Extra) -> Result<Answer, ApiError> {
        let http = net::client(None).expect("client");
        let input = ResourceInput { name: "alpha".into() };
        let request = Request { method: Method::POST, url: &api.url, query: &[], body: Some(&input), extra };
        request.send(&http, &Secret::from("token")).await
    }

    #[tokio::test]
    async fn a_create_that_got_no_answer_is_sent_again_with_the_same_key() {
        let api = FakeApi::start(vec![Reaction::Drop, http_answer("201 Created", "etag: \"1-a\"\r\n", CREATED)]);
        let extra = Extra::idempotent().expect("a key");
        let answer = create(&api, &extra).await.expect("the second attempt is answered");
        assert_eq!(answer.status, StatusCode::CREATED);
        let reply: Reply<ResourceView> = decode(answer).expect("a resource");
        assert_eq!((reply.value.id, reply.etag.as_deref()), (1, Some("\"1-a\"")));
        let requests = api.requests();
        assert_eq!(requests.len(), 2);
        let key = extra.headers[0].1.as_str();
        for request in &requests {
            assert!(request.starts_with("post /api/resource/v1/ http/1.1\r\n"), "{request}");
            assert_eq!(header(request, "idempotency-key"), Some(key), "{request}");
            assert!(request.ends_with(r#"{"name":"alpha"}"#), "the same body: {request}");
        }
    }

    #[tokio::test]
    async fn in_flight_and_gateway_answers_are_retried_and_a_replay_is_the_answer() {
        let in_flight = problem(409, "");
        let api = FakeApi::start(vec![
            http_answer("409 Conflict", "retry-after: 0\r\n", &in_flight),
            http_answer("503 Service Unavailable", "retry-after: 0\r\n", &problem(503, "")),
            http_answer("201 Created", "idempotent-replayed: true\r\n", CREATED),
        ]);
        let answer = create(&api, &Extra::idempotent().expect("a key")).await.expect("answered");
        assert!(answer.replayed && answer.status == StatusCode::CREATED);
        let requests = api.requests();
        assert_eq!(requests.len(), 3);
        let keys: Vec<_> = requests.iter().map(|request| header(request, "idempotency-key")).collect();
        assert!(keys[0].is_some() && keys.iter().all(|key| *key == keys[0]), "{keys:?}");
    }

    #[tokio::test]
    async fn a_name_clash_is_final() {
        let clash = problem(409, r#", "existing_id": 3"#);
        let api = FakeApi::start(vec![http_answer("409 Conflict", "", &clash)]);
        let answer = create(&api, &Extra::idempotent().expect("a key")).await.expect("answered");
        assert_eq!(failure(answer).to_string(), "T: D [existing resource id 3; request id r-9]");
        assert_eq!(api.requests().len(), 1);
    }

    #[tokio::test]
    async fn only_a_request_with_a_key_is_sent_again() {
        let api = FakeApi::start(vec![Reaction::Drop]);
        let error = create(&api, &Extra::if_match(Some("\"1-a\""))).await.expect_err("no answer").to_string();
        assert!(
            error.starts_with("cannot reach the API at http://127.0.0.1:") && !error.contains("attempts"),
            "{error}"
        );
        let requests = api.requests();
        assert_eq!(header(&requests[0], "if-match"), Some("\"1-a\""));
        assert_eq!(header(&requests[0], "idempotency-key"), None);
    }

    #[tokio::test]
    async fn retries_are_bounded() {
        let api = FakeApi::start((0..writes::MAX_ATTEMPTS).map(|_| Reaction::Drop).collect());
        let error = create(&api, &Extra::idempotent().expect("a key")).await.expect_err("never answered");
        let error = error.to_string();
        assert!(error.starts_with("cannot reach the API at ") && error.ends_with(" (after 4 attempts)"), "{error}");
        assert_eq!(api.requests().len(), 4);
    }

    #[test]
    fn the_next_page_query_comes_from_the_link() {
        assert_eq!(
            next_query("/api/resource/v1/?limit=2&after=7"),
            [("limit".to_owned(), "2".to_owned()), ("after".to_owned(), "7".to_owned())]
        );
        assert_eq!(next_query("http://elsewhere/x?after=9"), [("after".to_owned(), "9".to_owned())]);
        assert!(next_query("/no/query").is_empty());
    }
}
