//! What makes the client's writes safe to repeat and to race (issue 25), as small pure functions:
//!
//! - every create carries a fresh `Idempotency-Key`, so sending the same request again can never make a second
//!   resource: the server replays the first answer, or says the first attempt is still running;
//! - the retry policy: which outcomes are worth sending the same create again for, and how long to wait first;
//! - the `If-Match` value a rename or delete sends, so it fails (412) instead of overwriting a change it never saw.

use std::{fmt::Write as _, time::Duration};

/// The request header that makes a create safe to repeat.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
/// The answer header saying the server replayed the first answer to this key.
pub const IDEMPOTENT_REPLAYED: &str = "Idempotent-Replayed";

/// Attempts per create, the first included.
pub const MAX_ATTEMPTS: u32 = 4;
/// The backoff before the first retry, doubled for each further one (jitter takes up to half of it off).
const BASE_DELAY: Duration = Duration::from_millis(500);
/// The longest wait between two attempts, also when a `Retry-After` asks for more: a person is waiting.
pub const MAX_DELAY: Duration = Duration::from_secs(10);

/// A fresh idempotency key: a random (version 4) UUID, from the operating system's generator.
pub fn idempotency_key() -> Result<String, getrandom::Error> {
    let mut bytes = [0_u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(uuid_v4(bytes))
}

/// `bytes` as a version 4, variant 1 UUID in its hyphenated lower-case form (RFC 9562).
fn uuid_v4(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut text = String::with_capacity(36);
    for (index, byte) in bytes.iter().enumerate() {
        if matches!(index, 4 | 6 | 8 | 10) {
            text.push('-');
        }
        let _ = write!(text, "{byte:02x}");
    }
    text
}

/// What one attempt of a create came back with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// No answer: the connection was refused or dropped, or the request timed out. The server may or may not
    /// have acted on it; only the key makes sending it again safe.
    NoAnswer,
    /// An HTTP answer, with its `Retry-After` header when it had one.
    Answer {
        /// The status code.
        status: u16,
        /// The `Retry-After` header as sent.
        retry_after: Option<&'a str>,
    },
}

/// Whether the same request (same key) is worth sending again after `outcome`: no answer at all, a 409 with
/// `Retry-After` (the first attempt with this key is still in flight; a name clash's 409 has none), or a
/// gateway's 502, 503 or 504. Anything else is the answer: a success, a replay, or a problem with the request
/// that sending it again cannot fix.
pub fn retryable(outcome: Outcome<'_>) -> bool {
    match outcome {
        Outcome::NoAnswer => true,
        Outcome::Answer { status: 409, retry_after } => retry_after.is_some(),
        Outcome::Answer { status, .. } => matches!(status, 502..=504),
    }
}

/// How long to wait before sending attempt `attempt + 1`, after attempt `attempt` (counted from 1) came back
/// with `outcome`; `None` to stop, when the outcome is final or the [`MAX_ATTEMPTS`] are used up.
///
/// The wait is the server's `Retry-After` when it gives one in seconds, else an exponential backoff (0.5 s, 1 s,
/// 2 s) of which `jitter` (in `[0, 1)`) keeps between half and all, so clients that failed together do not come
/// back together; never more than [`MAX_DELAY`].
pub fn next_delay(outcome: Outcome<'_>, attempt: u32, jitter: f64) -> Option<Duration> {
    if attempt >= MAX_ATTEMPTS || !retryable(outcome) {
        return None;
    }
    let jitter = if (0.0..1.0).contains(&jitter) { jitter } else { 0.5 };
    let asked = match outcome {
        Outcome::Answer { retry_after: Some(value), .. } => retry_after_seconds(value),
        _ => None,
    };
    let delay = match asked {
        // Not before the server asked; a little later, by up to a tenth of a second, to spread clients.
        Some(asked) => asked + Duration::from_millis(100).mul_f64(jitter),
        None => {
            let backoff = BASE_DELAY.saturating_mul(1_u32 << attempt.saturating_sub(1).min(16));
            backoff / 2 + (backoff / 2).mul_f64(jitter)
        }
    };
    Some(delay.min(MAX_DELAY))
}

/// A `Retry-After` in delay-seconds; an HTTP-date (or anything else) is not understood and left to the backoff.
fn retry_after_seconds(value: &str) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // More digits than a u64 holds is still "longer than we wait".
    Some(value.parse().map_or(MAX_DELAY, Duration::from_secs))
}

/// A number in `[0, 1)` for [`next_delay`], from the operating system's generator (the middle when it fails).
pub fn jitter() -> f64 {
    // The top 53 bits, the precision of an f64: every value below 1.
    getrandom::u64().map_or(0.5, |bits| (bits >> 11) as f64 / (1_u64 << 53) as f64)
}

