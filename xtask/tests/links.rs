//! Every relative link in the repository's Markdown files resolves: the file or folder exists, and an `#anchor` names
//! a heading (by its GitHub slug) or an explicit `<a id>`/`<a name>` of the Markdown file it points into. Links to
//! other sites (`https:`, `mailto:`, any scheme) are not followed, and nothing inside fenced code blocks or inline
//! code counts. Reads only the Markdown files (milliseconds), so it belongs in the edit-test loop.

use std::{
    collections::{HashMap, HashSet},
    fs,
    path::{Component, Path, PathBuf},
    process::Command,
};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root").to_path_buf()
}

/// Generated from the code by `rust-api-axum config --reference` (the configuration keys' reference). Links to it
/// count as resolving while it has not been generated in this work tree yet; once it exists it is checked like any
/// other file. Its anchors are not guaranteed, so a link into it must name the file only.
const GENERATED: &str = "docs/configuration.md";

/// The repository's Markdown files, tracked and new (not ignored), relative to its root.
fn markdown_files(root: &Path) -> Vec<PathBuf> {
    let output = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "*.md"])
        .output()
        .expect("git runs");
    assert!(output.status.success(), "git ls-files: {}", String::from_utf8_lossy(&output.stderr));
    let listing = String::from_utf8(output.stdout).expect("utf-8 paths");
    let mut files: Vec<PathBuf> = listing
        .split('\0')
        .filter(|f| !f.is_empty() && !f.split('/').any(|part| part == "node_modules"))
        .map(PathBuf::from)
        .filter(|f| root.join(f).is_file()) // Deleted in the work tree but not yet in the index.
        .collect();
    files.sort();
    files.dedup();
    files
}

/// A link found in a Markdown file.
#[derive(Debug, PartialEq)]
struct Link {
    line: usize,
    target: String,
}

