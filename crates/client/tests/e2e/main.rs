//! End-to-end tests of the client binary: the real test OpenID provider (`tools/idp`), the real server started
//! in-process on port 0, and the client run as a subprocess whose device-flow prompt is read and approved over
//! HTTP the way a person would. One binary for every suite (one link, shared build); each suite a module.

mod approve;
mod cli;
mod failures;
mod harness;
mod idp;
mod login;
mod refresh;
mod resources;
mod writes;
