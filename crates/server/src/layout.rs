//! The rule ARCHITECTURE.md states for the rooms of this crate, checked on the sources: the rooms import each
//! other one way only (no circle), so each can be read, tested and changed from the rooms below it.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

/// The top-level rooms each room's non-test code names through `crate::`.
fn room_imports(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_files(src) {
        let relative = file.strip_prefix(src).expect("under src");
        let room = relative.components().next().and_then(|c| c.as_os_str().to_str()).unwrap_or_default();
        let room = room.trim_end_matches(".rs").to_owned();
        let text = std::fs::read_to_string(&file).expect("readable source");
        // Tests may reach anywhere; the rule is about the code that ships.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let named = graph.entry(room.clone()).or_default();
        named.extend(crate_paths(code).into_iter().filter(|other| *other != room));
    }
    graph
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("a source folder").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    files
}

/// The first segment of every `crate::...` path in `code`, including each item of a `crate::{a, b::c}` group.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut rooms = BTreeSet::new();
    for (start, _) in code.match_indices("crate::") {
        // `rust_api_axum::` or `$crate::` are not this crate's paths from inside it.
        if code[..start].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let rest = &code[start + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        rooms.extend(first_segment(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            rooms.extend(first_segment(&item));
        } else {
            rooms.extend(first_segment(rest));
        }
    }
    rooms
}

fn first_segment(path: &str) -> Option<String> {
    let segment: String = path.trim_start().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    (!segment.is_empty() && segment != "self").then_some(segment)
}

/// A circle through the graph, as the rooms on it, if there is one.
fn circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        room: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|seen| seen == room) {
            let mut found = path[at..].to_vec();
            found.push(room.to_owned());
            return Some(found);
        }
        if done.contains(room) {
            return None;
        }
        path.push(room.to_owned());
        for next in graph.get(room).into_iter().flatten() {
            if let Some(found) = visit(next, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(room.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|room| visit(room, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_rooms_import_each_other_one_way_only() {
    let graph = room_imports(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(graph.get("state").is_some_and(|named| named.contains("db")), "the graph was read: {graph:?}");
    if let Some(found) = circle(&graph) {
        panic!("the rooms import each other in a circle: {}", found.join(" -> "));
    }
}

#[test]
fn the_reader_finds_groups_and_the_checker_finds_circles() {
    let code = "use crate::{a::b, c::{d, e}, self};\nlet x = crate::f::g();\nuse rust_api_axum::h;";
    assert_eq!(crate_paths(code), ["a", "c", "f"].map(String::from).into());
    let graph = |edges: &[(&str, &str)]| {
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (from, to) in edges {
            graph.entry((*from).to_owned()).or_default().insert((*to).to_owned());
        }
        graph
    };
    assert_eq!(circle(&graph(&[("a", "b"), ("b", "c")])), None);
    assert_eq!(circle(&graph(&[("a", "b"), ("b", "c"), ("c", "a")])).map(|c| c.join(">")), Some("a>b>c>a".into()));
}
