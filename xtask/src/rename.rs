//! `cargo xtask rename <new-name>`: turns the checkout into another project. The current name is the server
//! package's; every tracked text file gets both its spellings (`old-name`, `old_name`) replaced, and tracked paths
//! containing it move (the Helm chart's directory, the image's instance directory). That one rule covers the
//! crates, binaries and library, the default scopes, the realm, the OpenAPI title and `openapi.json`, the client's
//! config and cache paths, the documents, the chart and image names, and the test provider's client ids, so the
//! result stays consistent by construction; Cargo.lock is then re-sorted by cargo itself.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Stdio,
};

use crate::{
    names::ProjectName,
    text,
    workspace::{self, SERVER_MANIFEST},
};

/// Renames the project at `root` to `new_name`.
pub fn run(root: &Path, new_name: &str) -> Result<(), String> {
    let new = ProjectName::parse(new_name)?;
    let current = workspace::package_name(root, SERVER_MANIFEST)?;
    let old = ProjectName::parse(&current).map_err(|e| format!("the current name cannot be renamed: {e}"))?;
    if old == new {
        return Err(format!("the project is already named {current}"));
    }
    let packages = locked_packages(root)?;
    check_unambiguous(&old, &new, &packages)?;
    workspace::ensure_clean(root)?;

    let files = workspace::tracked_files(root)?;
    let (mut edited, mut replaced) = (0, 0);
    for file in &files {
        let Ok(content) = fs::read_to_string(root.join(file)) else {
            continue; // Not UTF-8 (or gone): no name to replace in a binary file.
        };
        let (renamed, count) = text::rename(&content, &old, &new);
        if count > 0 {
            workspace::write(root, file, &renamed)?;
            edited += 1;
            replaced += count;
        }
    }
    let moved = move_paths(root, &files, &old, &new)?;
    relock(root);
    reformat(root);

    println!(
        "renamed {} to {}: {replaced} occurrence(s) in {edited} file(s), {moved} path(s) moved",
        old.kebab, new.kebab
    );
    println!(
        "review it with `git status` and `git diff`, then commit; `./scripts/test` proves it (openapi.json included)"
    );
    Ok(())
}

/// Names of every package in Cargo.lock: the workspace's and its dependencies'.
fn locked_packages(root: &Path) -> Result<Vec<String>, String> {
    let lock = workspace::read(root, "Cargo.lock")?;
    Ok(lock
        .lines()
        .filter_map(|line| line.strip_prefix("name = \"").and_then(|rest| rest.strip_suffix('"')))
        .map(str::to_owned)
        .collect())
}

/// Refuses names a text rename cannot keep apart: a new name (or its `-client`) that another package already has
/// would make two crates or libraries of one name, and a current name inside another package's name (`api` in
/// `api-types`) would rename that package too.
fn check_unambiguous(old: &ProjectName, new: &ProjectName, packages: &[String]) -> Result<(), String> {
    let ours = |package: &str| package == old.kebab || package == format!("{}-client", old.kebab);
    let others = packages.iter().filter(|p| !ours(p));
    let normalised = |name: &str| name.replace('_', "-");
    let client = format!("{}-client", new.kebab);
    for package in others {
        let package_name = normalised(package);
        if package_name == new.kebab || package_name == client {
            return Err(format!("`{}` clashes with the package `{package}` this workspace already has", new.kebab));
        }
        if package_name.contains(&old.kebab) {
            return Err(format!(
                "the current name `{}` is part of the package name `{package}`; rename by hand",
                old.kebab
            ));
        }
    }
    Ok(())
}

/// Moves every tracked file whose path names the project (e.g. `deploy/helm/<name>/`), then removes the
/// directories that emptied; returns how many files moved.
fn move_paths(root: &Path, files: &[String], old: &ProjectName, new: &ProjectName) -> Result<usize, String> {
    let mut moved = 0;
    let mut emptied: Vec<PathBuf> = Vec::new();
    for file in files {
        let (renamed, count) = text::rename(file, old, new);
        if count == 0 {
            continue;
        }
        let (from, to) = (root.join(file), root.join(&renamed));
        if let Some(dir) = to.parent() {
            fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        fs::rename(&from, &to).map_err(|e| format!("cannot move {file} to {renamed}: {e}"))?;
        emptied.extend(from.parent().map(Path::to_path_buf));
        moved += 1;
    }
    // Deepest first, and only directories that are now empty: a directory holding anything else stays.
    emptied.sort_by_key(|dir| std::cmp::Reverse(dir.components().count()));
    for dir in emptied {
        for ancestor in dir.ancestors().take_while(|a| a.starts_with(root) && *a != root) {
            if fs::remove_dir(ancestor).is_err() {
                break;
            }
        }
    }
    Ok(moved)
}

/// Cargo.lock lists packages sorted by name, so the renamed ones are out of place and `--locked` builds would
/// refuse it; `cargo update --workspace --offline` rewrites it in cargo's own order, touching only the workspace's
/// own entries. It needs only the registry index a build already fetched, not every target's sources (`cargo
/// metadata --offline` failed on a fresh machine for the Windows and Android crates it had never downloaded). A
/// failure only delays that to the next build, so it is a warning.
fn relock(root: &Path) {
    let status = workspace::cargo()
        .current_dir(root)
        .args(["update", "--workspace", "--offline", "--quiet"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status();
    if !status.is_ok_and(|s| s.success()) {
        eprintln!(
            "warning: could not re-sort Cargo.lock (`cargo update --workspace --offline` failed); the next cargo build will"
        );
    }
}

/// A new name sorts and measures differently (`use acme_orders::...` now comes before `use anyhow::...`, a line
/// may cross 120 characters), and the workspace is kept `cargo fmt` clean, so the rename ends with it.
fn reformat(root: &Path) {
    let status = workspace::cargo().current_dir(root).args(["fmt", "--all"]).stdin(Stdio::null()).status();
    if !status.is_ok_and(|s| s.success()) {
        eprintln!("warning: `cargo fmt --all` failed; run it before committing");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(kebab: &str) -> ProjectName {
        ProjectName::parse(kebab).expect("valid")
    }

    #[test]
    fn names_of_other_packages_are_refused() {
        let packages: Vec<String> =
            ["old-name", "old-name-client", "serde", "api-types", "serde_json"].map(str::to_owned).to_vec();
        let old = name("old-name");
        assert!(check_unambiguous(&old, &name("acme"), &packages).is_ok());
        for taken in ["serde", "api-types", "serde-json", "api"] {
            let new = name(taken);
            let refused = check_unambiguous(&old, &new, &packages);
            if taken == "api" {
                // `api-client` is free and `api-types` only contains it: that is for the next rename to notice.
                assert!(refused.is_ok(), "{taken}");
            } else {
                assert!(refused.expect_err(taken).contains("clashes with the package"), "{taken}");
            }
        }
        assert!(check_unambiguous(&old, &name("serde"), &["serde-client".to_owned()]).is_err(), "its -client clashes");
        let short = name("api");
        let refused = check_unambiguous(&short, &name("acme"), &packages).expect_err("ambiguous");
        assert!(refused.contains("part of the package name `api-types`"), "{refused}");
    }
}
