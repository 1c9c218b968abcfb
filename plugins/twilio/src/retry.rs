//! Retries with exponential back-off and jitter. The waiting and the
//! randomness are injected, so tests run the whole policy without sleeping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::TwilioError;

/// Waits between attempts. Production sleeps the thread; tests record.
pub(crate) type Sleeper = Arc<dyn Fn(Duration) + Send + Sync>;

/// The real sleeper: blocks the calling (host) thread, starts none.
pub(crate) fn thread_sleeper() -> Sleeper {
    Arc::new(std::thread::sleep)
}

/// How often and how long to wait before repeating a failed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetryPolicy {
    /// Retries after the first attempt.
    pub(crate) max_retries: u32,
    /// The back-off before the first retry, before jitter.
    pub(crate) base: Duration,
    /// No wait is longer; a `Retry-After` beyond it ends the retries.
    pub(crate) cap: Duration,
}

impl RetryPolicy {
    /// The defaults, with `max_retries` from the tenant's configuration.
    pub(crate) fn new(max_retries: u32) -> Self {
        Self {
            max_retries,
            base: Duration::from_millis(250),
            cap: Duration::from_secs(8),
        }
    }

    /// The wait before retry number `retry` (0 for the first): "equal
    /// jitter", half of `base * 2^retry` (capped) plus a random part of the
    /// other half chosen by `unit` in `[0, 1)`. A server's `Retry-After` is
    /// a floor.
    pub(crate) fn delay(&self, retry: u32, unit: f64, retry_after: Option<Duration>) -> Duration {
        let exponential = self
            .base
            .saturating_mul(2u32.saturating_pow(retry))
            .min(self.cap);
        let half = exponential / 2;
        let jitter = half.mul_f64(unit.clamp(0.0, 1.0));
        let backoff = half + jitter;
        retry_after.map_or(backoff, |floor| backoff.max(floor))
    }

    /// Runs `attempt` until it succeeds, fails for good, or the retries run out.
    pub(crate) fn run<T>(
        &self,
        sleeper: &dyn Fn(Duration),
        random_unit: &mut dyn FnMut() -> f64,
        mut attempt: impl FnMut() -> Result<T, Failure>,
    ) -> Result<T, TwilioError> {
        let mut retry = 0;
        loop {
            let failure = match attempt() {
                Ok(value) => return Ok(value),
                Err(failure) => failure,
            };
            if retry >= self.max_retries || !failure.error.is_retryable() {
                return Err(failure.error);
            }
            if failure.retry_after.is_some_and(|after| after > self.cap) {
                // Waiting that long would hold the caller's thread; let it decide.
                return Err(failure.error);
            }
            sleeper(self.delay(retry, random_unit(), failure.retry_after));
            retry += 1;
        }
    }
}

/// A failed attempt, with the server's `Retry-After` when it sent one.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) error: TwilioError,
    pub(crate) retry_after: Option<Duration>,
}

impl From<TwilioError> for Failure {
    fn from(error: TwilioError) -> Self {
        Self {
            error,
            retry_after: None,
        }
    }
}

