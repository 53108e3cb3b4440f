//! `cargo xtask new-version <api> <version>` and `cargo xtask new-api <api>`: write an API version's module, its
//! `pub mod` line, its one registry line, a test, the docs test's list of paths and the regenerated
//! `openapi.json`. Every edit is computed first and every refusal happens before the first file is written, so a
//! refused command leaves the checkout as it was.

use std::{fs, path::Path, process::Command};

use crate::{names, text, workspace};

/// Where the API modules live; one folder per API, one file per version.
const APIS: &str = "crates/server/src/apis";
/// The registry: `pub mod <api>;`, the OpenAPI tags and one `.merge(...)` line per version.
pub const REGISTRY: &str = "crates/server/src/apis/mod.rs";
/// The integration test binary's folder and root module.
pub const TESTS: &str = "crates/server/tests/api";
pub const TEST_MAIN: &str = "crates/server/tests/api/main.rs";
/// The docs suite lists every documented path, so a new route must be added to its list.
pub const DOCS_TEST: &str = "crates/server/tests/api/docs.rs";

/// The files a generator writes, in order: (path under the root, content, whether it is new), and the Rust files
/// to format afterwards (new ones and leaf modules we appended to; one that declares modules only where the tree is
/// known to be clean, since rustfmt formats the modules it declares too).
pub struct Plan {
    files: Vec<(String, String, bool)>,
    to_format: Vec<String>,
}

impl Plan {
    /// Nothing to write yet.
    pub fn new() -> Self {
        Self { files: Vec::new(), to_format: Vec::new() }
    }

    /// Writes the new file `path` (formatted afterwards when it is Rust).
    pub fn create(&mut self, path: String, content: String) {
        if path.ends_with(".rs") {
            self.to_format.push(path.clone());
        }
        self.files.push((path, content, true));
    }

    /// Replaces the existing file `path`.
    pub fn change(&mut self, path: &str, content: String) {
        self.files.push((path.to_owned(), content, false));
    }

    /// Formats `path` too once everything is written.
    pub fn format(&mut self, path: &str) {
        self.to_format.push(path.to_owned());
    }

    /// Changes `path` to declare `line` (`pub mod orders;`) among its other declarations of that kind.
    pub fn change_declaring(&mut self, root: &Path, path: &str, line: &str) -> Result<(), String> {
        let source = workspace::read(root, path)?;
        if source.lines().any(|l| l.trim() == line) {
            return Err(format!("{path} already declares `{line}`"));
        }
        let declared =
            text::insert_declaration(&source, line).ok_or_else(|| format!("{path} has no `{line}`-like lines"))?;
        self.change(path, declared);
        Ok(())
    }

    /// Refuses when a new file exists, then writes everything and formats the new Rust files.
    pub fn apply(self, root: &Path, regenerate: bool) -> Result<(), String> {
        if let Some((path, _, _)) = self.files.iter().find(|(path, _, new)| *new && root.join(path).exists()) {
            return Err(format!("{path} already exists"));
        }
        for (path, content, new) in &self.files {
            workspace::write(root, path, content)?;
            println!("{} {path}", if *new { "created" } else { "changed" });
        }
        format(root, &self.to_format);
        if regenerate {
            workspace::regenerate_openapi(root)?;
        } else {
            println!("openapi.json left as it was (--no-openapi): regenerate it before running the tests");
        }
        Ok(())
    }
}

