//! The polling half of the device authorization grant (RFC 8628, section 3.4-3.5) as a small state machine with
//! an injectable clock, so its timing rules are tested without waiting: wait `interval` (5 s by default) before
//! each poll, add 5 s on `slow_down`, keep going on `authorization_pending`, stop on `access_denied`,
//! `expired_token` or when the next poll would come after the code's expiry.

use std::{
    future::Future,
    time::{Duration, Instant},
};

use super::{
    AuthError,
    oauth::{TokenAnswer, TokenResponse},
};

/// Wait between polls when the provider names none (RFC 8628, section 3.2).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// Added to the interval on every `slow_down` (RFC 8628, section 3.5).
pub const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);
/// The shortest wait we accept, whatever the provider says: a zero interval would hammer it.
const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Lifetime assumed for a device code when the provider does not send `expires_in`.
pub const DEFAULT_EXPIRY: Duration = Duration::from_secs(600);
/// Network failures or provider server errors in a row that end the login.
const MAX_TRANSIENT_FAILURES: u32 = 3;

/// Time, as the poll loop sees it: the real one in the binary, a fake one in tests.
pub trait Clock {
    /// The current instant.
    fn now(&self) -> Instant;
    /// Waits for `duration`.
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()>;
}

/// The real clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> {
        tokio::time::sleep(duration)
    }
}

/// Something that asks the token endpoint once whether the device code was approved.
pub trait TokenPoll {
    /// One poll.
    fn poll(&self) -> impl Future<Output = TokenAnswer>;
}

/// What to do after an answer.
#[derive(Debug)]
pub enum Step {
    /// Wait and poll again.
    Continue,
    /// The login is done.
    Granted(Box<TokenResponse>),
    /// The login failed for good.
    Failed(AuthError),
}

/// The polling state: the current interval, the code's expiry and the run of transient failures.
#[derive(Debug, Clone)]
pub struct DevicePoller {
    interval: Duration,
    deadline: Instant,
    transient_failures: u32,
}

impl DevicePoller {
    /// Polling for a code issued at `now` that lives `expires_in` seconds, at `interval` seconds.
    pub fn new(now: Instant, expires_in: Option<u64>, interval: Option<u64>) -> Self {
        let interval = interval.map_or(DEFAULT_INTERVAL, Duration::from_secs).max(MIN_INTERVAL);
        let lifetime = expires_in.map_or(DEFAULT_EXPIRY, Duration::from_secs);
        Self { interval, deadline: now + lifetime, transient_failures: 0 }
    }

    /// When the device code expires.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The current wait between polls.
    #[cfg(test)]
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// How long to wait before the next poll; `Expired` when that poll would come after the code expired.
    pub fn next_wait(&self, now: Instant) -> Result<Duration, AuthError> {
        if now + self.interval >= self.deadline { Err(AuthError::Expired) } else { Ok(self.interval) }
    }

    /// Folds one token endpoint answer into the state and says what to do next.
    pub fn observe(&mut self, answer: TokenAnswer) -> Step {
        if !matches!(answer, TokenAnswer::Transient(_)) {
            self.transient_failures = 0;
        }
        match answer {
            TokenAnswer::Tokens(tokens) => Step::Granted(Box::new(tokens)),
            TokenAnswer::Refused(error) => match error.error.as_str() {
                "authorization_pending" => Step::Continue,
                "slow_down" => {
                    self.interval += SLOW_DOWN_STEP;
                    Step::Continue
                }
                "access_denied" => Step::Failed(AuthError::Denied(error.error_description)),
                "expired_token" => Step::Failed(AuthError::Expired),
                _ => Step::Failed(AuthError::Refused { step: "login", error }),
            },
            TokenAnswer::Transient(reason) => {
                self.transient_failures += 1;
                tracing::debug!("token poll failed ({reason}), {} in a row", self.transient_failures);
                if self.transient_failures >= MAX_TRANSIENT_FAILURES {
                    Step::Failed(AuthError::Unreachable { url: "its token endpoint".to_owned(), reason })
                } else {
                    Step::Continue
                }
            }
            TokenAnswer::Invalid(reason) => {
                Step::Failed(AuthError::Unexpected { url: "its token endpoint".into(), reason })
            }
        }
    }
}

