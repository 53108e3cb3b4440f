//! The resource commands through the client against the real server: create, list (across pages), get, rename
//! and delete, the name clash and ownership problems, text and JSON output.

use api_types::{ResourceList, ResourceView};

use crate::harness::{Login, World};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_list_rename_and_delete_through_the_client() {
    let world = World::start().await;
    world.run(&["login"], Login::Approve("ada")).await.success();
    let run = |args: &'static [&'static str]| world.run(args, Login::NotExpected);

    let created = run(&["resource", "create", "alpha"]).await;
    let alpha_line = created.success().to_owned();
    // `Created resource 1 "alpha".`, with ` (etag "...")` before the period from a server that sends entity tags.
    assert!(alpha_line.starts_with("Created resource ") && alpha_line.contains(" \"alpha\""), "{alpha_line}");
    assert!(alpha_line.ends_with(".\n") && alpha_line.lines().count() == 1, "{alpha_line}");
    let alpha: i64 =
        alpha_line["Created resource ".len()..].split(' ').next().expect("id").parse().expect("numeric id");

    let beta = run(&["--output", "json", "resource", "create", "beta"]).await;
    let beta: ResourceView = serde_json::from_str(beta.success()).expect("a ResourceView body");
    assert_eq!((beta.name.as_str(), beta.owner.name.as_str()), ("beta", "ada"));
    assert_eq!(beta.owner.client_id.as_deref(), Some("rust-api-axum-client"));

    let clash = run(&["resource", "create", "alpha"]).await;
    let stderr = clash.failure(1);
    assert!(stderr.starts_with("error: Conflict: "), "{stderr}");
    assert!(stderr.contains(&format!("existing resource id {alpha}")), "{stderr}");

    // One resource per page: the client follows `next` to the end.
    let list = world.run(&["resource", "list", "--limit", "1"], Login::NotExpected).await;
    let text = list.success();
    assert_eq!(text.lines().next(), Some("ID  NAME   OWNER"), "{text}");
    assert!(text.contains(&format!("{alpha}   alpha  ada")) && text.contains("beta   ada"), "{text}");
    let list = world.run(&["--output", "json", "resource", "list", "--limit", "1"], Login::NotExpected).await;
    let list: ResourceList = serde_json::from_str(list.success()).expect("a ResourceList body");
    assert_eq!(list.resources.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["alpha", "beta"]);
    assert_eq!(list.next, None);

    let alpha_id = alpha.to_string();
    let renamed = world.run(&["resource", "rename", &alpha_id, "gamma"], Login::NotExpected).await;
    let renamed = renamed.success();
    assert!(renamed.starts_with(&format!("Renamed resource {alpha} to \"gamma\"")), "{renamed}");
    let shown = world.run(&["resource", "get", &alpha_id], Login::NotExpected).await;
    assert!(shown.success().contains("gamma  ada"), "{}", shown.stdout);

    let deleted = world.run(&["resource", "delete", &alpha_id], Login::NotExpected).await;
    assert_eq!(deleted.success(), format!("Deleted resource {alpha}.\n"));
    let gone = world.run(&["resource", "get", &alpha_id], Login::NotExpected).await;
    assert!(gone.failure(1).starts_with("error: Not Found: "), "{}", gone.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_owner_may_change_a_resource() {
    let world = World::start().await;
    world.run(&["login"], Login::Approve("ada")).await.success();
    let created = world.run(&["--output", "json", "resource", "create", "adas"], Login::NotExpected).await;
    let resource: ResourceView = serde_json::from_str(created.success()).expect("ResourceView");
    let id = resource.id.to_string();

    // Grace logs in (a new login replaces ada's cached tokens) and may read but not change ada's resource.
    world.run(&["login"], Login::Approve("grace")).await.success();
    let shown = world.run(&["resource", "get", &id], Login::NotExpected).await;
    assert!(shown.success().contains("adas  ada"), "{}", shown.stdout);
    let denied = world.run(&["resource", "delete", &id], Login::NotExpected).await;
    assert!(denied.failure(1).starts_with("error: Forbidden: "), "{}", denied.stderr);
    let denied = world.run(&["resource", "rename", &id, "mine"], Login::NotExpected).await;
    assert!(denied.failure(1).starts_with("error: Forbidden: "), "{}", denied.stderr);
}

/// Names reach the terminal escaped, whatever the server holds (a row written before names refused these
/// characters, an owner name from an older server, or another writer of the database): no raw escape sequence,
/// bidi control or line separator is printed, in text or in JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_with_terminal_escapes_are_printed_escaped() {
    let world = World::start().await;
    world.run(&["login"], Login::Approve("ada")).await.success();
    let created = world.run(&["--output", "json", "resource", "create", "plain"], Login::NotExpected).await;
    let resource: ResourceView = serde_json::from_str(created.success()).expect("a ResourceView body");
    let hostile = "\u{1b}[31mred\u{1b}]0;title\u{7}\u{202e}txt\u{2028}";
    let database = rusqlite::Connection::open(world.database_file()).expect("the server's database");
    database.execute("UPDATE resources SET name = ?1 WHERE id = ?2", (hostile, resource.id)).expect("renamed");
    database.execute("UPDATE owners SET name = ?1", ("\u{1b}[2Jada",)).expect("owner renamed");
    let raw = |text: &str| text.chars().any(|c| matches!(c, '\u{1b}' | '\u{7}' | '\u{202e}' | '\u{2028}'));

    let listed = world.run(&["resource", "list"], Login::NotExpected).await;
    let text = listed.success();
    assert!(!raw(text), "{text:?}");
    assert!(text.contains(r"\u{1b}[31mred\u{1b}]0;title\u{7}\u{202e}txt\u{2028}  \u{1b}[2Jada"), "{text}");
    let shown = world.run(&["resource", "get", &resource.id.to_string()], Login::NotExpected).await;
    assert!(!raw(shown.success()), "{:?}", shown.stdout);

    let json = world.run(&["--output", "json", "resource", "list"], Login::NotExpected).await;
    assert!(!raw(json.success()), "{:?}", json.stdout);
    let list: ResourceList = serde_json::from_str(&json.stdout).expect("still a ResourceList body");
    assert_eq!(list.resources[0].name, hostile, "JSON escapes are lossless: scripts read the name as stored");
}
