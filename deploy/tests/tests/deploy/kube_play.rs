//! The chart's pod specs, as rendered, run by `podman kube play`: first the migration Job's pod (`db upgrade`
//! against PostgreSQL), then the Deployment's, with the chart's env, mounts, arguments and securityContext.
//!
//! podman 4.3 is not Kubernetes. What this test changes in the rendered objects works around its limits only,
//! and each change is named where it is made: no `kind: Job` (its pod template runs as a Pod with
//! `restartPolicy: Never`), no Secret objects for `secretKeyRef` (a podman secret holding the `data` map as JSON)
//! or volumes (the decoded keys as a ConfigMap volume), `envFrom` winning over `env`, ports published on every
//! interface (host networking on a loopback port instead), and probes that podman ignores or runs as `curl`
//! inside the container (the test probes the rendered paths from outside).

use std::{path::Path, time::Duration};

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use deploy_tests::{
    ScratchSchema,
    chart::{Manifest, render_release},
    free_port, http, image, inspect, podman_blocking, podman_ok, podman_output, process_status, unique_name,
};
use serde_json::{Map, Value, json};
use test_support::idp::TestIdp;

/// What one `podman kube play` created, removed when the test ends whatever happened.
struct Played {
    files: Vec<std::path::PathBuf>,
    secrets: Vec<String>,
    volumes: Vec<String>,
}

impl Drop for Played {
    fn drop(&mut self) {
        let podman = |args: &[&str]| {
            let _ = podman_blocking().args(args).output();
        };
        for file in &self.files {
            podman(&["kube", "down", file.to_str().unwrap_or_default()]);
        }
        // `kube down` leaves secrets and volumes behind.
        for secret in &self.secrets {
            podman(&["secret", "rm", secret]);
        }
        for volume in &self.volumes {
            podman(&["volume", "rm", "--force", volume]);
        }
    }
}

impl Played {
    fn new() -> Self {
        Self { files: Vec::new(), secrets: Vec::new(), volumes: Vec::new() }
    }

    /// Creates a podman secret from a rendered Secret: podman 4.3's `secretKeyRef` reads a secret whose content is
    /// the Secret's `data` map as JSON (the values stay base64, as in the manifest).
    async fn secret(&mut self, secret: &Value, dir: &Path) {
        let name = secret["metadata"]["name"].as_str().expect("Secret name").to_owned();
        let file = dir.join(format!("{name}.secret.json"));
        std::fs::write(&file, secret["data"].to_string()).expect("write secret data");
        podman_ok(&["secret", "create", &name, file.to_str().expect("utf-8")]).await;
        self.secrets.push(name);
    }

    /// Plays `docs` (JSON is YAML) from a file in `dir`; every volume the pod names is removed afterwards.
    async fn play(&mut self, docs: &[Value], dir: &Path) {
        let file = dir.join(format!("{}.yaml", unique_name("play")));
        let text: Vec<String> = docs.iter().map(Value::to_string).collect();
        std::fs::write(&file, text.join("\n---\n")).expect("write play file");
        self.files.push(file.clone());
        for doc in docs {
            for volume in pod_spec(doc)["volumes"].as_array().into_iter().flatten() {
                let source = volume.get("configMap").map_or(&volume["name"], |c| &c["name"]);
                self.volumes.push(source.as_str().expect("volume name").to_owned());
            }
        }
        podman_ok(&["kube", "play", file.to_str().expect("utf-8")]).await;
    }
}

fn pod_spec(doc: &Value) -> &Value {
    match doc["kind"].as_str() {
        Some("Pod") => &doc["spec"],
        _ => &doc["spec"]["template"]["spec"],
    }
}

fn find<'a>(manifests: &'a [Manifest], kind: &str, name: &str) -> &'a Value {
    &manifests
        .iter()
        .find(|m| m.kind() == kind && m.doc["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} rendered"))
        .doc
}

