//! The two timestamps of log lines, written digit by digit: the Flask original's `[2026-11-29 15:30:18,005] `
//! for text lines and RFC 3339 with microseconds for JSON access lines. Every request writes one, and `write!`
//! with padding was a sixth of an access line's cost under callgrind.

/// `[2026-11-29 15:30:18,005] ` written digit by digit: `write!` with padding was a sixth of an access line's
/// cost under callgrind, and every request writes one.
pub(super) fn timestamp(now: time::OffsetDateTime) -> [u8; 26] {
    let mut text = *b"[0000-00-00 00:00:00,000] ";
    put_date_time(&mut text, 1, now);
    put_digits(&mut text, 21, 3, u32::from(now.millisecond()));
    text
}

/// `2026-11-29T15:30:18.005123Z`, the shape tracing's JSON lines carry.
pub(super) fn rfc3339(now: time::OffsetDateTime) -> [u8; 27] {
    let mut text = *b"0000-00-00T00:00:00.000000Z";
    put_date_time(&mut text, 0, now);
    put_digits(&mut text, 20, 6, now.microsecond());
    text
}

/// Writes `now` as `YYYY-MM-DD?HH:MM:SS` at `at`, leaving the separators of `text` as they are. Both log
/// timestamps share this layout and differ only in separators and fraction.
fn put_date_time(text: &mut [u8], at: usize, now: time::OffsetDateTime) {
    put_digits(text, at, 4, u32::try_from(now.year()).unwrap_or(0));
    put_digits(text, at + 5, 2, u32::from(u8::from(now.month())));
    put_digits(text, at + 8, 2, u32::from(now.day()));
    put_digits(text, at + 11, 2, u32::from(now.hour()));
    put_digits(text, at + 14, 2, u32::from(now.minute()));
    put_digits(text, at + 17, 2, u32::from(now.second()));
}

/// Writes `value` as `width` zero-padded decimal digits at `at`.
fn put_digits(text: &mut [u8], at: usize, width: usize, mut value: u32) {
    for index in (at..at + width).rev() {
        text[index] = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_the_originals_shape() {
        let at = time::macros::datetime!(2026-01-02 03:04:05.006 UTC);
        assert_eq!(&timestamp(at), b"[2026-01-02 03:04:05,006] ");
    }

    #[test]
    fn rfc3339_stamps_have_microseconds() {
        let at = time::macros::datetime!(2026-01-02 03:04:05.006007 UTC);
        assert_eq!(&rfc3339(at), b"2026-01-02T03:04:05.006007Z");
    }
}
