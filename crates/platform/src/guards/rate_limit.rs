//! Per-caller rate limits (GCRA, governor's keyed limiter): each request counts against a [`Bucket`], the subject
//! of a bearer token the application has already accepted (its [`SubjectLookup`], a cache look-up, never a
//! verification: a flood of made-up tokens must not reach the provider or the CPU before it is limited), else the
//! client address (an IPv6 client by its /64,
//! the block one subscriber gets). Over the limit a request is answered 429 with `Retry-After` before it
//! reaches a handler. Installed only when `rate_limit_per_second` is set, so it costs nothing when off.
//!
//! Memory is bounded by construction: the per-caller states live in a fixed-capacity cache ([`MAX_CALLERS`]
//! keys, roughly 100 to 200 bytes each: at most about 13 MiB) that evicts the callers seen least (quick_cache's
//! S3-FIFO: a flood of one-off addresses evicts one-off addresses first, not the callers that keep coming back). Every [`SWEEP_INTERVAL`] a
//! background task drops the states that are as good as fresh (`retain_recent`), so the capacity goes to
//! callers that are actually being limited. An evicted caller starts again with a full burst: a bounded leniency,
//! never a refusal of somebody new and never unbounded growth.

use std::{
    convert::Infallible,
    hash::Hash,
    net::IpAddr,
    num::{NonZeroU32, NonZeroU64},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    extract::Request,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use governor::{
    Quota, RateLimiter,
    clock::{Clock, DefaultClock},
    middleware::NoOpMiddleware,
    nanos::Nanos,
    state::{StateStore, keyed::ShrinkableKeyedStateStore},
};
use tower::{Layer, Service};

use super::client_addr::ClientAddr;
use crate::problem::ProblemDraft;

/// Callers whose state is kept at most; beyond it the least used are forgotten (see the module documentation).
pub const MAX_CALLERS: usize = 65_536;

/// How often states that are as good as fresh are dropped.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// The application's "who is asking": the subject of a bearer token it has already verified, found without
/// verifying anything (a cache look-up), or `None`.
pub trait SubjectLookup: Send + Sync + 'static {
    /// The subject of the already accepted token in `headers`, if there is one.
    fn subject(&self, headers: &HeaderMap) -> Option<String>;
}

/// What a request's budget is kept under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Bucket {
    /// The `sub` of a verified bearer token: one budget per identity, wherever it calls from.
    Subject(String),
    /// The client address (see `client_addr`), for requests without a valid token.
    Address(IpAddr),
}

/// A governor state store with a hard capacity: one GCRA state (the theoretical arrival time in nanoseconds
/// since the limiter started, 0 for "none yet") per caller, in a bounded cache.
pub struct BoundedStore<K> {
    states: quick_cache::sync::Cache<K, Arc<AtomicU64>>,
}

impl<K: Hash + Eq + Clone> BoundedStore<K> {
    /// A store that keeps at most `capacity` callers.
    pub fn new(capacity: usize) -> Self {
        Self { states: quick_cache::sync::Cache::new(capacity) }
    }
}

impl<K: Hash + Eq + Clone> StateStore for BoundedStore<K> {
    type Key = K;

    /// The same compare-and-swap loop as governor's own `InMemoryState`.
    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let state = self.states.get(key).unwrap_or_else(|| {
            // Two first requests racing here may each start a state; one wins the slot. Lenient by one request.
            let state = Arc::new(AtomicU64::new(0));
            self.states.insert(key.clone(), state.clone());
            state
        });
        let mut previous = state.load(Ordering::Acquire);
        loop {
            let (outcome, next) = f(NonZeroU64::new(previous).map(|tat| Nanos::from(tat.get())))?;
            match state.compare_exchange_weak(previous, next.into(), Ordering::Release, Ordering::Relaxed) {
                Ok(_) => return Ok(outcome),
                Err(current) => previous = current,
            }
        }
    }
}

impl<K: Hash + Eq + Clone> ShrinkableKeyedStateStore<K> for BoundedStore<K> {
    fn retain_recent(&self, drop_below: Nanos) {
        let drop_below = u64::from(drop_below);
        self.states.retain(|_, state| state.load(Ordering::Relaxed) > drop_below);
    }

    fn len(&self) -> usize {
        self.states.len()
    }

