//! The service's rules (names, greetings, owned resources and the value types owned entities share), free of
//! HTTP and storage types so every API version can share them.

pub mod decimal;
pub mod etag;
pub mod greeting;
pub mod idempotency;
pub mod name;
pub mod owner;
pub mod principal;
pub mod resources;
pub mod text;
pub mod timestamp;