/// Adds `version` of `api`, copied from its latest version.
pub fn new_version(root: &Path, api: &str, version: &str, regenerate: bool) -> Result<(), String> {
    let api = names::api(api)?;
    let number = names::version(version)?;
    let folder = format!("{APIS}/{api}");
    if !root.join(&folder).is_dir() {
        return Err(format!("there is no API `{api}` ({folder}/ is missing); `cargo xtask new-api {api}` creates one"));
    }
    let target = format!("{folder}/v{number}.rs");
    if root.join(&target).exists() {
        return Err(format!("{target} already exists"));
    }
    let latest = latest_version(root, &folder)?.ok_or_else(|| format!("{folder}/ has no v<N>.rs to copy"))?;
    if number <= latest {
        return Err(format!("{version} is not newer than {api}'s latest version v{latest}"));
    }

    let source = workspace::read(root, &format!("{folder}/v{latest}.rs"))?;
    let (copy, _) = text::renumber(&source, latest, number);
    let route = format!("\"/api/{api}/v{number}");
    if !copy.contains(&route) {
        return Err(format!("{folder}/v{latest}.rs declares no path under /api/{api}/v{latest}; copy it by hand"));
    }
    let mut plan = Plan::new();
    plan.create(target, copy);

    let module_file = format!("{folder}/mod.rs");
    let modules = workspace::read(root, &module_file)?;
    let modules =
        text::insert_after_last(&modules, |l| l == format!("pub mod v{latest};"), &[format!("pub mod v{number};")])
            .ok_or_else(|| format!("{module_file} has no `pub mod v{latest};` line"))?;
    plan.change(&module_file, modules);

    let registry = workspace::read(root, REGISTRY)?;
    let anchor = format!(".merge({api}::v{latest}::router())");
    let registry =
        with_registry_line(&registry, |l| l.trim() == anchor, &format!(".merge({api}::v{number}::router())"))
            .ok_or_else(|| format!("{REGISTRY} has no `{anchor}` line"))?;
    plan.change(REGISTRY, registry);

    let test_file = format!("{TESTS}/{api}.rs");
    let test = version_test(api, number);
    match fs::read_to_string(root.join(&test_file)) {
        Ok(existing) => {
            plan.change(&test_file, format!("{existing}\n{test}"));
            plan.to_format.push(test_file);
        }
        Err(_) => {
            plan.create(test_file, format!("//! The {api} API.\n\n{test}"));
            plan.change(TEST_MAIN, register_test_module(root, api)?);
        }
    }
    if let Some(docs) = documented_paths(root, |listed| {
        let old = format!("\"/api/{api}/v{latest}");
        let copies: Vec<String> = listed
            .iter()
            .filter(|l| l.trim_start().starts_with(&old))
            .map(|l| text::renumber(l, latest, number).0)
            .collect();
        (old, copies)
    })? {
        plan.change(DOCS_TEST, docs);
    }
    plan.apply(root, regenerate)?;
    println!("next: make v{number} different in {folder}/v{number}.rs and test it in {TESTS}/{api}.rs");
    Ok(())
}

/// Adds the API `api` with a `v1` example.
pub fn new_api(root: &Path, api: &str, regenerate: bool) -> Result<(), String> {
    let api = names::api(api)?;
    let folder = format!("{APIS}/{api}");
    for taken in [folder.clone(), format!("{folder}.rs"), format!("{TESTS}/{api}.rs")] {
        if root.join(&taken).exists() {
            return Err(format!("{taken} already exists"));
        }
    }
    let registry = registry_with_api(root, api, &format!("The {api} API"))?;

    let mut plan = Plan::new();
    plan.create(format!("{folder}/mod.rs"), api_module(api));
    plan.create(format!("{folder}/v1.rs"), api_v1(api));
    plan.change(REGISTRY, registry);
    plan.create(format!("{TESTS}/{api}.rs"), api_test(api));
    plan.change(TEST_MAIN, register_test_module(root, api)?);
    if let Some(docs) = documented_paths(root, |_| (String::new(), vec![format!("\"/api/{api}/v1\",")]))? {
        plan.change(DOCS_TEST, docs);
    }
    plan.apply(root, regenerate)?;
    println!("next: give {folder}/v1.rs its real operations and bodies, its tag a description in {REGISTRY},");
    println!("      and {TESTS}/{api}.rs tests of them; `cargo xtask new-version {api} v2` adds the next version");
    Ok(())
}

/// The registry serving the new API `api` (its `pub mod`, its v1's `.merge(...)` line, its OpenAPI tag with
/// `description`).
pub fn registry_with_api(root: &Path, api: &str, description: &str) -> Result<String, String> {
    let registry = workspace::read(root, REGISTRY)?;
    if registry.lines().any(|l| l.trim() == format!("pub mod {api};")) {
        return Err(format!("{REGISTRY} already declares `pub mod {api};`"));
    }
    let registry = text::insert_declaration(&registry, &format!("pub mod {api};"))
        .ok_or_else(|| format!("{REGISTRY} has no `pub mod ...;` lines"))?;
    let registry = with_registry_line(
        &registry,
        |l| l.trim_start().starts_with(".merge("),
        &format!(".merge({api}::v1::router())"),
    )
    .ok_or_else(|| format!("{REGISTRY} has no `.merge(...)` line"))?;
    Ok(with_tag(&registry, api, description))
}

/// The highest `N` of the `v<N>.rs` files in `folder`.
fn latest_version(root: &Path, folder: &str) -> Result<Option<u32>, String> {
    let entries = fs::read_dir(root.join(folder)).map_err(|e| format!("cannot list {folder}: {e}"))?;
    Ok(entries
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter_map(|name| names::version(name.strip_suffix(".rs")?).ok())
        .max())
}

/// The registry with `line` after the last line `anchor` accepts, indented like it.
fn with_registry_line(registry: &str, anchor: impl Fn(&str) -> bool, line: &str) -> Option<String> {
    let indent: String = registry.lines().rfind(|l| anchor(l))?.chars().take_while(|c| c.is_whitespace()).collect();
    text::insert_after_last(registry, anchor, &[format!("{indent}{line}")])
}