    fn is_empty(&self) -> bool {
        self.states.is_empty()
    }
}

/// The keyed limiter over the bounded store, generic in the clock so tests can move time.
type Limiter<C = DefaultClock> = RateLimiter<Bucket, BoundedStore<Bucket>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// A limiter allowing `per_second` requests a second per caller, `burst` of them at once (default: one second's).
fn limiter<C: Clock>(per_second: NonZeroU32, burst: Option<NonZeroU32>, clock: C) -> Limiter<C> {
    let quota = Quota::per_second(per_second).allow_burst(burst.unwrap_or(per_second));
    RateLimiter::new(quota, BoundedStore::new(MAX_CALLERS), clock)
}

/// Lets `bucket` through or says how many whole seconds it must wait.
fn check<C: Clock>(limiter: &Limiter<C>, bucket: &Bucket) -> Result<(), u64> {
    limiter
        .check_key(bucket)
        .map(|_| ())
        .map_err(|not_until| retry_after_secs(not_until.wait_time_from(limiter.clock().now())))
}

/// The 429 problem with `Retry-After`.
pub fn too_many_requests(retry_after_secs: u64) -> ProblemDraft {
    ProblemDraft::new(StatusCode::TOO_MANY_REQUESTS, format!("Too many requests; try again in {retry_after_secs} s"))
        .with_header(header::RETRY_AFTER, HeaderValue::from(retry_after_secs))
}

/// `Retry-After` in whole seconds, rounded up so a client that obeys it is let through, and at least 1 (0 would
/// invite an immediate retry that the limiter may still refuse).
fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// Installs [`RateLimit`].
#[derive(Clone)]
pub struct RateLimitLayer {
    limiter: Arc<Limiter>,
    subjects: Option<Arc<dyn SubjectLookup>>,
    /// Paths (and what lies below them) that are never limited: orchestrator probes come from one address, often
    /// in bursts, and a throttled probe restarts a healthy pod.
    exempt: Arc<[&'static str]>,
}

impl RateLimitLayer {
    /// Limits each caller to `per_second` requests a second with bursts of `burst`; a token's subject comes from
    /// `subjects` (tokens the application already accepted, never verified here); paths under `exempt` are never
    /// limited. Starts the sweeper when a runtime runs.
    pub fn new(
        per_second: NonZeroU32,
        burst: Option<NonZeroU32>,
        subjects: Option<Arc<dyn SubjectLookup>>,
        exempt: &[&'static str],
    ) -> Self {
        let limiter = Arc::new(limiter(per_second, burst, DefaultClock::default()));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            // Holds the limiter weakly, so the task ends with the service that owns it.
            let limiter = Arc::downgrade(&limiter);
            runtime.spawn(async move {
                let mut tick = tokio::time::interval(SWEEP_INTERVAL);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    tick.tick().await;
                    let Some(limiter) = limiter.upgrade() else { break };
                    // No `shrink_to_fit`: the store's capacity is fixed, so there is nothing to give back.
                    limiter.retain_recent();
                }
            });
        }
        Self { limiter, subjects, exempt: exempt.into() }
    }
}

impl std::fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitLayer").field("callers", &self.limiter.len()).finish_non_exhaustive()
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit { inner, layer: self.clone() }
    }
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct RateLimit<S> {
    inner: S,
    layer: RateLimitLayer,
}

impl<S, B> Service<Request> for RateLimit<S>
where
    S: Service<Request, Response = Response<B>, Error = Infallible>,
    B: Default,
{
    type Response = Response<B>;
    type Error = Infallible;
    type Future = RateLimitFuture<S::Future, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if is_exempt(&self.layer.exempt, request.uri().path()) {
            return RateLimitFuture::Inner { future: self.inner.call(request) };
        }
        let subject = match &self.layer.subjects {
            Some(subjects) if request.headers().contains_key(header::AUTHORIZATION) => {
                subjects.subject(request.headers())
            }
            _ => None,
        };
        let bucket = subject.map(Bucket::Subject).or_else(|| address_of(&request));
        match bucket.map(|bucket| check(&self.layer.limiter, &bucket)) {
            Some(Err(wait)) => RateLimitFuture::Refused { response: Some(refused(wait)) },
            // No known address (an in-process call without a peer): nothing to key on, let it through.
            _ => RateLimitFuture::Inner { future: self.inner.call(request) },
        }
    }
}

