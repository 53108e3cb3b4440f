//! What the platform serves and what it calls the service it serves.

use std::convert::Infallible;

use axum::{extract::Request, response::Response};
use tower::Service;

/// The service the connection loop ([`crate::serve`]) runs: the application's routes wrapped in the layers.
pub trait HttpService:
    Service<Request, Response = Response, Error = Infallible, Future: Send> + Clone + Send + Sync + 'static
{
}

impl<S> HttpService for S where
    S: Service<Request, Response = Response, Error = Infallible, Future: Send> + Clone + Send + Sync + 'static
{
}

/// The application's name and version, for what the platform reports about it: the `build_info` metric, the
/// traces' instrumentation scope, the user agent of the trace exporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceInfo {
    /// The service's name (`rust-api-axum`).
    pub name: &'static str,
    /// The release version of the binary.
    pub version: &'static str,
}
