//! Idempotent creates over HTTP: the `Idempotency-Key` request header, the `Idempotent-Replayed` answer header,
//! and [`Idempotency::guard`], which any create handler wraps its write in. The rules are in
//! `domain::idempotency`; the key is stored with the write by the store (`db::idempotency`).
//!
//! A request with a key: a stored answer for it is given again (a different request under the same key is a
//! 422); a request with the same key already running on this replica is a 409 at once, without queueing for the
//! database; otherwise the write runs and its answer is stored in its transaction. A 4xx the write refuses with
//! is stored too, on its own; a 5xx is not, so the client's retry runs again.

use std::{
    collections::HashSet,
    future::Future,
    sync::{Arc, Mutex},
};

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use platform::{
    observability::metrics::{Counter, Metrics},
    problem::{HttpError, ProblemDraft},
};

use crate::{
    domain::idempotency::{Claim, IdempotencyKey, KeyScope, KeyStorageFailed, KeyStore, Once, Settled, StoredAnswer},
    error::ApiError,
};

/// The request header carrying the key.
pub static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// The answer header saying an answer is given again from a key, not made now: `Idempotent-Replayed: true`.
pub static REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
/// Seconds a client is asked to wait before retrying a request whose key is in flight.
pub const IN_FLIGHT_RETRY_SECS: u64 = 1;

/// Counter: requests with a key by `outcome` (`ran`, `replayed`, `mismatch`, `in_flight`).
pub const KEY_OUTCOMES: &str = "idempotency_requests_total";
/// Gauge: keys stored, refreshed by the purge that removes expired ones.
pub const KEYS_STORED: &str = "idempotency_keys_stored";

/// The `Idempotency-Key` header, when the request has one; a malformed one is a 400 naming the header.
#[derive(Debug, Clone)]
pub struct KeyHeader(pub Option<IdempotencyKey>);

impl<S: Send + Sync> FromRequestParts<S> for KeyHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let mut values = parts.headers.get_all(&IDEMPOTENCY_KEY).iter();
        let Some(value) = values.next() else { return Ok(Self(None)) };
        if values.next().is_some() {
            return Err(ApiError::invalid_field("Idempotency-Key", "must be sent once"));
        }
        IdempotencyKey::parse(value.as_bytes())
            .map(|key| Self(Some(key)))
            .map_err(|refused| ApiError::invalid_field("Idempotency-Key", refused.to_string()))
    }
}

/// Why a request with a key was not run.
#[derive(Debug, thiserror::Error)]
pub enum KeyConflict {
    /// The key was used for a different request.
    #[error(
        "This Idempotency-Key was already used for a different request (method, path or body); send a new key \
         with a new request"
    )]
    Mismatch,
    /// The first request with the key is still running.
    #[error("A request with this Idempotency-Key is still being processed; retry it later with the same key")]
    InFlight,
}

impl HttpError for KeyConflict {
    fn problem(&self) -> ProblemDraft {
        match self {
            Self::Mismatch => ProblemDraft::new(StatusCode::UNPROCESSABLE_ENTITY, self.to_string()),
            Self::InFlight => ProblemDraft::new(StatusCode::CONFLICT, self.to_string())
                .with_header(header::RETRY_AFTER, HeaderValue::from(IN_FLIGHT_RETRY_SECS)),
        }
    }
}

impl HttpError for KeyStorageFailed {
    fn problem(&self) -> ProblemDraft {
        // Driver text stays in the log: it can name tables, hosts and users.
        tracing::error!(error = %self.0, "idempotency key storage failed");
        ProblemDraft::new(StatusCode::SERVICE_UNAVAILABLE, ApiError::DatabaseUnavailable.to_string())
    }
}

/// The keys running on this replica and the outcome counters; shared by every create handler.
#[derive(Debug, Clone, Default)]
pub struct Idempotency {
    running: Arc<Mutex<HashSet<(KeyScope, IdempotencyKey)>>>,
    metrics: Option<Arc<Outcomes>>,
}

#[derive(Debug)]
struct Outcomes {
    ran: Counter,
    replayed: Counter,
    mismatch: Counter,
    in_flight: Counter,
}

/// A key marked running on this replica until dropped.
struct Running<'a> {
    running: &'a Mutex<HashSet<(KeyScope, IdempotencyKey)>>,
    entry: (KeyScope, IdempotencyKey),
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&self.entry);
    }
}

impl Idempotency {
    /// Counting outcomes in `metrics` from now on (at 0 until counted).
    pub fn register(metrics: &Metrics) -> Self {
        let outcome = |label| {
            metrics.counter(KEY_OUTCOMES, "Requests with an idempotency key by outcome.", &[("outcome", label)])
        };
        Self {
            running: Arc::default(),
            metrics: Some(Arc::new(Outcomes {
                ran: outcome("ran"),
                replayed: outcome("replayed"),
                mismatch: outcome("mismatch"),
                in_flight: outcome("in_flight"),
            })),
        }
    }

