//! Strong ETags and conditional requests on resource API v1, on every engine: every answer that carries a resource
//! names its version (`ETag` header and `etag` member, lists included), `If-None-Match` answers 304, a stale
//! `If-Match` answers 412 and changes nothing, `require_if_match` makes a write without one a 428, and of many
//! concurrent writes holding the same tag exactly one wins.

use std::sync::Arc;

use api_types::{ResourceList, ResourceView};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    database::{Engine, on_every_engine},
    helpers::problem,
    resource::{API, Caller, World},
};

fn etag_of(response: &reqwest::Response) -> String {
    response.headers().get("etag").expect("an ETag header").to_str().expect("text").to_owned()
}

impl Caller<'_> {
    async fn get_if_none_match(&self, id: i64, tags: &str) -> reqwest::Response {
        self.request(Method::GET, &format!("{API}/{id}")).header("if-none-match", tags).send().await.expect("sent")
    }

    async fn rename_if_match(&self, id: i64, name: &str, tags: &str) -> reqwest::Response {
        self.request(Method::PUT, &format!("{API}/{id}"))
            .header("if-match", tags)
            .json(&json!({"name": name}))
            .send()
            .await
            .expect("sent")
    }

    async fn delete_if_match(&self, id: i64, tags: &str) -> reqwest::Response {
        self.request(Method::DELETE, &format!("{API}/{id}")).header("if-match", tags).send().await.expect("sent")
    }
}

