//! Wall-clock times for people and for JSON (UTC), formatted by the `time`
//! crate.

use std::time::SystemTime;

use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

/// `2026-11-22T08:17:11.123Z` (RFC 3339, UTC, milliseconds).
const RFC3339_MS: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// `08:17:11.123` (UTC).
const SHORT: &[BorrowedFormatItem<'_>] =
    format_description!("[hour]:[minute]:[second].[subsecond digits:3]");

fn format(t: SystemTime, how: &[BorrowedFormatItem<'_>]) -> String {
    // Times before 1970 or past year 9999 are not ours to print.
    let t = OffsetDateTime::from(t.max(SystemTime::UNIX_EPOCH));
    t.format(how).unwrap_or_else(|_| "?".to_owned())
}

/// `2026-11-22T08:17:11.123Z`.
pub fn rfc3339(t: SystemTime) -> String {
    format(t, RFC3339_MS)
}

/// `08:17:11.123` (UTC).
pub fn short(t: SystemTime) -> String {
    format(t, SHORT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn known_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_020_000_000_123);
        assert_eq!(rfc3339(t), "2002-04-28T13:20:00.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
        assert_eq!(short(t), "13:20:00.123");
    }
}
