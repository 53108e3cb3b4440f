//! rust-api-axum: a code-first REST API service on axum, the successor of the Flask API boilerplate.
//!
//! The binary (`main.rs`) only parses the command line and calls into this library, so the integration tests can
//! start exactly the server a user runs. This crate is the application: its APIs, their domain, the database and
//! authentication, and the wiring that hands them to the `platform` crate (the connection loop, the edge, the
//! guards, observability). The map is `ARCHITECTURE.md`.

pub mod apis;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod docs;
pub mod doctor;
pub mod domain;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod startup;
pub mod state;

pub use api_types::VERSION;

/// This service's name and version, as the platform reports them (`build_info`, the traces' scope, user agents).
pub const SERVICE: platform::ServiceInfo = platform::ServiceInfo { name: "rust-api-axum", version: VERSION };

#[cfg(test)]
mod layout;
