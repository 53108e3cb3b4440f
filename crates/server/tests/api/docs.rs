//! The OpenAPI document and the pages that render it.

use std::{collections::BTreeSet, path::PathBuf};

use rust_api_axum::{
    auth::settings::{DEFAULT_READ_SCOPE, DEFAULT_WRITE_SCOPE},
    config::OidcExtras,
};
use serde_json::{Value, json};

use crate::helpers::{spawn_app, spawn_app_with};

const COMMITTED_SPEC: &str = include_str!("../../../../openapi.json");

/// `info.version` follows `APP_VERSION` at build time; everything else must match the committed copy.
fn without_version(mut spec: serde_json::Value) -> serde_json::Value {
    spec["info"]["version"] = serde_json::Value::Null;
    spec
}

#[tokio::test]
async fn served_spec_matches_the_committed_openapi_json() {
    let app = spawn_app().await;
    let response = app.get("/apidoc/openapi.json").await;
    assert_eq!(response.status(), 200);
    let served: serde_json::Value = response.json().await.expect("json");
    assert_eq!(served["openapi"], "3.1.0");
    assert_eq!(served["info"]["version"], rust_api_axum::VERSION);
    let committed: serde_json::Value = serde_json::from_str(COMMITTED_SPEC).expect("committed spec parses");
    assert!(
        without_version(served) == without_version(committed),
        "openapi.json is stale: regenerate it with `cargo run -q --bin rust-api-axum -- openapi > openapi.json`"
    );
}

#[tokio::test]
async fn openapi_command_prints_the_served_spec() {
    let output = crate::helpers::binary().arg("openapi").output().expect("runs");
    assert!(output.status.success());
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json on stdout");
    let committed: serde_json::Value = serde_json::from_str(COMMITTED_SPEC).expect("parses");
    assert_eq!(without_version(printed), without_version(committed));
}

#[tokio::test]
async fn every_documented_path_is_served_and_every_operation_documents_its_problems() {
    let app = spawn_app().await;
    let spec: serde_json::Value = app.get("/apidoc/openapi.json").await.json().await.expect("json");
    let paths = spec["paths"].as_object().expect("paths");
    let documented: BTreeSet<&str> = paths.keys().map(String::as_str).collect();
    let expected = BTreeSet::from([
        "/healthz",
        "/api/greeting/v1",
        "/api/greeting/v2",
        "/api/greeting/v3",
        "/api/resource/v1",
        "/api/resource/v1/{id}",
    ]);
    assert_eq!(documented, expected);
    for (path, item) in paths {
        assert_ne!(app.get(path).await.status(), 404, "{path} is documented but not served");
        for (method, operation) in item.as_object().expect("path item") {
            let problem = &operation["responses"]["default"]["content"]["application/problem+json"];
            assert!(problem.is_object(), "{method} {path} does not document its problem responses");
        }
    }
    assert!(spec["components"]["schemas"]["Problem"].is_object());
}

#[tokio::test]
async fn swagger_ui_loads_every_asset_from_the_server_itself() {
    let app = spawn_app().await;
    let page = app.get("/apidoc/swagger/").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains("swagger-ui"), "not the Swagger UI page");
    let assets: Vec<&str> = html
        .split(['"', '\''])
        .filter(|part| part.starts_with("./") && (part.ends_with(".js") || part.ends_with(".css")))
        .collect();
    assert!(assets.len() >= 3, "expected script and style links, found {assets:?}");
    assert!(!html.contains("://"), "the page must not load anything from another host");
    for asset in assets {
        let path = format!("/apidoc/swagger/{}", asset.trim_start_matches("./"));
        let response = app.get(&path).await;
        assert_eq!(response.status(), 200, "{path}");
        assert!(!response.bytes().await.expect("body").is_empty(), "{path}");
    }
    let initializer = app.get("/apidoc/swagger/swagger-initializer.js").await.text().await.expect("js");
    assert!(initializer.contains("/apidoc/openapi.json"), "Swagger UI must load our spec");
}

#[tokio::test]
async fn swagger_ui_without_slash_redirects_to_its_root() {
    let app = spawn_app().await;
    let response = app.get("/apidoc/swagger").await;
    assert!(response.status().is_redirection());
    assert_eq!(response.headers()["location"], "/apidoc/swagger/");
}

#[tokio::test]
async fn redoc_and_rapidoc_pages_are_served() {
    let app = spawn_app().await;
    for path in ["/apidoc/redoc", "/apidoc/redoc/", "/apidoc/rapidoc", "/apidoc/rapidoc/"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        assert!(response.text().await.expect("html").contains("<html"), "{path}");
    }
}

