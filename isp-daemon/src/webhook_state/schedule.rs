//! When a failed delivery is tried again. Pure: the random draw and the
//! clock are parameters.
//!
//! The default schedule is the one Standard Webhooks senders use (after the
//! first attempt: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h — eight attempts
//! over about 28 hours), each delay moved by up to ±`jitter_percent` so
//! endpoints that failed together are not retried together. A `Retry-After`
//! from the endpoint (seconds, or an HTTP date) is honoured when it asks for
//! longer, up to `max_retry_after_ms`. After the last delay the delivery
//! goes to the dead-letter list.

use std::time::{Duration, SystemTime};

/// The default delays after attempts 1, 2, ..., in milliseconds.
pub const DEFAULT_SCHEDULE_MS: [u64; 7] = [
    5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000,
];

/// The delay after failed attempt `attempts` (1-based), or `None` when the
/// schedule is spent. `unit` is a random draw in `[0, 1)`; `retry_after_ms`
/// what the endpoint asked for, already capped.
pub fn next_delay_ms(
    schedule: &[u64],
    jitter_percent: u32,
    attempts: u32,
    unit: f64,
    retry_after_ms: Option<u64>,
) -> Option<u64> {
    let index = usize::try_from(attempts.checked_sub(1)?).ok()?;
    let base = *schedule.get(index)?;
    let spread = base as f64 * f64::from(jitter_percent.min(100)) / 100.0;
    let jittered = (base as f64 - spread + 2.0 * spread * unit.clamp(0.0, 1.0)).max(0.0);
    // Whole milliseconds; the schedule is far below f64's exact range.
    let delay = jittered.round() as u64;
    Some(retry_after_ms.map_or(delay, |asked| delay.max(asked)))
}

/// A `Retry-After` value in milliseconds from `now`: delay-seconds or an
/// HTTP date (RFC 9110 §10.2.3); `None` when unreadable.
pub fn retry_after_ms(value: &str, now: SystemTime) -> Option<u64> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(seconds.saturating_mul(1000));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    let wait = date.duration_since(now).unwrap_or(Duration::ZERO);
    Some(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_follow_the_schedule_within_the_jitter_then_stop() {
        let check = |attempts: u32, unit: f64, expected: Option<u64>| {
            assert_eq!(
                next_delay_ms(&DEFAULT_SCHEDULE_MS, 20, attempts, unit, None),
                expected,
                "attempt {attempts}, draw {unit}"
            );
        };
        check(0, 0.5, None);
        check(1, 0.5, Some(5_000));
        check(1, 0.0, Some(4_000));
        check(1, 0.999_999_9, Some(6_000));
        check(2, 0.5, Some(300_000));
        check(7, 0.5, Some(36_000_000));
        check(8, 0.5, None);
    }

    #[test]
    fn retry_after_lengthens_a_delay_but_never_shortens_it() {
        assert_eq!(next_delay_ms(&[1_000], 0, 1, 0.5, Some(3_000)), Some(3_000));
        assert_eq!(next_delay_ms(&[1_000], 0, 1, 0.5, Some(10)), Some(1_000));
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_an_http_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(retry_after_ms("120", now), Some(120_000));
        assert_eq!(retry_after_ms(" 0 ", now), Some(0));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(retry_after_ms(&later, now), Some(30_000));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(retry_after_ms(&earlier, now), Some(0));
        assert_eq!(retry_after_ms("soon", now), None);
        assert_eq!(retry_after_ms("-5", now), None);
    }
}
