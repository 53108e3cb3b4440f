//! The extractors handlers use to demand a caller: `Authenticated` (any valid token) and `Scoped<S>` (a valid token
//! carrying scope `S`). Their rejections are `ApiError`s, so failures answer 401/403/503 problems.

use std::{marker::PhantomData, sync::Arc};

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, header, request::Parts},
};

use super::{
    AuthError, Authenticator, OidcSettings, Principal, Rejection,
    metrics::{AuthMetrics, AuthOutcome},
};
use crate::error::ApiError;

/// What the extractors need of the application's state: how callers are authenticated and where the decisions
/// are counted. The state implements it, so authentication never names the state's type.
pub trait AuthState: Send + Sync {
    /// How callers are authenticated.
    fn authenticator(&self) -> &Authenticator;
    /// Where authentication decisions are counted.
    fn auth_metrics(&self) -> &AuthMetrics;
}

/// A request with a valid bearer token.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Arc<Principal>);

impl<State: AuthState> FromRequestParts<State> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &State) -> Result<Self, Self::Rejection> {
        let principal = authenticate(parts, state).await?;
        state.auth_metrics().outcome(AuthOutcome::Valid);
        Ok(Self(principal))
    }
}

/// The caller behind the request's bearer token; failures are counted here, successes by the extractor that
/// also knows whether the scope was enough.
async fn authenticate(parts: &Parts, state: &impl AuthState) -> Result<Arc<Principal>, AuthError> {
    let verified = match state.authenticator() {
        Authenticator::Disabled => Err(AuthError::NotConfigured),
        Authenticator::Oidc(verifier) => match bearer_token(parts) {
            Ok(token) => verifier.verify(token).await,
            Err(error) => Err(error),
        },
    };
    if let Err(error) = &verified {
        state.auth_metrics().outcome(AuthOutcome::of(error));
    }
    verified
}

/// The token from `Authorization: Bearer <token>`; any other scheme counts as no token (RFC 6750, section 3).
/// One branch-free pass over the token's bytes, which the compiler vectorises: tokens are ~1 KB and this runs on
/// every authenticated request.
fn bearer_token(parts: &Parts) -> Result<&str, AuthError> {
    bearer_token_in(&parts.headers)
}

/// [`bearer_token`] from bare headers, for the rate limiter, which keys callers by their token's subject.
pub(crate) fn bearer_token_in(headers: &HeaderMap) -> Result<&str, AuthError> {
    let value = headers.get(header::AUTHORIZATION).ok_or(AuthError::MissingToken)?.as_bytes();
    let space = value.iter().position(|&b| b == b' ').ok_or(AuthError::MissingToken)?;
    let (scheme, token) = (&value[..space], value[space + 1..].trim_ascii());
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Err(AuthError::MissingToken);
    }
    let padding = token.iter().rev().take_while(|&&b| b == b'=').count();
    let well_formed =
        token.len() > padding && token[..token.len() - padding].iter().fold(true, |ok, &b| ok & is_b64token(b));
    // Only ASCII passes the table, so the token is valid UTF-8 whenever it is well formed.
    match std::str::from_utf8(token) {
        Ok(token) if well_formed => Ok(token),
        _ => Err(AuthError::invalid(Rejection::Malformed, "The bearer token is malformed")),
    }
}

/// RFC 6750's b64token characters: letters, digits and `-._~+/` (trailing `=` are handled apart). Comparisons
/// joined with `|` rather than `||`, so that a whole run of bytes is checked at once.
fn is_b64token(b: u8) -> bool {
    let letter = (b | 0x20).wrapping_sub(b'a') < 26;
    let digit = b.wrapping_sub(b'0') < 10;
    letter | digit | (b == b'-') | (b == b'.') | (b == b'_') | (b == b'~') | (b == b'+') | (b == b'/')
}

/// A scope an operation can demand; the name comes from the settings so deployments can rename scopes.
pub trait RequiredScope: Send + Sync + 'static {
    /// The scope's name under `settings`.
    fn name(settings: &OidcSettings) -> &str;
}

/// Reading resources.
#[derive(Debug)]
pub struct ReadScope;

impl RequiredScope for ReadScope {
    fn name(settings: &OidcSettings) -> &str {
        &settings.read_scope
    }
}

/// Creating, changing and deleting resources.
#[derive(Debug)]
pub struct WriteScope;

impl RequiredScope for WriteScope {
    fn name(settings: &OidcSettings) -> &str {
        &settings.write_scope
    }
}

/// A request with a valid bearer token that grants scope `S`.
#[derive(Debug)]
pub struct Scoped<S>(pub Arc<Principal>, pub PhantomData<S>);

impl<S: RequiredScope, State: AuthState> FromRequestParts<State> for Scoped<S> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &State) -> Result<Self, Self::Rejection> {
        let principal = authenticate(parts, state).await?;
        // Authenticated succeeded, so settings exist.
        let Some(settings) = state.authenticator().settings() else {
            return Err(AuthError::NotConfigured.into());
        };
        let scope = S::name(settings);
        if !principal.has_scope(scope) {
            state.auth_metrics().outcome(AuthOutcome::InsufficientScope);
            return Err(AuthError::InsufficientScope(scope.to_owned()).into());
        }
        state.auth_metrics().outcome(AuthOutcome::Valid);
        Ok(Self(principal, PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use axum::http::Request;

    use super::*;

    fn token_of(authorization: Option<&str>) -> Result<String, AuthError> {
        let mut builder = Request::builder();
        if let Some(value) = authorization {
            builder = builder.header("authorization", value);
        }
        let (parts, ()) = builder.body(()).expect("request").into_parts();
        bearer_token(&parts).map(str::to_owned)
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(token_of(Some("Bearer abc.def-ghi")).as_deref(), Ok("abc.def-ghi"));
        assert_eq!(token_of(Some("bearer abc==")).as_deref(), Ok("abc=="));
    }

    #[test]
    fn no_header_or_another_scheme_is_a_missing_token() {
        assert_eq!(token_of(None), Err(AuthError::MissingToken));
        assert_eq!(token_of(Some("Basic dXNlcjpwYXNz")), Err(AuthError::MissingToken));
        assert_eq!(token_of(Some("Bearer")), Err(AuthError::MissingToken));
    }

    #[test]
    fn garbled_tokens_are_invalid() {
        for value in
            ["Bearer ", "Bearer a b", "Bearer <script>", "Bearer a=b", "Bearer ===", "Bearer a@b", "Bearer a[b"]
        {
            assert!(matches!(token_of(Some(value)), Err(AuthError::InvalidToken(..))), "{value}");
        }
    }

    #[test]
    fn the_b64token_check_matches_the_rfc_alphabet_for_every_byte() {
        for b in 0..=u8::MAX {
            let expected = b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
            assert_eq!(is_b64token(b), expected, "byte {b:#04x}");
        }
    }

    #[test]
    fn bytes_outside_ascii_are_a_malformed_token_not_a_crash() {
        let mut parts = Request::builder().body(()).expect("request").into_parts().0;
        let value = axum::http::HeaderValue::from_bytes(b"Bearer abc\xffdef").expect("opaque header value");
        parts.headers.insert(header::AUTHORIZATION, value);
        assert!(matches!(bearer_token(&parts), Err(AuthError::InvalidToken(..))));
    }
}
