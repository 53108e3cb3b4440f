//! The service's rules (names, greetings, owned resources), free of HTTP and storage types so every API version
//! can share them.

pub mod greeting;
pub mod name;
pub mod principal;
pub mod resources;
