//! The integration test binary: one binary for all suites (one link, shared build), each suite a module.
//! HTTP suites start the real server in-process on port 0; CLI suites run the real binary.

mod auth;
mod browser;
mod cli;
mod connections;
mod database;
mod docs;
mod doctor;
mod errors;
mod etag;
mod fuzz;
mod greeting;
mod guards;
mod healthz;
mod helpers;
mod idempotency;
mod idp;
mod lifecycle;
mod logs;
mod migrations;
mod ops;
mod postgres;
mod reliability;
mod resource;
mod static_keys;
mod traces;
