//! The HTTP service platform: everything a production service needs around its handlers, and nothing of what
//! they do. It accepts connections ([`serve`]), gives every request its edge ([`edge`]: request id, timeout,
//! problem finalisation, access log, metrics, span), stands guards in front of the handlers ([`guards`]), lets
//! operators watch the service ([`observability`]: logs, metrics, traces; [`probes`]: liveness, readiness and the
//! scrape), renders every failure as RFC 9457 problem+json ([`problem`]) and gives memory back after a spike
//! ([`memory`]).
//!
//! **It knows nothing of authentication, databases, domains or APIs.** The application hands it what it needs at
//! wiring time as plain values or small traits: the route templates it mounts, its readiness checks, who is
//! asking (for the rate limiter), its documentation pages' policies, its service name and version. The crate
//! boundary enforces this (the platform cannot name app code) and `tests/boundary.rs` keeps the manifest free of
//! app dependencies.

pub mod edge;
pub mod guards;
pub mod layers;
pub mod listen;
pub mod memory;
pub mod observability;
pub mod probes;
pub mod problem;
pub mod readiness;
pub mod serve;
pub mod service;
pub mod settings;

pub use service::{HttpService, ServiceInfo};