/// Adapts a rendered pod spec to podman 4.3 on this machine, as the module documentation lists.
fn adapt_pod_spec(spec: &mut Value, volume_prefix: &str, secret_files: &mut Vec<Value>, secrets: &[&Value]) {
    // Host networking on the loopback port the chart was given as containerPort: podman 4.3 would publish ports
    // on every interface, and tests only talk to loopback.
    spec["hostNetwork"] = json!(true);
    for container in spec["containers"].as_array_mut().expect("containers") {
        let container = container.as_object_mut().expect("container");
        for key in ["ports", "livenessProbe", "readinessProbe", "startupProbe"] {
            container.remove(key);
        }
        for mount in container.get_mut("volumeMounts").and_then(Value::as_array_mut).into_iter().flatten() {
            let name = format!("{volume_prefix}-{}", mount["name"].as_str().expect("mount name"));
            mount["name"] = json!(name);
        }
    }
    for volume in spec["volumes"].as_array_mut().expect("volumes") {
        let name = format!("{volume_prefix}-{}", volume["name"].as_str().expect("volume name"));
        volume["name"] = json!(name.clone());
        // Secret volumes: podman 4.3 crashes or mounts nothing; the same keys, decoded, as a ConfigMap volume.
        if let Some(secret_volume) = volume.as_object_mut().expect("volume").remove("secret") {
            let secret_name = secret_volume["secretName"].as_str().expect("secretName");
            let secret = secrets
                .iter()
                .find(|s| s["metadata"]["name"] == secret_name)
                .unwrap_or_else(|| panic!("the chart rendered Secret {secret_name}"));
            let mut data = Map::new();
            for (key, encoded) in secret["data"].as_object().expect("Secret data") {
                let bytes = BASE64.decode(encoded.as_str().expect("base64 text")).expect("base64");
                data.insert(key.clone(), json!(String::from_utf8(bytes).expect("UTF-8 secret file")));
            }
            secret_files
                .push(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}));
            volume["configMap"] =
                json!({"name": name, "items": secret_volume["items"], "defaultMode": secret_volume["defaultMode"]});
        }
    }
}

/// podman 4.3 lets `envFrom` win over `env`; Kubernetes does the opposite. Bind loopback only, as `env` says.
fn bind_loopback(config_map: &mut Value) {
    config_map["data"]["APP_CONFIG_HOST"] = json!("127.0.0.1");
}

// In a module named after its engine, so `./scripts/test` can leave it out by module path.
mod postgres {
    use super::*;

    #[tokio::test]
    async fn rendered_migration_job_and_deployment_run_with_the_charts_settings() {
        let work = tempfile::TempDir::new().expect("temp dir");
        let idp = TestIdp::start().await;
        let client_secrets = std::fs::read_to_string(idp.write_client_secrets(work.path())).expect("client secrets");
        let database = ScratchSchema::create().await;
        let port = free_port();
        let (repository, tag) =
            image().rsplit_once(':').map(|(r, t)| (r.to_owned(), t.to_owned())).expect("tagged image");
        // Containing the chart's name, the release name is the objects' name too (Helm's fullname rule).
        let release = format!("{}-rust-api-axum", unique_name("kp"));
        let migrate = format!("{release}-migrate");
        let set = json!({
            "image": {"repository": repository, "tag": tag},
            "database": {"url": database.url},
            "config": {"db_schema": database.schema},
            "oidc": {"clientSecrets": client_secrets},
            "containerPort": port,
            "extraEnv": [{"name": "APP_CONFIG_HOST", "value": "127.0.0.1"}],
        });
        let rendered = work.path().join("rendered");
        let manifests = render_release(&release, &["deploy/tests/kube-play-values.yaml"], Some(&set), &rendered)
            .await
            .unwrap_or_else(|e| panic!("the chart renders: {e}"));
        let secrets: Vec<&Value> = manifests.iter().filter(|m| m.kind() == "Secret").map(|m| &m.doc).collect();
        let mut played = Played::new();

        // The migration Job's pod template, as a Pod that runs once.
        let job = find(&manifests, "Job", &migrate);
        let mut migrate_config = find(&manifests, "ConfigMap", &migrate).clone();
        bind_loopback(&mut migrate_config);
        played.secret(find(&manifests, "Secret", &migrate), work.path()).await;
        let mut pod_spec = job["spec"]["template"]["spec"].clone();
        let mut files = Vec::new();
        adapt_pod_spec(&mut pod_spec, &migrate, &mut files, &secrets);
        pod_spec["restartPolicy"] = json!("Never");
        let container_name = format!("{migrate}-{}", pod_spec["containers"][0]["name"].as_str().expect("name"));
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": migrate}, "spec": pod_spec});
        let mut docs = vec![migrate_config];
        docs.extend(files);
        docs.push(pod);
        played.play(&docs, work.path()).await;
        let exit = podman_ok(&["wait", &container_name]).await;
        let logs = podman_output(&["logs", &container_name]).await;
        let logs = String::from_utf8_lossy(&logs.stderr).into_owned() + &String::from_utf8_lossy(&logs.stdout);
        assert_eq!(exit.trim(), "0", "db upgrade from the Job's pod spec: {logs}");
        // Every migration of the history, however many an entity generator added.
        let migrations = std::fs::read_dir(deploy_tests::repo_root().join("crates/migration/src"))
            .expect("the migration crate")
            .flatten()
            .filter(|entry| {
                entry.file_name().to_str().is_some_and(|name| name.starts_with('m') && name.ends_with(".rs"))
            })
            .count();
        assert!(logs.contains(&format!("Applied {migrations} migration(s)")), "{logs}");

        // The Deployment's pod, in production mode (no migration of its own) over the schema the Job made.
        let deployment = find(&manifests, "Deployment", &release).clone();
        let rendered_container = deployment["spec"]["template"]["spec"]["containers"][0].clone();
        let mut config = find(&manifests, "ConfigMap", &release).clone();
        assert_eq!(config["data"]["APP_CONFIG_AUTO_MIGRATE"], "false", "production mode");
        bind_loopback(&mut config);
        played.secret(find(&manifests, "Secret", &release), work.path()).await;
        let mut deployment_adapted = deployment.clone();
        let mut files = Vec::new();
        adapt_pod_spec(&mut deployment_adapted["spec"]["template"]["spec"], &release, &mut files, &secrets);
        let mut docs = vec![config];
        docs.extend(files);
        docs.push(deployment_adapted);
        played.play(&docs, work.path()).await;

        let base = format!("http://127.0.0.1:{port}");
        let container = format!("{release}-pod-0-{}", rendered_container["name"].as_str().expect("name"));
        // The probes as the kubelet would send them, from the rendered spec.
        for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
            let path = rendered_container[probe]["httpGet"]["path"].as_str().expect("probe path");
            assert_eq!(rendered_container[probe]["httpGet"]["port"], "http", "probes use the named port");
            if let Err(e) = deploy_tests::wait_for_200(&format!("{base}{path}"), Duration::from_secs(30)).await {
                let logs = podman_output(&["logs", &container]).await;
                panic!("{probe}: {e}\n{}", String::from_utf8_lossy(&logs.stderr));
            }
        }
        let client = http();
        let greeting = client.get(format!("{base}/api/greeting/v1/")).send().await.expect("greeting");
        assert_eq!(greeting.status(), 200);
        let token = idp.jwt().await;
        let created = client
            .post(format!("{base}/api/resource/v1"))
            .bearer_auth(&token)
            .json(&json!({"name": "from-the-chart"}))
            .send()
            .await
            .expect("create");
        assert_eq!(created.status(), 201, "the chart's client_secrets.json is mounted and read");
        let rows = database.query(&format!("SELECT name FROM {}.resources", database.schema)).await;
        assert_eq!(rows, [json!({"name": "from-the-chart"})]);

