//! `Timestamp`: a point in time (`timestamp` in `cargo xtask new-entity`), RFC 3339 on the wire.
//!
//! Why whole microseconds since the Unix epoch in a `BIGINT`: the engines' own types differ where it matters.
//! MariaDB's `TIMESTAMP` ends in 2038 and converts through the session's time zone, its `DATETIME` keeps no zone
//! and whole seconds unless declared `DATETIME(6)`, SQLite has no time type (sqlx stores text), PostgreSQL's
//! `timestamptz` keeps microseconds. An integer of microseconds in UTC is the same instant on all three, sorts and
//! compares as time does, and keeps PostgreSQL's precision; the offset a client wrote is not kept (the instant is),
//! and answers are in UTC (`Z`).

use std::fmt;

use time::{OffsetDateTime, UtcOffset, format_description::well_known::Rfc3339};

/// A point in time, to the microsecond, as microseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// Why a text is not a [`Timestamp`]; the words are the 422's, for a person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    /// Not an RFC 3339 date and time with an offset.
    #[error("must be an RFC 3339 date and time with an offset, e.g. \"2025-01-31T12:00:00Z\"")]
    Malformed,
    /// Finer than a microsecond: refused rather than truncated, so what is stored is what was sent.
    #[error("must not be more precise than a microsecond")]
    TooPrecise,
}

impl Timestamp {
    /// Parses an RFC 3339 date and time (any offset; `Z` is UTC), at most to the microsecond.
    pub fn parse(raw: &str) -> Result<Self, TimestampError> {
        let instant = OffsetDateTime::parse(raw, &Rfc3339).map_err(|_| TimestampError::Malformed)?;
        let nanos = instant.unix_timestamp_nanos();
        if nanos % 1000 != 0 {
            return Err(TimestampError::TooPrecise);
        }
        // RFC 3339 years are 0000 to 9999: about 2.5e17 microseconds either side of 1970, well inside an i64.
        i64::try_from(nanos / 1000).map(Self).map_err(|_| TimestampError::Malformed)
    }

    /// Wraps microseconds read from storage, or `None` when they are outside what RFC 3339 can write (years 0000
    /// to 9999): only a row written around the API can hold such a value.
    pub fn from_stored(micros: i64) -> Option<Self> {
        let stamp = Self(micros);
        stamp.rfc3339().is_some().then_some(stamp)
    }

    /// Microseconds since 1970-01-01T00:00:00Z: what is stored.
    pub fn micros(self) -> i64 {
        self.0
    }

    fn rfc3339(self) -> Option<String> {
        let instant = OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1000).ok()?;
        instant.to_offset(UtcOffset::UTC).format(&Rfc3339).ok()
    }
}

/// RFC 3339 in UTC (`2025-01-31T12:00:00Z`, fractional seconds only when there are any).
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `parse` and `from_stored` only make values RFC 3339 can write; the number is a fallback that never shows.
        match self.rfc3339() {
            Some(text) => f.write_str(&text),
            None => write!(f, "{} microseconds after 1970-01-01T00:00:00Z", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_kept_to_the_microsecond_and_answered_in_utc() {
        for (raw, micros, shown) in [
            ("1970-01-01T00:00:00Z", 0, "1970-01-01T00:00:00Z"),
            ("2025-01-31T12:00:00Z", 1_738_324_800_000_000, "2025-01-31T12:00:00Z"),
            ("2025-01-31T13:30:00+01:30", 1_738_324_800_000_000, "2025-01-31T12:00:00Z"),
            ("2025-01-31T12:00:00.5Z", 1_738_324_800_500_000, "2025-01-31T12:00:00.5Z"),
            ("2025-01-31T12:00:00.000001Z", 1_738_324_800_000_001, "2025-01-31T12:00:00.000001Z"),
            ("1969-12-31T23:59:59Z", -1_000_000, "1969-12-31T23:59:59Z"),
        ] {
            let parsed = Timestamp::parse(raw).expect(raw);
            assert_eq!((parsed.micros(), parsed.to_string().as_str()), (micros, shown), "{raw}");
            assert_eq!(Timestamp::parse(shown), Ok(parsed), "the answer parses back to the same instant");
        }
    }

    #[test]
    fn other_texts_and_finer_precision_are_refused() {
        for raw in ["", "2025-01-31", "2025-01-31T12:00:00", "2025-01-31T25:00:00Z", "yesterday", "1738324800"] {
            assert_eq!(Timestamp::parse(raw), Err(TimestampError::Malformed), "{raw:?}");
        }
        assert_eq!(Timestamp::parse("2025-01-31T12:00:00.0000001Z"), Err(TimestampError::TooPrecise));
    }

    #[test]
    fn stored_values_rfc_3339_cannot_write_are_refused() {
        assert!(Timestamp::from_stored(0).is_some());
        assert!(Timestamp::from_stored(i64::MAX).is_none());
        assert!(Timestamp::from_stored(-62_167_219_200_000_001).is_none(), "before year 0000");
    }
}
