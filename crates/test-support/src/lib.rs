//! Helpers shared by the integration tests of the server and of the client, so both start the server the same way
//! and talk to the same real test OpenID provider the same way. Never a dependency of shipped code.

pub mod idp;
pub mod server;
pub mod tls;
