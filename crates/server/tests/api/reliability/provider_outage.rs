//! OpenID provider outage under load: the test provider is killed mid-run and started again on the same issuer URL.
//! While it is away, JWTs whose signing key the server holds keep working, and every token the server cannot judge
//! without the provider (opaque tokens to introspect, JWTs naming a key it does not hold) gets 503 problem+json:
//! never a pass, never a 401 that would tell a client its token is bad. Once the provider is back, the same server
//! (no restart) introspects and verifies new keys again by itself.

use std::time::{Duration, Instant};

use loadgen::{Plan, Report};
use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use serde_json::json;
use tempfile::TempDir;

use crate::{
    helpers::{TestApp, spawn_app_with},
    idp::TestIdp,
};

/// Longest the service may take to accept provider-dependent tokens again once the provider is back.
const RECOVERY_BOUND: Duration = Duration::from_secs(10);
/// A request not answered this long hangs (the provider client's own timeout is 10 s; a refused connection is
/// answered at once).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CLIENTS: usize = 6;
const API: &str = "/api/resource/v1";

#[tokio::test]
async fn provider_outage_under_load_keeps_cached_keys_working_and_recovers_on_the_same_issuer() {
    let dir = TempDir::new().expect("temp dir");
    let mut idp = TestIdp::start_with_state(&dir.path().join("idp-state.json")).await;
    let secrets = idp.write_client_secrets(dir.path());
    let db_url = format!("sqlite://{}", dir.path().join("outage.sqlite").display());
    let app = spawn_app_with(|config| {
        config.auth.oidc_client_secrets = Some(secrets);
        config.database.db_url = Some(db_url.clone().into());
    })
    .await;

    // The load's token: a JWT the server verifies (and so loads the provider's keys) before the outage.
    let load_token = idp.jwt().await;
    // Tokens first presented during the outage. A JWT signed with the key the server holds needs no provider.
    let cached_key = idp.sign(claims(&idp, "cached-key-user"), json!({})).await;
    // An opaque token needs introspection; a JWT naming a key the server never saw needs a JWKS refetch.
    let opaque = idp.opaque().await;
    let unknown_kid = idp.sign(claims(&idp, "unknown-kid-user"), json!({"kid": "unknown"})).await;
    let prefix = unique_prefix();
    let plan = |phase: &str, tokens: Vec<String>| Plan {
        base: format!("http://{}", app.address),
        tokens,
        clients: CLIENTS,
        request_timeout: REQUEST_TIMEOUT,
        name_prefix: format!("{prefix}-{phase}"),
    };
    let phase = loadgen::phase();

    let before = loadgen::run_for(&plan("before", vec![load_token.clone()]), phase).await;
    all_succeeded("before the outage", &before);
    // Rotated at the provider, but the server still holds only the old key: the new key's tokens need a refetch.
    idp.rotate_keys().await;
    let rotated = idp.sign(claims(&idp, "rotated-key-user"), json!({})).await;

    idp.stop().await;
    let during_load = {
        let plan = plan("during", vec![load_token.clone()]);
        tokio::spawn(async move { loadgen::run_for(&plan, phase).await })
    };
    // Each twice: the second meets whatever the first left behind (back-off, refetch limits), and must not
    // turn a provider outage into a verdict on the token.
    for round in 1..=2 {
        assert_eq!(list(&app, &cached_key).await, StatusCode::OK, "round {round}: a JWT with a held key works");
        for (what, token) in [("opaque token", &opaque), ("unknown key id", &unknown_kid), ("rotated key", &rotated)] {
            let response = request(&app, token).await;
            assert_eq!(
                response.status(),
                StatusCode::SERVICE_UNAVAILABLE,
                "round {round}: {what} while the provider is away"
            );
            assert!(response.headers().get("www-authenticate").is_none(), "{what}: an outage is no bearer challenge");
            crate::helpers::problem(response).await;
        }
    }
    // Keys once loaded stay: a provider outage does not take a ready replica out of service.
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK, "ready while the provider is away");
    let during = during_load.await.expect("the load during the outage ran");
    all_succeeded("while the provider is away", &during);

    idp.restart().await;
    let back = Instant::now();
    let (opaque_back, rotated_back) = tokio::join!(first_ok(&app, &opaque, back), first_ok(&app, &rotated, back));
    // Still refused when the provider can answer: a key id it does not publish is a bad token, not an outage.
    assert_eq!(request(&app, &unknown_kid).await.status(), StatusCode::UNAUTHORIZED, "unknown key id, provider up");
    let fresh_opaque = idp.opaque().await;
    let after = loadgen::run_for(&plan("after", vec![load_token, opaque, rotated, fresh_opaque]), phase).await;
    all_succeeded("after the provider returned", &after);

    let report = Report::sum([before, during, after]);
    assert_eq!(report.not_problem_json, 0);
    let rows = stored_rows(&db_url, &prefix).await;
    let audit = loadgen::audit(&report, &rows);
    assert!(audit.is_clean() && audit.checked > 0, "acknowledged writes stored exactly once: {audit:?}");
    println!(
        "provider back: opaque tokens introspect after {opaque_back:?}, a rotated key verifies after {rotated_back:?}"
    );
    let recovery = opaque_back.max(rotated_back);
    let fault =
        format!("OpenID provider killed for {:.1} s under load, restarted on the same issuer", phase.as_secs_f64());
    loadgen::Figures::new("OpenID provider outage", &report, &audit, &[&fault], Some(recovery)).publish();
}

