//! Object-level authorisation under load: two owners write concurrently, then, while they go on writing, every
//! resource is attacked with the other owner's token (rename and delete). Each attempt must be refused as not
//! the caller's, and afterwards every resource is still there, unchanged, with its owner.

use std::{collections::BTreeMap, sync::Arc};

use loadgen::{Plan, Report};
use reqwest::{Method, StatusCode};
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use serde_json::json;
use tempfile::TempDir;
use tokio::task::JoinSet;

use crate::{
    helpers::{TestApp, problem, spawn_app_with},
    idp::TestIdp,
};

const API: &str = "/api/resource/v1";
const OWNERS: [&str; 2] = ["owner-a", "owner-b"];
/// Concurrent attackers in the walk.
const WALKERS: usize = 4;

/// `id -> (name, owner subject)` of the stored resources of this run.
type Rows = BTreeMap<i64, (String, String)>;

#[tokio::test]
async fn no_owner_can_rename_or_delete_another_owners_resources_under_load() {
    let dir = TempDir::new().expect("temp dir");
    let idp = TestIdp::start().await;
    let secrets = idp.write_client_secrets(dir.path());
    let db_url = format!("sqlite://{}", dir.path().join("ownership.sqlite").display());
    let app = Arc::new(
        spawn_app_with(|config| {
            config.auth.oidc_client_secrets = Some(secrets);
            config.database.db_url = Some(db_url.clone().into());
        })
        .await,
    );
    let mut tokens = Vec::new();
    for owner in OWNERS {
        let mut claims = idp.claims();
        claims["sub"] = json!(owner);
        tokens.push(idp.sign(claims, json!({})).await);
    }
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos();
    let prefix = format!("ownership-{}-{nanos}", std::process::id());
    let plan = |phase: &str| Plan {
        base: format!("http://{}", app.address),
        tokens: tokens.clone(),
        clients: 6,
        request_timeout: std::time::Duration::from_secs(10),
        name_prefix: format!("{prefix}-{phase}"),
        keyed: false,
    };
    let phase = loadgen::phase();

    let writes = loadgen::run_for(&plan("writes"), phase).await;
    let before = stored(&db_url, &prefix).await;
    for owner in OWNERS {
        assert!(before.values().any(|(_, o)| o == owner), "{owner} wrote resources: {writes:?}");
    }

    // The walk, while both owners go on writing.
    let during = {
        let plan = plan("during");
        tokio::spawn(async move { loadgen::run_for(&plan, phase).await })
    };
    let targets: Vec<(i64, String)> = before.iter().map(|(id, (_, owner))| (*id, owner.clone())).collect();
    let mut walkers = JoinSet::new();
    for walker in 0..WALKERS {
        let (app, tokens) = (app.clone(), tokens.clone());
        let mine: Vec<(i64, String)> = targets.iter().skip(walker).step_by(WALKERS).cloned().collect();
        walkers.spawn(async move { walk(&app, &tokens, &mine).await });
    }
    let mut walked = Report::default();
    while let Some(report) = walkers.join_next().await {
        let report = report.expect("a walker does not panic");
        walked.sent += report.sent;
        for (status, n) in report.statuses {
            *walked.statuses.entry(status).or_default() += n;
        }
    }
    let during = during.await.expect("the load during the walk ran");

    let after = stored(&db_url, &prefix).await;
    for (id, row) in &before {
        assert_eq!(after.get(id), Some(row), "resource {id} is unchanged after the other owner's attempts");
    }
    // Positive control: the same tokens can rename and delete what is their own, so the refusals above were about
    // ownership, not a token that could not write at all.
    for (owner, token) in OWNERS.iter().zip(&tokens) {
        let (id, _) = before.iter().find(|(_, (_, o))| o == owner).expect("a resource of this owner");
        let renamed = send(&app, Method::PUT, *id, token).await;
        assert_eq!(renamed.status(), StatusCode::OK, "{owner} renames its own resource {id}");
        assert_eq!(
            send(&app, Method::DELETE, *id, token).await.status(),
            StatusCode::NO_CONTENT,
            "{owner} deletes {id}"
        );
    }

    let mut report = Report::default();
    for part in [writes, during, walked] {
        report.sent += part.sent;
        for (status, n) in part.statuses {
            *report.statuses.entry(status).or_default() += n;
        }
        report.hung += part.hung;
        report.transport_errors += part.transport_errors;
        report.not_problem_json += part.not_problem_json;
        report.acknowledged.extend(part.acknowledged);
    }
    assert_eq!(report.hung + report.transport_errors + report.not_problem_json, 0, "{report:?}");
    let rows: Vec<(i64, String)> = after.iter().map(|(id, (name, _))| (*id, name.clone())).collect();
    let audit = loadgen::audit(&report, &rows);
    assert!(audit.is_clean(), "acknowledged writes stored exactly once: {audit:?}");
    let fault =
        format!("{} renames and {} deletes with the other owner's token under load", before.len(), before.len());
    loadgen::Figures::new("object-level authorisation", &report, &audit, &[&fault], None).publish();
}

/// Renames and deletes each of `targets` (id, owner) with the token of the owner it does not belong to; every
/// attempt must be refused as another owner's resource.
async fn walk(app: &TestApp, tokens: &[String], targets: &[(i64, String)]) -> Report {
    let mut report = Report::default();
    for (id, owner) in targets {
        let other = if owner == OWNERS[0] { &tokens[1] } else { &tokens[0] };
        for method in [Method::PUT, Method::DELETE] {
            let response = send(app, method.clone(), *id, other).await;
            let status = response.status();
            report.sent += 1;
            *report.statuses.entry(status.as_u16()).or_default() += 1;
            assert_eq!(status, StatusCode::FORBIDDEN, "{method} of {owner}'s resource {id} by the other owner");
            let detail = problem(response).await.detail;
            assert!(detail.contains("another owner"), "refused for ownership, not scope: {detail}");
        }
    }
    report
}

async fn send(app: &TestApp, method: Method, id: i64, token: &str) -> reqwest::Response {
    let mut request = app.client.request(method.clone(), app.url(&format!("{API}/{id}"))).bearer_auth(token);
    if method == Method::PUT {
        request = request.json(&json!({ "name": format!("taken-over-{id}") }));
    }
    request.send().await.expect("the server answers")
}

/// The resources of this run as stored, read from the database itself.
async fn stored(url: &str, prefix: &str) -> Rows {
    let db = Database::connect(url).await.expect("the test reads the database");
    let sql = format!(
        "SELECT r.id, r.name, o.subject FROM resources r JOIN owners o ON o.id = r.owner_id \
         WHERE r.name LIKE '{prefix}%' OR r.name LIKE 'taken-over-%'"
    );
    let rows = db.query_all_raw(Statement::from_string(DbBackend::Sqlite, sql)).await.expect("rows");
    let _ = db.close().await;
    rows.iter()
        .map(|row| {
            let id: i64 = row.try_get_by_index(0).expect("id");
            (id, (row.try_get_by_index(1).expect("name"), row.try_get_by_index(2).expect("subject")))
        })
        .collect()
}
