//! Versions and entity tags: a row's `version` counts its changes (1 when created, one more at each change), and
//! its strong entity tag is `"<id>.<version>"`, so the tag changes exactly when the row does and two rows never
//! share one. The conditions a caller sends (`If-Match`, `If-None-Match`: `*` or a list of tags, RFC 9110 §13.1)
//! are parsed here once into [`Condition`], which says whether it holds for a tag (strong comparison for
//! `If-Match`, weak for `If-None-Match`, §8.8.3.2) and which versions a conditional write may replace. No HTTP
//! types: the API hands over the header's text.

use std::fmt;

/// How many times a row has changed, counting its creation: 1, 2, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(i64);

impl Version {
    /// A new row's version (the column's default).
    pub const FIRST: Self = Self(1);

    /// Wraps a version read from storage.
    pub fn from_stored(version: i64) -> Self {
        Self(version)
    }

    /// The number stored.
    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The strong entity tag of one version of one row: `"<id>.<version>"`, quotes included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ETag {
    id: i64,
    version: Version,
}

impl ETag {
    /// The tag of row `id` at `version`.
    pub fn new(id: i64, version: Version) -> Self {
        Self { id, version }
    }

    /// The version it names.
    pub fn version(self) -> Version {
        self.version
    }

    /// The tag whose opaque part (between the quotes) is `opaque`, if it is one of ours.
    fn from_opaque(opaque: &str) -> Option<Self> {
        let (id, version) = opaque.split_once('.')?;
        let number = |digits: &str| {
            (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
                .then(|| digits.parse::<i64>().ok())
                .flatten()
                .filter(|n| *n > 0)
        };
        Some(Self { id: number(id)?, version: Version(number(version)?) })
    }
}

impl fmt::Display for ETag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}.{}\"", self.id, self.version)
    }
}

/// One entity tag as a caller wrote it: weak (`W/"..."`) or strong (`"..."`), and what is between the quotes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    weak: bool,
    opaque: String,
}

/// The value of an `If-Match` or `If-None-Match` field: `*` (any current version), or a list of entity tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// `*`.
    Any,
    /// `"a", W/"b", ...` (never empty).
    Tags(Vec<Tag>),
}

/// Why a condition field could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be * or a comma-separated list of entity tags (\"...\" or W/\"...\")")]
pub struct MalformedCondition;

/// Which versions a write may replace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// Whichever is current (no condition, or `If-Match: *`).
    Any,
    /// Only one of these; none at all means no version can match.
    OneOf(Vec<Version>),
}

impl Condition {
    /// Parses a field's value (several field lines joined with `,`). Empty list elements are allowed, as RFC 9110
    /// §5.6.1 asks of recipients; a field with no tag at all, or anything that is not a tag, is malformed.
    pub fn parse(value: &str) -> Result<Self, MalformedCondition> {
        let value = value.trim_matches([' ', '\t']);
        if value == "*" {
            return Ok(Self::Any);
        }
        let mut tags = Vec::new();
        let mut rest = value;
        loop {
            rest = rest.trim_start_matches([' ', '\t', ',']);
            if rest.is_empty() {
                break;
            }
            let (weak, quoted) = match rest.strip_prefix("W/") {
                Some(quoted) => (true, quoted),
                None => (false, rest),
            };
            let quoted = quoted.strip_prefix('"').ok_or(MalformedCondition)?;
            let end = quoted.find('"').ok_or(MalformedCondition)?;
            let opaque = &quoted[..end];
            // etagc: %x21 / %x23-7E / obs-text; a field's text is visible ASCII here, so no space and no quote.
            if !opaque.bytes().all(|b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80) {
                return Err(MalformedCondition);
            }
            tags.push(Tag { weak, opaque: opaque.to_owned() });
            rest = &quoted[end + 1..];
            let after = rest.trim_start_matches([' ', '\t']);
            if !(after.is_empty() || after.starts_with(',')) {
                return Err(MalformedCondition);
            }
            rest = after;
        }
        if tags.is_empty() { Err(MalformedCondition) } else { Ok(Self::Tags(tags)) }
    }

    /// `If-Match`: whether `current` matches by strong comparison (a weak tag never does).
    pub fn matches_strongly(&self, current: ETag) -> bool {
        match self {
            Self::Any => true,
            Self::Tags(tags) => tags.iter().any(|tag| !tag.weak && ETag::from_opaque(&tag.opaque) == Some(current)),
        }
    }

