//! `Principal`: who is acting, as a verified token told it, and `DisplayName`, the name it is shown by.
//! Authentication makes one; the domain's rules (who owns what) read it.

use std::{collections::BTreeSet, fmt};

use super::text;

/// The caller behind a verified access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's `sub`: the stable identity that owns things.
    pub subject: String,
    /// The OAuth client the token was issued to (`client_id`, else `azp`).
    pub client_id: Option<String>,
    /// A name to show: the configured username claim, else `username`, else `sub`.
    pub username: DisplayName,
    /// Granted scopes, from `scope` (space-separated) or `scp` (array or string).
    pub scopes: BTreeSet<String>,
}

impl Principal {
    /// Whether the token grants `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.contains(scope)
    }
}

/// A name to show for a caller, made from a token's claim. Every reader of a resource sees its owner's name, and the
/// provider (or whoever registered there) chose it, so it is cleaned rather than refused (a login must not fail
/// over it): the characters names refuse ([`text::unwanted`]: terminal escapes, bidi controls, zero-width and
/// separator characters) are removed, surrounding white space is trimmed, and it is cut to
/// [`DisplayName::MAX_CHARS`] characters, which the owners' `name` column holds on every engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    /// Longest display name, in characters (Unicode scalar values): the owners' `VARCHAR(255)`, which PostgreSQL
    /// and MariaDB (utf8mb4) count in characters and refuse beyond, and SQLite does not check.
    pub const MAX_CHARS: usize = 255;

    /// The cleaned claim; `None` when nothing visible is left of it.
    pub fn from_claim(raw: &str) -> Option<Self> {
        let kept: String = raw.chars().filter(|c| text::unwanted(*c).is_none()).collect();
        let cut: String = kept.trim().chars().take(Self::MAX_CHARS).collect();
        let shown = cut.trim_end();
        (!shown.is_empty()).then(|| Self(shown.to_owned()))
    }

    /// The name of a caller whose claims leave nothing to show.
    pub fn unnamed() -> Self {
        Self("unnamed".to_owned())
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<&str> for DisplayName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_invisible_characters_are_removed_and_the_rest_kept() {
        let name = |raw: &str| DisplayName::from_claim(raw).map(|name| name.to_string());
        assert_eq!(name("\u{1b}[31mred\u{1b}[0m").as_deref(), Some("[31mred[0m"), "ESC goes, the printable rest stays");
        assert_eq!(name("\u{1b}]0;title\u{7}ada").as_deref(), Some("]0;titleada"));
        assert_eq!(name("\u{202E}evil\u{2066}\u{200B}\u{FEFF}").as_deref(), Some("evil"));
        assert_eq!(name("two\u{2028}lines\u{2029}\u{85}").as_deref(), Some("twolines"));
        assert_eq!(name("  Grace Hopper \u{200B} ").as_deref(), Some("Grace Hopper"), "trimmed after cleaning");
        assert_eq!(name("名前 🦀 O'Brien").as_deref(), Some("名前 🦀 O'Brien"));
        assert_eq!(name("\u{200B}\u{202E} \u{7}"), None, "nothing visible left");
    }

    #[test]
    fn long_names_are_cut_to_the_column_in_characters_not_bytes() {
        let longest = "é".repeat(DisplayName::MAX_CHARS);
        assert_eq!(DisplayName::from_claim(&"é".repeat(300)).map(|n| n.to_string()), Some(longest.clone()));
        assert_eq!(DisplayName::from_claim(&longest).map(|n| n.to_string()), Some(longest));
        let spaced = format!("{} b", "a".repeat(DisplayName::MAX_CHARS - 1));
        assert_eq!(
            DisplayName::from_claim(&spaced).map(|n| n.as_str().len()),
            Some(254),
            "no trailing space after the cut"
        );
    }
}