#[test]
fn every_name_in_the_document_has_the_same_rules() {
    let spec: serde_json::Value = serde_json::from_str(COMMITTED_SPEC).expect("parses");
    let resource_name = &spec["components"]["schemas"]["ResourceInput"]["properties"]["name"];
    let greeting_name = spec["paths"]["/api/greeting/v2"]["get"]["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["name"] == "name")
        .map(|p| p["schema"].clone())
        .expect("name parameter");
    for key in ["pattern", "minLength", "maxLength"] {
        assert!(resource_name[key].is_string() || resource_name[key].is_number(), "{key} documented");
        assert_eq!(resource_name[key], greeting_name[key], "{key}");
    }
}

/// Every character the first negated class of `pattern` (`[^...]`) leaves out, as the document's `\uXXXX`
/// escapes and `\uXXXX-\uXXXX` ranges spell them.
fn excluded_by_first_class(pattern: &str) -> BTreeSet<u32> {
    let start = pattern.find("[^").expect("a negated class") + 2;
    let class = &pattern[start..start + pattern[start..].find(']').expect("the class ends")];
    let escapes: Vec<&str> = class.split("\\u").filter(|part| !part.is_empty()).collect();
    let code = |part: &str| u32::from_str_radix(&part[..4], 16).expect("four hex digits");
    let mut excluded = BTreeSet::new();
    let mut rest = escapes.iter();
    while let Some(part) = rest.next() {
        let end = if part.ends_with('-') { code(rest.next().expect("a range's end")) } else { code(part) };
        excluded.extend(code(part)..=end);
    }
    excluded
}

#[test]
fn the_name_pattern_leaves_out_exactly_the_characters_names_refuse() {
    // JSON Schema patterns have no Unicode categories, so the document lists the refused characters of the Basic
    // Multilingual Plane; the few refused beyond it (tags, musical format characters) are only described.
    let spec: serde_json::Value = serde_json::from_str(COMMITTED_SPEC).expect("parses");
    let pattern =
        spec["components"]["schemas"]["ResourceInput"]["properties"]["name"]["pattern"].as_str().expect("a pattern");
    let refused: BTreeSet<u32> = (0..=0xFFFF_u32)
        .filter_map(char::from_u32)
        .filter(|c| rust_api_axum::domain::text::unwanted(*c).is_some())
        .map(u32::from)
        .collect();
    assert_eq!(excluded_by_first_class(pattern), refused);
}

/// Scope names as an Entra ID deployment spells them.
const RENAMED: (&str, &str) = ("api://rust-api-axum/Resources.Read", "api://rust-api-axum/Resources.Write");

/// The document a server configured with an OpenID provider serves, with the scopes renamed or not. Starting
/// does not contact the provider, so its address need not answer.
async fn served_with_oidc(scopes: Option<(&str, &str)>) -> Value {
    let app = spawn_app_with(|config| {
        config.auth.web = Some(rust_api_axum::config::secret_json(&json!({
            "client_id": "rust-api-axum", "client_secret": "s3cret", "issuer": "http://127.0.0.1:9",
            "auth_uri": "http://127.0.0.1:9/auth", "token_uri": "http://127.0.0.1:9/token",
        })));
        config.auth.oidc = scopes.map(|(read, write)| OidcExtras {
            read_scope: Some(read.into()),
            write_scope: Some(write.into()),
            ..OidcExtras::default()
        });
    })
    .await;
    let response = app.get("/apidoc/openapi.json").await;
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

#[tokio::test]
async fn renamed_scopes_keep_the_token_url_and_change_nothing_but_the_scope_names() {
    let default = served_with_oidc(None).await;
    let renamed = served_with_oidc(Some(RENAMED)).await;
    let flow = &renamed["components"]["securitySchemes"]["oidc"]["flows"]["authorizationCode"];
    assert_eq!(flow["authorizationUrl"], "http://127.0.0.1:9/auth", "{flow}");
    assert_eq!(flow["tokenUrl"], "http://127.0.0.1:9/token", "{flow}");
    assert_eq!(
        flow["scopes"].as_object().map(|s| s.keys().cloned().collect::<Vec<_>>()),
        Some(vec![RENAMED.0.to_owned(), RENAMED.1.to_owned()])
    );
    // Anything else the rename lost or changed shows up against the default document with the names replaced.
    let expected = default
        .to_string()
        .replace(&format!("\"{DEFAULT_READ_SCOPE}\""), &format!("\"{}\"", RENAMED.0))
        .replace(&format!("\"{DEFAULT_WRITE_SCOPE}\""), &format!("\"{}\"", RENAMED.1));
    let expected: Value = serde_json::from_str(&expected).expect("json");
    assert!(renamed == expected, "the rename changed more than the names:\n{renamed:#}");
}

/// `openapi-spec-validator` (tools/fuzz/.venv, which ./scripts/test installs) checks `document` against the
/// OpenAPI 3.1 schema; its report when it does not pass.
async fn validate_openapi(document: &Value) -> Result<(), String> {
    let validator = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tools/fuzz/.venv/bin/openapi-spec-validator");
    assert!(
        validator.is_file(),
        "openapi-spec-validator is not installed: ./scripts/test creates tools/fuzz/.venv from \
         tools/fuzz/requirements.txt"
    );
    let dir = tempfile::TempDir::new().expect("temp dir");
    let path = dir.path().join("openapi.json");
    std::fs::write(&path, document.to_string()).expect("write the document");
    let output = tokio::process::Command::new(validator).arg(&path).output().await.expect("the validator runs");
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    if output.status.success() { Ok(()) } else { Err(report) }
}

#[tokio::test]
async fn the_served_document_is_valid_openapi_3_1_with_default_and_renamed_scopes() {
    let without_oidc: Value = spawn_app().await.get("/apidoc/openapi.json").await.json().await.expect("json");
    for (label, document) in [
        ("without OIDC", without_oidc),
        ("default scopes", served_with_oidc(None).await),
        ("renamed scopes", served_with_oidc(Some(RENAMED)).await),
    ] {
        if let Err(report) = validate_openapi(&document).await {
            panic!("the document served with {label} is not valid OpenAPI 3.1:\n{report}");
        }
    }
}

#[tokio::test]
async fn the_validator_rejects_an_authorization_code_flow_without_token_url() {
    // The validation above can fail: the defect it guards against is caught.
    let mut document = served_with_oidc(None).await;
    let flow = &mut document["components"]["securitySchemes"]["oidc"]["flows"]["authorizationCode"];
    flow.as_object_mut().expect("flow").remove("tokenUrl");
    let report = validate_openapi(&document).await.expect_err("invalid without tokenUrl");
    assert!(report.contains("tokenUrl"), "{report}");
}
