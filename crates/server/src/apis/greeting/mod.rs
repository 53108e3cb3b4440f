//! The greeting API: one module per version, each with its own router and OpenAPI paths.

pub mod v1;
pub mod v2;
pub mod v3;
