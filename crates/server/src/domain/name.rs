//! `Name`: the validated form of every human-given name the API accepts (a person to greet, a resource).

use std::fmt;

use super::text::{self, TextError};

/// A name that passed validation: the [`text::bounded`] rule with at most [`Name::MAX_CHARS`] characters as sent:
/// not only white space, no control, format, direction or separator character; stored in NFC and trimmed.
/// Holding one proves the checks ran, so code past the HTTP edge never re-validates.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Name(String);

/// Why a text is not a [`Name`]: the shared rule's reasons, so names and entities' texts are refused alike.
pub type NameError = TextError;

impl Name {
    /// Longest accepted name, in characters (Unicode scalar values): the `String(255)` of the Flask original's
    /// columns, and of the `name` column here (`m0001_resources`).
    pub const MAX_CHARS: usize = 255;

    /// Checks the text as sent, which is what the OpenAPI document describes (`maxLength`, a `pattern` without
    /// the refused characters), then normalises and trims it. Checking only the trimmed text accepted names the
    /// document calls invalid (300 characters of which 50 are spaces; a tab at the end), as schemathesis found.
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        text::bounded(raw, Self::MAX_CHARS).map(Self)
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::text::{Refused, Unwanted};

    fn control(character: char) -> NameError {
        NameError::Character(Refused { character, kind: Unwanted::Control })
    }

    #[test]
    fn surrounding_white_space_is_trimmed() {
        assert_eq!(Name::parse("  Ada Lovelace \u{a0}").expect("valid").as_str(), "Ada Lovelace");
    }

    #[test]
    fn empty_and_blank_are_refused() {
        assert_eq!(Name::parse(""), Err(NameError::Empty));
        assert_eq!(Name::parse("   "), Err(NameError::Empty));
    }

    #[test]
    fn the_text_as_sent_is_checked_not_the_trimmed_one() {
        // What the OpenAPI document says is invalid is refused, even where trimming would make it fit.
        let padded = format!("{}{}", "a".repeat(Name::MAX_CHARS), " ");
        assert_eq!(Name::parse(&padded), Err(NameError::TooLong { max: 255, actual: 256 }));
        assert_eq!(Name::parse("Ada\t"), Err(control('\t')));
        assert_eq!(Name::parse("\nAda"), Err(control('\n')));
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        let longest = "é".repeat(Name::MAX_CHARS);
        assert!(Name::parse(&longest).is_ok(), "255 two-byte characters fit");
        let over = "é".repeat(Name::MAX_CHARS + 1);
        assert_eq!(Name::parse(&over), Err(NameError::TooLong { max: 255, actual: 256 }));
    }

    #[test]
    fn control_characters_are_refused() {
        assert_eq!(Name::parse("Ada\nINFO: forged"), Err(control('\n')));
    }

    #[test]
    fn invisible_and_direction_characters_are_refused_naming_the_code_point() {
        // One of each class: format (Cf), line and paragraph separators (Zl, Zp), and the bidi controls.
        for (raw, code_point) in [
            ("evil\u{202E}gpj.exe", "U+202E"),
            ("\u{200B}", "U+200B"),
            ("\u{FEFF}bom", "U+FEFF"),
            ("line\u{2028}break", "U+2028"),
            ("para\u{2029}graph", "U+2029"),
            ("\u{2066}isolate\u{2069}", "U+2066"),
            ("mark\u{200F}", "U+200F"),
            ("arabic\u{061C}mark", "U+061C"),
            ("soft\u{AD}hyphen", "U+00AD"),
            ("tag\u{E0041}", "U+E0041"),
        ] {
            let refused = Name::parse(raw).expect_err(raw);
            assert!(refused.to_string().contains(code_point), "{raw:?}: {refused}");
        }
        assert!(Name::parse("Ada\t").expect_err("tab").to_string().contains("U+0009"), "control characters too");
    }

    #[test]
    fn names_are_stored_in_nfc_so_both_spellings_are_one_name() {
        let composed = Name::parse("caf\u{E9}").expect("valid");
        let decomposed = Name::parse("cafe\u{301}").expect("valid");
        assert_eq!(composed, decomposed);
        assert_eq!(decomposed.as_str(), "caf\u{E9}");
        assert_eq!(
            Name::parse("  \u{212B}ngstr\u{F6}m ").expect("valid").as_str(),
            "\u{C5}ngstr\u{F6}m",
            "singletons too"
        );
    }

    #[test]
    fn quotes_and_unicode_are_kept_verbatim() {
        let raw = r#"O'Brien "; DROP TABLE x; -- 名前 🦀"#;
        assert_eq!(Name::parse(raw).expect("valid").as_str(), raw);
    }
}
