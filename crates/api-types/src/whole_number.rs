//! `i64` members read as JSON Schema counts integers: there `7.0` is the integer 7 (a number whose fractional part
//! is zero), so a client or a fuzzer following the OpenAPI document may send it, and serde's `i64` would refuse it.
//! The `integer` fields of `cargo xtask new-entity`'s bodies read through [`deserialize`] (or
//! [`option::deserialize`]).
//!
//! serde_json has parsed such a number into an `f64` before it arrives here, so only magnitudes below 2^53, where
//! every integer is exact, are taken; a literal with a fraction too small for an `f64` to keep (seventeen or more
//! significant digits) is read as the integer it rounds to, as in any JSON parser without arbitrary precision.

use serde::{Deserializer, de};

/// The largest magnitude below which an `f64` holds every integer exactly.
const EXACT: f64 = 9_007_199_254_740_992.0;

struct WholeNumber;

impl de::Visitor<'_> for WholeNumber {
    type Value = i64;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a whole number (64 bits)")
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<i64, E> {
        Ok(value)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<i64, E> {
        i64::try_from(value).map_err(|_| E::invalid_value(de::Unexpected::Unsigned(value), &self))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<i64, E> {
        if value.fract() == 0.0 && value.abs() < EXACT {
            // Integral and below 2^53 in magnitude: the conversion is exact.
            return Ok(value as i64);
        }
        Err(E::invalid_type(de::Unexpected::Float(value), &self))
    }
}

/// Reads a whole number, `7` or `7.0`.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    deserializer.deserialize_any(WholeNumber)
}

/// The same for an optional member (give it `#[serde(default)]` too, so a missing member is `None`).
pub mod option {
    use serde::{Deserialize, Deserializer};

    /// Reads `null` or a whole number, `7` or `7.0`.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
        #[derive(Deserialize)]
        struct Whole(#[serde(deserialize_with = "super::deserialize")] i64);
        Ok(Option::<Whole>::deserialize(deserializer)?.map(|Whole(value)| value))
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Deserialize)]
    struct Body {
        #[serde(deserialize_with = "super::deserialize")]
        count: i64,
        #[serde(default, deserialize_with = "super::option::deserialize")]
        limit: Option<i64>,
    }

    fn read(json: &str) -> Result<Body, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn integral_numbers_are_read_whatever_their_spelling() {
        assert_eq!(read(r#"{"count": 7}"#), Ok(Body { count: 7, limit: None }));
        assert_eq!(read(r#"{"count": -7.0, "limit": 3.0}"#), Ok(Body { count: -7, limit: Some(3) }));
        assert_eq!(read(r#"{"count": 1e3, "limit": null}"#), Ok(Body { count: 1000, limit: None }));
        assert_eq!(read(r#"{"count": 9223372036854775807}"#).map(|b| b.count), Ok(i64::MAX));
    }

    #[test]
    fn fractions_strings_and_inexact_magnitudes_are_refused() {
        for json in [
            r#"{"count": 7.5}"#,
            r#"{"count": "7"}"#,
            r#"{"count": 9223372036854775808}"#,
            r#"{"count": 1e300}"#,
            r#"{"count": 9007199254740992.0}"#,
            r#"{"count": 1, "limit": 0.5}"#,
        ] {
            assert!(read(json).is_err(), "{json}");
        }
    }
}