/// The wait an answer's `Retry-After` asks for (RFC 9110 §10.2.3), in either
/// form: delta-seconds, or an HTTP-date. A date is measured against the
/// answer's own `Date` header when it has a readable one, so a skewed local
/// clock does not matter, else against `now`; a date already past asks for
/// no wait. A number too large for a `Duration` asks for the longest wait
/// (so it ends the retries instead of being ignored). Anything else is
/// `None`, as if the header were absent.
///
/// The Stripe plugin has the same function (`plugkit_stripe`'s
/// `retry_after::parse`, same tests): the two plugins share only
/// `plugin-api`, the stable interface crate, which carries no HTTP helpers
/// (nor `httpdate`), and a plugin never depends on another plugin.
pub(crate) fn retry_after(value: &str, date: Option<&str>, now: SystemTime) -> Option<Duration> {
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

/// A number in `[0, 1)` for jitter. A splitmix64 stream in a static: no
/// thread-local with a destructor, which would keep glibc from unloading
/// the library, and no dependency on an RNG crate.
pub(crate) fn random_unit() -> f64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;
    if STATE.load(Ordering::Relaxed) == 0 {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64 | 1);
        // Another thread may have seeded it first; either seed will do.
        let _ = STATE.compare_exchange(0, seed, Ordering::Relaxed, Ordering::Relaxed);
    }
    let mut z = STATE
        .fetch_add(GAMMA, Ordering::Relaxed)
        .wrapping_add(GAMMA);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    fn api(status: u16, code: u32) -> TwilioError {
        TwilioError::from_response(
            status,
            &format!(r#"{{"code":{code},"message":"m","status":{status}}}"#),
        )
    }

    fn policy(max_retries: u32) -> RetryPolicy {
        RetryPolicy {
            max_retries,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(2),
        }
    }

    /// Runs the policy over scripted attempt outcomes; returns the result,
    /// the number of attempts and the waits asked for.
    fn run_script(
        max_retries: u32,
        unit: f64,
        script: Vec<Result<&'static str, Failure>>,
    ) -> (Result<&'static str, TwilioError>, usize, Vec<Duration>) {
        let waits = RefCell::new(Vec::new());
        let mut script = script.into_iter();
        let mut attempts = 0;
        let result = policy(max_retries).run(&|d| waits.borrow_mut().push(d), &mut || unit, || {
            attempts += 1;
            script.next().unwrap_or(Ok("unscripted"))
        });
        (result, attempts, waits.into_inner())
    }

    fn ms(values: &[u64]) -> Vec<Duration> {
        values.iter().copied().map(Duration::from_millis).collect()
    }

    #[test]
    fn delays_grow_exponentially_with_equal_jitter_and_a_cap() {
        let p = policy(10);
        let check = |retry, unit, expected_ms| {
            assert_eq!(
                p.delay(retry, unit, None),
                Duration::from_millis(expected_ms),
                "retry {retry} unit {unit}"
            );
        };
        check(0, 0.0, 50);
        check(0, 0.5, 75);
        check(1, 0.0, 100);
        check(2, 0.0, 200);
        check(3, 1.0, 800);
        check(5, 0.0, 1000); // 3.2 s capped at 2 s, halved
        check(31, 0.0, 1000);
        check(40, 1.0, 2000); // no overflow far past the cap
    }

    #[test]
    fn retry_after_is_a_floor() {
        let p = policy(3);
        assert_eq!(
            p.delay(0, 0.0, Some(Duration::from_secs(1))),
            Duration::from_secs(1)
        );
        assert_eq!(
            p.delay(4, 1.0, Some(Duration::from_millis(1))),
            Duration::from_secs(1) + Duration::from_millis(600)
        );
    }

    #[test]
    fn rate_limits_and_server_errors_are_retried_until_success() {
        let (result, attempts, waits) = run_script(
            3,
            0.0,
            vec![
                Err(api(429, 20429).into()),
                Err(api(500, 20500).into()),
                Err(api(503, 20503).into()),
                Ok("sent"),
            ],
        );
        assert_eq!(result.unwrap(), "sent");
        assert_eq!(attempts, 4);
        assert_eq!(waits, ms(&[50, 100, 200]));
    }

    #[test]
    fn client_errors_are_never_retried() {
        for (status, code) in [(400, 21211), (401, 20003), (404, 20404), (400, 21610)] {
            let (result, attempts, waits) = run_script(5, 0.5, vec![Err(api(status, code).into())]);
            assert_eq!(result.unwrap_err().http_status(), Some(status));
            assert_eq!(attempts, 1, "{code}");
            assert!(waits.is_empty(), "{code}");
        }
    }

    #[test]
    fn retries_stop_at_the_limit_with_the_last_error() {
        let script = (0..5).map(|_| Err(api(500, 20500).into())).collect();
        let (result, attempts, waits) = run_script(2, 1.0, script);
        assert_eq!(result.unwrap_err().http_status(), Some(500));
        assert_eq!(attempts, 3);
        assert_eq!(waits, ms(&[100, 200]));
    }

    #[test]
    fn zero_retries_means_one_attempt() {
        let (result, attempts, waits) = run_script(0, 0.0, vec![Err(api(503, 20503).into())]);
        assert!(result.is_err());
        assert_eq!((attempts, waits.len()), (1, 0));
    }

    #[test]
    fn a_retry_after_beyond_the_cap_ends_the_retries() {
        let failure = Failure {
            error: api(429, 20429),
            retry_after: Some(Duration::from_secs(60)),
        };
        let (result, attempts, waits) = run_script(3, 0.0, vec![Err(failure)]);
        assert!(result.unwrap_err().is_retryable());
        assert_eq!((attempts, waits.len()), (1, 0));
    }

    #[test]
    fn transport_errors_are_retried_only_when_safe() {
        let transport = |retryable| {
            Err(Failure::from(TwilioError::Transport {
                message: "connection refused".to_owned(),
                retryable,
            }))
        };
        let (result, attempts, _) = run_script(3, 0.0, vec![transport(true), Ok("sent")]);
        assert_eq!((result.unwrap(), attempts), ("sent", 2));
        let (result, attempts, _) = run_script(3, 0.0, vec![transport(false)]);
        assert_eq!((result.is_err(), attempts), (true, 1));
    }

    fn check_retry_after(value: &str, date: Option<&str>, expected: Option<Duration>) {
        // 2026-11-30T17:00:00Z, a local clock that disagrees with the server's.
        let now = UNIX_EPOCH + Duration::from_secs(1_796_058_000);
        assert_eq!(
            retry_after(value, date, now),
            expected,
            "Retry-After: {value:?}, Date: {date:?}"
        );
    }

    // Issue 14, item 6: an HTTP-date `Retry-After` was read as no wait.
    #[test]
    fn retry_after_is_read_in_both_of_its_forms() {
        let secs = |s| Some(Duration::from_secs(s));
        check_retry_after("120", None, secs(120));
        check_retry_after(" 0 ", None, secs(0));
        check_retry_after("99999999999999999999999", None, Some(Duration::MAX));
        // The three date formats RFC 9110 asks a recipient to read.
        let date = Some("Mon, 30 Nov 2026 17:00:00 GMT");
        check_retry_after("Mon, 30 Nov 2026 17:00:30 GMT", date, secs(30));
        check_retry_after("Monday, 30-Nov-26 17:00:30 GMT", date, secs(30));
        check_retry_after("Mon Nov 30 17:00:30 2026", date, secs(30));
        // Measured against the server's clock when it sent `Date`...
        check_retry_after(
            "Mon, 30 Nov 2026 18:00:30 GMT",
            Some("Mon, 30 Nov 2026 18:00:00 GMT"),
            secs(30),
        );
        // ...else against ours; a date already past asks for no wait.
        check_retry_after("Mon, 30 Nov 2026 17:01:00 GMT", None, secs(60));
        check_retry_after("Mon, 30 Nov 2026 17:01:00 GMT", Some("garbage"), secs(60));
        check_retry_after("Mon, 30 Nov 2026 16:00:00 GMT", None, secs(0));
        for unreadable in ["", "-5", "1.5", "soon", "30 s", "Mon, 30 Nov 2026"] {
            check_retry_after(unreadable, None, None);
        }
    }

    #[test]
    fn random_units_stay_in_range_and_vary() {
        let values: Vec<f64> = (0..1000).map(|_| random_unit()).collect();
        assert!(values.iter().all(|v| (0.0..1.0).contains(v)));
        let distinct = values
            .iter()
            .map(|v| v.to_bits())
            .collect::<std::collections::HashSet<_>>();
        assert!(distinct.len() > 990);
    }
}
