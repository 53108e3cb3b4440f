//! `Decimal<P, S>`: an exact decimal number of at most `P` digits, `S` of them after the point (`decimal(p,s)` in
//! `cargo xtask new-entity`; `decimal` alone is `decimal(18,2)`).
//!
//! Why a scaled integer and not the engines' own `DECIMAL`: the value is stored as a `BIGINT` of units of
//! 10^-S (12.50 at scale 2 is 1250), which is exact and compares and sorts the same on SQLite, PostgreSQL and
//! MariaDB. SQLite has no decimal type (its `NUMERIC` affinity turns 0.1 into a float), and SeaORM's `Decimal`
//! would bring a decimal library and three drivers' conversions for what one `i64` holds: 18 digits fit in it
//! whatever their sign, which is why `P` is at most 18. On the wire the value is a JSON string (`"12.50"`), never a
//! number: a JSON number is a float to most clients and to serde_json, and 0.1 + 0.2 would not stay exact.

use std::fmt;

/// An exact decimal number of at most `PRECISION` digits, `SCALE` of them after the point, held as units of
/// 10^-SCALE. `SCALE < PRECISION <= 18` (checked at compile time where the type is used).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Decimal<const PRECISION: u32, const SCALE: u32>(i64);

/// Why a text is not a [`Decimal`]; the words are the 422's, for a person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    /// Not `-?digits(.digits)?`.
    #[error("must be a decimal number written as a string of digits with an optional `-` and `.`, e.g. \"12.50\"")]
    Malformed,
    /// More digits before the point than `PRECISION - SCALE`.
    #[error("must have at most {max} digits before the decimal point")]
    TooManyIntegerDigits {
        /// Digits allowed before the point.
        max: u32,
    },
    /// More digits after the point than `SCALE`: refused rather than rounded, so what is stored is what was sent.
    #[error("must have at most {max} digits after the decimal point")]
    TooManyFractionDigits {
        /// Digits allowed after the point.
        max: u32,
    },
}

impl<const PRECISION: u32, const SCALE: u32> Decimal<PRECISION, SCALE> {
    /// Fails to compile a `Decimal` whose digits would not fit an `i64` or that has no digit before the point.
    const FITS: () = assert!(SCALE < PRECISION && PRECISION <= 18, "Decimal<P, S> needs S < P <= 18");

    /// Parses `-?[0-9]+(\.[0-9]+)?` with at most `PRECISION - SCALE` digits before the point and `SCALE` after it.
    pub fn parse(raw: &str) -> Result<Self, DecimalError> {
        let () = Self::FITS;
        let (negative, digits) = match raw.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, raw),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        let all_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) || digits.ends_with('.') {
            return Err(DecimalError::Malformed);
        }
        if whole.len() > (PRECISION - SCALE) as usize {
            return Err(DecimalError::TooManyIntegerDigits { max: PRECISION - SCALE });
        }
        if fraction.len() > SCALE as usize {
            return Err(DecimalError::TooManyFractionDigits { max: SCALE });
        }
        // At most 18 ASCII digits in all: the sum below cannot overflow an i64.
        let mut units: i64 = 0;
        for digit in whole.bytes().chain(fraction.bytes()) {
            units = units * 10 + i64::from(digit - b'0');
        }
        units *= 10i64.pow(SCALE - fraction.len() as u32);
        Ok(Self(if negative { -units } else { units }))
    }

    /// Wraps units read from storage.
    pub fn from_stored(units: i64) -> Self {
        Self(units)
    }

    /// The value in units of 10^-SCALE: what is stored.
    pub fn units(self) -> i64 {
        self.0
    }
}

/// The canonical form: every digit of the scale (`12.50`), a `-` only below zero, no `+`, no exponent.
impl<const PRECISION: u32, const SCALE: u32> fmt::Display for Decimal<PRECISION, SCALE> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let magnitude = self.0.unsigned_abs();
        if SCALE == 0 {
            return write!(f, "{sign}{magnitude}");
        }
        let one = 10u64.pow(SCALE);
        write!(f, "{sign}{}.{:0width$}", magnitude / one, magnitude % one, width = SCALE as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Money = Decimal<18, 2>;

    #[test]
    fn values_are_exact_units_of_the_scale_and_print_canonically() {
        for (raw, units, shown) in [
            ("12.5", 1250, "12.50"),
            ("12.50", 1250, "12.50"),
            ("0.01", 1, "0.01"),
            ("-0.01", -1, "-0.01"),
            ("-0", 0, "0.00"),
            ("007", 700, "7.00"),
            ("9999999999999999.99", 999_999_999_999_999_999, "9999999999999999.99"),
            ("-9999999999999999.99", -999_999_999_999_999_999, "-9999999999999999.99"),
        ] {
            let parsed = Money::parse(raw).expect(raw);
            assert_eq!((parsed.units(), parsed.to_string().as_str()), (units, shown), "{raw}");
        }
        assert_eq!(Decimal::<5, 0>::parse("-12345").expect("whole").to_string(), "-12345");
        assert_eq!(Decimal::<4, 3>::parse("1.5").expect("scaled").units(), 1500);
    }

    #[test]
    fn anything_but_plain_digits_is_refused_not_rounded() {
        for raw in ["", "-", ".5", "5.", "1.2.3", "+1", " 1", "1 ", "1e3", "0x10", "١٢", "1,5", "NaN", "--1"] {
            assert_eq!(Money::parse(raw), Err(DecimalError::Malformed), "{raw:?}");
        }
        assert_eq!(Money::parse("0.125"), Err(DecimalError::TooManyFractionDigits { max: 2 }));
        assert_eq!(Money::parse("12345678901234567"), Err(DecimalError::TooManyIntegerDigits { max: 16 }));
        assert_eq!(Decimal::<5, 0>::parse("1.0"), Err(DecimalError::TooManyFractionDigits { max: 0 }));
    }

    #[test]
    fn stored_units_print_whatever_their_size() {
        assert_eq!(Money::from_stored(i64::MIN).to_string(), "-92233720368547758.08");
        assert_eq!(Money::from_stored(5).to_string(), "0.05");
    }
}
