//! Resource API v1 on every engine, against the real test OpenID provider: the CRUD contract for two owners with
//! every 4xx, validation, scopes, pagination, concurrency and verbatim storage.

use std::sync::Arc;

use api_types::{ResourceList, ResourceView, scope};
use reqwest::StatusCode;
use rust_api_axum::config::Config;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::{
    database::{Engine, TestDatabase, on_every_engine},
    helpers::{TestApp, problem},
    idp::{ALL_SCOPES, TestIdp, spawn_app_with_idp},
};

pub const API: &str = "/api/resource/v1";

/// The provider, a fresh database on `engine`, and the server using both.
pub struct World {
    idp: TestIdp,
    pub app: TestApp,
    _database: TestDatabase,
    _dir: TempDir,
}

impl World {
    pub async fn new(engine: Engine) -> Self {
        Self::with(engine, |_| {}).await
    }

    /// [`World::new`] with the server's configuration adjusted by `adjust`.
    pub async fn with(engine: Engine, adjust: impl FnOnce(&mut Config)) -> Self {
        let database = TestDatabase::create(engine).await;
        let (idp, app, dir) = spawn_app_with_idp(|config| {
            database.configure(config);
            adjust(config);
        })
        .await;
        Self { idp, app, _database: database, _dir: dir }
    }

    /// A provider-signed token for `subject` with `scope`.
    async fn token(&self, subject: &str, scope: &str) -> String {
        let mut claims = self.idp.claims();
        claims["sub"] = json!(subject);
        claims["preferred_username"] = json!(format!("{subject} (display)"));
        claims["scope"] = json!(scope);
        self.idp.sign(claims, json!({})).await
    }

    pub async fn owner(&self, subject: &str) -> Caller<'_> {
        Caller { app: &self.app, token: self.token(subject, &ALL_SCOPES).await }
    }
}

/// Requests as one token holder.
pub struct Caller<'a> {
    pub app: &'a TestApp,
    pub token: String,
}

impl Caller<'_> {
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.app.client.request(method, self.app.url(path)).bearer_auth(&self.token)
    }

    pub async fn create(&self, name: &str) -> reqwest::Response {
        self.request(reqwest::Method::POST, &format!("{API}/")).json(&json!({"name": name})).send().await.expect("sent")
    }

    pub async fn created(&self, name: &str) -> ResourceView {
        let response = self.create(name).await;
        assert_eq!(response.status(), StatusCode::CREATED, "create {name:?}");
        response.json().await.expect("resource")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.request(reqwest::Method::GET, path).send().await.expect("sent")
    }

    pub async fn rename(&self, id: i64, name: &str) -> reqwest::Response {
        self.request(reqwest::Method::PUT, &format!("{API}/{id}"))
            .json(&json!({"name": name}))
            .send()
            .await
            .expect("sent")
    }

    pub async fn delete(&self, id: i64) -> reqwest::Response {
        self.request(reqwest::Method::DELETE, &format!("{API}/{id}")).send().await.expect("sent")
    }

    pub async fn list_all(&self) -> Vec<ResourceView> {
        let list: ResourceList = self.get(&format!("{API}/?limit=1000")).await.json().await.expect("list");
        list.resources
    }
}

async fn crud_contract_for_two_owners(engine: Engine) {
    let world = World::new(engine).await;
    let (alice, bob) = (world.owner("alice").await, world.owner("bob").await);

    let response = alice.create("first").await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().expect("text").to_owned();
    let first: ResourceView = response.json().await.expect("resource");
    assert_eq!(location, format!("{API}/{}", first.id));
    assert_eq!(first.name, "first");
    assert_eq!(first.owner.name, "alice (display)");
    assert_eq!(first.owner.client_id.as_deref(), Some("rust-api-axum-test"));

    let fetched: ResourceView = bob.get(&location).await.json().await.expect("anyone with read scope reads");
    assert_eq!(fetched, first);
    assert_eq!(bob.get(&format!("{location}/")).await.status(), StatusCode::OK, "trailing slash");

    for response in [bob.rename(first.id, "hijacked").await, bob.delete(first.id).await] {
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert!(!response.headers().contains_key("www-authenticate"), "not a token problem");
        let problem = problem(response).await;
        assert_eq!(problem.detail, format!("Resource {} belongs to another owner", first.id));
    }

    let renamed: ResourceView = alice.rename(first.id, "renamed").await.json().await.expect("renamed");
    assert_eq!((renamed.id, renamed.name.as_str()), (first.id, "renamed"));
    assert_eq!(alice.rename(first.id, "renamed").await.status(), StatusCode::OK, "renaming to its own name");

    let second = alice.created("second").await;
    let clash = alice.rename(second.id, "renamed").await;
    assert_eq!(clash.status(), StatusCode::CONFLICT);
    assert_eq!(problem(clash).await.existing_id, Some(first.id));
    let duplicate = alice.create("second").await;
    assert_eq!(duplicate.status(), StatusCode::CONFLICT);
    let duplicate = problem(duplicate).await;
    assert_eq!(duplicate.existing_id, Some(second.id));
    assert!(duplicate.detail.contains(&format!("id {}", second.id)), "{}", duplicate.detail);

    let bobs = bob.created("second").await;
    assert_ne!(bobs.owner.id, second.owner.id, "the same name is fine for another owner");

    assert_eq!(alice.delete(first.id).await.status(), StatusCode::NO_CONTENT);
    for response in [alice.get(&location).await, alice.rename(first.id, "x").await, alice.delete(first.id).await] {
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(problem(response).await.detail, format!("No resource with id {}", first.id));
    }
    let names: Vec<String> = alice.list_all().await.into_iter().map(|r| r.name).collect();
    assert_eq!(names, ["second", "second"]);
}

