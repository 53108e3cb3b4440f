//! Text the API accepts: the character rules every short human-given text shares ([`Name`](super::name::Name),
//! and the `string(N)` fields of owned entities `cargo xtask new-entity` adds), and the checks each entity's
//! validated text types run, so every entity refuses the same texts with the same words.

use std::fmt;

use unicode_normalization::UnicodeNormalization as _;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory as _};

/// What kind of character a short text must not hold, for the words of the 422.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unwanted {
    /// General category Cc: moves a terminal's cursor, rewrites its title, forges log lines.
    Control,
    /// A bidi control (U+202A–U+202E, U+2066–U+2069, U+200E, U+200F, U+061C): shows text in another order than
    /// it is stored ("evil\u{202E}txt.exe").
    Direction,
    /// Any other of general category Cf (zero-width space, BOM, soft hyphen, ...): invisible, so a name can
    /// render blank or look exactly like another.
    Invisible,
    /// General categories Zl and Zp (U+2028, U+2029): line breaks that most line-based tools do not expect.
    Separator,
}

/// A character a short text must not hold, named by its code point ("U+202E") in the 422's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// The first such character in the text as sent.
    pub character: char,
    /// What kind it is.
    pub kind: Unwanted,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Unwanted::Control => "control characters",
            Unwanted::Direction => "text direction controls",
            Unwanted::Invisible => "invisible formatting characters",
            Unwanted::Separator => "line or paragraph separators",
        };
        write!(f, "{kind} (found U+{:04X})", u32::from(self.character))
    }
}

/// The bidi controls: all of general category Cf, listed so the 422 can say what they do.
const DIRECTION_CONTROLS: [char; 12] = [
    '\u{061C}', '\u{200E}', '\u{200F}', '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}',
    '\u{2067}', '\u{2068}', '\u{2069}',
];

/// What is wrong with `c` in a short text, if anything. Zero-width joiners (U+200C, U+200D) are format characters
/// too and so refused: some emoji sequences and scripts use them, but they also make look-alike names.
pub fn unwanted(c: char) -> Option<Unwanted> {
    if DIRECTION_CONTROLS.contains(&c) {
        return Some(Unwanted::Direction);
    }
    match c.general_category() {
        GeneralCategory::Control => Some(Unwanted::Control),
        GeneralCategory::Format => Some(Unwanted::Invisible),
        GeneralCategory::LineSeparator | GeneralCategory::ParagraphSeparator => Some(Unwanted::Separator),
        _ => None,
    }
}

/// The first character of `raw` a short text must not hold.
pub fn first_unwanted(raw: &str) -> Option<Refused> {
    raw.chars().find_map(|character| unwanted(character).map(|kind| Refused { character, kind }))
}

/// `raw` in Unicode Normalization Form C, so every spelling of one text (`café` with a precomposed `é` or with
/// `e` and a combining accent) is stored, compared and kept unique as one.
pub fn nfc(raw: &str) -> String {
    raw.nfc().collect()
}

/// Why a text is refused; the words are the 422's, for a person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// Nothing but white space.
    #[error("must not be empty")]
    Empty,
    /// More characters than the field holds.
    #[error("must be at most {max} characters, got {actual}")]
    TooLong {
        /// Characters the field holds.
        max: usize,
        /// Characters sent.
        actual: usize,
    },
    /// A character that would corrupt the terminals and logs that show the text, or hide or reorder what a person
    /// reads: named by its code point.
    #[error("must not contain {0}")]
    Character(Refused),
    /// PostgreSQL cannot store NUL in text: refused on every engine, not a 503 on one of them.
    #[error("must not contain NUL characters")]
    Nul,
}

/// A short text, the rule of [`Name`](super::name::Name) with any maximum: at most `max` characters (Unicode
/// scalar values) as sent, which is what the OpenAPI document's `maxLength` says, none that is [`unwanted`], not
/// only white space. Returns it in NFC and trimmed, as it is stored and compared.
pub fn bounded(raw: &str, max: usize) -> Result<String, TextError> {
    let actual = raw.chars().count();
    if actual > max {
        return Err(TextError::TooLong { max, actual });
    }
    if let Some(refused) = first_unwanted(raw) {
        return Err(TextError::Character(refused));
    }
    let normalised = nfc(raw);
    let trimmed = normalised.trim();
    if trimmed.is_empty() {
        return Err(TextError::Empty);
    }
    // NFC lengthens a handful of characters (U+0344 becomes two): the column holds `max`, whatever was sent.
    let stored = trimmed.chars().count();
    if stored > max {
        return Err(TextError::TooLong { max, actual: stored });
    }
    Ok(trimmed.to_owned())
}

