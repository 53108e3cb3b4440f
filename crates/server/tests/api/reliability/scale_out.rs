//! Scale-out: `scripts/scale-out` runs three replicas of this binary over one PostgreSQL schema behind HAProxy,
//! restarts each under load and kills one, and checks that nothing acknowledged was lost or duplicated and that
//! concurrent creates of one name across replicas got exactly one 201. About 30 s (20 s of load);
//! `RELIABILITY_PHASE_SECS` above 2 lengthens the load to ten phases, and `RELIABILITY_OUT` receives its figures.

// In a module named after its engine, so `./scripts/test` can leave it out by module path.
mod postgres {
    use std::path::PathBuf;

    #[tokio::test]
    async fn scale_out_over_haproxy_loses_nothing() {
        let db = std::env::var("TEST_POSTGRES_URL").expect(
            "TEST_POSTGRES_URL is not set: ./scripts/test sets it when the server answers, or filters these tests out",
        );
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let server = PathBuf::from(env!("CARGO_BIN_EXE_rust-api-axum"));
        // The load is 20 s in the test command; scripts/reliability asks for longer phases.
        let seconds = (loadgen::phase().as_secs() * 10).max(20);
        let output = tokio::process::Command::new(root.join("scripts/scale-out"))
            .arg("--seconds")
            .arg(seconds.to_string())
            .arg("--server")
            .arg(&server)
            .arg("--db")
            .arg(&db)
            .current_dir(&root)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .expect("scripts/scale-out runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "scripts/scale-out failed ({}):\n{stdout}\n{stderr}", output.status);
        assert!(stdout.lines().any(|line| line.starts_with("PASS: scale-out")), "no PASS line:\n{stdout}\n{stderr}");
        println!("{stdout}");
    }
}
