//! Placeholder: the baseline server is being built.
fn main() {}
