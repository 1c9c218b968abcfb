//! Wall-clock time as the webhook records and payloads show it: Unix
//! seconds and milliseconds, and RFC 3339 in UTC with milliseconds. Pure
//! conversions apart from `now_millis`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 for a clock before it).
pub(crate) fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Now, RFC 3339 in UTC with milliseconds.
pub(crate) fn now_rfc3339() -> String {
    rfc3339(now_millis())
}

/// The last instant RFC 3339 can write (four-digit years):
/// 9999-12-31T23:59:59.999Z, in milliseconds since the epoch.
pub(crate) const LAST_RFC3339_MILLIS: u64 = 253_402_300_799_999;

/// `millis` since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ` (RFC 3339, UTC).
/// Total: a time past the year 9999 (from a state file written before
/// the limits on expiries and grace periods) shows as the last instant
/// RFC 3339 can write, so reading it never fails.
pub(crate) fn rfc3339(millis: u64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(millis.min(LAST_RFC3339_MILLIS));
    humantime::format_rfc3339_millis(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::{rfc3339, LAST_RFC3339_MILLIS};

    #[test]
    fn milliseconds_are_shown_as_rfc3339_utc() {
        let check = |millis: u64, expected: &str| assert_eq!(rfc3339(millis), expected);
        check(0, "1970-01-01T00:00:00.000Z");
        check(951_782_400_123, "2000-02-29T00:00:00.123Z");
        check(1_700_000_000_000, "2023-11-14T22:13:20.000Z");
        check(4_102_444_799_999, "2099-12-31T23:59:59.999Z");
        // Regression (new-user trial): a time past the year 9999 panicked.
        check(LAST_RFC3339_MILLIS, "9999-12-31T23:59:59.999Z");
        check(u64::MAX, "9999-12-31T23:59:59.999Z");
    }
}