    /// `If-None-Match`: whether `current` matches by weak comparison (`W/` ignored on both sides).
    pub fn matches_weakly(&self, current: ETag) -> bool {
        match self {
            Self::Any => true,
            Self::Tags(tags) => tags.iter().any(|tag| ETag::from_opaque(&tag.opaque) == Some(current)),
        }
    }

    /// `If-Match` on a write to row `id`: the versions of that row whose strong tags it lists.
    pub fn expected(&self, id: i64) -> Expected {
        match self {
            Self::Any => Expected::Any,
            Self::Tags(tags) => Expected::OneOf(
                tags.iter()
                    .filter(|tag| !tag.weak)
                    .filter_map(|tag| ETag::from_opaque(&tag.opaque))
                    .filter(|etag| etag.id == id)
                    .map(ETag::version)
                    .collect(),
            ),
        }
    }
}

impl Expected {
    /// The expectation of an optional `If-Match` on row `id`.
    pub fn of(condition: Option<&Condition>, id: i64) -> Self {
        condition.map_or(Self::Any, |condition| condition.expected(id))
    }

    /// Whether `version` satisfies it.
    pub fn admits(&self, version: Version) -> bool {
        match self {
            Self::Any => true,
            Self::OneOf(versions) => versions.contains(&version),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(id: i64, version: i64) -> ETag {
        ETag::new(id, Version(version))
    }

    fn parse(value: &str) -> Condition {
        Condition::parse(value).unwrap_or_else(|_| panic!("{value:?} parses"))
    }

    #[test]
    fn the_tag_is_the_quoted_id_and_version() {
        assert_eq!(tag(7, 3).to_string(), r#""7.3""#);
        assert_eq!(ETag::from_opaque("7.3"), Some(tag(7, 3)));
        for foreign in ["7", "7.", ".3", "7.3.1", "-7.3", "7.-3", "0.1", "7.0", "+7.3", "a.b", "99999999999999999999.1"]
        {
            assert_eq!(ETag::from_opaque(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn conditions_are_a_star_or_a_list_of_tags() {
        assert_eq!(parse("*"), Condition::Any);
        assert_eq!(parse(" * "), Condition::Any);
        let list = parse(r#""1.1", W/"2.2" ,,"x", """#);
        let Condition::Tags(tags) = list else { panic!("a list") };
        let shown: Vec<(bool, &str)> = tags.iter().map(|t| (t.weak, t.opaque.as_str())).collect();
        assert_eq!(shown, [(false, "1.1"), (true, "2.2"), (false, "x"), (false, "")]);
        for malformed in ["", " , ", "1.1", r#""1.1"#, r#""1 1""#, r#""1.1" "2.2""#, r#"w/"1.1""#, r#"*, "1.1""#, "**"]
        {
            assert_eq!(Condition::parse(malformed), Err(MalformedCondition), "{malformed:?}");
        }
    }

    #[test]
    fn if_match_compares_strongly_and_if_none_match_weakly() {
        let current = tag(4, 2);
        assert!(parse(r#""4.2""#).matches_strongly(current));
        assert!(parse(r#""9.9", "4.2""#).matches_strongly(current));
        assert!(parse("*").matches_strongly(current));
        assert!(!parse(r#"W/"4.2""#).matches_strongly(current), "a weak tag never matches strongly");
        assert!(!parse(r#""4.1""#).matches_strongly(current), "stale");
        assert!(!parse(r#""2.4""#).matches_strongly(current));
        assert!(parse(r#"W/"4.2""#).matches_weakly(current));
        assert!(parse(r#""1.1", "4.2""#).matches_weakly(current));
        assert!(parse("*").matches_weakly(current));
        assert!(!parse(r#""4.1", W/"4.3""#).matches_weakly(current));
    }

    #[test]
    fn a_write_expects_the_versions_of_its_own_row_named_by_strong_tags() {
        assert_eq!(Expected::of(None, 4), Expected::Any);
        assert_eq!(parse("*").expected(4), Expected::Any);
        let expected = parse(r#""4.2", W/"4.3", "5.7", "4.9", "junk""#).expected(4);
        assert_eq!(expected, Expected::OneOf(vec![Version(2), Version(9)]));
        assert!(expected.admits(Version(9)) && !expected.admits(Version(3)));
        assert!(!parse(r#"W/"4.2""#).expected(4).admits(Version(2)), "nothing a weak tag names");
        assert!(Expected::Any.admits(Version(77)));
    }
}
