//! Idempotent creates: the key a client sends with a create so that a retry of the same request is answered again
//! instead of creating a second row, modelled on the IETF httpapi draft "The Idempotency-Key HTTP Header Field".
//! A key is scoped to its caller and tied to a fingerprint of the request; the answer it earned is stored with
//! the write it guards. Free of HTTP and storage types: the API builds a [`Claim`] and a [`StoredAnswer`], a store
//! keeps them.

use std::future::Future;

use sha2::{Digest, Sha256};

use super::principal::Principal;

/// Longest key accepted, in characters.
pub const MAX_KEY_CHARS: usize = 255;

/// A client's idempotency key: 1 to 255 visible ASCII characters (`!` to `~`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

/// Why a header value is not a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyRefused {
    /// Nothing, or only spaces.
    #[error("must not be empty")]
    Empty,
    /// Over [`MAX_KEY_CHARS`].
    #[error("must be at most {MAX_KEY_CHARS} characters")]
    TooLong,
    /// A space, a control character or anything outside ASCII.
    #[error("must be visible ASCII characters only (no spaces)")]
    NotVisibleAscii,
}

impl IdempotencyKey {
    /// Parses a header value.
    pub fn parse(raw: &[u8]) -> Result<Self, KeyRefused> {
        if raw.is_empty() {
            return Err(KeyRefused::Empty);
        }
        if raw.len() > MAX_KEY_CHARS {
            return Err(KeyRefused::TooLong);
        }
        if !raw.iter().all(|byte| byte.is_ascii_graphic()) {
            return Err(KeyRefused::NotVisibleAscii);
        }
        // Visible ASCII is UTF-8.
        Ok(Self(String::from_utf8_lossy(raw).into_owned()))
    }

    /// The key as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whose keys these are: a digest of the token's subject and client, so keys of different callers never meet and
/// the stored scope has one length whatever the subject's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyScope(String);

impl KeyScope {
    /// The scope of `principal`'s keys.
    pub fn of(principal: &Principal) -> Self {
        let mut digest = Sha256::new();
        digest.update(principal.subject.as_bytes());
        digest.update([0]);
        digest.update(principal.client_id.as_deref().unwrap_or_default().as_bytes());
        Self(hex(&digest.finalize()))
    }

    /// The digest, 64 hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What makes two requests "the same request": method, path and body, as a SHA-256 digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// The fingerprint of a request.
    pub fn of(method: &str, path: &str, body: &[u8]) -> Self {
        let mut digest = Sha256::new();
        // Lengths first, so no two different (method, path, body) triples share their bytes.
        for part in [method.as_bytes(), path.as_bytes(), body] {
            digest.update((part.len() as u64).to_be_bytes());
            digest.update(part);
        }
        Self(hex(&digest.finalize()))
    }

    /// A fingerprint read back from storage.
    pub fn from_stored(digest: String) -> Self {
        Self(digest)
    }

    /// The digest, 64 hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A request's claim on a key: whose, which, and for what request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Claim {
    /// Whose key.
    pub scope: KeyScope,
    /// The key.
    pub key: IdempotencyKey,
    /// The request it was sent with.
    pub fingerprint: Fingerprint,
}

impl Claim {
    /// `principal`'s claim on `key` for the request with `fingerprint`.
    pub fn new(principal: &Principal, key: IdempotencyKey, fingerprint: Fingerprint) -> Self {
        Self { scope: KeyScope::of(principal), key, fingerprint }
    }
}

/// The answer a key earned, as it is kept and given again: what a replay needs and no more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAnswer {
    /// The HTTP status.
    pub status: u16,
    /// The `Location` header, if the answer had one.
    pub location: Option<String>,
    /// The `ETag` header, if the answer had one.
    pub etag: Option<String>,
    /// The body: the resource's JSON for a success, the problem's kept members for a 4xx.
    pub body: String,
}

/// A key as storage has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// The request it was first sent with.
    pub fingerprint: Fingerprint,
    /// The answer that request earned.
    pub answer: StoredAnswer,
}

/// What a request with a key gets instead of running, when it does not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// The same request was answered before: this is its answer.
    Replay(StoredAnswer),
    /// The key was used for a different request.
    Mismatch,
    /// The first request with this key is still running.
    InFlight,
}

impl StoredKey {
    /// What `claim` gets from this stored key: the answer again if the requests are the same.
    pub fn settle(self, claim: &Claim) -> Settled {
        if self.fingerprint == claim.fingerprint { Settled::Replay(self.answer) } else { Settled::Mismatch }
    }
}

