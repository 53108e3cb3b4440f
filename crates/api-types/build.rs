//! Rebuilds the shared release version (and so the server and the client) when the build orchestrator's
//! `APP_VERSION` changes.
fn main() {
    println!("cargo:rerun-if-env-changed=APP_VERSION");
}
