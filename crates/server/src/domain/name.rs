//! `Name`: the validated form of every human-given name the API accepts (a person to greet, later a resource).

use std::fmt;

/// A name that passed validation: trimmed, 1 to [`Name::MAX_CHARS`] characters, no control characters.
/// Holding one proves the checks ran, so code past the HTTP edge never re-validates.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Name(String);

/// Why a text is not a [`Name`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Nothing but white space.
    #[error("must not be empty")]
    Empty,
    /// Longer than [`Name::MAX_CHARS`] characters after trimming.
    #[error("must be at most {max} characters, got {actual}", max = Name::MAX_CHARS)]
    TooLong {
        /// Characters after trimming.
        actual: usize,
    },
    /// Control characters would corrupt logs and terminals that show the name.
    #[error("must not contain control characters")]
    ControlCharacter,
}

impl Name {
    /// Longest accepted name, in characters (Unicode scalar values), as in the Flask original's columns.
    pub const MAX_CHARS: usize = 255;

    /// Trims surrounding white space and checks the rest.
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(NameError::Empty);
        }
        let chars = trimmed.chars().count();
        if chars > Self::MAX_CHARS {
            return Err(NameError::TooLong { actual: chars });
        }
        if trimmed.chars().any(char::is_control) {
            return Err(NameError::ControlCharacter);
        }
        Ok(Self(trimmed.to_owned()))
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

    #[test]
    fn surrounding_white_space_is_trimmed() {
        assert_eq!(Name::parse("  Ada Lovelace \t").expect("valid").as_str(), "Ada Lovelace");
    }

    #[test]
    fn empty_and_blank_are_refused() {
        assert_eq!(Name::parse(""), Err(NameError::Empty));
        assert_eq!(Name::parse(" \t "), Err(NameError::Empty));
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        let longest = "é".repeat(Name::MAX_CHARS);
        assert!(Name::parse(&longest).is_ok(), "255 two-byte characters fit");
        let over = "é".repeat(Name::MAX_CHARS + 1);
        assert_eq!(Name::parse(&over), Err(NameError::TooLong { actual: 256 }));
    }

    #[test]
    fn control_characters_are_refused() {
        assert_eq!(Name::parse("Ada\nINFO: forged"), Err(NameError::ControlCharacter));
    }

    #[test]
    fn quotes_and_unicode_are_kept_verbatim() {
        let raw = r#"O'Brien "; DROP TABLE x; -- 名前 🦀"#;
        assert_eq!(Name::parse(raw).expect("valid").as_str(), raw);
    }
}
