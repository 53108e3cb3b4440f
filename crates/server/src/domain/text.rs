//! Text fields of owned entities (`string(N)` and `text` in `cargo xtask new-entity`): the checks each entity's
//! validated text types run, so every entity refuses the same texts with the same words.

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
    /// Control characters would corrupt logs and terminals that show a short text.
    #[error("must not contain control characters")]
    ControlCharacter,
    /// PostgreSQL cannot store NUL in text: refused on every engine, not a 503 on one of them.
    #[error("must not contain NUL characters")]
    Nul,
}

/// A short text, checked like [`Name`](super::name::Name) with any maximum: at most `max` characters (Unicode
/// scalar values) as sent, which is what the OpenAPI document's `maxLength` says, no control characters, not only
/// white space. Returns it trimmed.
pub fn bounded(raw: &str, max: usize) -> Result<String, TextError> {
    let actual = raw.chars().count();
    if actual > max {
        return Err(TextError::TooLong { max, actual });
    }
    if raw.chars().any(char::is_control) {
        return Err(TextError::ControlCharacter);
    }
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(TextError::Empty);
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
        assert_eq!(bounded("a\tb", 10), Err(TextError::ControlCharacter));
        assert_eq!(bounded("a\u{0}b", 10), Err(TextError::ControlCharacter));
        assert_eq!(TextError::TooLong { max: 100, actual: 101 }.to_string(), "must be at most 100 characters, got 101");
    }

    #[test]
    fn free_text_is_verbatim_but_without_nul() {
        assert_eq!(free("").as_deref(), Ok(""));
        assert_eq!(free(" line one\n\tline two ").as_deref(), Ok(" line one\n\tline two "));
        assert_eq!(free("a\u{0}b"), Err(TextError::Nul));
    }
}
