//! `cargo xtask` on copies of this repository (the work tree as it is, committed into a fresh git repository in a
//! temp dir): what each command refuses and writes, without building (fast), and one end-to-end run (ignored:
//! `scripts/test` runs it as its own step) proving that a renamed copy with a new entity, a new API and a new version
//! builds, lints, passes its tests and serves.

use std::{
    fs,
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use serde_json::Value;
use tempfile::TempDir;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root").to_path_buf()
}

/// The server package's name in the original, read the way a person would, so the tests hold after a rename.
fn current_name() -> String {
    let manifest = fs::read_to_string(repository().join("crates/server/Cargo.toml")).expect("server manifest");
    let line = manifest.lines().find(|l| l.starts_with("name = ")).expect("name line");
    line.trim_start_matches("name = ").trim_matches('"').to_owned()
}

/// The name the tests rename a copy to: the first candidate that is not the tree's own name and shares no part of
/// its spelling (the no-old-spelling check greps for it), so the tests hold in a tree that was renamed already, to
/// `acme-orders` for instance.
fn new_name() -> &'static str {
    let current = current_name();
    ["acme-orders", "northwind-api", "contoso-service"]
        .into_iter()
        .find(|name| !name.contains(&current) && !current.contains(name))
        .expect("a candidate name unlike the tree's")
}

/// The entity the tests generate, as the README's example writes it, under the first name the tree does not use
/// yet (a newcomer's tree may have its `order` already).
struct Target {
    name: &'static str,
    plural: &'static str,
    pascal: &'static str,
}

fn target() -> Target {
    let taken = |name: &str, plural: &str| {
        let server = repository().join("crates/server");
        server.join("src/apis").join(name).exists()
            || server.join("src/domain").join(format!("{plural}.rs")).exists()
            || server.join("tests/api").join(format!("{name}.rs")).exists()
            || server.join("tests/api").join(format!("{plural}.rs")).exists()
    };
    [("order", "orders", "Order"), ("invoice", "invoices", "Invoice"), ("parcel", "parcels", "Parcel")]
        .into_iter()
        .find(|(name, plural, _)| !taken(name, plural))
        .map(|(name, plural, pascal)| Target { name, plural, pascal })
        .expect("a free entity name")
}

impl Target {
    /// `new-entity <name> --field name:string(100) --field amount:decimal --field due:timestamp?`
    fn args(&self) -> Vec<&'static str> {
        vec![
            "new-entity",
            self.name,
            "--field",
            "name:string(100)",
            "--field",
            "amount:decimal",
            "--field",
            "due:timestamp?",
        ]
    }
}

/// A name for a new API (and its test module) that the tree and the [`target`] entity leave free.
fn new_api() -> &'static str {
    let server = repository().join("crates/server");
    ["reports", "billing", "audits"]
        .into_iter()
        .find(|api| {
            !server.join("src/apis").join(api).exists() && !server.join("tests/api").join(format!("{api}.rs")).exists()
        })
        .expect("a free API name")
}

/// The migration files of the tree's history, in order (`m0001_resources`, ...).
fn migrations() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(repository().join("crates/migration/src"))
        .expect("the migration crate")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with('m') && name.ends_with(".rs"))
        .map(|name| name.trim_end_matches(".rs").to_owned())
        .collect();
    names.sort();
    names
}

/// The version after greeting's latest (`v4` in the original).
fn next_greeting_version() -> String {
    let latest = fs::read_dir(repository().join("crates/server/src/apis/greeting"))
        .expect("the greeting API")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter_map(|name| name.strip_prefix('v')?.strip_suffix(".rs")?.parse::<u32>().ok())
        .max()
        .expect("a greeting version");
    format!("v{}", latest + 1)
}

/// The `pub mod` (or `mod`) lines of `text`, which must be in sorted order and include `line`.
fn assert_listed_in_order(text: &str, prefix: &str, line: &str) {
    let listed: Vec<&str> = text.lines().filter(|l| l.starts_with(prefix) && l.ends_with(';')).collect();
    assert!(listed.contains(&line), "{line} is not among {listed:?}");
    let mut sorted = listed.clone();
    sorted.sort_unstable();
    assert_eq!(listed, sorted, "listed in order");
}

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=xtask test", "-c", "user.email=xtask@example.invalid", "-c", "commit.gpgsign=false"])
        .args(args)
        .output()
        .expect("git runs");
    assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8")
}

/// The repository's work tree (tracked and new unignored files, as they are now) committed into a fresh repository
/// in a temp dir.
fn copy() -> TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    copy_into(dir.path());
    dir
}