/// Free text, kept verbatim (line breaks and surrounding white space included; it may be empty): anything but NUL.
/// Its length is bounded by the request body's limit (`max_body_bytes`), and its column holds more than that.
pub fn free(raw: &str) -> Result<String, TextError> {
    if raw.contains('\0') {
        return Err(TextError::Nul);
    }
    Ok(raw.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_text_is_checked_as_sent_and_stored_trimmed() {
        assert_eq!(bounded("  Ada \u{a0}", 7).as_deref(), Ok("Ada"));
        assert_eq!(bounded(" Ada ", 4), Err(TextError::TooLong { max: 4, actual: 5 }), "the padding counts");
        assert_eq!(bounded(&"é".repeat(4), 4).as_deref(), Ok("éééé"), "characters, not bytes");
        assert_eq!(bounded("   ", 10), Err(TextError::Empty));
        let control = |character| Err(TextError::Character(Refused { character, kind: Unwanted::Control }));
        assert_eq!(bounded("a\tb", 10), control('\t'));
        assert_eq!(bounded("a\u{0}b", 10), control('\0'));
        assert_eq!(
            bounded("a\u{0}b", 10).expect_err("NUL").to_string(),
            "must not contain control characters (found U+0000)"
        );
        assert_eq!(TextError::TooLong { max: 100, actual: 101 }.to_string(), "must be at most 100 characters, got 101");
    }

    #[test]
    fn bounded_text_refuses_invisible_characters_and_is_stored_in_nfc() {
        for raw in ["a\u{202E}b", "\u{200B}", "\u{FEFF}x", "a\u{2028}b", "a\u{2029}b", "a\u{2067}b", "a\u{200E}"] {
            let refused = bounded(raw, 10).expect_err(raw);
            assert!(refused.to_string().contains("U+"), "{raw:?}: {refused}");
        }
        assert_eq!(bounded("cafe\u{301}", 10), bounded("caf\u{E9}", 10));
        assert_eq!(bounded("cafe\u{301}", 10).as_deref(), Ok("caf\u{E9}"));
    }

    #[test]
    fn each_class_of_unwanted_character_is_told_apart() {
        assert_eq!(unwanted('\u{1b}'), Some(Unwanted::Control));
        assert_eq!(unwanted('\u{9b}'), Some(Unwanted::Control), "C1 controls (CSI) too");
        for direction in ['\u{202A}', '\u{202E}', '\u{2066}', '\u{2069}', '\u{200E}', '\u{200F}', '\u{061C}'] {
            assert_eq!(unwanted(direction), Some(Unwanted::Direction), "{direction:?}");
        }
        for invisible in ['\u{200B}', '\u{200D}', '\u{2060}', '\u{FEFF}', '\u{AD}', '\u{E0001}'] {
            assert_eq!(unwanted(invisible), Some(Unwanted::Invisible), "{invisible:?}");
        }
        assert_eq!(unwanted('\u{2028}'), Some(Unwanted::Separator));
        assert_eq!(unwanted('\u{2029}'), Some(Unwanted::Separator));
        for fine in ['a', 'é', '\u{301}', ' ', '\u{A0}', '\u{3000}', '名', '🦀', '\u{FE0F}'] {
            assert_eq!(unwanted(fine), None, "{fine:?}");
        }
    }

    #[test]
    fn nfc_composes_and_lengthens_only_where_unicode_says() {
        assert_eq!(nfc("cafe\u{301}"), "caf\u{E9}");
        assert_eq!(nfc("\u{212B}"), "\u{C5}", "the Angstrom sign is the letter Å");
        assert_eq!(nfc("\u{344}").chars().count(), 2);
        // Sent within the limit, longer than it once normalised: refused rather than cut or overflowing the column.
        assert_eq!(bounded(&"\u{344}".repeat(3), 4), Err(TextError::TooLong { max: 4, actual: 6 }));
    }

    #[test]
    fn free_text_is_verbatim_but_without_nul() {
        assert_eq!(free("").as_deref(), Ok(""));
        assert_eq!(free(" line one\n\tline two ").as_deref(), Ok(" line one\n\tline two "));
        assert_eq!(free("a\u{0}b"), Err(TextError::Nul));
    }
}
