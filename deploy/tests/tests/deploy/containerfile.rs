//! The two Containerfiles end in the same runtime stage, so the image built here is the one users build with
//! the multi-stage variant (which needs a pullable Rust image and so is not built here).

use deploy_tests::repo_root;

fn runtime_stage(file: &str) -> String {
    let text = std::fs::read_to_string(repo_root().join("deploy/container").join(file)).expect("Containerfile");
    let (_, stage) = text.split_once("# --- runtime stage ---").expect("a runtime stage marker");
    // The multi-stage variant copies from its build stage; the other from the prepared context.
    stage.replace("--from=build ", "").replace(" /src/", " ")
}

#[test]
fn both_variants_share_one_runtime_stage() {
    let plain = runtime_stage("Containerfile");
    assert!(plain.contains("FROM scratch"), "the runtime stage is built on an empty base");
    assert_eq!(plain, runtime_stage("Containerfile.build"));
}

#[test]
fn build_context_ignores_send_the_prepared_binary_but_not_build_output() {
    for ignore in [".containerignore", ".dockerignore"] {
        let text = std::fs::read_to_string(repo_root().join(ignore)).expect(ignore);
        let lines: Vec<&str> = text.lines().collect();
        for needed in ["target", "!target/container", ".git"] {
            assert!(lines.contains(&needed), "{ignore} lacks `{needed}`");
        }
    }
}
