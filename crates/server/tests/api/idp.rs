//! The real test OpenID provider, shared with the client's tests (crate `test-support`).

pub use test_support::idp::*;
