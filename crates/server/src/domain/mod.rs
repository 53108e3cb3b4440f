//! The service's rules, free of HTTP and storage types so every API version can share them.

pub mod greeting;
pub mod name;