/// A 412 problem, and the current tag it names.
async fn precondition_failed(response: reqwest::Response) -> String {
    assert_eq!(response.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(response.headers()["content-type"], api_types::PROBLEM_JSON);
    let body: Value = response.json().await.expect("problem");
    assert!(body["detail"].as_str().expect("detail").contains("changed since you read it"), "{body}");
    body["current_etag"].as_str().expect("current_etag").to_owned()
}

async fn every_answer_with_a_resource_names_its_version(engine: Engine) {
    let world = World::new(engine).await;
    let alice = world.owner("alice").await;

    let response = alice.create("tagged").await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let created_tag = etag_of(&response);
    let created: ResourceView = response.json().await.expect("resource");
    assert_eq!(created_tag, format!("\"{}.1\"", created.id), "strong, quoted, id and first version");
    assert_eq!(created.etag, created_tag, "the body's etag is the header's");

    let response = alice.get(&format!("{API}/{}", created.id)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(etag_of(&response), created_tag, "reading changes nothing");
    assert_eq!(response.json::<ResourceView>().await.expect("resource").etag, created_tag);

    let response = alice.rename(created.id, "retagged").await;
    assert_eq!(response.status(), StatusCode::OK);
    let renamed_tag = etag_of(&response);
    assert_ne!(renamed_tag, created_tag, "a rename without If-Match makes a new version too");
    assert_eq!(response.json::<ResourceView>().await.expect("resource").etag, renamed_tag);
    let same_name = alice.rename(created.id, "retagged").await;
    let same_name_tag = etag_of(&same_name);
    assert!(![&created_tag, &renamed_tag].contains(&&same_name_tag), "a rename to the same name is a change as well");

    let other = alice.created("untouched").await;
    let list: ResourceList = alice.get(&format!("{API}/")).await.json().await.expect("list");
    let tags: Vec<(i64, &str)> = list.resources.iter().map(|r| (r.id, r.etag.as_str())).collect();
    assert_eq!(tags, [(created.id, same_name_tag.as_str()), (other.id, other.etag.as_str())], "lists carry each tag");
}

async fn if_none_match_answers_304_while_the_version_is_current(engine: Engine) {
    let world = World::new(engine).await;
    let (alice, bob) = (world.owner("alice").await, world.owner("bob").await);
    let created = alice.created("cached").await;

    for tags in [created.etag.clone(), "*".to_owned(), format!("\"1.99\", W/{}", created.etag)] {
        let response = bob.get_if_none_match(created.id, &tags).await;
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED, "If-None-Match: {tags}");
        assert_eq!(etag_of(&response), created.etag, "a 304 names the version it confirms");
        assert!(response.bytes().await.expect("body").is_empty(), "a 304 has no body");
    }

    let renamed: ResourceView = alice.rename(created.id, "changed").await.json().await.expect("renamed");
    let response = bob.get_if_none_match(created.id, &created.etag).await;
    assert_eq!(response.status(), StatusCode::OK, "a stale tag gets the new version");
    assert_eq!(etag_of(&response), renamed.etag);
    assert_eq!(response.json::<ResourceView>().await.expect("resource").name, "changed");

    let malformed = bob.get_if_none_match(created.id, renamed.etag.trim_matches('"')).await;
    assert_eq!(malformed.status(), StatusCode::OK, "a malformed If-None-Match (no quotes) is ignored");
    assert_eq!(bob.get_if_none_match(created.id + 100, "*").await.status(), StatusCode::NOT_FOUND);
}

async fn a_stale_if_match_is_412_and_changes_nothing(engine: Engine) {
    let world = World::new(engine).await;
    let (alice, bob) = (world.owner("alice").await, world.owner("bob").await);
    let created = alice.created("original").await;
    let current: ResourceView = alice.rename(created.id, "current").await.json().await.expect("renamed");
    let stale = created.etag.as_str();

    assert_eq!(precondition_failed(alice.rename_if_match(created.id, "lost", stale).await).await, current.etag);
    assert_eq!(precondition_failed(alice.delete_if_match(created.id, stale).await).await, current.etag);
    let weak = format!("W/{}", current.etag);
    assert_eq!(precondition_failed(alice.rename_if_match(created.id, "lost", &weak).await).await, current.etag);
    assert_eq!(precondition_failed(alice.delete_if_match(created.id, &weak).await).await, current.etag);
    let still: ResourceView = alice.get(&format!("{API}/{}", created.id)).await.json().await.expect("still there");
    assert_eq!(still, current, "a refused write changes nothing, not even the version");

    // Ownership and existence are answered before the version.
    assert_eq!(bob.rename_if_match(created.id, "hijacked", stale).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(bob.delete_if_match(created.id, &current.etag).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(alice.rename_if_match(created.id + 100, "x", "*").await.status(), StatusCode::NOT_FOUND);
    let unquoted = current.etag.trim_matches('"');
    let malformed = alice.rename_if_match(created.id, "x", unquoted).await;
    assert_eq!(precondition_failed(malformed).await, current.etag, "a malformed If-Match names no version");

    let list = format!("{stale}, {}", current.etag);
    let response = alice.rename_if_match(created.id, "won", &list).await;
    assert_eq!(response.status(), StatusCode::OK, "a list naming the current version matches");
    let new_tag = etag_of(&response);
    let won: ResourceView = response.json().await.expect("renamed");
    assert_eq!((won.name.as_str(), won.etag.as_str()), ("won", new_tag.as_str()));
    assert_ne!(new_tag, current.etag);

    assert_eq!(precondition_failed(alice.delete_if_match(created.id, &current.etag).await).await, new_tag);
    assert_eq!(alice.delete_if_match(created.id, &new_tag).await.status(), StatusCode::NO_CONTENT);
    let gone = alice.delete_if_match(created.id, &new_tag).await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND, "a missing resource is not found, not changed");

    let another = alice.created("any version").await;
    alice.rename(another.id, "moved on").await;
    assert_eq!(alice.rename_if_match(another.id, "starred", "*").await.status(), StatusCode::OK, "* matches any");
    assert_eq!(alice.delete_if_match(another.id, "*").await.status(), StatusCode::NO_CONTENT);
}

async fn require_if_match_makes_an_unconditional_write_a_428(engine: Engine) {
    let world = World::with(engine, |config| config.api.require_if_match = true).await;
    let alice = world.owner("alice").await;
    let created = alice.created("guarded").await;

    for response in [alice.rename(created.id, "blind").await, alice.delete(created.id).await] {
        assert_eq!(response.status(), StatusCode::PRECONDITION_REQUIRED);
        assert!(problem(response).await.detail.contains("If-Match"));
    }
    let still: ResourceView = alice.get(&format!("{API}/{}", created.id)).await.json().await.expect("untouched");
    assert_eq!(still, created);

    let renamed = alice.rename_if_match(created.id, "seen", &created.etag).await;
    assert_eq!(renamed.status(), StatusCode::OK);
    let tag = etag_of(&renamed);
    assert_eq!(alice.delete_if_match(created.id, &tag).await.status(), StatusCode::NO_CONTENT);
}

async fn of_concurrent_writes_with_the_same_if_match_exactly_one_wins(engine: Engine) {
    const WRITERS: usize = 16;
    let world = World::new(engine).await;
    let alice = world.owner("alice").await;
    let created = alice.created("contended").await;
    let (client, token) = (Arc::new(world.app.client.clone()), Arc::new(alice.token.clone()));
    let url = world.app.url(&format!("{API}/{}", created.id));

    let mut writers = tokio::task::JoinSet::new();
    for n in 0..WRITERS {
        let (client, token, url, tag) = (client.clone(), token.clone(), url.clone(), created.etag.clone());
        writers.spawn(async move {
            let response = client
                .put(url)
                .bearer_auth(token.as_str())
                .header("if-match", tag)
                .json(&json!({"name": format!("writer {n}")}))
                .send()
                .await
                .expect("sent");
            let status = response.status();
            (n, status, response.json::<Value>().await.expect("json"))
        });
    }
    let (mut won, mut refused) = (Vec::new(), 0);
    while let Some(outcome) = writers.join_next().await {
        let (n, status, body) = outcome.expect("task");
        match status {
            StatusCode::OK => won.push((n, body)),
            StatusCode::PRECONDITION_FAILED => refused += 1,
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(won.len(), 1, "exactly one writer wins: {won:?}");
    assert_eq!(refused, WRITERS - 1, "every other one is told the resource changed");
    let (winner, body) = &won[0];
    let now: ResourceView = alice.get(&format!("{API}/{}", created.id)).await.json().await.expect("resource");
    assert_eq!(now.name, format!("writer {winner}"), "the winner's write is the one that stuck");
    assert_eq!(body["etag"], json!(now.etag), "and its answer named the version it made");
    assert_eq!(now.etag, format!("\"{}.2\"", created.id), "one write, one new version");
}

on_every_engine!(
    every_answer_with_a_resource_names_its_version,
    if_none_match_answers_304_while_the_version_is_current,
    a_stale_if_match_is_412_and_changes_nothing,
    require_if_match_makes_an_unconditional_write_a_428,
    of_concurrent_writes_with_the_same_if_match_exactly_one_wins,
);
