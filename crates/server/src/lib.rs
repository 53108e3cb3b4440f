//! rust-api-axum: a code-first REST API service on axum, the successor of the Flask API boilerplate.
//!
//! The binary (`main.rs`) only parses the command line and calls into this library, so the integration tests can
//! start exactly the server a user runs. The way of a request is documented in `ARCHITECTURE.md`.

pub mod apis;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod edge;
pub mod error;
pub mod extract;
pub mod guards;
pub mod ops;
pub mod serve;
pub mod startup;
pub mod state;
pub mod telemetry;

pub use api_types::VERSION;
