//! Placeholder: the client CLI is being built.
fn main() {}
