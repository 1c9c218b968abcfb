//! Rate limits per API key, configurable per scope (`[rate_limits]` in the
//! configuration): one GCRA token bucket (the `governor` crate) per key and
//! scope, so a key's reads do not use up its writes and one key never slows
//! another.
//!
//! Answers carry the fields of the IETF draft "RateLimit header fields for
//! HTTP" (draft-ietf-httpapi-ratelimit-headers-06): `RateLimit-Limit` (the
//! burst), `RateLimit-Remaining`, `RateLimit-Reset` (seconds until the
//! bucket is full again); a refusal adds `Retry-After` (seconds, RFC 9110).

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use serde::Deserialize;

use crate::keys::Scope;

/// `[rate_limits]`: the default limit and limits by scope.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// For scopes not listed in `scopes`.
    #[serde(default = "Limit::default_limit")]
    pub default: Limit,
    /// By scope name, e.g. `"plugins:write" = { per_second = 2, burst = 10 }`.
    #[serde(default)]
    pub scopes: BTreeMap<Scope, Limit>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            default: Limit::default_limit(),
            scopes: BTreeMap::new(),
        }
    }
}

/// One limit: a bucket of `burst` requests refilled at `per_second`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    /// Requests per second in the long run (may be below 1, e.g. 0.5).
    pub per_second: f64,
    /// Requests that may come at once.
    pub burst: u32,
}

impl Limit {
    fn default_limit() -> Self {
        Self {
            per_second: 100.0,
            burst: 200,
        }
    }

    fn quota(self, scope: &str) -> Result<Quota, String> {
        let burst = NonZeroU32::new(self.burst)
            .ok_or_else(|| format!("[rate_limits] {scope}: `burst` must be at least 1"))?;
        if !(self.per_second.is_finite() && self.per_second > 0.0 && self.per_second <= 1e6) {
            return Err(format!(
                "[rate_limits] {scope}: `per_second` must be above 0 and at most 1000000, not {}",
                self.per_second
            ));
        }
        let period = Duration::from_secs_f64(1.0 / self.per_second);
        Quota::with_period(period)
            .map(|q| q.allow_burst(burst))
            .ok_or_else(|| format!("[rate_limits] {scope}: `per_second` is too high"))
    }
}

type KeyedLimiter = RateLimiter<
    Arc<str>,
    DefaultKeyedStateStore<Arc<str>>,
    DefaultClock,
    StateInformationMiddleware,
>;

/// The outcome of one request's check, with what the headers say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the request may go on.
    pub allowed: bool,
    /// `RateLimit-Limit`: the burst.
    pub limit: u32,
    /// `RateLimit-Remaining`.
    pub remaining: u32,
    /// `RateLimit-Reset`, whole seconds (rounded up).
    pub reset_secs: u64,
    /// `Retry-After` when refused, whole seconds (rounded up, at least 1).
    pub retry_after_secs: u64,
}

/// The limiters of every scope.
pub struct RateLimits {
    by_scope: BTreeMap<Scope, KeyedLimiter>,
    clock: DefaultClock,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits").finish_non_exhaustive()
    }
}

impl RateLimits {
    /// Limiters for `config`.
    ///
    /// # Errors
    /// A limit with a zero burst or a rate that is not a positive number.
    pub fn new(config: &RateLimitConfig) -> Result<Self, String> {
        let clock = DefaultClock::default();
        let mut by_scope = BTreeMap::new();
        for scope in Scope::ALL {
            let (limit, name) = match config.scopes.get(&scope) {
                Some(limit) => (*limit, scope.as_str().to_owned()),
                None => (config.default, "default".to_owned()),
            };
            let limiter = RateLimiter::dashmap_with_clock(limit.quota(&name)?, clock.clone())
                .with_middleware::<StateInformationMiddleware>();
            by_scope.insert(scope, limiter);
        }
        Ok(Self { by_scope, clock })
    }

    /// Takes one request of `key` under `scope` from its bucket.
    pub fn check(&self, scope: Scope, key: &Arc<str>) -> Verdict {
        let Some(limiter) = self.by_scope.get(&scope) else {
            // `new` fills every scope of `Scope::ALL`.
            return Verdict {
                allowed: true,
                limit: 0,
                remaining: 0,
                reset_secs: 0,
                retry_after_secs: 0,
            };
        };
        match limiter.check_key(key) {
            Ok(snapshot) => {
                let quota = snapshot.quota();
                let remaining = snapshot.remaining_burst_capacity();
                let missing = quota.burst_size().get().saturating_sub(remaining);
                let reset = quota.replenish_interval() * missing;
                Verdict {
                    allowed: true,
                    limit: quota.burst_size().get(),
                    remaining,
                    reset_secs: ceil_secs(reset),
                    retry_after_secs: 0,
                }
            }
            Err(not_until) => {
                let quota = not_until.quota();
                let wait = not_until.wait_time_from(self.clock.now());
                let full = quota.replenish_interval() * quota.burst_size().get();
                Verdict {
                    allowed: false,
                    limit: quota.burst_size().get(),
                    remaining: 0,
                    reset_secs: ceil_secs(full),
                    retry_after_secs: ceil_secs(wait).max(1),
                }
            }
        }
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(text: &str) -> Result<RateLimits, String> {
        let config: RateLimitConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        RateLimits::new(&config)
    }

    #[test]
    fn a_key_over_its_burst_is_refused_and_another_key_is_not() {
        let l = limits("[scopes]\n\"plugins:write\" = { per_second = 0.5, burst = 3 }\n")
            .expect("valid");
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("key_a"), Arc::from("key_b"));
        let mut remaining = Vec::new();
        for _ in 0..3 {
            let v = l.check(Scope::PluginsWrite, &a);
            assert!(v.allowed);
            assert_eq!(v.limit, 3);
            remaining.push(v.remaining);
        }
        assert_eq!(remaining, [2, 1, 0]);
        let refused = l.check(Scope::PluginsWrite, &a);
        assert!(!refused.allowed);
        assert_eq!(refused.remaining, 0);
        assert!((1..=2).contains(&refused.retry_after_secs), "{refused:?}");
        assert_eq!(refused.reset_secs, 6);
        assert!(l.check(Scope::PluginsWrite, &b).allowed);
        // The default limit of another scope is a bucket of its own.
        let read = l.check(Scope::PluginsRead, &a);
        assert!(read.allowed);
        assert_eq!(read.limit, 200);
    }

    #[test]
    fn bad_limits_are_refused_with_the_scope() {
        for (text, part) in [
            (
                "default = { per_second = 0, burst = 1 }",
                "default: `per_second`",
            ),
            (
                "default = { per_second = 1, burst = 0 }",
                "default: `burst`",
            ),
            (
                "[scopes]\n\"audit:read\" = { per_second = -1, burst = 1 }",
                "audit:read: `per_second`",
            ),
            (
                "[scopes]\n\"audit:write\" = { per_second = 1, burst = 1 }",
                "unknown scope",
            ),
        ] {
            let error = limits(text).expect_err(text);
            assert!(error.contains(part), "{error:?} lacks {part:?}");
        }
    }
}