/// [`copy`] into `dir`, which must be empty or absent.
fn copy_into(dir: &Path) {
    let source = repository();
    let listing = git(&source, &["ls-files", "-z", "--cached", "--others", "--exclude-standard"]);
    for file in listing.split('\0').filter(|f| !f.is_empty()) {
        let from = source.join(file);
        if !from.is_file() {
            continue; // Deleted in the work tree, or a submodule.
        }
        let to = dir.join(file);
        fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        fs::copy(&from, &to).expect("copy");
    }
    git(dir, &["init", "-q"]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "copy"]);
}

/// Runs the xtask binary on `root`.
fn xtask(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask")).arg("--root").arg(root).args(args).output().expect("xtask runs")
}

/// Asserts `args` fail with one `error:` line mentioning `reason`, and change nothing.
fn refused(root: &Path, args: &[&str], reason: &str) {
    let output = xtask(root, args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{args:?}: one line: {stderr}");
    assert!(stderr.starts_with("error: ") && stderr.contains(reason), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(git(root, &["status", "--porcelain"]), "", "{args:?} changed the tree");
}

fn read(root: &Path, file: &str) -> String {
    fs::read_to_string(root.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[test]
fn rename_refuses_invalid_or_taken_names_and_a_dirty_tree() {
    let copy = copy();
    let root = copy.path();
    for (name, reason) in [
        ("Acme", "not a valid crate and binary name"),
        ("acme_orders", "not a valid crate and binary name"),
        ("9lives", "not a valid crate and binary name"),
        ("", "empty"),
        ("type", "keyword"),
        ("test", "reserved"),
        ("serde", "clashes with the package `serde`"),
        ("api-types", "clashes with the package `api-types`"),
        (&current_name(), "already named"),
    ] {
        refused(root, &["rename", name], reason);
    }
    fs::write(root.join("scratch.txt"), "work in progress").expect("write");
    let output = xtask(root, &["rename", new_name()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("uncommitted change"));
    assert!(read(root, "crates/server/Cargo.toml").contains(&current_name()), "a dirty tree is not renamed");
}

#[test]
fn rename_leaves_no_old_spelling_and_a_consistent_lock_file() {
    let copy = copy();
    let root = copy.path();
    let (old, old_snake) = (current_name(), current_name().replace('-', "_"));
    let new = new_name();
    let output = xtask(root, &["rename", new]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    let pattern = format!("{old}|{old_snake}");
    let left =
        Command::new("git").arg("-C").arg(root).args(["grep", "-n", "-i", "-E", &pattern]).output().expect("grep");
    assert_eq!(String::from_utf8_lossy(&left.stdout), "", "the old name is left here");
    git(root, &["add", "-A"]);
    let files = git(root, &["ls-files"]);
    assert!(!files.contains(&old), "paths still name {old}: {files}");

    let snake = new.replace('-', "_");
    assert!(read(root, "crates/server/Cargo.toml").contains(&format!("name = \"{new}\"")));
    assert!(read(root, "crates/server/Cargo.toml").contains(&format!("name = \"{snake}\"")), "the library");
    assert!(read(root, "crates/client/Cargo.toml").contains(&format!("name = \"{new}-client\"")));
    assert!(read(root, "crates/api-types/src/lib.rs").contains(&format!("\"{new}-resource-read\"")));
    assert!(read(root, "crates/server/src/auth/mod.rs").contains(&format!(r#"Bearer realm=\"{new}\""#)));
    assert!(read(root, "crates/client/src/config.rs").contains(&format!("const APP_DIR: &str = \"{new}-client\";")));
    assert!(read(root, "openapi.json").contains(&format!("\"title\": \"{new}\"")));
    assert!(read(root, &format!("deploy/helm/{new}/Chart.yaml")).contains(&format!("name: {new}")));
    assert!(read(root, "README.md").starts_with(&format!("# {new}")));

    let cargo = |args: &[&str]| Command::new(env!("CARGO")).current_dir(root).args(args).output().expect("cargo");
    // `--locked` fails if the lock file would change; only the index is needed, not every target's sources.
    let locked = cargo(&["update", "--workspace", "--locked", "--offline", "--quiet"]);
    assert!(locked.status.success(), "Cargo.lock: {}", String::from_utf8_lossy(&locked.stderr));
    let formatted = cargo(&["fmt", "--all", "--check"]);
    assert!(formatted.status.success(), "cargo fmt: {}", String::from_utf8_lossy(&formatted.stdout));
}

#[test]
fn generators_refuse_bad_names_versions_and_existing_targets() {
    let copy = copy();
    let root = copy.path();
    refused(root, &["new-api", "greeting"], "crates/server/src/apis/greeting already exists");
    refused(root, &["new-api", "healthz"], "crates/server/src/apis/healthz.rs already exists");
    refused(root, &["new-api", "Orders"], "not a valid API name");
    refused(root, &["new-api", "order-items"], "not a valid API name");
    refused(root, &["new-api", "match"], "keyword");
    refused(root, &["new-version", "greeting", "v3"], "crates/server/src/apis/greeting/v3.rs already exists");
    refused(root, &["new-version", "greeting", "v2"], "already exists");
    refused(root, &["new-version", "resource", "v1"], "already exists");
    refused(root, &["new-version", "greeting", "4"], "not a version");
    refused(root, &["new-version", "greeting", "v0"], "not a version");
    refused(root, &["new-version", "nothere", "v2"], "there is no API `nothere`");
    fs::remove_file(root.join("crates/server/src/apis/greeting/v1.rs")).expect("rm");
    git(root, &["commit", "-qam", "no v1"]);
    refused(root, &["new-version", "greeting", "v1"], "not newer than greeting's latest version v3");
}

#[test]
fn generators_write_the_module_the_registry_line_the_test_and_the_docs_list() {
    let copy = copy();
    let root = copy.path();
    let (api, version) = (new_api(), next_greeting_version());
    let latest = format!("v{}", version[1..].parse::<u32>().expect("a number") - 1);
    for args in [["new-api", api, "--no-openapi"].as_slice(), &["new-version", "greeting", &version, "--no-openapi"]] {
        let output = xtask(root, args);
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    }
    let registry = read(root, "crates/server/src/apis/mod.rs");
    assert_listed_in_order(&registry, "pub mod ", &format!("pub mod {api};"));
    assert!(registry.contains(&format!("(name = \"{api}\", description = \"The {api} API\")")));
    assert!(registry.contains(&format!("        .merge({api}::v1::router())\n")));
    assert!(
        registry.contains(&format!(
            ".merge(greeting::{latest}::router())\n        .merge(greeting::{version}::router())\n"
        ))
    );
    assert_eq!(registry.matches(&format!(".merge(greeting::{version}::router())")).count(), 1);

    let v1 = read(root, &format!("crates/server/src/apis/{api}/v1.rs"));
    assert!(
        v1.contains(&format!("path = \"/api/{api}/v1\"")) && v1.contains(&format!("operation_id = \"{api}_v1_get\""))
    );
    assert!(read(root, &format!("crates/server/src/apis/{api}/mod.rs")).contains("pub mod v1;"));
    let new = read(root, &format!("crates/server/src/apis/greeting/{version}.rs"));
    assert!(new.contains(&format!("path = \"/api/greeting/{version}\"")));
    assert!(new.contains(&format!("operation_id = \"greeting_{version}_get\"")));
    assert!(!new.contains(&latest), "every {latest} became {version}: {new}");
    let versions = read(root, "crates/server/src/apis/greeting/mod.rs");
    assert!(versions.contains(&format!("pub mod {latest};\npub mod {version};\n")));

    assert_listed_in_order(&read(root, "crates/server/tests/api/main.rs"), "mod ", &format!("mod {api};"));
    assert!(read(root, &format!("crates/server/tests/api/{api}.rs")).contains(&format!("\"/api/{api}/v1/\"")));
    let greeting_tests = read(root, "crates/server/tests/api/greeting.rs");
    assert!(greeting_tests.contains(&format!("async fn {version}_is_documented_and_served()")));
    let docs = read(root, "crates/server/tests/api/docs.rs");
    assert!(docs.contains(&format!("\"/api/greeting/{latest}\",\n        \"/api/greeting/{version}\",\n")), "{docs}");
    assert!(docs.contains(&format!("        \"/api/{api}/v1\",\n    ]);")), "{docs}");

    refused_after_changes(root, &["new-api", api], &format!("crates/server/src/apis/{api} already exists"));
    refused_after_changes(
        root,
        &["new-version", "greeting", &version],
        &format!("greeting/{version}.rs already exists"),
    );
}

/// Like [`refused`] on a tree that has changes already: nothing more may change.
fn refused_after_changes(root: &Path, args: &[&str], reason: &str) {
    let before = git(root, &["status", "--porcelain"]);
    let output = xtask(root, args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(reason), "{stderr}");
    assert_eq!(git(root, &["status", "--porcelain"]), before);
}

#[test]
fn new_entity_refuses_bad_names_fields_and_types_before_writing_anything() {
    let copy = copy();
    let root = copy.path();
    let target = target();
    let (order, orders) = (target.name, target.plural);
    let entity = |name: &str, fields: &[&str], extra: &[&str]| {
        let mut args = vec!["new-entity".to_owned(), name.to_owned()];
        for field in fields {
            args.extend(["--field".to_owned(), (*field).to_owned()]);
        }
        args.extend(extra.iter().map(|arg| (*arg).to_owned()));
        args
    };
    for (args, reason) in [
        (entity("Order", &["a:text"], &[]), "not a valid entity name"),
        (entity("line-item", &["a:text"], &[]), "not a valid entity name"),
        (entity("type", &["a:text"], &[]), "keyword"),
        (entity("self", &["a:text"], &[]), "keyword"),
        (entity("resource", &["a:text"], &[]), "the name `resource` is taken"),
        (entity("owner", &["a:text"], &[]), "the name `owner` is taken"),
        (entity("greeting", &["a:text"], &[]), "the name `greeting` is taken"),
        (entity("auth", &["a:text"], &[]), "the name `auth` is taken"),
        (entity("holder", &["a:text"], &["--plural", "owners"]), "the plural `owners` is taken"),
        (entity("resourc", &["a:text"], &["--plural", "resources"]), "the plural `resources` is taken"),
        (entity("time", &["a:text"], &[]), "a crate the server uses"),
        (entity(order, &["a:text"], &["--plural", order]), "must differ"),
        (entity(order, &["Name:text"], &[]), "not a valid field name"),
        (entity(order, &["type:text"], &[]), "not a valid field name"),
        (entity(order, &["id:integer"], &[]), "taken by the generated code"),
        (entity(order, &["owner_id:integer"], &[]), "taken by the generated code"),
        (entity(order, &["name"], &[]), "is not a field"),
        (entity(order, &["amount:float"], &[]), "unknown type `float`"),
        (entity(order, &["name:string"], &[]), "needs its length"),
        (entity(order, &["name:string(0)"], &[]), "1 to 1024"),
        (entity(order, &["amount:decimal(20,2)"], &[]), "1 <= P <= 18"),
        (entity(order, &["a:text", "a:integer"], &[]), "the field `a` is given twice"),
        (entity(order, &["amount:decimal"], &["--unique", "amount"]), "only a required string(N)"),
        (entity(order, &["notes:text"], &["--unique", "notes"]), "only a required string(N)"),
        (entity(order, &["name:string(9)?"], &["--unique", "name"]), "only a required string(N)"),
        (entity(order, &["name:string(9)"], &["--unique", "nope"]), "there is no field `nope`"),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(root, &args, reason);
    }

    fs::write(root.join("scratch.txt"), "work in progress").expect("write");
    let output = xtask(root, &target.args());
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("uncommitted change"));
    assert!(!root.join(format!("crates/server/src/domain/{orders}.rs")).exists(), "a dirty tree gets nothing");
    fs::remove_file(root.join("scratch.txt")).expect("rm");

    // Existing targets: a module of the plural's name, a migration already creating the table.
    let store = format!("crates/server/src/db/{orders}.rs");
    fs::write(root.join(&store), "//! taken\n").expect("write");
    git(root, &["add", "-A"]);
    git(root, &["commit", "-q", "-m", "a store of that name"]);
    refused(root, &target.args(), &format!("{store} already exists"));
    git(root, &["rm", "-q", &store]);
    fs::write(root.join(format!("crates/migration/src/m0042_{orders}.rs")), "//! taken\n").expect("write");
    git(root, &["add", "-A"]);
    git(root, &["commit", "-q", "-m", "a migration of that table"]);
    refused(root, &target.args(), &format!("m0042_{orders}.rs already creates a `{orders}` table"));
}

#[test]
fn new_entity_writes_every_layer_and_lists_it_where_the_others_are() {
    let copy = copy();
    let root = copy.path();
    let target = target();
    let (order, orders, pascal) = (target.name, target.plural, target.pascal);
    let history = migrations();
    let previous = history.last().expect("a migration");
    let number: u32 = previous[1..5].parse().expect("mNNNN_");
    let migration_module = format!("m{:04}_{orders}", number + 1);
    let mut args = target.args();
    args.push("--no-openapi");
    let output = xtask(root, &args);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    let new_files = [
        format!("crates/migration/src/{migration_module}.rs"),
        format!("crates/server/src/db/entity/{order}.rs"),
        format!("crates/server/src/domain/{orders}.rs"),
        format!("crates/server/src/db/{orders}.rs"),
        format!("crates/server/src/apis/{order}/mod.rs"),
        format!("crates/server/src/apis/{order}/v1.rs"),
        format!("crates/api-types/src/{order}.rs"),
        format!("crates/server/tests/api/{order}.rs"),
    ];
    let new_files: Vec<&str> = new_files.iter().map(String::as_str).collect();
    let status = git(root, &["status", "--porcelain", "--untracked-files=all"]);
    let mut created: Vec<&str> = status.lines().filter_map(|l| l.strip_prefix("?? ")).collect();
    created.sort_unstable();
    let mut expected = new_files.clone();
    expected.sort_unstable();
    assert_eq!(created, expected, "the new files, and nothing else new");
    let changed: Vec<&str> = status.lines().filter_map(|l| l.strip_prefix(" M ")).collect();
    assert_eq!(
        changed,
        [
            "crates/api-types/src/lib.rs",
            "crates/migration/src/lib.rs",
            "crates/server/src/apis/mod.rs",
            "crates/server/src/db/entity/mod.rs",
            "crates/server/src/db/mod.rs",
            "crates/server/src/domain/mod.rs",
            "crates/server/tests/api/docs.rs",
            "crates/server/tests/api/main.rs",
        ],
        "one line or two in each shared file; state.rs and error/ are not among them"
    );
    for &file in &new_files {
        let text = read(root, file);
        let leftover = text
            .split('@')
            .skip(1)
            .step_by(2)
            .find(|word| !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        assert_eq!(leftover, None, "{file} has a template name left");
        assert!(text.starts_with("//! "), "{file} says what it owns");
        assert!(!text.contains(".unwrap()"), "{file} unwraps");
    }

    let migrator = read(root, "crates/migration/src/lib.rs");
    assert!(migrator.contains(&format!("mod {previous};\nmod {migration_module};\n")), "{migrator}");
    assert!(migrator.contains(&format!("Box::new({migration_module}::Migration)")), "{migrator}");
    let migration = read(root, &format!("crates/migration/src/{migration_module}.rs"));
    for expected in [
        format!(".col(ColumnDef::new({pascal}s::Name).string_len(100).not_null())"),
        format!(".col(ColumnDef::new({pascal}s::Amount).big_integer().not_null())"),
        format!(".col(ColumnDef::new({pascal}s::Due).big_integer().null())"),
        ".to(Owners::Table, Owners::Id)".to_owned(),
        format!(".name(\"uq_{orders}_owner_name\")"),
        "async fn down(".to_owned(),
    ] {
        assert!(migration.contains(&expected), "{expected}: {migration}");
    }
    let registry = read(root, "crates/server/src/apis/mod.rs");
    assert_listed_in_order(&registry, "pub mod ", &format!("pub mod {order};"));
    assert!(registry.contains(&format!("        .merge({order}::v1::router())\n")));
    assert!(registry.contains(&format!(
        "(name = \"{order}\", description = \"Owned {orders}: read scope to read, write scope to change\")"
    )));
    let listed = |file: &str, prefix: &str, module: &str| {
        assert_listed_in_order(&read(root, file), prefix, &format!("{prefix}{module};"));
    };
    listed("crates/server/src/db/mod.rs", "pub mod ", orders);
    listed("crates/server/src/db/entity/mod.rs", "pub mod ", order);
    listed("crates/server/src/domain/mod.rs", "pub mod ", orders);
    listed("crates/api-types/src/lib.rs", "pub mod ", order);
    listed("crates/server/tests/api/main.rs", "mod ", order);
    let bodies = read(root, "crates/api-types/src/lib.rs");
    let uses = format!("pub use {order}::{{{pascal}Input, {pascal}List, {pascal}View}};\n");
    assert!(bodies.contains(&uses), "{bodies}");
    let docs = read(root, "crates/server/tests/api/docs.rs");
    let paths = format!("        \"/api/{order}/v1\",\n        \"/api/{order}/v1/{{id}}\",\n    ]);");
    assert!(docs.contains(&paths), "{docs}");

    let api = read(root, &format!("crates/server/src/apis/{order}/mod.rs"));
    assert!(
        api.contains(&format!("impl FromRef<AppState> for SeaOrm{pascal}Store")),
        "the store reaches handlers from the API"
    );
    assert!(api.contains("Self::NameTaken { existing, .. } =>") && api.contains("with_member(\"existing_id\""));
    let v1 = read(root, &format!("crates/server/src/apis/{order}/v1.rs"));
    for expected in [
        format!("path = \"/api/{order}/v1\""),
        format!("path = \"/api/{order}/v1/{{id}}\""),
        format!("operation_id = \"{order}_v1_replace\""),
        format!("State(store): State<SeaOrm{pascal}Store>"),
        "amount: Decimal::parse(&input.amount)".to_owned(),
        "due: input.due.as_deref().map(Timestamp::parse)".to_owned(),
    ] {
        assert!(v1.contains(&expected), "{expected}");
    }
    let domain = read(root, &format!("crates/server/src/domain/{orders}.rs"));
    assert!(domain.contains(&format!("pub struct {pascal}Name(String);")));
    assert!(domain.contains("pub const MAX_CHARS: usize = 100;"));
    assert!(domain.contains("pub amount: Decimal<18, 2>,") && domain.contains("pub due: Option<Timestamp>,"));
    let tests = read(root, &format!("crates/server/tests/api/{order}.rs"));
    assert!(tests.contains("on_every_engine!(") && tests.contains("\"must be at most 100 characters, got 101\""));
    let formatted =
        Command::new(env!("CARGO")).current_dir(root).args(["fmt", "--all", "--check"]).output().expect("fmt");
    assert!(formatted.status.success(), "cargo fmt: {}", String::from_utf8_lossy(&formatted.stdout));

    git(root, &["add", "-A"]);
    git(root, &["commit", "-q", "-m", order]);
    refused(root, &target.args(), &format!("the name `{order}` is taken"));
}

#[test]
fn new_entity_is_documented_in_the_help() {
    let output = Command::new(env!("CARGO_BIN_EXE_xtask")).args(["new-entity", "--help"]).output().expect("runs");
    let help = String::from_utf8_lossy(&output.stdout);
    for expected in
        ["--field <NAME:TYPE>", "--unique <FIELD>", "--no-unique", "--plural <PLURAL>", "decimal(P,S)", "timestamp"]
    {
        assert!(help.contains(expected), "{expected}: {help}");
    }
    let overview = Command::new(env!("CARGO_BIN_EXE_xtask")).arg("--help").output().expect("runs");
    assert!(String::from_utf8_lossy(&overview.stdout).contains("new-entity"));
}

/// Runs cargo in `root` on the shared target directory (compiled dependencies are reused) and fails the test with
/// the end of its output.
fn cargo(root: &Path, target: &Path, args: &[&str]) -> String {
    let started = Instant::now();
    let mut command = Command::new(env!("CARGO"));
    // What cargo set for this test process is not the copy's: ring's build script reruns when CARGO_PKG_NAME
    // changes, which would rebuild half the dependencies here and again in the next ordinary build.
    let ours = ["CARGO_PKG_", "CARGO_MANIFEST_", "CARGO_BIN_", "CARGO_CRATE_", "CARGO_PRIMARY_", "CARGO_TARGET_TMPDIR"];
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(|k| ours.iter().any(|prefix| k.starts_with(prefix))) {
            command.env_remove(key);
        }
    }
    let output = command
        .current_dir(root)
        .env("CARGO_TARGET_DIR", target)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("cargo");
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    let tail: Vec<&str> = stderr.lines().rev().take(60).collect::<Vec<_>>().into_iter().rev().collect();
    assert!(output.status.success(), "cargo {args:?} failed:\n{stdout}\n{}", tail.join("\n"));
    eprintln!("cargo {} ({:.0?})", args.join(" "), started.elapsed());
    stdout.into_owned()
}

/// Gives each of the copy's own packages a profile of its own (`debug = "limited"` instead of the workspace's
/// `"line-tables-only"`), so their artefacts in the shared target directory cannot be taken for the original's.
/// Cargo names a path package's artefacts by its name, version and path relative to the workspace root
/// (rust-lang/cargo#12516), which the copy shares for every package the rename leaves alone (`api-types`,
/// `test-support`, ...): the last build of either then served both, and a renamed copy's scope names ended up in
/// the original's server on the next run. Written into the copy's `.cargo/config.toml` and committed, so every
/// cargo the copy runs uses it, also the one `cargo xtask new-api` starts to regenerate `openapi.json`.
/// Dependencies keep their profile, and so their artefacts are still reused.
fn give_own_profile(root: &Path) {
    let manifest = fs::read_to_string(root.join("Cargo.toml")).expect("the copy's manifest");
    let members = manifest
        .lines()
        .find_map(|line| line.trim().strip_prefix("members = ["))
        .expect("a one-line members list")
        .trim_end_matches(']')
        .split(',')
        .map(|member| member.trim().trim_matches('"').to_owned())
        .filter(|member| !member.is_empty());
    let config_path = root.join(".cargo/config.toml");
    let mut config = fs::read_to_string(&config_path).expect("the copy's cargo config");
    for member in members {
        let package = fs::read_to_string(root.join(&member).join("Cargo.toml")).expect("a member's manifest");
        let name = package
            .lines()
            .find_map(|line| line.trim().strip_prefix("name = \""))
            .and_then(|rest| rest.strip_suffix('"'))
            .unwrap_or_else(|| panic!("{member} names its package"));
        config.push_str(&format!("\n[profile.dev.package.{name}]\ndebug = \"limited\"\n"));
    }
    fs::write(&config_path, config).expect("write the copy's cargo config");
    git(root, &["commit", "-q", "-a", "-m", "a profile of its own in the shared target directory"]);
}

/// An HTTP/1.1 exchange with std only, `Connection: close`: the status code, the head (lowercase header names) and
/// the body (de-chunked when it came in chunks).
fn exchange(address: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let code = head.split(' ').nth(1).and_then(|c| c.parse().ok()).expect("status line");
    let head = head.to_ascii_lowercase();
    let body = if head.contains("transfer-encoding: chunked") { dechunked(body) } else { body.to_owned() };
    (code, head, body)
}

/// One GET: the status code and the body.
fn get(address: &str, path: &str) -> (u16, String) {
    let (code, _, body) = exchange(address, "GET", path, &[], "");
    (code, body)
}

/// A chunked body's data.
fn dechunked(mut rest: &str) -> String {
    let mut data = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || after.len() < size {
            break;
        }
        data.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    data
}

/// Standard base64, for a Basic authorization header.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            let sextet = (n >> (18 - 6 * i)) & 63;
            out.push(if i <= chunk.len() { char::from(ALPHABET[sextet as usize]) } else { '=' });
        }
    }
    out
}

/// Processes the end-to-end test started, ended when it ends, passing or not.
struct Started(Vec<Child>);

impl Drop for Started {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Gives the copy's test OpenID provider (its own tools/idp, renamed with it) the packages `npm ci` installed in the
/// original's, which the copy's tests and [`start_provider`] run.
fn link_provider_packages(root: &Path) {
    let packages = repository().join("tools/idp/node_modules");
    assert!(
        packages.join("oidc-provider").is_dir(),
        "the test OpenID provider is not installed: run `npm ci` in tools/idp"
    );
    std::os::unix::fs::symlink(&packages, root.join("tools/idp/node_modules"))
        .expect("link the packages into the copy");
}

/// Starts the copy's test OpenID provider and returns its issuer.
fn start_provider(root: &Path, started: &mut Started) -> String {
    let mut provider = Command::new("node")
        .arg("server.js")
        .current_dir(root.join("tools/idp"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node starts the test OpenID provider");
    let stdout = provider.stdout.take().expect("stdout");
    started.0.push(provider);
    let mut ready = String::new();
    BufReader::new(stdout).read_line(&mut ready).expect("the provider's ready line");
    let ready: Value = serde_json::from_str(&ready).expect("the ready line is JSON");
    ready["issuer"].as_str().expect("issuer").to_owned()
}

/// Starts `binary` with `args` and returns the address it listens on.
fn start_server(binary: &Path, args: &[&std::ffi::OsStr], started: &mut Started) -> String {
    let mut server = Command::new(binary)
        .args(args)
        .env_remove("APP_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("server starts");
    let stderr = server.stderr.take().expect("stderr");
    started.0.push(server);
    let (lines, seen) = mpsc::channel();
    std::thread::spawn(move || BufReader::new(stderr).lines().map_while(Result::ok).try_for_each(|l| lines.send(l)));
    let mut log = Vec::new();
    loop {
        let line = seen.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|_| panic!("no Listening line: {log:?}"));
        if let Some(at) = line.find("Listening on http://") {
            return line[at + "Listening on http://".len()..].trim().to_owned();
        }
        log.push(line);
    }
}

/// The end-to-end proof, a few minutes of building: rename a copy, add an entity, an API and a version to it; then
/// the copy is fmt- and clippy-clean; its greeting, new-API and order tests (on SQLite) pass, and so do the docs
/// tests of the document (the openapi.json drift test, every documented path served, the `openapi` command; the
/// other docs tests need the original's venvs); and the renamed binary serves `/healthz/`, a document titled with
/// the new name, and orders created, read, listed and deleted with a token from the copy's own test provider.
#[test]
#[ignore = "builds a renamed copy of the workspace (minutes on 2 cores); scripts/test runs it (--run-ignored all)"]
fn a_renamed_copy_with_a_new_entity_api_and_version_builds_lints_passes_and_serves() {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    let target = repository().join(target); // `join` keeps an absolute CARGO_TARGET_DIR as it is.
    // A fixed place, not a fresh temp dir: the copy's own crates are compiled into the shared target directory
    // (under a profile of their own, see `give_own_profile`), so a new path every run would pile up a workspace's worth
    // of artefacts each time; this way a run replaces the last one's (and reuses its incremental state).
    let root = &target.join("xtask-e2e");
    if root.exists() {
        fs::remove_dir_all(root).expect("remove the last run's copy");
    }
    copy_into(root);

    // Through the cargo alias, as the README says: `cargo xtask ...` in the copy builds the copy's xtask.
    let (name, entity, api, version) = (new_name(), self::target(), new_api(), next_greeting_version());
    let (order, orders) = (entity.name, entity.plural);
    cargo(root, &target, &["xtask", "rename", name]);
    git(root, &["add", "-A"]);
    git(root, &["commit", "-q", "-m", "renamed"]);
    give_own_profile(root);
    // First, on the clean tree it needs.
    cargo(root, &target, &[&["xtask"][..], &entity.args()].concat());
    git(root, &["add", "-A"]);
    git(root, &["commit", "-q", "-m", "an entity"]);
    cargo(root, &target, &["xtask", "new-api", api]);
    cargo(root, &target, &["xtask", "new-version", "greeting", &version]);

    cargo(root, &target, &["fmt", "--all", "--check"]);
    cargo(root, &target, &["clippy", "--workspace", "--all-targets", "--locked", "--quiet", "--", "-D", "warnings"]);
    link_provider_packages(root);
    // The server's unit tests too: a generated entity must not break the ones that know the schema's history.
    let units = cargo(root, &target, &["test", "--locked", "-p", name, "--lib"]);
    assert!(units.contains("db::commands::tests::status_history_upgrade_and_downgrade_report_what_they_did ... ok"));
    let (api_filter, entity_filter) = (format!("{api}::"), format!("{order}::sqlite::"));
    let tests = cargo(
        root,
        &target,
        &[
            "test",
            "--locked",
            "-p",
            name,
            "--test",
            "api",
            "--",
            &api_filter,
            &entity_filter,
            "greeting::",
            "docs::served_spec",
            "docs::every_documented_path",
            "docs::openapi_command",
        ],
    );
    assert!(tests.contains(&format!("{api}::v1_answers_with_and_without_trailing_slash ... ok")), "{tests}");
    for test in [
        "crud_contract_for_two_owners",
        "pages_follow_their_next_links_in_id_order",
        "invalid_input_is_refused_with_the_right_problem",
    ] {
        assert!(tests.contains(&format!("{order}::sqlite::{test} ... ok")), "{test}: {tests}");
    }
    assert!(tests.contains(&format!("greeting::{version}_is_documented_and_served ... ok")), "{tests}");
    assert!(tests.contains("docs::served_spec_matches_the_committed_openapi_json ... ok"), "{tests}");

    let binary = target.join("debug").join(name);
    let printed = Command::new(&binary).arg("openapi").output().expect("openapi runs");
    assert!(String::from_utf8_lossy(&printed.stdout).contains(&format!("\"title\": \"{name}\"")));

    // The renamed provider and server: client ids, audience and scopes all carry the new name.
    let mut started = Started(Vec::new());
    let issuer = start_provider(root, &mut started);
    let instance = tempfile::tempdir().expect("instance dir");
    let secrets = instance.path().join("client_secrets.json");
    let web = serde_json::json!({"web": {
        "client_id": name, "client_secret": format!("{name}-secret"), "issuer": issuer,
        "auth_uri": format!("{issuer}/auth"), "token_uri": format!("{issuer}/token"),
    }});
    fs::write(&secrets, web.to_string()).expect("write client_secrets.json");
    let provider = issuer.trim_start_matches("http://");
    let basic = format!("Basic {}", base64(format!("{name}-test:{name}-test-secret").as_bytes()));
    let form = format!("grant_type=client_credentials&scope={name}-resource-read%20{name}-resource-write");
    let form_type = ("Content-Type", "application/x-www-form-urlencoded");
    let (code, _, token) = exchange(provider, "POST", "/token", &[("Authorization", &basic), form_type], &form);
    assert_eq!(code, 200, "{token}");
    let token: Value = serde_json::from_str(&token).expect("token JSON");
    let bearer = format!("Bearer {}", token["access_token"].as_str().expect("access_token"));
    let args = ["--port".as_ref(), "0".as_ref(), "--instance-path".as_ref(), instance.path().as_os_str()];
    let address =
        start_server(&binary, &[&args[..], &["--oidc-secrets".as_ref(), secrets.as_os_str()]].concat(), &mut started);

    let health = get(&address, "/healthz/");
    let document = get(&address, "/apidoc/openapi.json");
    let new_api = get(&address, &format!("/api/{api}/v1/"));
    assert_eq!(health.0, 200, "{health:?}");
    assert_eq!(document.0, 200);
    assert!(document.1.contains(&format!(r#""title":"{name}""#)), "{}", document.1);
    assert_eq!(new_api, (200, format!(r#"{{"message":"Hello from {api} v1"}}"#)));

    let json = ("Content-Type", "application/json");
    let auth = ("Authorization", bearer.as_str());
    let body = r#"{"name": "first order", "amount": "12.5", "due": "2030-01-31T13:00:00+01:00"}"#;
    let collection = format!("/api/{order}/v1");
    let (code, head, created) = exchange(&address, "POST", &collection, &[auth, json], body);
    assert_eq!(code, 201, "{created}");
    let created: Value = serde_json::from_str(&created).expect("order JSON");
    assert_eq!((&created["name"], &created["amount"]), (&Value::from("first order"), &Value::from("12.50")));
    assert_eq!(created["due"], "2030-01-31T12:00:00Z", "the instant, in UTC");
    assert_eq!(created["owner"]["name"], "test-user");
    let location = format!("{collection}/{}", created["id"]);
    assert!(head.contains(&format!("location: {location}\r\n")), "{head}");
    let (code, _, fetched) = exchange(&address, "GET", &location, &[auth], "");
    assert_eq!((code, serde_json::from_str::<Value>(&fetched).expect("JSON")), (200, created.clone()));
    let (code, _, listed) = exchange(&address, "GET", &collection, &[auth], "");
    let listed: Value = serde_json::from_str(&listed).expect("list JSON");
    assert_eq!((code, &listed[orders]), (200, &Value::from(vec![created])));
    assert_eq!(exchange(&address, "DELETE", &location, &[auth], "").0, 204);
    assert_eq!(exchange(&address, "GET", &location, &[auth], "").0, 404);
    assert_eq!(get(&address, &collection).0, 401, "not without a token");
}
