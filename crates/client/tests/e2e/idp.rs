//! The real test OpenID provider, shared with the server's tests (crate `test-support`).

pub use test_support::idp::*;