/// Polls until the login is granted, denied or expired.
pub async fn poll_for_tokens(
    clock: &impl Clock,
    endpoint: &impl TokenPoll,
    mut poller: DevicePoller,
) -> Result<TokenResponse, AuthError> {
    loop {
        let wait = poller.next_wait(clock.now())?;
        clock.sleep(wait).await;
        match poller.observe(endpoint.poll().await) {
            Step::Continue => {}
            Step::Granted(tokens) => return Ok(*tokens),
            Step::Failed(error) => return Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{cell::RefCell, collections::VecDeque};

    use super::*;
    use secrecy::ExposeSecret;

    use crate::auth::oauth::{OAuthError, Secret};

    /// A clock that only moves when the code sleeps, recording every sleep.
    struct FakeClock {
        start: Instant,
        elapsed: RefCell<Duration>,
        sleeps: RefCell<Vec<Duration>>,
    }

    impl FakeClock {
        fn new() -> Self {
            Self { start: Instant::now(), elapsed: RefCell::new(Duration::ZERO), sleeps: RefCell::new(Vec::new()) }
        }

        fn sleeps_secs(&self) -> Vec<u64> {
            self.sleeps.borrow().iter().map(Duration::as_secs).collect()
        }
    }

    impl Clock for FakeClock {
        fn now(&self) -> Instant {
            self.start + *self.elapsed.borrow()
        }

        fn sleep(&self, duration: Duration) -> impl Future<Output = ()> {
            *self.elapsed.borrow_mut() += duration;
            self.sleeps.borrow_mut().push(duration);
            std::future::ready(())
        }
    }

    /// A token endpoint that plays back scripted answers (then `authorization_pending` forever), recording when
    /// it was asked.
    struct Script<'c> {
        clock: &'c FakeClock,
        answers: RefCell<VecDeque<TokenAnswer>>,
        polled_at: RefCell<Vec<u64>>,
    }

    impl<'c> Script<'c> {
        fn new(clock: &'c FakeClock, answers: Vec<TokenAnswer>) -> Self {
            Self { clock, answers: RefCell::new(answers.into()), polled_at: RefCell::new(Vec::new()) }
        }
    }

    impl TokenPoll for Script<'_> {
        fn poll(&self) -> impl Future<Output = TokenAnswer> {
            self.polled_at.borrow_mut().push((self.clock.now() - self.clock.start).as_secs());
            let answer = self.answers.borrow_mut().pop_front().unwrap_or_else(|| refused("authorization_pending"));
            std::future::ready(answer)
        }
    }

    fn refused(code: &str) -> TokenAnswer {
        TokenAnswer::Refused(OAuthError { error: code.to_owned(), error_description: None })
    }

    fn granted() -> TokenAnswer {
        TokenAnswer::Tokens(TokenResponse {
            access_token: Secret::from("at"),
            token_type: "Bearer".into(),
            expires_in: Some(3600),
            refresh_token: None,
            id_token: None,
            scope: None,
        })
    }

    async fn run(
        clock: &FakeClock,
        script: &Script<'_>,
        expires_in: u64,
        interval: Option<u64>,
    ) -> Result<TokenResponse, AuthError> {
        poll_for_tokens(clock, script, DevicePoller::new(clock.now(), Some(expires_in), interval)).await
    }

    #[tokio::test]
    async fn pending_then_slow_down_then_success_waits_the_interval_plus_five_seconds() {
        let clock = FakeClock::new();
        let script = Script::new(&clock, vec![refused("authorization_pending"), refused("slow_down"), granted()]);
        let tokens = run(&clock, &script, 600, None).await.expect("granted");
        assert_eq!(tokens.access_token.expose_secret(), "at");
        assert_eq!(clock.sleeps_secs(), [5, 5, 10], "default 5 s, then 5 s more after slow_down");
        assert_eq!(*script.polled_at.borrow(), [5, 10, 20]);
    }

    #[tokio::test]
    async fn the_server_interval_is_used_and_slow_down_accumulates() {
        let clock = FakeClock::new();
        let script = Script::new(&clock, vec![refused("slow_down"), refused("slow_down"), granted()]);
        run(&clock, &script, 600, Some(1)).await.expect("granted");
        assert_eq!(clock.sleeps_secs(), [1, 6, 11]);
    }

    #[tokio::test]
    async fn polling_stops_when_the_next_poll_would_come_after_the_expiry() {
        let clock = FakeClock::new();
        let script = Script::new(&clock, vec![]);
        let error = run(&clock, &script, 12, None).await.expect_err("expired");
        assert!(matches!(error, AuthError::Expired), "{error:?}");
        assert_eq!(*script.polled_at.borrow(), [5, 10], "no poll at 15 s for a code that expired at 12 s");
    }

    #[tokio::test]
    async fn denial_and_provider_side_expiry_end_the_login() {
        let clock = FakeClock::new();
        let denied = TokenAnswer::Refused(OAuthError {
            error: "access_denied".into(),
            error_description: Some("End-User aborted interaction".into()),
        });
        let script = Script::new(&clock, vec![refused("authorization_pending"), denied]);
        let error = run(&clock, &script, 600, Some(1)).await.expect_err("denied");
        assert_eq!(error.to_string(), "login denied at the OpenID provider: End-User aborted interaction");

        let script = Script::new(&clock, vec![refused("expired_token")]);
        assert!(matches!(run(&clock, &script, 600, Some(1)).await, Err(AuthError::Expired)));

        let script = Script::new(&clock, vec![refused("invalid_client")]);
        let error = run(&clock, &script, 600, Some(1)).await.expect_err("refused");
        assert!(error.to_string().contains("invalid_client"), "{error}");
    }

    #[tokio::test]
    async fn a_few_transient_failures_are_ridden_out_but_not_a_lasting_outage() {
        let clock = FakeClock::new();
        let blip = || TokenAnswer::Transient("cannot connect".into());
        let script = Script::new(&clock, vec![blip(), blip(), refused("authorization_pending"), blip(), granted()]);
        run(&clock, &script, 600, Some(1)).await.expect("granted after blips");

        let script = Script::new(&clock, vec![blip(), blip(), blip()]);
        let error = run(&clock, &script, 600, Some(1)).await.expect_err("outage");
        assert!(matches!(error, AuthError::Unreachable { .. }), "{error:?}");
    }

    #[test]
    fn a_zero_interval_is_raised_to_one_second() {
        let poller = DevicePoller::new(Instant::now(), Some(600), Some(0));
        assert_eq!(poller.interval(), Duration::from_secs(1));
    }
}
