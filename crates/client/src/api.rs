//! The rust-api-axum API as typed calls, with the bodies shared with the server (`api-types`), so the client can
//! never disagree with the API about a shape. Every call carries the session's access token; a 401 makes the
//! session renew the token once and the call is retried once.

use api_types::{Greeting, Problem, ResourceInput, ResourceList, ResourceView};
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde::{Deserialize as _, de::DeserializeOwned};
use url::Url;

use crate::{auth::Session, auth::oauth::Secret, error::Error, net};

/// Upper bound on pages `list` follows, in case a server kept sending the same `next` link.
const MAX_PAGES: usize = 10_000;

/// A decoded answer together with the JSON body as the API sent it (for `--output json`).
#[derive(Debug)]
pub struct Reply<T> {
    /// The typed body.
    pub value: T,
    /// The body as sent, unknown members included.
    pub body: serde_json::Value,
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
struct Answer {
    url: String,
    status: StatusCode,
    content_type: String,
    body: Vec<u8>,
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
        let answer = self.call(Method::GET, "api/greeting/v3/", &[], None).await?;
        Ok(decode(answer)?)
    }

    /// `GET /api/resource/v1/`, following `next` until the last page; the reply's body holds every resource.
    pub async fn list(&mut self, limit: Option<u32>) -> Result<Reply<ResourceList>, Error> {
        let mut query: Vec<(String, String)> =
            limit.map(|l| vec![("limit".to_owned(), l.to_string())]).unwrap_or_default();
        let mut resources = Vec::new();
        let mut bodies = Vec::new();
        for _ in 0..MAX_PAGES {
            let answer = self.call(Method::GET, "api/resource/v1/", &query, None).await?;
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
        Ok(Reply { value: ResourceList { resources, next: None }, body })
    }

    /// `GET /api/resource/v1/{id}`.
    pub async fn get(&mut self, id: i64) -> Result<Reply<ResourceView>, Error> {
        let answer = self.call(Method::GET, &format!("api/resource/v1/{id}"), &[], None).await?;
        Ok(decode(answer)?)
    }

    /// `POST /api/resource/v1/`: a new resource owned by the caller.
    pub async fn create(&mut self, name: &str) -> Result<Reply<ResourceView>, Error> {
        let input = ResourceInput { name: name.to_owned() };
        let answer = self.call(Method::POST, "api/resource/v1/", &[], Some(&input)).await?;
        Ok(decode(answer)?)
    }

    /// `PUT /api/resource/v1/{id}`: renames one of the caller's resources.
    pub async fn rename(&mut self, id: i64, name: &str) -> Result<Reply<ResourceView>, Error> {
        let input = ResourceInput { name: name.to_owned() };
        let answer = self.call(Method::PUT, &format!("api/resource/v1/{id}"), &[], Some(&input)).await?;
        Ok(decode(answer)?)
    }

    /// `DELETE /api/resource/v1/{id}`.
    pub async fn delete(&mut self, id: i64) -> Result<(), Error> {
        let answer = self.call(Method::DELETE, &format!("api/resource/v1/{id}"), &[], None).await?;
        if answer.status.is_success() { Ok(()) } else { Err(failure(answer).into()) }
    }

    /// Sends the request with the session's token; on a 401 renews the token once and sends it once more.
    async fn call(
        &mut self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<&ResourceInput>,
    ) -> Result<Answer, Error> {
        let url = self.base.join(path).map_err(|error| ApiError::Unexpected {
            url: format!("{}{path}", self.base),
            reason: format!("cannot build the URL ({error})"),
        })?;
        let token = self.session.access_token().await?;
        let answer = self.send(&method, &url, query, body, &token).await?;
        if answer.status != StatusCode::UNAUTHORIZED {
            return Ok(answer);
        }
        match self.session.renew().await? {
            Some(token) => Ok(self.send(&method, &url, query, body, &token).await?),
            None => Ok(answer),
        }
    }

    async fn send(
        &self,
        method: &Method,
        url: &Url,
        query: &[(String, String)],
        body: Option<&ResourceInput>,
        token: &Secret,
    ) -> Result<Answer, ApiError> {
        let mut request = self
            .http
            .request(method.clone(), url.clone())
            .bearer_auth(token.expose_secret())
            .header(reqwest::header::ACCEPT, "application/json, application/problem+json");
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let unreachable =
            |error: reqwest::Error| ApiError::Unreachable { url: url.to_string(), reason: net::reason(&error) };
        let response = net::send(self.http, request).await.map_err(unreachable)?;
        let status = response.status();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("no content type")
            .to_owned();
        let body = response.bytes().await.map_err(unreachable)?.to_vec();
        Ok(Answer { url: url.to_string(), status, content_type, body })
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
    Ok(Reply { value, body })
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