    /// Answers a request that carries `claim` by running `write`, whose success is `Once::Ran` with its answer, or
    /// `Once::Settled` when the store found the key taken (answered before, or running on another replica). `keys`
    /// records a refusal `write` answered with.
    pub async fn guard<Fut>(&self, keys: &impl KeyStore, claim: Claim, write: impl FnOnce(Claim) -> Fut) -> Response
    where
        Fut: Future<Output = Result<Once<Response>, ApiError>>,
    {
        // No read of the key first: the write's transaction claims it as its first statement and finds a stored
        // key there (then `Once::Settled`), so a fresh request pays no extra round trip for the rare retry.
        let Some(_running) = self.enter(&claim) else { return self.settled(Settled::InFlight) };
        match write(claim.clone()).await {
            Ok(Once::Ran(response)) => {
                self.count(|outcomes| &outcomes.ran);
                response
            }
            Ok(Once::Settled(settled)) => self.settled(settled),
            Err(error) => {
                let response = error.into_response();
                let Some(answer) = refusal(&response) else { return response };
                match keys.record(&claim, &answer).await {
                    Ok(None) => {
                        self.count(|outcomes| &outcomes.ran);
                        response
                    }
                    // Someone stored the key between our write and this record: theirs is the answer.
                    Ok(Some(settled)) => self.settled(settled),
                    Err(error) => {
                        // The refusal stands; only its replay is lost, and a retry is refused the same way.
                        tracing::warn!(error = %error, "cannot store the answer of an idempotency key");
                        response
                    }
                }
            }
        }
    }

    fn enter(&self, claim: &Claim) -> Option<Running<'_>> {
        let entry = (claim.scope.clone(), claim.key.clone());
        let fresh = self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(entry.clone());
        fresh.then_some(Running { running: &self.running, entry })
    }

    fn settled(&self, settled: Settled) -> Response {
        match settled {
            Settled::Replay(answer) => {
                self.count(|outcomes| &outcomes.replayed);
                answered(&answer, true)
            }
            Settled::Mismatch => {
                self.count(|outcomes| &outcomes.mismatch);
                ApiError::from(KeyConflict::Mismatch).into_response()
            }
            Settled::InFlight => {
                self.count(|outcomes| &outcomes.in_flight);
                ApiError::from(KeyConflict::InFlight).into_response()
            }
        }
    }

    fn count(&self, which: impl FnOnce(&Outcomes) -> &Counter) {
        if let Some(outcomes) = &self.metrics {
            which(outcomes).increment(1);
        }
    }
}

/// The response an answer is given as, the first time (`replayed: false`) and every time after. A success is its
/// JSON body with its `Location` and `ETag`; a refusal is its problem again (with this request's `instance`).
pub fn answered(answer: &StoredAnswer, replayed: bool) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut headers = HeaderMap::new();
    for (name, value) in [(header::LOCATION, &answer.location), (header::ETAG, &answer.etag)] {
        if let Some(value) = value.as_deref().and_then(|value| HeaderValue::try_from(value).ok()) {
            headers.insert(name, value);
        }
    }
    if replayed {
        headers.insert(REPLAYED.clone(), HeaderValue::from_static("true"));
    }
    if status.is_client_error() {
        let kept = serde_json::from_str(&answer.body).unwrap_or_default();
        let draft =
            ProblemDraft::from_kept(status, &kept).unwrap_or_else(|| ProblemDraft::generic(status, &HeaderMap::new()));
        return (headers, draft).into_response();
    }
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    (status, headers, answer.body.clone()).into_response()
}

/// A 4xx answer as it is stored; `None` for anything else (a 5xx is not stored, so a retry runs again).
fn refusal(response: &Response) -> Option<StoredAnswer> {
    if !response.status().is_client_error() {
        return None;
    }
    let draft = response.extensions().get::<ProblemDraft>()?;
    Some(StoredAnswer {
        status: response.status().as_u16(),
        location: None,
        etag: None,
        body: draft.kept().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_success_is_answered_with_its_headers_and_marked_when_replayed() {
        let answer = StoredAnswer {
            status: 201,
            location: Some("/api/resource/v1/7".into()),
            etag: Some("\"7.1\"".into()),
            body: r#"{"id":7}"#.into(),
        };
        let first = answered(&answer, false);
        assert_eq!(first.status(), StatusCode::CREATED);
        assert_eq!(first.headers()[header::LOCATION], "/api/resource/v1/7");
        assert_eq!(first.headers()[header::ETAG], "\"7.1\"");
        assert!(first.headers().get(&REPLAYED).is_none());
        assert_eq!(answered(&answer, true).headers()[&REPLAYED], "true");
    }

    #[test]
    fn a_refusal_is_kept_as_its_problem_and_answered_as_one_again() {
        let refused = ApiError::from(KeyConflict::Mismatch).into_response();
        let stored = refusal(&refused).expect("a 4xx is stored");
        assert_eq!(stored.status, 422);
        let again = answered(&stored, true);
        let draft = again.extensions().get::<ProblemDraft>().expect("a problem");
        assert_eq!(draft.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(draft.detail(), KeyConflict::Mismatch.to_string());
        assert!(refusal(&ApiError::DatabaseUnavailable.into_response()).is_none(), "a 5xx is not stored");
    }

    #[tokio::test]
    async fn a_key_is_running_once_per_replica() {
        let idempotency = Idempotency::default();
        let principal = crate::domain::principal::Principal {
            subject: "a".into(),
            client_id: None,
            username: crate::domain::principal::DisplayName::from_claim("a").expect("visible"),
            scopes: Default::default(),
        };
        let key = IdempotencyKey::parse(b"k").expect("key");
        let claim = Claim::new(&principal, key, crate::domain::idempotency::Fingerprint::of("POST", "/", b""));
        let first = idempotency.enter(&claim).expect("first");
        assert!(idempotency.enter(&claim).is_none(), "the same key again while the first runs");
        drop(first);
        assert!(idempotency.enter(&claim).is_some(), "free again once the first is done");
    }
}
