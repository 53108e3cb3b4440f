//! Keeping a login alive: an access token near (or past) expiry is refreshed with the refresh token, a token the
//! API refuses is renewed once and the call retried once, a refused refresh token leads to a new login, and
//! concurrent runs never redeem the same refresh token (the provider rotates refresh tokens and revokes the
//! whole grant when an old one is reused).

use std::time::Duration;

use crate::harness::{Login, World};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_access_token_is_refreshed_without_a_new_login() {
    let world = World::start().await;
    world.idp.set_access_token_ttl(2).await;
    world.run(&["login"], Login::Approve("ada")).await.success();
    let before = world.cache();
    tokio::time::sleep(Duration::from_secs(3)).await;

    let stats = world.idp.stats().await;
    let run = world.run(&["greet"], Login::NotExpected).await;
    assert_eq!(run.success(), "Hello ada\n");
    assert!(!run.prompted(), "{}", run.stderr);
    assert_eq!(world.idp.stats().await.token, stats.token + 1, "exactly one token request: the refresh");
    let after = world.cache();
    assert_ne!(after["access_token"], before["access_token"], "a new access token");
    assert_ne!(after["refresh_token"], before["refresh_token"], "the rotated refresh token is kept");

    // A token refreshed in this run is used until it expires, not refreshed again for every page.
    for name in ["a", "b", "c"] {
        world.run(&["resource", "create", name], Login::NotExpected).await.success();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stats = world.idp.stats().await;
    let list = world.run(&["resource", "list", "--limit", "1"], Login::NotExpected).await;
    assert_eq!(list.success().lines().count(), 4, "a header and three pages of one: {}", list.stdout);
    assert_eq!(world.idp.stats().await.token, stats.token + 1, "one refresh for three pages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_the_api_refuses_is_renewed_once_and_the_call_retried() {
    let world = World::start().await;
    world.run(&["login"], Login::Approve("ada")).await.success();
    // A token that looks fresh to the client but that the API refuses (401).
    let mut cache = world.cache();
    cache["access_token"] = "not-a-valid-token".into();
    world.write_cache(&cache);

    let stats = world.idp.stats().await;
    let run = world.run(&["greet"], Login::NotExpected).await;
    assert_eq!(run.success(), "Hello ada\n");
    assert_eq!(world.idp.stats().await.token, stats.token + 1, "one refresh, one retry");
    assert_ne!(world.cache()["access_token"], "not-a-valid-token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_refresh_token_leads_to_a_new_login() {
    let world = World::start().await;
    world.idp.set_access_token_ttl(2).await;
    world.run(&["login"], Login::Approve("ada")).await.success();
    let mut cache = world.cache();
    cache["refresh_token"] = "revoked-or-unknown".into();
    world.write_cache(&cache);
    tokio::time::sleep(Duration::from_secs(3)).await;

    let run = world.run(&["greet"], Login::Approve("ada")).await;
    assert_eq!(run.success(), "Hello ada\n");
    assert!(run.prompted(), "the refused refresh token falls back to the device flow: {}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runs_never_spend_the_same_refresh_token() {
    let world = World::start().await;
    world.idp.set_access_token_ttl(2).await;
    world.run(&["login"], Login::Approve("ada")).await.success();
    tokio::time::sleep(Duration::from_secs(3)).await;

    let stats = world.idp.stats().await;
    let runs = tokio::join!(
        world.run(&["greet"], Login::NotExpected),
        world.run(&["greet"], Login::NotExpected),
        world.run(&["greet"], Login::NotExpected),
    );
    for run in [&runs.0, &runs.1, &runs.2] {
        assert_eq!(run.success(), "Hello ada\n");
    }
    // Without the lock, two runs would redeem the same refresh token: the provider would revoke the grant and
    // the runs would ask for a new login (which fails the test). With it, each run refreshes with the newest
    // refresh token or adopts the tokens another run just stored, and the grant survives.
    let refreshes = world.idp.stats().await.token - stats.token;
    assert!((1..=3).contains(&refreshes), "{refreshes} refreshes");
    let refresh_token = world.cache()["refresh_token"].as_str().expect("refresh token").to_owned();
    let (status, body) = world.idp.refresh(&refresh_token).await;
    assert_eq!(status, 200, "the grant is still alive: {body}");
}
