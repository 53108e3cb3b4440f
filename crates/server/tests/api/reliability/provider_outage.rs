//! OpenID provider outage under load: the test provider is killed mid-run and started again on the same issuer URL.
//! While it is away, JWTs whose signing key the server holds keep working, and every token the server cannot judge
//! without the provider (opaque tokens to introspect, JWTs naming a key it does not hold) gets 503 problem+json:
//! never a pass, never a 401 that would tell a client its token is bad. Once the provider is back, the same server
//! (no restart) introspects and verifies new keys again by itself.
//!
//! And a provider that accepts connections and never answers (a hung process, a black-holed path): JWTs whose key
//! the server holds keep passing under load, every request that needs the provider gets its 503 within the
//! provider timeout instead of queueing, the calls held open at the provider never exceed the configured bound, and
//! `/readyz` stays 200 while the keys are loaded.

use std::time::{Duration, Instant};

use loadgen::{Plan, Report};
use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use serde_json::json;
use tempfile::TempDir;

use rust_api_axum::config::OidcExtras;

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
        keyed: false,
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

/// The stalled provider's bounds for the scenario below: a shorter timeout than the default 5 s keeps the test
/// short; the bound on calls in flight is what the provider sees at most.
const STALL_TIMEOUT_SECS: u64 = 2;
const STALL_MAX_IN_FLIGHT: usize = 4;

#[tokio::test]
async fn a_provider_that_never_answers_costs_503s_within_its_timeout_and_bounded_calls_not_a_queue() {
    let dir = TempDir::new().expect("temp dir");
    let idp = TestIdp::start().await;
    let secrets = idp.write_client_secrets(dir.path());
    let db_url = format!("sqlite://{}", dir.path().join("stall.sqlite").display());
    let app = spawn_app_with(|config| {
        config.auth.oidc_client_secrets = Some(secrets);
        config.auth.oidc = Some(OidcExtras {
            provider_timeout_secs: Some(STALL_TIMEOUT_SECS),
            provider_max_in_flight: Some(STALL_MAX_IN_FLIGHT),
            ..OidcExtras::default()
        });
        config.database.db_url = Some(db_url.clone().into());
    })
    .await;
    let load_token = idp.jwt().await;
    let opaque = idp.opaque().await;
    let prefix = unique_prefix();
    let plan = |phase: &str| Plan {
        base: format!("http://{}", app.address),
        tokens: vec![load_token.clone()],
        clients: CLIENTS,
        request_timeout: REQUEST_TIMEOUT,
        name_prefix: format!("{prefix}-stall-{phase}"),
        keyed: false,
    };
    let phase = loadgen::phase();

    let before = loadgen::run_for(&plan("before"), phase).await;
    all_succeeded("before the provider stalls", &before);
    idp.behave(json!({"introspection": "stall", "jwks": "stall"})).await;
    let during_load = {
        let plan = plan("during");
        tokio::spawn(async move { loadgen::run_for(&plan, phase).await })
    };
    // Three waves of tokens only the provider can judge, each more than the calls allowed in flight: made-up
    // opaque tokens (introspection) and JWTs naming a key the server never saw (a JWKS refetch).
    let bound = Duration::from_secs(STALL_TIMEOUT_SECS) + Duration::from_secs(1);
    let mut slowest = Duration::ZERO;
    for wave in 0..3 {
        let mut requests = tokio::task::JoinSet::new();
        for n in 0..(3 * STALL_MAX_IN_FLIGHT) {
            let token = if n % 3 == 2 {
                idp.sign(claims(&idp, "unknown-kid-user"), json!({"kid": format!("unknown-{wave}-{n}")})).await
            } else {
                format!("made-up-opaque-{wave}-{n}")
            };
            let (client, url) = (app.client.clone(), app.url(&format!("{API}?limit=1")));
            requests.spawn(async move {
                let started = Instant::now();
                let response = client.get(url).bearer_auth(token).timeout(REQUEST_TIMEOUT).send().await;
                (response.map(|response| response.status()), started.elapsed())
            });
        }
        while let Some(answer) = requests.join_next().await {
            let (status, took) = answer.expect("task");
            assert_eq!(status.expect("answered"), StatusCode::SERVICE_UNAVAILABLE, "wave {wave}");
            assert!(took <= bound, "wave {wave}: a 503 after {took:?}, not within the provider timeout");
            slowest = slowest.max(took);
        }
        assert_eq!(app.get("/readyz").await.status(), StatusCode::OK, "ready while the keys are loaded");
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let during = during_load.await.expect("the load while the provider stalls ran");
    all_succeeded("while the provider stalls", &during);
    let stats = idp.stats().await;
    assert!(
        stats.stalled_peak <= STALL_MAX_IN_FLIGHT as u64,
        "{} calls held at the provider at once; the bound is {STALL_MAX_IN_FLIGHT}",
        stats.stalled_peak
    );

    idp.behave(json!({"reset": true})).await;
    let back = Instant::now();
    let recovered = first_ok(&app, &opaque, back).await;
    let after = loadgen::run_for(&plan("after"), phase).await;
    all_succeeded("after the provider answers again", &after);

    let rate = |report: &Report| report.sent as f64 / phase.as_secs_f64();
    println!(
        "JWT load {:.0}/s before, {:.0}/s while the provider stalls ({:.0}%); provider-bound requests: 503 within \
         {slowest:?} (timeout {STALL_TIMEOUT_SECS} s); calls held at the provider at once: {} of {} stalled (bound \
         {STALL_MAX_IN_FLIGHT}); recovered {recovered:?} after the provider answered again",
        rate(&before),
        rate(&during),
        100.0 * rate(&during) / rate(&before),
        stats.stalled_peak,
        stats.stalled,
    );
    let report = Report::sum([before, during, after]);
    assert_eq!(report.not_problem_json, 0);
    let rows = stored_rows(&db_url, &prefix).await;
    let audit = loadgen::audit(&report, &rows);
    assert!(audit.is_clean() && audit.checked > 0, "acknowledged writes stored exactly once: {audit:?}");
    let fault = format!(
        "OpenID provider accepts and never answers for {:.1} s under load (timeout {STALL_TIMEOUT_SECS} s, at most \
         {STALL_MAX_IN_FLIGHT} calls in flight); provider-bound requests answered 503 within {:.1} s",
        phase.as_secs_f64(),
        slowest.as_secs_f64()
    );
    loadgen::Figures::new("OpenID provider stalls", &report, &audit, &[&fault], Some(recovered)).publish();
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
