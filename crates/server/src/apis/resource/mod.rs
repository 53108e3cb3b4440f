//! The resource API: one module per version, each translating HTTP to the shared domain in `domain::resources`.

pub mod v1;
