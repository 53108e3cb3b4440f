//! The request id: the `x-request-id` a trusted proxy sent when it is sane, else one made here, process-unique and
//! cheap; an id any other caller sent is kept beside ours for the log, never in its place.

use std::{
    hash::{BuildHasher, RandomState},
    sync::{
        LazyLock,
        atomic::{AtomicU64, Ordering},
    },
};

use axum::http::{HeaderName, HeaderValue, Request};

/// Header carrying the request id in and out, as most proxies and tracing set-ups expect.
pub static REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The id of one request: the `x-request-id` of a trusted proxy when it is sane, else one made here. It goes back in the
/// response's `x-request-id` header, into problem bodies and into the access line; handlers can take it from the
/// request's extensions (`Extension<RequestId>`) to tag their own logs.
#[derive(Debug, Clone)]
pub struct RequestId(pub(super) HeaderValue);

impl RequestId {
    /// The id as text, for logs and problem bodies.
    pub fn as_str(&self) -> &str {
        // Both sources below are visible ASCII, so this never falls back.
        self.0.to_str().unwrap_or_default()
    }

    /// The id of `request`, and the sane `x-request-id` its sender chose when that is not believed. Only a
    /// trusted proxy (`from_trusted_proxy`, asked only when there is an id to believe) names the request: anyone
    /// else could pick another request's id, or the same one for every request, and blur whose lines are whose
    /// in the logs and the problem bodies.
    pub(super) fn for_request<B>(
        request: &Request<B>,
        from_trusted_proxy: impl FnOnce() -> bool,
    ) -> (Self, Option<HeaderValue>) {
        let sent = request.headers().get(&REQUEST_ID_HEADER).filter(|value| is_sane_request_id(value.as_bytes()));
        match sent {
            Some(value) if from_trusted_proxy() => (Self(value.clone()), None),
            sent => (Self::generate(), sent.cloned()),
        }
    }

    /// A process-unique id without a syscall: a random per-process prefix and a counter, as fixed-width hex.
    /// Written by hand into a stack buffer because `format!` here was 12% of a greeting's instructions.
    fn generate() -> Self {
        static PREFIX: LazyLock<u64> = LazyLock::new(|| RandomState::new().hash_one("rust-api-axum"));
        static COUNTER: AtomicU64 = AtomicU64::new(1);
        let mut id = [b'-'; 33];
        write_hex(*PREFIX, &mut id[..16]);
        write_hex(COUNTER.fetch_add(1, Ordering::Relaxed), &mut id[17..]);
        Self(HeaderValue::from_bytes(&id).unwrap_or_else(|_| HeaderValue::from_static("unknown")))
    }
}

/// Writes `value` as 16 lowercase hex digits into `out` (16 bytes); request ids and trace ids use it.
pub(crate) fn write_hex(value: u64, out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (index, byte) in out.iter_mut().enumerate() {
        let shift = 60 - 4 * index;
        *byte = DIGITS[((value >> shift) & 0xf) as usize];
    }
}

/// Ids from outside are echoed into logs and headers: accept only short, plain tokens.
fn is_sane_request_id(bytes: &[u8]) -> bool {
    (1..=128).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/' | b'+' | b'='))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_request_ids_are_unique_and_sane() {
        let (a, b) = (RequestId::generate(), RequestId::generate());
        assert_ne!(a.as_str(), b.as_str());
        assert!(is_sane_request_id(a.as_str().as_bytes()));
        assert_eq!(a.as_str().len(), 33);
        assert_eq!(a.as_str()[..17], b.as_str()[..17], "one prefix per process");
    }

    #[test]
    fn hex_is_fixed_width_and_lowercase() {
        let mut out = [0u8; 16];
        write_hex(0x1f, &mut out);
        assert_eq!(&out, b"000000000000001f");
        write_hex(u64::MAX, &mut out);
        assert_eq!(&out, b"ffffffffffffffff");
    }

    fn id_of(value: &str, trusted: bool) -> (String, Option<HeaderValue>) {
        let request = Request::builder().header("x-request-id", value).body(()).expect("request");
        let (id, sent) = RequestId::for_request(&request, || trusted);
        (id.as_str().to_owned(), sent)
    }

    #[test]
    fn a_trusted_proxys_request_id_is_kept_only_when_sane() {
        assert_eq!(id_of("abc-123", true), ("abc-123".to_owned(), None));
        assert_ne!(id_of("has space", true).0, "has space");
        assert_ne!(id_of(&"x".repeat(129), true).0, "x".repeat(129));
    }

    #[test]
    fn another_callers_request_id_is_kept_beside_ours_when_sane() {
        let (id, sent) = id_of("abc-123", false);
        assert_ne!(id, "abc-123");
        assert_eq!(sent.as_ref().map(HeaderValue::as_bytes), Some(&b"abc-123"[..]));
        assert_eq!(id_of("has space", false).1, None, "what is not sane is not logged either");
        let request = Request::builder().body(()).expect("request");
        let (_, sent) = RequestId::for_request(&request, || panic!("nothing to believe, nobody is asked"));
        assert_eq!(sent, None);
    }
}
