//! What operators watch the service by, in three rooms: `logs` (the log lines and the access log), `metrics`
//! (the Prometheus registry) and `traces` (OpenTelemetry spans), plus the route templates that metric labels and
//! span names share (`routes`).

pub mod logs;
pub mod metrics;
pub mod routes;
pub mod traces;
