//! Reading an answer's `Retry-After` header (RFC 9110 §10.2.3) in both of
//! its forms. Pure: no IO; the clock is passed in.
//!
//! The Twilio plugin has the same function (`retry::retry_after`, same
//! tests): the two plugins share only `plugin-api`, the stable interface
//! crate, which carries no HTTP helpers (nor `httpdate`), and a plugin
//! never depends on another plugin.

use std::time::{Duration, SystemTime};

/// The wait `value` asks for: delta-seconds, or an HTTP-date. A date is
/// measured against the answer's own `Date` header when it has a readable
/// one, so a skewed local clock does not matter, else against `now`; a date
/// already past asks for no wait. A number too large for a `Duration` asks
/// for the longest wait (so it ends the retries instead of being ignored).
/// Anything else is `None`, as if the header were absent.
pub(crate) fn parse(value: &str, date: Option<&str>, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(value.parse().map_or(Duration::MAX, Duration::from_secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let now = date
        .and_then(|d| httpdate::parse_http_date(d.trim()).ok())
        .unwrap_or(now);
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    fn check(value: &str, date: Option<&str>, expected: Option<Duration>) {
        // 2026-11-30T17:00:00Z, a local clock that disagrees with the server's.
        let now = UNIX_EPOCH + Duration::from_secs(1_796_058_000);
        assert_eq!(
            parse(value, date, now),
            expected,
            "Retry-After: {value:?}, Date: {date:?}"
        );
    }

    // Issue 14, item 6: an HTTP-date `Retry-After` was not read at all.
    #[test]
    fn retry_after_is_read_in_both_of_its_forms() {
        let secs = |s| Some(Duration::from_secs(s));
        check("7", None, secs(7));
        check(" 0 ", None, secs(0));
        check("99999999999999999999999", None, Some(Duration::MAX));
        // The three date formats RFC 9110 asks a recipient to read.
        let date = Some("Mon, 30 Nov 2026 17:00:00 GMT");
        check("Mon, 30 Nov 2026 17:00:30 GMT", date, secs(30));
        check("Monday, 30-Nov-26 17:00:30 GMT", date, secs(30));
        check("Mon Nov 30 17:00:30 2026", date, secs(30));
        // Measured against the server's clock when it sent `Date`...
        check(
            "Mon, 30 Nov 2026 18:00:30 GMT",
            Some("Mon, 30 Nov 2026 18:00:00 GMT"),
            secs(30),
        );
        // ...else against ours; a date already past asks for no wait.
        check("Mon, 30 Nov 2026 17:01:00 GMT", None, secs(60));
        check("Mon, 30 Nov 2026 17:01:00 GMT", Some("garbage"), secs(60));
        check("Mon, 30 Nov 2026 16:00:00 GMT", None, secs(0));
        for unreadable in ["", "-5", "1.5", "soon", "30 s", "Mon, 30 Nov 2026"] {
            check(unreadable, None, None);
        }
    }
}
