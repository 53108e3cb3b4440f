//! Idempotent creates on every engine, against the real test OpenID provider: a retried create is stored once and
//! answered again, a key is its caller's, a key reused for another request or still running on this replica is
//! refused, refusals are replayed, and a request meeting another replica's running write waits and is answered
//! from it.

use std::time::Duration;

use api_types::{ResourceList, ResourceView};
use reqwest::{Method, StatusCode};
use rust_api_axum::{
    config::Config,
    db::{handle::DbHandle, idempotency::IdempotencyKeys},
    domain::{
        idempotency::{Claim, Fingerprint, IdempotencyKey, Once, Settled, StoredAnswer},
        principal::{DisplayName, Principal},
    },
};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::{
    database::{Engine, TestDatabase, on_every_engine},
    helpers::{TestApp, problem},
    idp::{ALL_SCOPES, TestIdp, spawn_app_with_idp},
};

const API: &str = "/api/resource/v1";
const REPLAYED: &str = "idempotent-replayed";

struct World {
    idp: TestIdp,
    app: TestApp,
    _database: TestDatabase,
    _dir: TempDir,
}

impl World {
    async fn new(engine: Engine) -> Self {
        let database = TestDatabase::create(engine).await;
        let (idp, app, dir) = spawn_app_with_idp(|config| database.configure(config)).await;
        Self { idp, app, _database: database, _dir: dir }
    }

    async fn token(&self, subject: &str) -> String {
        let mut claims = self.idp.claims();
        claims["sub"] = json!(subject);
        claims["scope"] = json!(*ALL_SCOPES);
        self.idp.sign(claims, json!({})).await
    }

    async fn create(&self, token: &str, key: Option<&str>, body: Value) -> reqwest::Response {
        let mut request = self.app.client.request(Method::POST, self.app.url(&format!("{API}/"))).bearer_auth(token);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request.json(&body).send().await.expect("sent")
    }

    async fn names(&self, token: &str) -> Vec<String> {
        let list: ResourceList = self
            .app
            .client
            .get(self.app.url(&format!("{API}/?limit=1000")))
            .bearer_auth(token)
            .send()
            .await
            .expect("sent")
            .json()
            .await
            .expect("list");
        list.resources.into_iter().map(|resource| resource.name).collect()
    }
}

/// Status, `Location`, whether it was a replay, and the body.
async fn answer(response: reqwest::Response) -> (StatusCode, Option<String>, bool, Value) {
    let status = response.status();
    let location = response.headers().get("location").map(|value| value.to_str().expect("text").to_owned());
    let replayed = response.headers().get(REPLAYED).is_some_and(|value| value == "true");
    (status, location, replayed, response.json().await.expect("json"))
}

async fn a_retried_create_is_stored_once_and_answered_again(engine: Engine) {
    let world = World::new(engine).await;
    let (alice, bob) = (world.token("alice").await, world.token("bob").await);

    let first = answer(world.create(&alice, Some("order-7f3"), json!({"name": "once"})).await).await;
    assert_eq!((first.0, first.2), (StatusCode::CREATED, false), "{first:?}");
    let created: ResourceView = serde_json::from_value(first.3.clone()).expect("a resource");
    assert_eq!(first.1.as_deref(), Some(format!("{API}/{}", created.id).as_str()));

    // The retry, with the body spaced differently: the same request, answered again and not stored twice.
    let retry = world.app.client.post(world.app.url(&format!("{API}/"))).bearer_auth(&alice);
    let retry = retry
        .header("Idempotency-Key", "order-7f3")
        .header("content-type", "application/json")
        .body("{ \"name\" : \"once\" }")
        .send()
        .await
        .expect("sent");
    let again = answer(retry).await;
    assert_eq!((again.0, &again.1, again.2, &again.3), (StatusCode::CREATED, &first.1, true, &first.3));
    assert_eq!(world.names(&alice).await, ["once"]);

    // Another caller's identical key is theirs.
    let bobs = answer(world.create(&bob, Some("order-7f3"), json!({"name": "once"})).await).await;
    assert_eq!((bobs.0, bobs.2), (StatusCode::CREATED, false));
    assert_eq!(world.names(&alice).await, ["once", "once"]);

    // The same key for a different request.
    let other = world.create(&alice, Some("order-7f3"), json!({"name": "twice"})).await;
    assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(problem(other).await.detail.contains("Idempotency-Key"), "the problem names the header");

    // Malformed keys are refused before anything else happens.
    for bad in ["", "with space", "é", &"k".repeat(256)] {
        let response = world.create(&alice, Some(bad), json!({"name": "bad-key"})).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad:?}");
        let problem = problem(response).await;
        assert_eq!(problem.errors[0].field, "Idempotency-Key", "{bad:?}");
    }
    assert_eq!(world.names(&alice).await, ["once", "once"], "nothing was written by a refused key");

    // Without a key, creates behave as they always did.
    assert_eq!(world.create(&alice, None, json!({"name": "plain"})).await.status(), StatusCode::CREATED);
    assert_eq!(world.create(&alice, None, json!({"name": "plain"})).await.status(), StatusCode::CONFLICT);
}