/// The registry with an OpenAPI tag for `api` after the last one, so the document lists and describes it; when
/// the `tags(...)` list is not found the registry stays as it is (the operations still name their tag).
fn with_tag(registry: &str, api: &str, description: &str) -> String {
    let lines: Vec<&str> = registry.lines().collect();
    let Some(open) = lines.iter().position(|l| l.trim() == "tags(") else {
        return registry.to_owned();
    };
    let Some(close) = lines.iter().skip(open).position(|l| l.trim() == ")").map(|i| i + open) else {
        return registry.to_owned();
    };
    let Some(last) = (open + 1..close).rev().find(|&i| lines[i].trim_start().starts_with("(name = ")) else {
        return registry.to_owned();
    };
    let indent: String = lines[last].chars().take_while(|c| c.is_whitespace()).collect();
    let mut out: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    if !out[last].ends_with(',') {
        out[last].push(',');
    }
    out.insert(last + 1, format!("{indent}(name = \"{api}\", description = \"{description}\")"));
    let mut joined = out.join("\n");
    if registry.ends_with('\n') {
        joined.push('\n');
    }
    joined
}

/// `tests/api/main.rs` with `mod <api>;` among the other suites.
pub fn register_test_module(root: &Path, api: &str) -> Result<String, String> {
    let main = workspace::read(root, TEST_MAIN)?;
    text::insert_declaration(&main, &format!("mod {api};"))
        .ok_or_else(|| format!("{TEST_MAIN} has no `mod ...;` lines"))
}

/// The docs test with new entries in its list of documented paths (`let expected = BTreeSet::from([` ... `]);`),
/// or `None` when it has no such list. `new_entries` gets the listed lines and returns the prefix of the lines to
/// insert after (empty: at the end) and the lines, without indentation.
pub fn documented_paths(
    root: &Path,
    new_entries: impl Fn(&[&str]) -> (String, Vec<String>),
) -> Result<Option<String>, String> {
    let docs = workspace::read(root, DOCS_TEST)?;
    let lines: Vec<&str> = docs.split_inclusive('\n').collect();
    let Some(open) = lines.iter().position(|l| l.trim_end().ends_with("let expected = BTreeSet::from([")) else {
        return Ok(None);
    };
    let Some(close) = lines.iter().skip(open).position(|l| l.trim() == "]);").map(|i| i + open) else {
        return Ok(None);
    };
    let listed: Vec<&str> = lines[open + 1..close].iter().map(|l| l.trim_end()).collect();
    let (after, entries) = new_entries(&listed);
    if entries.is_empty() {
        return Ok(None);
    }
    let indent: String = listed.first().map_or("        ", |l| l).chars().take_while(|c| c.is_whitespace()).collect();
    let at = listed
        .iter()
        .rposition(|l| !after.is_empty() && l.trim_start().starts_with(&after))
        .map_or(close, |i| open + 2 + i);
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        if i == at {
            entries.iter().for_each(|entry| out.push_str(&format!("{indent}{}\n", entry.trim_start())));
        }
        out.push_str(line);
    }
    Ok(Some(out))
}

/// Formats the new Rust files with the workspace's rustfmt.toml, so the templates need not match rustfmt to the
/// character; without rustfmt the files stay as written (and `cargo fmt` will say so).
fn format(root: &Path, files: &[String]) {
    if files.is_empty() {
        return;
    }
    let status = Command::new("rustfmt").current_dir(root).args(["--edition", "2024"]).args(files).status();
    if !status.is_ok_and(|s| s.success()) {
        eprintln!("warning: rustfmt failed on the new files; run `cargo fmt --all`");
    }
}

/// The new API's `mod.rs`.
fn api_module(api: &str) -> String {
    format!(
        "//! The {api} API: one module per version, each with its own router and OpenAPI paths.\n\
         \n\
         pub mod v1;\n"
    )
}

/// The new API's `v1.rs`: one anonymous GET, as small as greeting v1 but with its own body type.
fn api_v1(api: &str) -> String {
    let body = format!("{}Message", names::pascal(api));
    format!(
        r#"//! {api} v1: `GET /api/{api}/v1` answers with a message (written by `cargo xtask new-api`; make it yours).

use api_types::Problem;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{{router::OpenApiRouter, routes}};

use crate::state::AppState;

/// Routes under `/api/{api}/v1`, merged into the service by the registry.
pub fn router() -> OpenApiRouter<AppState> {{
    OpenApiRouter::new().routes(routes!(get_{api}))
}}

/// The answer of {api} v1. Schema names are global in the OpenAPI document, hence the API's name in the type's.
#[derive(Debug, Serialize, ToSchema)]
pub struct {body} {{
    /// What the API says.
    message: String,
}}

/// Says hello from the {api} API.
#[utoipa::path(
    get,
    path = "/api/{api}/v1",
    operation_id = "{api}_v1_get",
    tag = "{api}",
    responses(
        (status = 200, description = "The message", body = {body}, example = json!({{"message": "Hello from {api} v1"}})),
        (status = "default", description = "Any other failure", body = Problem, content_type = "application/problem+json")
    )
)]
async fn get_{api}() -> Json<{body}> {{
    Json({body} {{ message: "Hello from {api} v1".to_owned() }})
}}
"#
    )
}