/// The 429 in the inner service's body type: a draft's response has an empty body and carries its problem as an
/// extension, which the edge renders, so the body type can be the inner one's (empty) default.
fn refused<B: Default>(retry_after_secs: u64) -> Response<B> {
    let (parts, _) = too_many_requests(retry_after_secs).into_response().into_parts();
    Response::from_parts(parts, B::default())
}

/// The request's client address as a bucket, when the server recorded one; an IPv6 address stands for its /64,
/// since one subscriber gets a whole /64 and could otherwise take a new budget with every address in it.
fn address_of(request: &Request) -> Option<Bucket> {
    ClientAddr::of(request.extensions()).map(|address| Bucket::Address(budget_address(address)))
}

/// The address a budget is kept under: IPv4 as it is, IPv6 with its interface half zeroed.
fn budget_address(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
    }
}

/// Whether `path` is one of `exempt` (exactly, or below it).
fn is_exempt(exempt: &[&str], path: &str) -> bool {
    exempt.iter().any(|prefix| path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/')))
}

pub use future::RateLimitFuture;

/// The response future in a module of its own: pin-project-lite takes no documentation on enum fields, so
/// `missing_docs` is allowed here; the variants say what each holds.
mod future {
    #![allow(missing_docs)]

    use std::{
        convert::Infallible,
        future::Future,
        pin::Pin,
        task::{Context, Poll},
    };

    use axum::response::Response;
    use pin_project_lite::pin_project;

    pin_project! {
        /// Response future of [`RateLimit`](super::RateLimit): the inner future, or a refusal.
        #[project = RateLimitProjection]
        pub enum RateLimitFuture<F, B> {
            /// Let through (or exempt) without waiting: the inner service's future.
            Inner { #[pin] future: F },
            /// Refused at once: the 429, taken on the first poll.
            Refused { response: Option<Response<B>> },
        }
    }

    impl<F, B> Future for RateLimitFuture<F, B>
    where
        F: Future<Output = Result<Response<B>, Infallible>>,
    {
        type Output = Result<Response<B>, Infallible>;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            match self.project() {
                RateLimitProjection::Inner { future } => future.poll(cx),
                RateLimitProjection::Refused { response } => match response.take() {
                    Some(response) => Poll::Ready(Ok(response)),
                    // Polled again after completion, a caller bug: stay pending rather than panic.
                    None => Poll::Pending,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::{body::Body, extract::ConnectInfo, http::StatusCode};
    use governor::clock::FakeRelativeClock;
    use tower::ServiceExt;

    use super::*;

    fn per_second(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).expect("non-zero")
    }

    fn address(last: u8) -> Bucket {
        Bucket::Address(IpAddr::from([192, 0, 2, last]))
    }

    #[test]
    fn a_caller_gets_its_burst_then_waits_for_the_rate() {
        let clock = FakeRelativeClock::default();
        let limiter = limiter(per_second(2), Some(per_second(3)), clock.clone());
        for _ in 0..3 {
            assert!(check(&limiter, &address(1)).is_ok());
        }
        match check(&limiter, &address(1)) {
            Err(retry_after_secs) => assert_eq!(retry_after_secs, 1),
            other => panic!("expected a 429, got {other:?}"),
        }
        assert!(check(&limiter, &address(2)).is_ok(), "another caller has its own budget");
        clock.advance(Duration::from_millis(500));
        assert!(check(&limiter, &address(1)).is_ok(), "one request per half second comes back");
        assert!(check(&limiter, &address(1)).is_err());
    }

    #[test]
    fn subjects_and_addresses_are_separate_callers() {
        let limiter = limiter(per_second(1), None, FakeRelativeClock::default());
        assert!(check(&limiter, &Bucket::Subject("alice".into())).is_ok());
        assert!(check(&limiter, &Bucket::Subject("alice".into())).is_err());
        assert!(check(&limiter, &Bucket::Subject("bob".into())).is_ok());
        assert!(check(&limiter, &address(1)).is_ok());
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds_and_is_never_zero() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(59)), 59);
    }

    #[test]
    fn a_slow_rate_asks_for_a_long_wait() {
        let limiter = limiter(per_second(1), None, FakeRelativeClock::default());
        // One request a second: after the single-request burst the next slot is one second away.
        assert!(check(&limiter, &address(1)).is_ok());
        assert_eq!(check(&limiter, &address(1)), Err(1));
    }

    #[test]
    fn the_store_never_holds_more_than_its_capacity() {
        let clock = FakeRelativeClock::default();
        let quota = Quota::per_second(per_second(1));
        let limiter: Limiter<FakeRelativeClock> = RateLimiter::new(quota, BoundedStore::new(100), clock);
        for index in 0..10_000u32 {
            let _ = check(&limiter, &Bucket::Address(IpAddr::from(index.to_be_bytes())));
        }
        assert!(limiter.len() <= 100, "{} callers kept", limiter.len());
    }

    #[test]
    fn sweeping_drops_callers_that_are_as_good_as_fresh() {
        let clock = FakeRelativeClock::default();
        let limiter = limiter(per_second(10), None, clock.clone());
        for last in 0..50 {
            assert!(check(&limiter, &address(last)).is_ok());
        }
        assert_eq!(limiter.len(), 50);
        limiter.retain_recent();
        assert_eq!(limiter.len(), 50, "each still owes part of its budget");
        clock.advance(Duration::from_secs(1));
        limiter.retain_recent();
        assert_eq!(limiter.len(), 0);
    }

    #[test]
    fn exempt_paths_and_what_lies_below_them_are_exempt_and_nothing_else() {
        let exempt = |path| is_exempt(&["/healthz", "/livez", "/readyz"], path);
        assert!(exempt("/healthz") && exempt("/healthz/") && exempt("/readyz") && exempt("/livez"));
        assert!(!exempt("/healthzz") && !exempt("/api/greeting/v1") && !exempt("/") && !exempt("/metrics"));
    }

    #[test]
    fn the_refusal_is_a_429_problem_with_retry_after() {
        let draft = too_many_requests(3);
        assert_eq!(draft.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(draft.detail(), "Too many requests; try again in 3 s");
        assert_eq!(draft.into_response().headers()[header::RETRY_AFTER], "3");
    }

    #[test]
    fn ipv6_clients_share_a_budget_per_64_and_ipv4_clients_have_their_own() {
        let budget = |text: &str| budget_address(text.parse().expect("ip")).to_string();
        assert_eq!(budget("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::");
        assert_eq!(budget("2001:db8:1:2::1"), budget("2001:db8:1:2:ffff::9"));
        assert_ne!(budget("2001:db8:1:2::1"), budget("2001:db8:1:3::1"));
        assert_eq!(budget("203.0.113.9"), "203.0.113.9");
    }

    async fn status_of(service: &mut RateLimit<axum::Router>, path: &str, peer: Option<[u8; 4]>) -> StatusCode {
        let mut request = Request::builder().uri(path).body(Body::empty()).expect("request");
        if let Some(peer) = peer {
            request.extensions_mut().insert(ConnectInfo(std::net::SocketAddr::from((peer, 1234))));
        }
        service.ready().await.expect("ready").call(request).await.expect("infallible").status()
    }

    #[tokio::test]
    async fn the_layer_answers_429_with_retry_after_and_skips_unknown_and_exempt_callers() {
        let router = axum::Router::new()
            .route("/x", axum::routing::get(|| async { "ok" }))
            .route("/healthz", axum::routing::get(|| async { "ok" }));
        let layer = RateLimitLayer::new(per_second(1), None, None, &["/healthz"]);
        let mut service = layer.layer(router);
        assert_eq!(status_of(&mut service, "/x", Some([192, 0, 2, 1])).await, StatusCode::OK);
        assert_eq!(status_of(&mut service, "/x", Some([192, 0, 2, 1])).await, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(status_of(&mut service, "/healthz", Some([192, 0, 2, 1])).await, StatusCode::OK);
        assert_eq!(status_of(&mut service, "/x", Some([192, 0, 2, 2])).await, StatusCode::OK);
        assert_eq!(status_of(&mut service, "/x", None).await, StatusCode::OK);
        assert_eq!(status_of(&mut service, "/x", None).await, StatusCode::OK);

        let mut request = Request::builder().uri("/x").body(Body::empty()).expect("request");
        request.extensions_mut().insert(ConnectInfo(std::net::SocketAddr::from(([192, 0, 2, 1], 1))));
        let response = service.clone().oneshot(request).await.expect("infallible");
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }
}