async fn refusals_are_stored_and_replayed(engine: Engine) {
    let world = World::new(engine).await;
    let alice = world.token("alice").await;
    let existing: ResourceView =
        world.create(&alice, None, json!({"name": "taken"})).await.json().await.expect("created");

    let clash = answer(world.create(&alice, Some("k-clash"), json!({"name": "taken"})).await).await;
    assert_eq!((clash.0, clash.2, &clash.3["existing_id"]), (StatusCode::CONFLICT, false, &json!(existing.id)));
    // The clash goes away, but the key's answer stays the clash: a retry learns what its first attempt got.
    let delete = world.app.client.delete(world.app.url(&format!("{API}/{}", existing.id))).bearer_auth(&alice);
    assert_eq!(delete.send().await.expect("sent").status(), StatusCode::NO_CONTENT);
    let replayed = answer(world.create(&alice, Some("k-clash"), json!({"name": "taken"})).await).await;
    assert_eq!((replayed.0, replayed.2), (StatusCode::CONFLICT, true));
    assert_eq!((&replayed.3["detail"], &replayed.3["existing_id"]), (&clash.3["detail"], &clash.3["existing_id"]));
    assert!(world.names(&alice).await.is_empty(), "the replay wrote nothing");

    let invalid = answer(world.create(&alice, Some("k-invalid"), json!({"name": ""})).await).await;
    assert_eq!((invalid.0, invalid.2), (StatusCode::UNPROCESSABLE_ENTITY, false));
    let again = answer(world.create(&alice, Some("k-invalid"), json!({"name": ""})).await).await;
    assert_eq!((again.0, again.2, &again.3["errors"]), (invalid.0, true, &invalid.3["errors"]));
}

async fn concurrent_requests_with_one_key_create_once(engine: Engine) {
    let world = World::new(engine).await;
    let alice = world.token("alice").await;
    let mut sends = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let request = world.app.client.post(world.app.url(&format!("{API}/"))).bearer_auth(&alice);
        let request = request.header("Idempotency-Key", "burst").json(&json!({"name": "burst"}));
        sends.spawn(async move { request.send().await.expect("sent") });
    }
    let answers: Vec<reqwest::Response> = sends.join_all().await;
    let mut ids = Vec::new();
    let mut in_flight = 0;
    for response in answers {
        match response.status() {
            StatusCode::CREATED => {
                let view: ResourceView = response.json().await.expect("resource");
                ids.push(view.id);
            }
            StatusCode::CONFLICT => {
                assert_eq!(response.headers()["retry-after"], "1", "an in-flight key asks for a retry");
                assert!(problem(response).await.existing_id.is_none(), "not a name clash");
                in_flight += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(!ids.is_empty(), "one of them ran");
    // The ones told to retry do, and get the first answer.
    for _ in 0..in_flight {
        let retry = answer(world.create(&alice, Some("burst"), json!({"name": "burst"})).await).await;
        assert_eq!((retry.0, retry.2), (StatusCode::CREATED, true));
        ids.push(retry.3["id"].as_i64().expect("id"));
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "every answer names the one resource: {ids:?}");
    assert_eq!(world.names(&alice).await, ["burst"]);
}

async fn a_request_meeting_another_replicas_running_write_waits_for_it_and_is_answered_from_it(engine: Engine) {
    let database = TestDatabase::create(engine).await;
    let dir = TempDir::new().expect("temp dir");
    let mut config = Config::default();
    config.database.instance_path = dir.path().to_owned();
    database.configure(&mut config);
    let connect = || async {
        let pool = rust_api_axum::db::connect(&config.database).await.expect("connects");
        rust_api_axum::db::prepare_schema(&pool, true).await.expect("migrated");
        IdempotencyKeys::new(DbHandle::new(pool, &config.database), Duration::from_secs(60))
    };
    // Two pools: two replicas' connections to one database.
    let (first, second) = (connect().await, connect().await);
    let principal = Principal {
        subject: "alice".into(),
        client_id: None,
        username: DisplayName::from_claim("alice").expect("visible"),
        scopes: Default::default(),
    };
    let claim = Claim::new(&principal, IdempotencyKey::parse(b"held").expect("key"), Fingerprint::of("POST", "/", b""));
    let answer = |body: &str| StoredAnswer { status: 201, location: None, etag: None, body: body.into() };
    // Both write the same unique row, as two attempts of one create write the same (owner, name).
    const WRITE: &str = "INSERT INTO owners (subject, name) VALUES ('held-owner', 'held')";

    let (holding, hold) = tokio::sync::oneshot::channel::<()>();
    let (started, running) = tokio::sync::oneshot::channel::<()>();
    let held = first.write_once(
        &claim,
        move |tx| {
            Box::pin(async move {
                tx.execute_unprepared(WRITE).await?;
                let _ = started.send(());
                let _ = hold.await;
                Ok(1)
            })
        },
        |_| answer("first"),
    );
    let other = async {
        running.await.expect("the first is writing");
        let retry = second.write_once(
            &claim,
            |tx| {
                Box::pin(async move {
                    tx.execute_unprepared(WRITE).await?;
                    Ok(2)
                })
            },
            |_| answer("second"),
        );
        let release = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let _ = holding.send(());
        };
        tokio::join!(retry, release).0
    };
    let (held, other) = tokio::join!(held, other);
    assert_eq!(held.expect("ran"), Once::Ran(1));
    assert_eq!(other.expect("settled"), Once::Settled(Settled::Replay(answer("first"))), "waited, then answered");
}

on_every_engine!(
    a_retried_create_is_stored_once_and_answered_again,
    refusals_are_stored_and_replayed,
    concurrent_requests_with_one_key_create_once,
    a_request_meeting_another_replicas_running_write_waits_for_it_and_is_answered_from_it,
);