/// A heading's anchor as GitHub makes it: lowercase; every character that is not a letter, a digit, a space, a
/// hyphen or an underscore dropped; spaces become hyphens. `text` is the heading as written; its inline code, links
/// and emphasis markers are reduced to the text GitHub renders first.
fn slug(text: &str) -> String {
    rendered(text)
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// A heading's text with links reduced to their text and code spans to their content.
fn rendered(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find(['`', '[']) {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        if tail.starts_with('`') {
            let ticks = tail.len() - tail.trim_start_matches('`').len();
            let inner = &tail[ticks..];
            match find_closing_ticks(inner, ticks) {
                Some(end) => {
                    out.push_str(inner[..end].trim());
                    rest = &inner[end + ticks..];
                }
                None => {
                    out.push_str(&tail[..ticks]);
                    rest = inner;
                }
            }
        } else if let Some((label, after)) = tail[1..].split_once("](").and_then(|(label, after)| {
            let close = closing_paren(after)?;
            Some((label, &after[close + 1..]))
        }) {
            out.push_str(label);
            rest = after;
        } else {
            out.push('[');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// Where the run of exactly `ticks` backticks that closes a code span starts in `text`.
fn find_closing_ticks(text: &str, ticks: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'`' {
            let run = bytes[i..].iter().take_while(|&&b| b == b'`').count();
            if run == ticks {
                return Some(i);
            }
            i += run;
        } else {
            i += 1;
        }
    }
    None
}

/// The index of the `)` that closes a link target starting at `text[0]`, allowing balanced parentheses inside and
/// a `<...>` target.
fn closing_paren(text: &str) -> Option<usize> {
    if text.starts_with('<') {
        let end = text.find('>')?;
        return text[end..].find(')').map(|i| end + i);
    }
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => return Some(i),
            ')' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// `line` with its code spans blanked out (an unclosed run of backticks is literal text).
fn without_code_spans(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find('`') {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let ticks = tail.len() - tail.trim_start_matches('`').len();
        let inner = &tail[ticks..];
        match find_closing_ticks(inner, ticks) {
            Some(end) => {
                out.push(' ');
                rest = &inner[end + ticks..];
            }
            None => {
                out.push_str(&tail[..ticks]);
                rest = inner;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The fence a line opens or closes (its character and length), if it is one.
fn fence(line: &str) -> Option<(char, usize, &str)> {
    let trimmed = line.trim_start();
    let c = trimmed.chars().next().filter(|c| matches!(c, '`' | '~'))?;
    let len = trimmed.len() - trimmed.trim_start_matches(c).len();
    (len >= 3).then(|| (c, len, trimmed[len..].trim()))
}

/// The lines of `text` outside fenced code blocks, numbered from 1.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut lines = Vec::new();
    let mut open: Option<(char, usize)> = None;
    for (index, line) in text.lines().enumerate() {
        match (open, fence(line)) {
            (None, Some((c, len, info))) if c == '~' || !info.contains('`') => open = Some((c, len)),
            (Some((c, len)), Some((d, n, rest))) if c == d && n >= len && rest.is_empty() => open = None,
            (None, _) => lines.push((index + 1, line)),
            (Some(_), _) => {}
        }
    }
    lines
}

/// The ATX heading text of `line`, if it is one.
fn atx_heading(line: &str) -> Option<&str> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    let trimmed = &line[indent..];
    let level = trimmed.len() - trimmed.trim_start_matches('#').len();
    if indent > 3 || !(1..=6).contains(&level) {
        return None;
    }
    let rest = &trimmed[level..];
    if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
        return None;
    }
    // An optional closing sequence of `#`s, preceded by a space.
    let rest = rest.trim();
    let without_closing = rest.trim_end_matches('#');
    let text =
        if without_closing.is_empty() || without_closing.ends_with([' ', '\t']) { without_closing } else { rest };
    Some(text.trim())
}

/// Every anchor a Markdown text defines: its headings' slugs (duplicates numbered `-1`, `-2`, ... as GitHub does)
/// and explicit `<a id="...">` / `<a name="...">`.
fn anchors(text: &str) -> HashSet<String> {
    let mut headings = Vec::new();
    let mut found = HashSet::new();
    let mut previous: Option<(usize, &str)> = None;
    for (number, line) in prose_lines(text) {
        if let Some(heading) = atx_heading(line) {
            headings.push(heading.to_owned());
        } else if let Some((before, paragraph)) = previous {
            // A setext heading: a paragraph line directly above a line of only `=` or `-`.
            let underline = line.trim();
            let is_underline =
                !underline.is_empty() && (underline.chars().all(|c| c == '=') || underline.chars().all(|c| c == '-'));
            let plain = !paragraph.trim().is_empty()
                && !paragraph.trim_start().starts_with(['#', '|', '-', '*', '+', '>', '<'])
                && atx_heading(paragraph).is_none();
            if is_underline && plain && before + 1 == number {
                headings.push(paragraph.trim().to_owned());
            }
        }
        found.extend(explicit_anchors(&without_code_spans(line)));
        previous = Some((number, line));
    }
    // GitHub's numbering of repeated slugs (github-slugger): the second `notes` is `notes-1`, skipping taken ones.
    let mut seen: HashMap<String, usize> = HashMap::new();
    for heading in headings {
        let base = slug(&heading);
        let unique = if seen.contains_key(&base) {
            loop {
                let count = seen.get_mut(&base).expect("seen");
                *count += 1;
                let candidate = format!("{base}-{count}");
                if !seen.contains_key(&candidate) {
                    break candidate;
                }
            }
        } else {
            base
        };
        seen.insert(unique.clone(), 0);
        found.insert(unique);
    }
    found
}

/// The values of `id` and `name` attributes of the `<a ...>` tags in `line`.
fn explicit_anchors(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(start) = rest.find("<a ") {
        let tag = &rest[start + 2..];
        let tag = &tag[..tag.find('>').unwrap_or(tag.len())];
        for attribute in ["id=", "name="] {
            let Some(at) = tag.find(attribute) else { continue };
            if !tag[..at].ends_with([' ', '\t']) {
                continue; // Part of another attribute's name, such as `data-id=`.
            }
            let value = &tag[at + attribute.len()..];
            let value = match value.chars().next() {
                Some(quote @ ('"' | '\'')) => value[1..].split(quote).next().unwrap_or_default(),
                _ => value.split([' ', '\t', '/']).next().unwrap_or_default(),
            };
            found.push(value.to_owned());
        }
        rest = &rest[start + 3..];
    }
    found
}

/// Every inline link (`[text](target)`, images included) and reference definition (`[label]: target`) outside code.
fn links(text: &str) -> Vec<Link> {
    let mut found = Vec::new();
    for (number, line) in prose_lines(text) {
        let line = without_code_spans(line);
        // A reference definition: `[label]: target`, indented at most three spaces; `[^1]:` is a footnote.
        let trimmed = line.trim_start_matches(' ');
        if line.len() - trimmed.len() <= 3
            && trimmed.starts_with('[')
            && !trimmed.starts_with("[^")
            && let Some((_, definition)) = trimmed[1..].split_once("]:")
            && let Some(target) = definition.split_whitespace().next()
        {
            found.push(Link { line: number, target: target.trim_start_matches('<').trim_end_matches('>').to_owned() });
            continue;
        }
        let mut rest = line.as_str();
        while let Some(start) = rest.find("](") {
            let after = &rest[start + 2..];
            let Some(end) = closing_paren(after) else { break };
            let inside = after[..end].trim();
            let target = if let Some(bracketed) = inside.strip_prefix('<') {
                bracketed.split('>').next().unwrap_or_default()
            } else {
                // `(target "title")`: the target ends at the first white space.
                inside.split_whitespace().next().unwrap_or_default()
            };
            found.push(Link { line: number, target: target.to_owned() });
            rest = &after[end + 1..];
        }
    }
    found
}

/// Whether `target` points outside the repository: it has a scheme (`https:`, `mailto:`, ...) or starts with `//`.
fn is_external(target: &str) -> bool {
    if target.starts_with("//") {
        return true;
    }
    let scheme = target.split(':').next().unwrap_or_default();
    target.contains(':')
        && scheme.len() > 1 // Not a Windows drive letter.
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// `%20` and friends decoded, as a browser would before asking for the file.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = text.get(i + 1..i + 3).and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `path` (relative to the repository) with `.` and `..` resolved; `None` when it climbs out of the repository.
fn normalised(path: &Path) -> Option<PathBuf> {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => parts.push(part),
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    Some(parts.iter().collect())
}

/// The repository as the checker sees it.
trait Tree {
    /// Whether a file or folder exists at `path` (relative to the repository's root).
    fn exists(&self, path: &Path) -> bool;
    /// The text of the Markdown file at `path`, if there is one.
    fn markdown(&self, path: &Path) -> Option<String>;
}

/// The work tree on disk.
struct Disk {
    root: PathBuf,
}

impl Tree for Disk {
    fn exists(&self, path: &Path) -> bool {
        self.root.join(path).exists()
    }

    fn markdown(&self, path: &Path) -> Option<String> {
        fs::read_to_string(self.root.join(path)).ok()
    }
}

/// Checks every link of `files` (paths relative to the repository root, with their text) and returns one line per
/// broken link: `file:line: target (why)`.
fn broken_links(tree: &dyn Tree, files: &[(PathBuf, String)]) -> Vec<String> {
    let mut anchor_cache: HashMap<PathBuf, Option<HashSet<String>>> = HashMap::new();
    let mut broken = Vec::new();
    for (file, text) in files {
        anchor_cache.entry(file.clone()).or_insert_with(|| Some(anchors(text)));
        let directory = file.parent().unwrap_or(Path::new(""));
        for link in links(text) {
            let target = link.target.as_str();
            if target.is_empty() || target == "#" || is_external(target) {
                continue;
            }
            let mut report = |why: &str| broken.push(format!("{}:{}: {target} ({why})", file.display(), link.line));
            let (path_and_query, fragment) = target.split_once('#').map_or((target, None), |(p, f)| (p, Some(f)));
            let path = path_and_query.split('?').next().unwrap_or_default();
            let resolved = if path.is_empty() {
                Some(file.clone())
            } else {
                let path = percent_decoded(path);
                match path.strip_prefix('/') {
                    Some(from_root) => normalised(Path::new(from_root)),
                    None => normalised(&directory.join(path)),
                }
            };
            let Some(resolved) = resolved else {
                report("outside the repository");
                continue;
            };
            if !tree.exists(&resolved) {
                if resolved == Path::new(GENERATED) {
                    if fragment.is_some() {
                        report("the generated configuration reference's anchors are not guaranteed: link to the file");
                    }
                    continue;
                }
                report("no such file or folder");
                continue;
            }
            let Some(fragment) = fragment.filter(|f| !f.is_empty()) else { continue };
            if resolved.extension().is_none_or(|extension| extension != "md") {
                continue; // Anchors into source files (`#L10`) and folders are GitHub's views: not checked.
            }
            let known = anchor_cache
                .entry(resolved.clone())
                .or_insert_with(|| tree.markdown(&resolved).map(|text| anchors(&text)));
            match known {
                Some(known) if known.contains(&percent_decoded(fragment)) => {}
                Some(_) => report("no heading or <a id> with this anchor"),
                None => report("not readable as text"),
            }
        }
    }
    broken
}

#[test]
fn every_relative_link_in_the_markdown_files_resolves() {
    let root = repository();
    let files: Vec<(PathBuf, String)> = markdown_files(&root)
        .into_iter()
        .map(|file| {
            let text = fs::read_to_string(root.join(&file)).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            (file, text)
        })
        .collect();
    assert!(files.iter().any(|(file, _)| file == Path::new("README.md")), "git ls-files found the README");
    let broken = broken_links(&Disk { root }, &files);
    for line in &broken {
        println!("{line}");
    }
    assert!(
        broken.is_empty(),
        "{} broken links in {} Markdown files:\n{}",
        broken.len(),
        files.len(),
        broken.join("\n")
    );
}

#[test]
fn slugs_are_githubs() {
    assert_eq!(slug("Operating it"), "operating-it");
    assert_eq!(slug("Errors (RFC 6750)"), "errors-rfc-6750");
    assert_eq!(slug("Kubernetes, with Helm"), "kubernetes-with-helm");
    assert_eq!(slug("The `db_reads` key: SQLite / PostgreSQL"), "the-db_reads-key-sqlite--postgresql");
    assert_eq!(slug("See [the chart](deploy/README.md) – v2.0!"), "see-the-chart--v20");
    assert_eq!(slug("Größe und Ähnliches"), "größe-und-ähnliches");
    assert_eq!(atx_heading("## Closing hashes ##"), Some("Closing hashes"));
    assert_eq!(atx_heading("#hashtag"), None);
    assert_eq!(atx_heading("    # indented code"), None);

    let text = "# Title\n\n## Notes\n\n## Notes\n\n```\n## Not a heading\n```\n\n## Notes\n\nSetext\n------\n<a id=\"custom\"></a>";
    let found = anchors(text);
    let expected = ["title", "notes", "notes-1", "notes-2", "setext", "custom"];
    assert_eq!(found, expected.iter().map(|s| (*s).to_owned()).collect::<HashSet<_>>());
}

/// An in-memory tree: the Markdown files given, plus other files by path.
struct Memory {
    markdown: HashMap<PathBuf, String>,
    others: Vec<PathBuf>,
}

impl Tree for Memory {
    fn exists(&self, path: &Path) -> bool {
        self.markdown.keys().chain(&self.others).any(|file| file.starts_with(path))
    }

    fn markdown(&self, path: &Path) -> Option<String> {
        self.markdown.get(path).cloned()
    }
}

#[test]
fn broken_links_are_reported_with_file_and_line() {
    let readme = "\
# Project

See [the docs](docs/README.md), [testing](docs/testing.md#the-engines), [a gone page](docs/gone.md),
[a missing section](#nope), [this one](#project), [the folder](docs/) and
[the configuration](docs/configuration.md), ![a picture](docs/chart.svg \"title\"), <https://example.com>,
[external](https://example.com/x.md#y), [mail](mailto:a@example.com), [query](docs/README.md?plain=1).

`[in code](nowhere.md)` and

```md
[in a fence](nowhere.md)
```

[defined]: docs/missing.md
[defined-ok]: <docs/testing.md#running-them>
";
    let index = "# Docs\n\n[up](../README.md#project), [up, wrong](../README.md#Project), [out](../../x.md)\n";
    let testing = "# Testing\n\n## The engines\n\n## Running them\n";
    let tree = Memory {
        markdown: [("README.md", readme), ("docs/README.md", index), ("docs/testing.md", testing)]
            .into_iter()
            .map(|(path, text)| (PathBuf::from(path), text.to_owned()))
            .collect(),
        others: vec![PathBuf::from("docs/chart.svg")],
    };
    let files: Vec<(PathBuf, String)> = tree.markdown.iter().map(|(p, t)| (p.clone(), t.clone())).collect();
    let mut broken = broken_links(&tree, &files);
    broken.sort();
    assert_eq!(
        broken,
        [
            "README.md:14: docs/missing.md (no such file or folder)",
            "README.md:3: docs/gone.md (no such file or folder)",
            "README.md:4: #nope (no heading or <a id> with this anchor)",
            "docs/README.md:3: ../../x.md (outside the repository)",
            "docs/README.md:3: ../README.md#Project (no heading or <a id> with this anchor)",
        ]
    );
}

#[test]
fn links_are_found_in_text_not_in_code() {
    let text = "[a](x.md) `[b](y.md)` [c](<z w.md>) [d](f(1).md \"t\")\n``[e](y.md)`` [f](g.md)\n";
    let found: Vec<String> = links(text).into_iter().map(|link| format!("{}:{}", link.line, link.target)).collect();
    assert_eq!(found, ["1:x.md", "1:z w.md", "1:f(1).md", "2:g.md"]);
}
