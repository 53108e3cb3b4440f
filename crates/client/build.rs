//! Rebuilds the client when the release version given by the build orchestrator changes.
fn main() {
    println!("cargo:rerun-if-env-changed=APP_VERSION");
}