async fn invalid_input_is_refused_with_the_right_problem(engine: Engine) {
    let world = World::new(engine).await;
    let alice = world.owner("alice").await;
    let post = |body: reqwest::Body, content_type: &'static str| {
        alice.request(reqwest::Method::POST, API).header("content-type", content_type).body(body).send()
    };

    let cases: [(&str, &str, StatusCode, Option<&str>); 9] = [
        ("{}", "application/json", StatusCode::UNPROCESSABLE_ENTITY, Some("name")),
        (r#"{"name": 42}"#, "application/json", StatusCode::UNPROCESSABLE_ENTITY, Some("name")),
        (r#"{"name": null}"#, "application/json", StatusCode::UNPROCESSABLE_ENTITY, Some("name")),
        (r#"{"name": "   "}"#, "application/json", StatusCode::UNPROCESSABLE_ENTITY, Some("name")),
        (r#"{"name": "ok", "extra": true}"#, "application/json", StatusCode::UNPROCESSABLE_ENTITY, Some("extra")),
        (r#"{"name": "a\u0000b"}"#, "application/json", StatusCode::UNPROCESSABLE_ENTITY, Some("name")),
        ("{not json", "application/json", StatusCode::BAD_REQUEST, None),
        (r#"{"name": "ok"}"#, "text/plain", StatusCode::UNSUPPORTED_MEDIA_TYPE, None),
        ("name=ok", "application/x-www-form-urlencoded", StatusCode::UNSUPPORTED_MEDIA_TYPE, None),
    ];
    for (body, content_type, status, field) in cases {
        let response = post(body.into(), content_type).await.expect("sent");
        assert_eq!(response.status(), status, "{body} as {content_type}");
        let problem = problem(response).await;
        assert_eq!(problem.errors.first().map(|e| e.field.as_str()), field, "{body}");
    }
    let too_long = json!({"name": "n".repeat(256)}).to_string();
    let response = post(too_long.into(), "application/json").await.expect("sent");
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem(response).await.errors[0].message, "must be at most 255 characters, got 256");
    let huge = json!({"name": "x".repeat(1024 * 1024)}).to_string();
    assert_eq!(post(huge.into(), "application/json").await.expect("sent").status(), StatusCode::PAYLOAD_TOO_LARGE);

    for path in [format!("{API}/abc"), format!("{API}/0"), format!("{API}/-3"), format!("{API}/1.5")] {
        let response = alice.get(&path).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(problem(response).await.errors[0].field, "id");
        assert_eq!(alice.delete_path(&path).await, StatusCode::BAD_REQUEST, "{path}");
    }
    for query in ["limit=0", "limit=1001", "limit=x", "after=-1"] {
        assert_eq!(alice.get(&format!("{API}/?{query}")).await.status(), StatusCode::BAD_REQUEST, "{query}");
    }
    assert!(alice.list_all().await.is_empty(), "nothing invalid was stored");
}

impl Caller<'_> {
    async fn delete_path(&self, path: &str) -> StatusCode {
        self.request(reqwest::Method::DELETE, path).send().await.expect("sent").status()
    }
}

async fn scopes_gate_reading_and_writing(engine: Engine) {
    let world = World::new(engine).await;
    let reader = Caller { app: &world.app, token: world.token("reader", scope::READ).await };
    let writer = Caller { app: &world.app, token: world.token("writer", scope::WRITE).await };
    let created = writer.created("by the writer").await;
    let refused = reader.create("by the reader").await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(refused.headers()["www-authenticate"].to_str().expect("text").contains("insufficient_scope"));
    assert_eq!(reader.get(&format!("{API}/{}", created.id)).await.status(), StatusCode::OK);
    let response = writer.get(&format!("{API}/{}", created.id)).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(problem(response).await.detail.contains(scope::READ));
    let anonymous = world.app.client.get(world.app.url(API)).send().await.expect("sent");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

async fn pages_follow_their_next_links_in_id_order(engine: Engine) {
    let world = World::new(engine).await;
    let alice = world.owner("alice").await;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(alice.created(&format!("r{n}")).await.id);
    }
    let mut seen = Vec::new();
    let mut next = Some(format!("{API}/?limit=2"));
    let mut pages = 0;
    while let Some(path) = next {
        let response = alice.get(&path).await;
        assert_eq!(response.status(), StatusCode::OK);
        let link = response.headers().get("link").map(|v| v.to_str().expect("text").to_owned());
        let page: ResourceList = response.json().await.expect("page");
        assert_eq!(link, page.next.as_ref().map(|next| format!("<{next}>; rel=\"next\"")));
        seen.extend(page.resources.iter().map(|r| r.id));
        next = page.next;
        pages += 1;
    }
    assert_eq!((seen, pages), (ids, 3));
}

async fn concurrent_creates_keep_every_distinct_name_and_exactly_one_duplicate(engine: Engine) {
    let world = World::new(engine).await;
    let alice = Arc::new(world.owner("alice").await.token);
    let app = Arc::new(world.app.client.clone());
    let base = world.app.url(API);
    let post = |name: String| {
        let (client, token, url) = (app.clone(), alice.clone(), base.clone());
        async move {
            let response =
                client.post(url).bearer_auth(token.as_str()).json(&json!({"name": name})).send().await.expect("sent");
            let status = response.status();
            let body: Value = response.json().await.expect("json");
            (status, body)
        }
    };

    let mut distinct = tokio::task::JoinSet::new();
    for n in 0..100 {
        distinct.spawn(post(format!("parallel {n}")));
    }
    while let Some(outcome) = distinct.join_next().await {
        let (status, body) = outcome.expect("task");
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let caller = Caller { app: &world.app, token: alice.to_string() };
    assert_eq!(caller.list_all().await.len(), 100);

    let mut identical = tokio::task::JoinSet::new();
    for _ in 0..20 {
        identical.spawn(post("the same name".to_owned()));
    }
    let (mut created, mut conflicts) = (Vec::new(), Vec::new());
    while let Some(outcome) = identical.join_next().await {
        let (status, body) = outcome.expect("task");
        match status {
            StatusCode::CREATED => created.push(body["id"].as_i64().expect("id")),
            StatusCode::CONFLICT => conflicts.push(body["existing_id"].as_i64().expect("existing_id")),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(created.len(), 1, "exactly one create wins");
    assert_eq!(conflicts.len(), 19);
    assert!(conflicts.iter().all(|id| *id == created[0]), "every 409 names the winner");
    assert_eq!(caller.list_all().await.len(), 101);
}

async fn names_round_trip_verbatim(engine: Engine) {
    let world = World::new(engine).await;
    let alice = world.owner("alice").await;
    let names = [
        r#"O'Brien "quoted" \ backslash"#,
        "'; DROP TABLE resources; --",
        "名前 🦀 Ünïcødé ﷽",
        "%_ wildcard [brackets] `ticks`",
        "Case",
        "case",
    ];
    for name in names {
        let created = alice.created(name).await;
        let fetched: ResourceView = alice.get(&format!("{API}/{}", created.id)).await.json().await.expect("resource");
        assert_eq!(fetched.name, name);
    }
    let stored: Vec<String> = alice.list_all().await.into_iter().map(|r| r.name).collect();
    assert_eq!(stored, names, "names are case-sensitive and unaltered on every engine");
}

/// Display names come from the token's username claim, which the provider (or whoever registered there) chose:
/// terminal escapes and bidi controls are removed before the name is stored and served, and a claim longer than
/// the owners' column is cut to 255 characters instead of failing the write on PostgreSQL and MariaDB.
async fn claimed_display_names_are_cleaned_and_cut_to_fit(engine: Engine) {
    let world = World::new(engine).await;
    let as_named = |subject: &'static str, username: String| {
        let world = &world;
        async move {
            let mut claims = world.idp.claims();
            claims["sub"] = json!(subject);
            claims["preferred_username"] = json!(username);
            Caller { app: &world.app, token: world.idp.sign(claims, json!({})).await }
        }
    };
    // Two- and four-byte characters: 255 of them fit the column on every engine, 300 do not.
    let long = as_named("verbose", "é🦀".repeat(150)).await;
    let created = long.created("by verbose").await;
    let cut: String = "é🦀".repeat(150).chars().take(255).collect();
    assert_eq!(created.owner.name, cut, "cut to 255 characters, not bytes");
    let escapes = as_named("mallory", "\u{1b}[31mred\u{1b}]0;title\u{7} \u{202E}\u{2066}evil\u{200B}".to_owned()).await;
    let created = escapes.created("by mallory").await;
    assert_eq!(created.owner.name, "[31mred]0;title evil");
    let listed: Vec<String> = escapes.list_all().await.into_iter().map(|r| r.owner.name).collect();
    assert_eq!(listed, [cut, "[31mred]0;title evil".to_owned()], "as every reader sees them");
}

/// Names refuse characters that are invisible or reorder text, naming the character, and are compared in NFC, so
/// two spellings of one name are one name under the unique (owner, name) rule.
async fn invisible_characters_are_refused_and_names_compare_in_nfc(engine: Engine) {
    let world = World::new(engine).await;
    let alice = world.owner("alice").await;
    for (name, code_point) in
        [("\u{200B}", "U+200B"), ("evil\u{202E}txt", "U+202E"), ("\u{FEFF}bom", "U+FEFF"), ("a\u{2028}b", "U+2028")]
    {
        let response = alice.create(name).await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{name:?}");
        let problem = problem(response).await;
        assert_eq!(problem.errors[0].field, "name");
        assert!(problem.errors[0].message.contains(code_point), "{name:?}: {}", problem.errors[0].message);
    }
    let composed = alice.created("caf\u{e9}").await;
    let clash = alice.create("cafe\u{301}").await;
    assert_eq!(clash.status(), StatusCode::CONFLICT, "NFD spells the same name");
    assert_eq!(problem(clash).await.existing_id, Some(composed.id));
    let other = alice.created("t\u{301}ea").await;
    assert_eq!(other.name, "t\u{301}ea", "a mark with no precomposed form is kept as it is");
    let renamed = alice.rename(other.id, "cafe\u{301}").await;
    assert_eq!(renamed.status(), StatusCode::CONFLICT, "a rename compares in NFC too");
    let names: Vec<String> = alice.list_all().await.into_iter().map(|r| r.name).collect();
    assert_eq!(names, ["caf\u{e9}", "t\u{301}ea"]);
}

/// SQLite in WAL mode: while another connection holds the write lock mid-transaction (a writer of another process,
/// or a slow one), reads, which run on the request's own thread, still answer from the last commit; a create waits
/// for the lock off the runtime's threads (so the reads go on beside it), and lands once the lock is released.
#[tokio::test]
async fn a_writer_holding_the_sqlite_lock_stalls_neither_reads_nor_other_requests() {
    let dir = TempDir::new().expect("temp dir");
    let file = dir.path().join("locked.sqlite");
    let url = format!("sqlite://{}", file.display());
    let (idp, app, _secrets) = spawn_app_with_idp(|config| config.database.db_url = Some(url.into())).await;
    let world = World { idp, app, _database: TestDatabase::create(Engine::Sqlite).await, _dir: dir };
    let ada = world.owner("ada").await;
    let kept = ada.created("kept").await;

    let holder = rusqlite::Connection::open(&file).expect("a second connection");
    holder
        .execute_batch(&format!(
            "BEGIN IMMEDIATE; INSERT INTO resources (owner_id, name) VALUES ({}, 'uncommitted');",
            kept.owner.id
        ))
        .expect("the write lock");
    let create = ada.request(reqwest::Method::POST, &format!("{API}/")).json(&json!({"name": "waits"})).send();
    let mut create = std::pin::pin!(create);
    let started = std::time::Instant::now();
    let mut reads = 0;
    let path = format!("{API}/{}", kept.id);
    // Reads for a while (not a timing assertion: long enough for the create to reach the lock and wait there).
    while reads < 20 || started.elapsed() < std::time::Duration::from_millis(300) {
        tokio::select! {
            biased;
            answer = &mut create => panic!("the create finished while another connection held the lock: {answer:?}"),
            fetched = ada.get(&path) => {
                assert_eq!(fetched.status(), StatusCode::OK);
                assert_eq!(fetched.json::<ResourceView>().await.expect("resource"), kept);
            }
        }
        let page: ResourceList = ada.get(&format!("{API}/")).await.json().await.expect("page");
        assert_eq!(page.resources, std::slice::from_ref(&kept), "the uncommitted write is not visible");
        reads += 1;
    }
    holder.execute_batch("ROLLBACK").expect("lock released");
    let created = create.await.expect("sent");
    assert_eq!(created.status(), StatusCode::CREATED, "the waiting create lands once the lock is free");
}

on_every_engine!(
    crud_contract_for_two_owners,
    invalid_input_is_refused_with_the_right_problem,
    scopes_gate_reading_and_writing,
    pages_follow_their_next_links_in_id_order,
    concurrent_creates_keep_every_distinct_name_and_exactly_one_duplicate,
    names_round_trip_verbatim,
    claimed_display_names_are_cleaned_and_cut_to_fit,
    invisible_characters_are_refused_and_names_compare_in_nfc,
);