        // The container runs as the chart says.
        let state = inspect("container", &container).await;
        assert_eq!(state["Config"]["Cmd"], rendered_container["args"], "the chart's arguments");
        assert_eq!(state["HostConfig"]["ReadonlyRootfs"], true, "read-only root filesystem");
        let env: Vec<&str> = state["Config"]["Env"].as_array().expect("env").iter().filter_map(Value::as_str).collect();
        for expected in [
            "APP_CONFIG_SHUTDOWN_DRAIN_SECS=1".to_owned(),
            format!("APP_CONFIG_DB_SCHEMA={}", database.schema),
            format!("APP_CONFIG_PORT={port}"),
            "APP_CONFIG_OIDC_CLIENT_SECRETS=/etc/rust-api-axum/oidc/client_secrets.json".to_owned(),
        ] {
            assert!(env.contains(&expected.as_str()), "{expected} is in the container's env: {env:?}");
        }
        let mounts = state["Mounts"].as_array().expect("mounts");
        let mount = |destination: &str| {
            mounts.iter().find(|m| m["Destination"] == destination).unwrap_or_else(|| panic!("{destination} mounted"))
        };
        assert_eq!(mount("/var/lib/rust-api-axum")["RW"], true, "the instance path is writable");
        assert_eq!(mount("/etc/rust-api-axum/oidc")["RW"], false, "the OIDC secret is read-only");
        let pid = state["State"]["Pid"].as_u64().expect("pid");
        let status = process_status(pid);
        let field = |name: &str| status.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).expect(name);
        assert_eq!(field("Uid"), "10001 10001 10001 10001", "runAsUser");
        assert_eq!(field("Gid"), "10001 10001 10001 10001", "runAsGroup");
        assert_eq!(field("CapEff"), "0000000000000000", "capabilities dropped");
        assert_eq!(field("CapBnd"), "0000000000000000", "capabilities dropped, bounding set too");
        assert_eq!(field("NoNewPrivs"), "1", "allowPrivilegeEscalation: false");
        assert_eq!(field("Seccomp"), "2", "seccomp filter (RuntimeDefault)");

        // SIGTERM ends it cleanly (drain, then exit 0) well within the pod's termination grace.
        let grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"].as_u64().expect("grace");
        podman_ok(&["stop", "--time", &grace.to_string(), &container]).await;
        let exit_code = inspect("container", &container).await["State"]["ExitCode"].as_i64().expect("exit code");
        assert_eq!(exit_code, 0);
    }
}
