//! The extractors handlers use to demand a caller: `Authenticated` (any valid token) and `Scoped<S>` (a valid token
//! carrying scope `S`). Their rejections are `ApiError`s, so failures answer 401/403/503 problems.

use std::marker::PhantomData;

use axum::{
    extract::FromRequestParts,
    http::{header, request::Parts},
};

use super::{AuthError, Authenticator, OidcSettings, Principal};
use crate::{error::ApiError, state::AppState};

/// A request with a valid bearer token.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let verifier = match &state.auth {
            Authenticator::Disabled => return Err(AuthError::NotConfigured.into()),
            Authenticator::Oidc(verifier) => verifier,
        };
        let token = bearer_token(parts)?;
        Ok(Self(verifier.verify(token).await?))
    }
}

/// The token from `Authorization: Bearer <token>`; any other scheme counts as no token (RFC 6750, section 3).
fn bearer_token(parts: &Parts) -> Result<&str, AuthError> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or(AuthError::MissingToken)?
        .to_str()
        .map_err(|_| AuthError::invalid("The Authorization header is not valid text"))?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::MissingToken)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::MissingToken);
    }
    let token = token.trim();
    // RFC 6750's b64token: letters, digits and -._~+/ with trailing '='.
    let well_formed = !token.is_empty()
        && token
            .trim_end_matches('=')
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/'));
    if !well_formed {
        return Err(AuthError::invalid("The bearer token is malformed"));
    }
    Ok(token)
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
pub struct Scoped<S>(pub Principal, pub PhantomData<S>);

impl<S: RequiredScope> FromRequestParts<AppState> for Scoped<S> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Authenticated(principal) = Authenticated::from_request_parts(parts, state).await?;
        // Authenticated succeeded, so settings exist.
        let Some(settings) = state.auth.settings() else {
            return Err(AuthError::NotConfigured.into());
        };
        let scope = S::name(settings);
        if !principal.has_scope(scope) {
            return Err(AuthError::InsufficientScope(scope.to_owned()).into());
        }
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
        for value in ["Bearer ", "Bearer a b", "Bearer <script>", "Bearer a=b"] {
            assert!(matches!(token_of(Some(value)), Err(AuthError::InvalidToken(_))), "{value}");
        }
    }
}
