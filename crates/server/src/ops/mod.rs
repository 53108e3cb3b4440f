//! What operators watch and steer the running service by: route templates (the names requests are counted and
//! traced under), Prometheus metrics, liveness and readiness.

pub mod memory;
pub mod metrics;
pub mod readiness;
pub mod routes;
pub mod traces;
