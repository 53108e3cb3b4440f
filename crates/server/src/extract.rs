//! Extractors that report their rejections as [`ApiError`]s, so malformed input gets a problem body with the reason
//! instead of axum's plain-text rejection.

use axum::{
    extract::{FromRequestParts, Query},
    http::request::Parts,
};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// `Query<T>` whose rejection is a 400 problem naming what failed to parse.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Query::try_from_uri(&parts.uri)
            .map(|Query(value)| Self(value))
            .map_err(|rejection| ApiError::BadRequest { detail: rejection.body_text(), errors: Vec::new() })
    }
}
