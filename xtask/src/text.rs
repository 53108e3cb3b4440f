//! The text edits the chores make, as pure functions over strings so each is tested without a checkout: renaming
//! the project's spellings, renumbering a version, and inserting a line beside its siblings.

use crate::names::ProjectName;

/// `text` with every `old` spelling (kebab and snake) replaced by the `new` one, in one left-to-right pass so a
/// replacement is never matched again, and the number of replacements.
pub fn rename(text: &str, old: &ProjectName, new: &ProjectName) -> (String, usize) {
    let spellings = [(old.kebab.as_str(), new.kebab.as_str()), (old.snake.as_str(), new.snake.as_str())];
    let mut out = String::with_capacity(text.len());
    let mut count = 0;
    let mut rest = text;
    while !rest.is_empty() {
        if let Some((from, to)) = spellings.iter().find(|(from, _)| rest.starts_with(from)) {
            out.push_str(to);
            rest = &rest[from.len()..];
            count += 1;
        } else {
            let mut chars = rest.chars();
            if let Some(c) = chars.next() {
                out.push(c);
            }
            rest = chars.as_str();
        }
    }
    (out, count)
}

/// `text` with each `v<from>` token (not part of a longer word or number: `_` and `/` are separators, so
/// `/api/x/v3` and `x_v3_get` count, `v30` and `nv3` do not) written `v<to>`, and the number of replacements.
pub fn renumber(text: &str, from: u32, to: u32) -> (String, usize) {
    let (token, with) = (format!("v{from}"), format!("v{to}"));
    let mut out = String::with_capacity(text.len());
    let mut count = 0;
    let mut last = 0;
    for (at, _) in text.match_indices(&token) {
        let before = text[..at].chars().next_back();
        let after = text[at + token.len()..].chars().next();
        if !before.is_some_and(|c| c.is_ascii_alphanumeric()) && !after.is_some_and(|c| c.is_ascii_alphanumeric()) {
            out.push_str(&text[last..at]);
            out.push_str(&with);
            last = at + token.len();
            count += 1;
        }
    }
    out.push_str(&text[last..]);
    (out, count)
}

/// `text` with `new_lines` inserted after the last line for which `anchor` holds, or `None` when none does.
pub fn insert_after_last(text: &str, anchor: impl Fn(&str) -> bool, new_lines: &[String]) -> Option<String> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let at = lines.iter().rposition(|line| anchor(line.trim_end_matches('\n')))?;
    Some(spliced(&lines, at + 1, new_lines))
}

/// `text` with the declaration `line` (e.g. `pub mod orders;`) among the other lines of the same kind (same
/// text before the name), in alphabetical order as rustfmt keeps them, or `None` when there is no such line.
pub fn insert_declaration(text: &str, line: &str) -> Option<String> {
    let kind = line.rsplit_once(' ').map_or("", |(kind, _)| kind);
    insert_among(text, |l| l.rsplit_once(' ').is_some_and(|(k, name)| k == kind && name.ends_with(';')), line)
}

/// `text` with `line` among the lines `is_sibling` accepts, before the first that sorts after it (else after the
/// last), or `None` when there is no sibling.
pub fn insert_among(text: &str, is_sibling: impl Fn(&str) -> bool, line: &str) -> Option<String> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let siblings: Vec<usize> = (0..lines.len()).filter(|&i| is_sibling(lines[i].trim_end_matches('\n'))).collect();
    let last = *siblings.last()?;
    let at = siblings.iter().copied().find(|&i| lines[i].trim_end_matches('\n') > line).unwrap_or(last + 1);
    Some(spliced(&lines, at, &[line.to_owned()]))
}

/// `lines` with `new_lines` inserted before index `at`, each ending in a newline.
fn spliced(lines: &[&str], at: usize, new_lines: &[String]) -> String {
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        if i == at {
            new_lines.iter().for_each(|new| out.push_str(&format!("{new}\n")));
        }
        out.push_str(line);
        if i + 1 == at && !line.ends_with('\n') {
            out.push('\n');
        }
    }
    if at >= lines.len() {
        new_lines.iter().for_each(|new| out.push_str(&format!("{new}\n")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(kebab: &str) -> ProjectName {
        ProjectName::parse(kebab).expect("valid")
    }

    #[test]
    fn rename_replaces_both_spellings_once() {
        let text = "use old_name::x; // old-name-client talks to old-name at /var/lib/old-name\nold_name_client=debug";
        let (renamed, count) = rename(text, &name("old-name"), &name("old-name-v2"));
        assert_eq!(
            renamed,
            "use old_name_v2::x; // old-name-v2-client talks to old-name-v2 at /var/lib/old-name-v2\nold_name_v2_client=debug"
        );
        assert_eq!(count, 5);
        assert_eq!(rename("nothing here, é", &name("a-b"), &name("c")), ("nothing here, é".to_owned(), 0));
    }

    #[test]
    fn renumber_touches_version_tokens_only() {
        let text = "//! Greeting v3: hi\npath = \"/api/greeting/v3\", operation_id = \"greeting_v3_get\", v30 nv3 v3x";
        let (renumbered, count) = renumber(text, 3, 4);
        assert_eq!(
            renumbered,
            "//! Greeting v4: hi\npath = \"/api/greeting/v4\", operation_id = \"greeting_v4_get\", v30 nv3 v3x"
        );
        assert_eq!(count, 3);
    }

    #[test]
    fn insert_after_last_goes_after_the_last_anchor_or_nowhere() {
        let text = "a\n.merge(x::v1::router())\n.merge(x::v2::router())\nb\n";
        let inserted = insert_after_last(text, |l| l.starts_with(".merge(x::"), &[".merge(x::v3::router())".into()]);
        assert_eq!(
            inserted.as_deref(),
            Some("a\n.merge(x::v1::router())\n.merge(x::v2::router())\n.merge(x::v3::router())\nb\n")
        );
        assert_eq!(insert_after_last("a\nb", |l| l == "b", &["c".into()]).as_deref(), Some("a\nb\nc\n"));
        assert_eq!(insert_after_last(text, |l| l == "zzz", &["c".into()]), None);
    }

    #[test]
    fn declarations_are_inserted_in_order() {
        let text = "//! doc\n\npub mod apidoc;\npub mod greeting;\npub mod resource;\n\nfn f() {}\n";
        assert_eq!(
            insert_declaration(text, "pub mod orders;").as_deref(),
            Some("//! doc\n\npub mod apidoc;\npub mod greeting;\npub mod orders;\npub mod resource;\n\nfn f() {}\n")
        );
        assert_eq!(
            insert_declaration(text, "pub mod zebra;").as_deref(),
            Some("//! doc\n\npub mod apidoc;\npub mod greeting;\npub mod resource;\npub mod zebra;\n\nfn f() {}\n")
        );
        assert_eq!(insert_declaration("mod a;\nmod c;\n", "mod b;").as_deref(), Some("mod a;\nmod b;\nmod c;\n"));
        assert_eq!(insert_declaration("fn f() {}\n", "mod b;"), None);
    }
}