/// Claims of a provider-signed token for `subject` with both resource scopes.
fn claims(idp: &TestIdp, subject: &str) -> serde_json::Value {
    let mut claims = idp.claims();
    claims["sub"] = json!(subject);
    claims
}

async fn request(app: &TestApp, token: &str) -> reqwest::Response {
    let request = app.client.get(app.url(&format!("{API}?limit=1"))).bearer_auth(token).timeout(REQUEST_TIMEOUT);
    request.send().await.expect("the server answers (does not hang)")
}

async fn list(app: &TestApp, token: &str) -> StatusCode {
    request(app, token).await.status()
}

/// Presents `token` until it is accepted; the time since `since`. Until then only 503 is acceptable.
async fn first_ok(app: &TestApp, token: &str, since: Instant) -> Duration {
    loop {
        assert!(since.elapsed() < RECOVERY_BOUND, "token not accepted {RECOVERY_BOUND:?} after the provider returned");
        match list(app, token).await {
            StatusCode::OK => return since.elapsed(),
            StatusCode::SERVICE_UNAVAILABLE => tokio::time::sleep(Duration::from_millis(50)).await,
            other => panic!("{other} while the provider comes back: only 503 or success may be answered"),
        }
    }
}

fn all_succeeded(when: &str, report: &Report) {
    assert!(report.sent > 0 && report.count(200..=299) == report.sent, "{when}: every request succeeds: {report:?}");
    assert_eq!(report.hung + report.transport_errors, 0, "{when}: {report:?}");
}

/// A name prefix no other run uses (no `_`: it is a wildcard in the `LIKE` that finds the rows).
fn unique_prefix() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos();
    format!("idp-outage-{}-{nanos}", std::process::id())
}

/// `(id, name)` of every stored resource of this run.
async fn stored_rows(url: &str, prefix: &str) -> Vec<(i64, String)> {
    let db = Database::connect(url).await.expect("the test reads the database");
    let sql = format!("SELECT id, name FROM resources WHERE name LIKE '{prefix}%'");
    let rows = db.query_all_raw(Statement::from_string(DbBackend::Sqlite, sql)).await.expect("rows");
    let _ = db.close().await;
    rows.iter().map(|row| (row.try_get_by_index(0).expect("id"), row.try_get_by_index(1).expect("name"))).collect()
}