/// The outcome of a write guarded by a key: it ran, or it was settled without running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Once<T> {
    /// The write ran and its answer is stored with it.
    Ran(T),
    /// Nothing was written.
    Settled(Settled),
}

/// Reading or storing a key failed; the cause is logged, not shown.
#[derive(Debug, thiserror::Error)]
#[error("idempotency key storage failed: {0}")]
pub struct KeyStorageFailed(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// Where keys are kept, as the API records a refusal its write answered with. (Storing a key with the write it
/// guards, and finding a stored one, is the entity store's `create_once`, inside its transaction.)
pub trait KeyStore: Send + Sync {
    /// Stores `answer` for `claim` unless the key is taken: then what it says.
    fn record(
        &self,
        claim: &Claim,
        answer: &StoredAnswer,
    ) -> impl Future<Output = Result<Option<Settled>, KeyStorageFailed>> + Send;
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::principal::DisplayName;

    fn principal(subject: &str, client: Option<&str>) -> Principal {
        Principal {
            subject: subject.into(),
            client_id: client.map(Into::into),
            username: DisplayName::from_claim(subject).expect("visible"),
            scopes: Default::default(),
        }
    }

    #[test]
    fn keys_are_one_to_255_visible_ascii_characters() {
        assert_eq!(IdempotencyKey::parse(b"a").expect("one").as_str(), "a");
        let longest = "k".repeat(MAX_KEY_CHARS);
        assert!(IdempotencyKey::parse(longest.as_bytes()).is_ok());
        assert_eq!(IdempotencyKey::parse(format!("{longest}k").as_bytes()), Err(KeyRefused::TooLong));
        assert_eq!(IdempotencyKey::parse(b""), Err(KeyRefused::Empty));
        for bad in [&b"a b"[..], b"tab\t", b"\x7f", "é".as_bytes(), b"\0"] {
            assert_eq!(IdempotencyKey::parse(bad), Err(KeyRefused::NotVisibleAscii), "{bad:?}");
        }
        assert!(IdempotencyKey::parse(b"!~\"{}9f1c-4e2a").is_ok());
    }

    #[test]
    fn scopes_separate_subjects_and_clients() {
        let alice = KeyScope::of(&principal("alice", None));
        assert_eq!(alice.as_str().len(), 64);
        assert_eq!(alice, KeyScope::of(&principal("alice", None)));
        assert_ne!(alice, KeyScope::of(&principal("alice", Some("cli"))));
        assert_ne!(alice, KeyScope::of(&principal("bob", None)));
        // The separator keeps ("ab", "c") apart from ("a", "bc").
        assert_ne!(KeyScope::of(&principal("ab", Some("c"))), KeyScope::of(&principal("a", Some("bc"))));
    }

    #[test]
    fn fingerprints_tell_method_path_and_body_apart() {
        let base = Fingerprint::of("POST", "/api/resource/v1", br#"{"name":"a"}"#);
        assert_eq!(base, Fingerprint::of("POST", "/api/resource/v1", br#"{"name":"a"}"#));
        assert_ne!(base, Fingerprint::of("POST", "/api/resource/v1", br#"{"name":"b"}"#));
        assert_ne!(base, Fingerprint::of("PUT", "/api/resource/v1", br#"{"name":"a"}"#));
        assert_ne!(base, Fingerprint::of("POST", "/api/resource/v1/", br#"{"name":"a"}"#));
        assert_ne!(Fingerprint::of("POST", "/a", b"b"), Fingerprint::of("POST", "/ab", b""));
    }

    #[test]
    fn a_stored_key_replays_only_for_the_same_request() {
        let answer = StoredAnswer { status: 201, location: Some("/x/1".into()), etag: None, body: "{}".into() };
        let stored = StoredKey { fingerprint: Fingerprint::of("POST", "/x", b"1"), answer: answer.clone() };
        let key = IdempotencyKey::parse(b"k").expect("key");
        let same = Claim::new(&principal("a", None), key.clone(), Fingerprint::of("POST", "/x", b"1"));
        let other = Claim::new(&principal("a", None), key, Fingerprint::of("POST", "/x", b"2"));
        assert_eq!(stored.clone().settle(&same), Settled::Replay(answer));
        assert_eq!(stored.settle(&other), Settled::Mismatch);
    }
}