/// The new API's test file: the route answers, with and without the trailing slash, and is documented.
fn api_test(api: &str) -> String {
    format!(
        r#"//! The {api} API (written by `cargo xtask new-api` with its v1 example; keep it in step with the API).

use crate::helpers::spawn_app;

#[tokio::test]
async fn v1_answers_with_and_without_trailing_slash() {{
    let app = spawn_app().await;
    for path in ["/api/{api}/v1", "/api/{api}/v1/"] {{
        let response = app.get(path).await;
        assert_eq!(response.status(), 200, "{{path}}");
        let body: serde_json::Value = response.json().await.expect("json body");
        assert_eq!(body["message"], "Hello from {api} v1", "{{path}}");
    }}
}}

#[tokio::test]
async fn v1_is_in_the_openapi_document() {{
    let app = spawn_app().await;
    let spec: serde_json::Value = app.get("/apidoc/openapi.json").await.json().await.expect("json");
    let operation = &spec["paths"]["/api/{api}/v1"]["get"];
    assert_eq!(operation["operationId"], "{api}_v1_get");
    assert_eq!(operation["tags"][0], "{api}");
}}
"#
    )
}

/// A test of a new version: every path under it is documented and routed (whatever it answers: the copy may
/// need a token or a body).
fn version_test(api: &str, number: u32) -> String {
    let prefix = format!("/api/{api}/v{number}");
    format!(
        r#"/// Written by `cargo xtask new-version`: v{number} is documented and routed. Add tests of what v{number} changes.
#[tokio::test]
async fn v{number}_is_documented_and_served() {{
    let app = crate::helpers::spawn_app().await;
    let spec: serde_json::Value = app.get("/apidoc/openapi.json").await.json().await.expect("json");
    let documented = spec["paths"].as_object().expect("paths").keys();
    let paths: Vec<&String> = documented.filter(|p| *p == "{prefix}" || p.starts_with("{prefix}/")).collect();
    assert!(!paths.is_empty(), "{prefix} is not in the OpenAPI document");
    for path in paths {{
        // A path parameter gets a sample value: the route must exist, whatever it answers.
        let segments: Vec<&str> = path.split('/').map(|s| if s.starts_with('{{') {{ "1" }} else {{ s }}).collect();
        assert_ne!(app.get(&segments.join("/")).await.status(), 404, "{{path}} is documented but not served");
    }}
}}
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGISTRY_TEXT: &str = "pub mod greeting;\npub mod resource;\n\n#[openapi(\n    tags(\n        (name = \"health\", description = \"Health\"),\n        (name = \"resource\", description = \"Owned\")\n    )\n)]\nstruct ApiDoc;\n\npub fn router() {\n    x()\n        .merge(greeting::v1::router())\n        .merge(resource::v1::router())\n}\n";

    #[test]
    fn registry_lines_and_tags_follow_their_siblings() {
        let merged = with_registry_line(
            REGISTRY_TEXT,
            |l| l.trim() == ".merge(greeting::v1::router())",
            ".merge(greeting::v2::router())",
        )
        .expect("anchor");
        assert!(merged.contains(
            "        .merge(greeting::v1::router())\n        .merge(greeting::v2::router())\n        .merge(resource"
        ));
        let tagged = with_tag(REGISTRY_TEXT, "orders", "The orders API");
        assert!(
            tagged.contains("(name = \"resource\", description = \"Owned\"),\n        (name = \"orders\", description = \"The orders API\")\n    )"),
            "{tagged}"
        );
        assert_eq!(with_tag("no tags here\n", "orders", "x"), "no tags here\n");
    }

    #[test]
    fn templates_name_the_api_everywhere() {
        let v1 = api_v1("order_items");
        for expected in [
            "path = \"/api/order_items/v1\"",
            "operation_id = \"order_items_v1_get\"",
            "tag = \"order_items\"",
            "pub struct OrderItemsMessage",
        ] {
            assert!(v1.contains(expected), "{expected}");
        }
        assert!(api_test("orders").contains("\"/api/orders/v1/\""));
        let test = version_test("greeting", 4);
        assert!(test.contains("async fn v4_is_documented_and_served()"));
        assert!(test.contains(r#"*p == "/api/greeting/v4" || p.starts_with("/api/greeting/v4/")"#));
    }
}
