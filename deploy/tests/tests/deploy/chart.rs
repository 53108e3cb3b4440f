//! The Helm chart, rendered offline by Helm's own SDK (PyPI `helm-python-sdk`) and every built-in manifest
//! validated by `kubernetes-validate --strict` for each Kubernetes minor version the chart claims (1.25 to 1.37).

use deploy_tests::{
    chart::{Manifest, only, python, render},
    repo_root,
};
use serde_json::{Value, json};
use tokio::process::Command;

/// Every minor version the chart's `kubeVersion: >=1.25.0-0` claims that the validator has schemas for.
const KUBE_VERSIONS: std::ops::RangeInclusive<u32> = 25..=37;

/// Validates the rendered files strictly for every claimed version; the kinds it had no schema for.
async fn validate_strictly(dir: &std::path::Path) -> Vec<String> {
    let mut command = Command::new(python());
    command.arg(repo_root().join("deploy/tests/tools/validate.py"));
    for minor in KUBE_VERSIONS {
        command.arg("-k").arg(format!("1.{minor}.0"));
    }
    let output = command.arg(dir).output().await.expect("validate.py starts");
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("validate.py printed no JSON: {}", String::from_utf8_lossy(&output.stderr)));
    assert_eq!(report["ok"], true, "kubernetes-validate --strict failed: {report:#}");
    assert!(output.status.success());
    let validated = report["validated"].as_array().expect("validated").len();
    assert!(validated > 0, "something was validated: {report}");
    report["not_validated"].as_array().expect("not_validated").iter().map(|m| m["kind"].to_string()).collect()
}

async fn render_ok(values: &[&str], set: Option<&Value>) -> (Vec<Manifest>, tempfile::TempDir) {
    let out = tempfile::TempDir::new().expect("temp dir");
    let manifests = render(values, set, out.path()).await.unwrap_or_else(|e| panic!("the chart renders: {e}"));
    (manifests, out)
}

fn kinds(manifests: &[Manifest]) -> Vec<&str> {
    let mut kinds: Vec<&str> = manifests.iter().map(Manifest::kind).collect();
    kinds.sort_unstable();
    kinds
}

/// A Kubernetes memory quantity in MiB (the chart's values use Mi and Gi).
fn mebibytes(quantity: &Value) -> f64 {
    let text = quantity.as_str().unwrap_or_else(|| panic!("a quantity: {quantity}"));
    let (number, factor) = match text {
        _ if text.ends_with("Gi") => (&text[..text.len() - 2], 1024.0),
        _ if text.ends_with("Mi") => (&text[..text.len() - 2], 1.0),
        _ => panic!("a quantity in Mi or Gi: {text}"),
    };
    number.parse::<f64>().expect("a number") * factor
}

fn server_container(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["spec"]["containers"][0]
}

#[tokio::test]
async fn default_values_render_a_hardened_deployment_that_validates() {
    let (manifests, out) = render_ok(&[], None).await;
    assert_eq!(validate_strictly(out.path()).await, Vec::<String>::new(), "every default manifest is built in");
    assert_eq!(
        kinds(&manifests),
        ["ConfigMap", "ConfigMap", "Deployment", "Job", "Secret", "Secret", "Service", "ServiceAccount"]
    );

    let deployment = &only(&manifests, "Deployment").doc;
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 10001);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(pod["automountServiceAccountToken"], false);
    let container = server_container(deployment);
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/livez");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    // The memory limit holds max_connections open connections on top of the idle process (bench/run's connection
    // spikes: about 15 MiB idle and 12.4 KiB per connection), so a flood waits in the listen queue, not in OOM.
    let limit_mib = mebibytes(&container["resources"]["limits"]["memory"]);
    let config = manifests
        .iter()
        .find(|m| m.kind() == "ConfigMap" && m.doc["data"].get("APP_CONFIG_MAX_CONNECTIONS").is_some())
        .expect("the server's ConfigMap sets max_connections");
    let connections: f64 =
        config.doc["data"]["APP_CONFIG_MAX_CONNECTIONS"].as_str().and_then(|n| n.parse().ok()).expect("a number");
    assert!(
        limit_mib >= 15.0 + connections * 12.4 / 1024.0 + 32.0,
        "{limit_mib} MiB holds {connections} connections and room for requests"
    );
    assert!(mebibytes(&container["resources"]["requests"]["memory"]) >= 33.0, "the request covers a busy replica");
    let instance = container["volumeMounts"].as_array().expect("mounts").iter().find(|m| m["name"] == "instance");
    assert_eq!(instance.expect("instance mount")["mountPath"], "/var/lib/rust-api-axum");
    let env = container["env"].as_array().expect("env");
    let db_url = env.iter().find(|e| e["name"] == "APP_CONFIG_DB_URL").expect("APP_CONFIG_DB_URL");
    assert!(db_url["valueFrom"]["secretKeyRef"].is_object(), "the database URL comes from a Secret: {db_url}");
    let grace = pod["terminationGracePeriodSeconds"].as_u64().expect("grace");
    assert!(grace > 5 + 25, "termination grace {grace} covers drain and in-flight requests");

    let job = &only(&manifests, "Job").doc;
    assert_eq!(job["metadata"]["annotations"]["helm.sh/hook"], "pre-install,pre-upgrade");
    let job_container = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(job_container["args"], json!(["db", "upgrade"]));
    assert_eq!(job_container["image"], container["image"]);
    assert_eq!(job_container["securityContext"], container["securityContext"]);
    // The Job's own ConfigMap and Secret are hooks that exist before it (on a first install nothing else does).
    for manifest in manifests.iter().filter(|m| m.doc["metadata"]["annotations"]["helm.sh/hook"].is_string()) {
        let weight: i64 = manifest.doc["metadata"]["annotations"]["helm.sh/hook-weight"]
            .as_str()
            .unwrap_or("0")
            .parse()
            .expect("weight");
        if manifest.kind() != "Job" {
            assert!(weight < 0, "{} {} runs before the Job", manifest.kind(), manifest.template);
        }
    }
}

