//! The checkout the chores change: where it is, what the server package is called, what git says about it, file
//! access with the path in every error, and regenerating `openapi.json` with the server's own `openapi` command.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

/// The server crate's manifest, relative to the workspace root: its package name is the project's name.
pub const SERVER_MANIFEST: &str = "crates/server/Cargo.toml";

/// The workspace root: `--root` when given, else the parent of this crate's directory as `cargo run` reports it at
/// run time (not the compile-time path, so a binary built in one checkout cannot change another), else the nearest
/// directory above the current one with a `[workspace]` manifest.
pub fn root(given: Option<&Path>) -> Result<PathBuf, String> {
    let root = match given {
        Some(dir) => dir.to_path_buf(),
        None => match env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from) {
            Some(xtask) if xtask.ends_with("xtask") => xtask.parent().map(Path::to_path_buf).unwrap_or(xtask),
            _ => {
                let here = env::current_dir().map_err(|e| format!("cannot read the current directory: {e}"))?;
                here.ancestors().find(|dir| is_workspace(dir)).map(Path::to_path_buf).ok_or_else(|| {
                    format!("{} is not inside the workspace (no Cargo.toml with [workspace] above it)", here.display())
                })?
            }
        },
    };
    if !root.join(SERVER_MANIFEST).is_file() {
        return Err(format!("{} is not this project's workspace: {SERVER_MANIFEST} is missing", root.display()));
    }
    Ok(root)
}

fn is_workspace(dir: &Path) -> bool {
    fs::read_to_string(dir.join("Cargo.toml")).is_ok_and(|manifest| manifest.lines().any(|l| l.trim() == "[workspace]"))
}

/// The `name` of the `[package]` table of the manifest at `path`, read line by line: the manifests are ours and
/// keep `name = "..."` on one line, and a TOML parser is not worth a dependency for it.
pub fn package_name(root: &Path, manifest: &str) -> Result<String, String> {
    let text = read(root, manifest)?;
    let mut in_package = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package && let Some(value) = line.strip_prefix("name") {
            let value = value.trim_start().strip_prefix('=').map(str::trim).unwrap_or_default();
            if let Some(name) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
                return Ok(name.to_owned());
            }
        }
    }
    Err(format!("{manifest} has no `name = \"...\"` in its [package] table"))
}

/// Reads `relative` (a path under `root`) as UTF-8.
pub fn read(root: &Path, relative: &str) -> Result<String, String> {
    fs::read_to_string(root.join(relative)).map_err(|e| format!("cannot read {relative}: {e}"))
}

/// Writes `text` to `relative` (a path under `root`), creating its directory.
pub fn write(root: &Path, relative: &str, text: &str) -> Result<(), String> {
    let path = root.join(relative);
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    fs::write(&path, text).map_err(|e| format!("cannot write {relative}: {e}"))
}

/// Runs git in `root` and returns its standard output; a failure is one line with git's own first line.
pub fn git(root: &Path, args: &[&str]) -> Result<String, String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let first = stderr.lines().next().unwrap_or("no message");
        return Err(format!("`git {}` failed in {}: {first}", args.join(" "), root.display()));
    }
    String::from_utf8(output.stdout)
        .map_err(|_| format!("`git {}` printed something that is not UTF-8", args.join(" ")))
}

/// Refuses a work tree with uncommitted or untracked changes: the chore's result must be one reviewable diff that
/// `git checkout .` can undo, not mixed into work in progress.
pub fn ensure_clean(root: &Path) -> Result<(), String> {
    let status = git(root, &["status", "--porcelain"])?;
    let changed = status.lines().count();
    if changed > 0 {
        return Err(format!(
            "the work tree has {changed} uncommitted change(s) (`git status --porcelain`); commit or stash them first"
        ));
    }
    Ok(())
}

/// The files git tracks, relative to `root`.
pub fn tracked_files(root: &Path) -> Result<Vec<String>, String> {
    let listing = git(root, &["ls-files", "-z"])?;
    Ok(listing.split('\0').filter(|path| !path.is_empty()).map(str::to_owned).collect())
}

/// The cargo that runs us (cargo sets `CARGO` for `cargo run`), so a pinned toolchain stays pinned.
pub fn cargo() -> Command {
    Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Regenerates `openapi.json` with `cargo run -q --bin <server> -- openapi`, exactly what the drift test compares
/// the served document with. The build's errors go to the terminal; the file is replaced only by a whole document.
pub fn regenerate_openapi(root: &Path) -> Result<(), String> {
    let server = package_name(root, SERVER_MANIFEST)?;
    let command_line = format!("cargo run -q --bin {server} -- openapi > openapi.json");
    println!("regenerating openapi.json: {command_line}");
    let output = cargo()
        .current_dir(root)
        .args(["run", "-q", "--bin", &server, "--", "openapi"])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    let document = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() || !document.trim_start().starts_with('{') {
        return Err(format!(
            "`{command_line}` failed (its messages are above); the new files are in place: fix them, then run it again"
        ));
    }
    write(root, "openapi.json", &document)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_name_is_read_from_the_package_table_only() {
        let dir = tempfile::tempdir().expect("temp dir");
        let manifest = "[lib]\nname = \"not_this\"\n\n[package]\nversion = \"1.0.0\"\nname = \"acme-orders\"\n";
        fs::write(dir.path().join("Cargo.toml"), manifest).expect("write");
        assert_eq!(package_name(dir.path(), "Cargo.toml").expect("name"), "acme-orders");
        fs::write(dir.path().join("Cargo.toml"), "[lib]\nname = \"x\"\n").expect("write");
        assert!(package_name(dir.path(), "Cargo.toml").is_err());
    }

    #[test]
    fn a_directory_without_the_server_manifest_is_not_the_root() {
        let dir = tempfile::tempdir().expect("temp dir");
        let refused = root(Some(dir.path())).expect_err("refused");
        assert!(refused.contains("crates/server/Cargo.toml is missing"), "{refused}");
    }
}
