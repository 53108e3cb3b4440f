//! The platform's one rule, kept by the compiler and by this test: it depends on nothing of the application.
//! The compiler stops `platform` code from naming app code only while no app crate is a dependency; this test
//! stops one from becoming one, and stops the app's own libraries (database, tokens, OpenAPI) from creeping in.

use std::path::{Path, PathBuf};

/// Libraries that belong to the application's rooms (database, authentication, API documentation), never to the
/// platform.
const APP_LIBRARIES: &[&str] = &[
    "sea-orm",
    "sea-orm-migration",
    "sqlx",
    "rusqlite",
    "tokio-postgres",
    "tokio-postgres-rustls",
    "jsonwebtoken",
    "oauth2",
    "utoipa",
    "utoipa-axum",
    "utoipa-swagger-ui",
];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `name = "..."` of a manifest's `[package]`.
fn package_name(manifest: &str) -> Option<String> {
    let manifest = format!("\n{manifest}");
    let package = manifest.split("\n[").find(|section| section.starts_with("package]"))?;
    package.lines().find_map(|line| {
        let value = line.strip_prefix("name")?.trim_start().strip_prefix('=')?.trim();
        Some(value.trim_matches('"').to_owned())
    })
}

/// Every dependency a manifest names, in any dependency table (`[dependencies]`, `[dev-dependencies]`,
/// `[build-dependencies]`, target-specific ones), by the name it is declared under and its `package = ` rename.
fn dependencies(manifest: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_table = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_table = line.trim_matches(['[', ']']).ends_with("dependencies");
            continue;
        }
        if !in_table || line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some((name, rest)) = line.split_once('=') {
            // `axum.workspace = true` declares `axum`.
            names.push(name.trim().trim_matches('"').split('.').next().unwrap_or_default().to_owned());
            if let Some(renamed) = rest.split("package").nth(1).and_then(|tail| tail.split('"').nth(1)) {
                names.push(renamed.to_owned());
            }
        }
    }
    names
}

/// The application's crates: every workspace package but the platform and the shared outbound HTTP client.
fn app_crates() -> Vec<String> {
    let root = workspace_root();
    let mut names = Vec::new();
    for folder in ["crates", "bench", "deploy"] {
        for entry in std::fs::read_dir(root.join(folder)).expect("a workspace folder").flatten() {
            if let Ok(manifest) = std::fs::read_to_string(entry.path().join("Cargo.toml"))
                && let Some(name) = package_name(&manifest)
            {
                names.push(name);
            }
        }
    }
    let xtask = std::fs::read_to_string(root.join("xtask/Cargo.toml")).expect("xtask's manifest");
    names.extend(package_name(&xtask));
    names.retain(|name| name != "platform" && name != "http-client");
    names
}

#[test]
fn the_platform_depends_on_nothing_of_the_application() {
    let manifest = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .expect("the platform's manifest");
    let app = app_crates();
    assert!(app.iter().any(|name| name == "api-types"), "the app's crates were found: {app:?}");
    let forbidden: Vec<String> = dependencies(&manifest)
        .into_iter()
        .filter(|name| app.contains(name) || APP_LIBRARIES.contains(&name.as_str()))
        .collect();
    assert!(forbidden.is_empty(), "crates/platform depends on the application: {forbidden:?}");
}

#[test]
fn the_manifest_reader_sees_what_a_violation_would_look_like() {
    let manifest = "[package]\nname = \"platform\"\n\n[dependencies]\naxum.workspace = true\n\
                    orm = { package = \"sea-orm\", version = \"2\" }\n\n[dev-dependencies]\napi-types = { path = \"x\" }\n";
    assert_eq!(package_name(manifest).as_deref(), Some("platform"));
    assert_eq!(dependencies(manifest), ["axum", "orm", "sea-orm", "api-types"]);
}