#[tokio::test]
async fn ha_values_render_autoscaler_disruption_budget_monitor_and_ingress() {
    let (manifests, out) = render_ok(&["deploy/helm/values/ha-postgres.yaml"], None).await;
    // The Prometheus Operator's ServiceMonitor is a custom resource: the validator has no schema for it.
    assert_eq!(validate_strictly(out.path()).await, ["\"ServiceMonitor\""]);
    for kind in ["HorizontalPodAutoscaler", "PodDisruptionBudget", "ServiceMonitor", "Ingress"] {
        only(&manifests, kind);
    }
    let deployment = &only(&manifests, "Deployment").doc;
    assert!(deployment["spec"].get("replicas").is_none(), "the autoscaler owns the replica count");
    let ports = server_container(deployment)["ports"].as_array().expect("ports").clone();
    assert!(ports.iter().any(|p| p["name"] == "metrics" && p["containerPort"] == 9090), "{ports:?}");
    let monitor = &only(&manifests, "ServiceMonitor").doc;
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    // Existing secrets are used as they are: the chart holds no credentials of its own.
    assert!(!kinds(&manifests).contains(&"Secret"), "{:?}", kinds(&manifests));
}

#[tokio::test]
async fn single_sqlite_values_migrate_in_the_server_and_recreate_the_pod() {
    let (manifests, out) = render_ok(&["deploy/helm/values/single-sqlite.yaml"], None).await;
    assert_eq!(validate_strictly(out.path()).await, Vec::<String>::new());
    assert!(!kinds(&manifests).contains(&"Job"), "no migration Job: each pod's SQLite file is its own");
    let deployment = &only(&manifests, "Deployment").doc;
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");
    let config = &only(&manifests, "ConfigMap").doc;
    assert_eq!(config["data"]["APP_CONFIG_AUTO_MIGRATE"], "true");
}

#[tokio::test]
async fn values_that_break_the_schema_are_refused_naming_each_field() {
    let out = tempfile::TempDir::new().expect("temp dir");
    let error = render(&["deploy/helm/values/bad-schema.yaml"], None, out.path()).await.expect_err("refused");
    for field in ["/replicaCount", "/image/pullPolicy", "/service/port", "'replicas' not allowed"] {
        assert!(error.contains(field), "the error names {field}: {error}");
    }
}

#[tokio::test]
async fn sqlite_with_more_than_one_replica_is_refused_with_the_reason() {
    let out = tempfile::TempDir::new().expect("temp dir");
    let error = render(&["deploy/helm/values/sqlite-replicas.yaml"], None, out.path()).await.expect_err("refused");
    assert!(error.contains("database.engine=sqlite keeps the database in each pod's own volume"), "{error}");
    let autoscaled = json!({"autoscaling": {"enabled": true, "maxReplicas": 3}});
    let error = render(&["deploy/helm/values/single-sqlite.yaml"], Some(&autoscaled), out.path())
        .await
        .expect_err("autoscaling SQLite is refused too");
    assert!(error.contains("sqlite"), "{error}");
}

#[tokio::test]
async fn a_server_database_without_a_url_is_refused() {
    let out = tempfile::TempDir::new().expect("temp dir");
    let error = render(&[], Some(&json!({"database": {"url": ""}})), out.path()).await.expect_err("refused");
    assert!(error.contains("database.url") && error.contains("existingSecret"), "{error}");
}

#[tokio::test]
async fn helm_lint_is_clean() {
    let chart = deploy_tests::chart::dir();
    let mut command = Command::new(python());
    command.arg(repo_root().join("deploy/tests/tools/lint.py")).arg(&chart);
    for values in ["ha-postgres", "single-sqlite"] {
        command.arg("-f").arg(repo_root().join(format!("deploy/helm/values/{values}.yaml")));
    }
    let output = command.output().await.expect("lint.py starts");
    assert!(
        output.status.success(),
        "helm lint --strict: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