/// The `If-Match` value for an entity tag as a person or a body gives it: an entity tag already quoted
/// (`"abc"`, `W/"abc"`) as it is, a bare one (`abc`) quoted. `None` for an empty tag or one that cannot be a
/// header value (anything but visible ASCII).
pub fn if_match(etag: &str) -> Option<String> {
    let etag = etag.trim();
    if etag.is_empty() || !etag.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    let (weak, rest) = etag.strip_prefix("W/").map_or(("", etag), |rest| ("W/", rest));
    let tag = rest.strip_prefix('"').and_then(|rest| rest.strip_suffix('"')).unwrap_or(rest);
    // An entity tag holds no quote of its own.
    if tag.contains('"') { None } else { Some(format!("{weak}\"{tag}\"")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, retry_after: Option<&str>) -> Outcome<'_> {
        Outcome::Answer { status, retry_after }
    }

    #[test]
    fn keys_are_version_4_uuids_and_fresh_each_time() {
        let key = idempotency_key().expect("a key");
        assert_eq!(key.len(), 36, "{key}");
        assert!(key.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{key}");
        assert_eq!(key.split('-').map(str::len).collect::<Vec<_>>(), [8, 4, 4, 4, 12], "{key}");
        assert_eq!(&key[14..15], "4", "version 4: {key}");
        assert!(matches!(&key[19..20], "8" | "9" | "a" | "b"), "variant 1: {key}");
        assert_ne!(key, idempotency_key().expect("another key"));
        assert_eq!(uuid_v4([0xff; 16]), "ffffffff-ffff-4fff-bfff-ffffffffffff");
        assert_eq!(uuid_v4([0; 16]), "00000000-0000-4000-8000-000000000000");
    }

    #[test]
    fn only_no_answer_in_flight_and_gateway_errors_are_retried() {
        assert!(retryable(Outcome::NoAnswer));
        assert!(retryable(answer(409, Some("1"))), "the first attempt with this key is still in flight");
        assert!(!retryable(answer(409, None)), "a name clash is final");
        for status in [502, 503, 504] {
            assert!(retryable(answer(status, None)), "{status}");
            assert!(retryable(answer(status, Some("2"))), "{status}");
        }
        for status in [200, 201, 400, 401, 403, 404, 412, 422, 428, 429, 500, 501, 505] {
            assert!(!retryable(answer(status, None)), "{status}");
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_stops_after_the_last_attempt() {
        let delays = |jitter| (1..=4).map(|n| next_delay(Outcome::NoAnswer, n, jitter)).collect::<Vec<_>>();
        let ms = Duration::from_millis;
        assert_eq!(delays(0.0), [Some(ms(250)), Some(ms(500)), Some(ms(1000)), None]);
        assert_eq!(delays(0.5), [Some(ms(375)), Some(ms(750)), Some(ms(1500)), None]);
        let most = delays(0.999_999);
        assert!(most[0] < Some(ms(500)) && most[2] < Some(ms(2000)) && most[3].is_none(), "{most:?}");
        assert_eq!(delays(f64::NAN), delays(0.5), "a broken jitter is the middle, not a panic");
        assert_eq!(delays(7.0), delays(0.5));
        assert_eq!(next_delay(answer(201, None), 1, 0.0), None, "a success is final");
        assert_eq!(next_delay(answer(404, Some("1")), 1, 0.0), None, "Retry-After alone does not retry");
        assert_eq!(next_delay(Outcome::NoAnswer, 0, 0.0), Some(ms(250)), "no underflow");
        assert_eq!(next_delay(Outcome::NoAnswer, MAX_ATTEMPTS, 0.0), None);
    }

    #[test]
    fn retry_after_is_honoured_in_seconds_and_capped() {
        let ms = Duration::from_millis;
        assert_eq!(next_delay(answer(409, Some("2")), 1, 0.0), Some(ms(2000)));
        assert_eq!(next_delay(answer(409, Some(" 3 ")), 2, 0.5), Some(ms(3050)));
        assert_eq!(next_delay(answer(503, Some("0")), 1, 0.0), Some(ms(0)));
        assert_eq!(next_delay(answer(503, Some("3600")), 1, 0.0), Some(MAX_DELAY), "capped");
        assert_eq!(next_delay(answer(503, Some("99999999999999999999999")), 1, 0.0), Some(MAX_DELAY));
        // An HTTP-date, or nonsense, falls back to the backoff; for a 409 its presence still means "in flight".
        let date = Some("Wed, 21 Oct 2026 07:28:00 GMT");
        assert_eq!(next_delay(answer(409, date), 1, 0.0), Some(ms(250)));
        assert_eq!(next_delay(answer(503, Some("-1")), 2, 0.0), Some(ms(500)));
        assert_eq!(next_delay(answer(409, Some("")), 3, 0.0), Some(ms(1000)));
    }

    #[test]
    fn jitter_is_a_fraction() {
        for _ in 0..100 {
            let jitter = jitter();
            assert!((0.0..1.0).contains(&jitter), "{jitter}");
        }
    }

    #[test]
    fn if_match_quotes_a_bare_tag_and_keeps_a_quoted_one() {
        assert_eq!(if_match("\"3-abc\"").as_deref(), Some("\"3-abc\""));
        assert_eq!(if_match("W/\"weak\"").as_deref(), Some("W/\"weak\""));
        assert_eq!(if_match("3-abc").as_deref(), Some("\"3-abc\""));
        assert_eq!(if_match(" \"x\" ").as_deref(), Some("\"x\""), "surrounding blanks are not the tag");
        assert_eq!(if_match("W/bare").as_deref(), Some("W/\"bare\""));
        assert_eq!(if_match("\"half"), None, "not an entity tag");
        assert_eq!(if_match("\"a\"b\""), None);
        assert_eq!(if_match(""), None);
        assert_eq!(if_match("two words"), None, "not a header value");
        assert_eq!(if_match("caf\u{e9}"), None);
        assert_eq!(if_match("a\r\nInjected: 1"), None, "no header injection");
    }
}
