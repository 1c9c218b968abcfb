//! Per-plugin and per-(plugin, tenant) counters and a sampled latency
//! histogram, cheap enough for the call path: one relaxed atomic increment
//! per call on the tenant's own counters, and two clock reads on one call
//! in 256 (reading the clock on every 16th call cost 20% of an empty plugin
//! call, measured with perf).
//!
//! Each tenant a plugin is activated for gets its [`Counters`], created at
//! activation and held by the plugin's active-tenant map ([`ActiveTenants`]),
//! by fast-path tenant handles and by cached hook targets, so a call finds
//! them with the tenant check it already does: no second lookup. The
//! plugin's totals are its own counters (lifecycle errors, denials outside
//! a tenant) plus every tenant's, folded when read.
//!
//! The fast call path (`fast`) counts in a [`CallShard`] per handle and
//! tenant instead: a plain load and store by its one writer, no shared cache
//! line, folded into the tenant's totals when read and when the handle is
//! dropped.
//!
//! # Invariants (and the tests that keep them)
//! - Per-tenant counts are exact: a call is counted once, under the tenant
//!   it was made for, on every path (`invoke`, typed calls, fast-path
//!   method handles, bound plugins, hooks)
//!   (`metrics::per_tenant_counts_are_exact_on_every_call_path` in `tests/all`).
//! - Cardinality is bounded: at most [`TENANT_SERIES_LIMIT`] tenants per
//!   plugin get their own counters, created only for tenants the plugin was
//!   activated for; later ones share the entry [`OTHER_TENANTS`]. Entries
//!   stay while the plugin is loaded (counters never go back), so a tenant
//!   deactivated and activated again continues its counts
//!   (`tests::tenants_beyond_the_limit_share_one_entry`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use serde::Serialize;

/// One clock read per this many calls.
pub(crate) const SAMPLE_EVERY: u64 = 256;
const BUCKETS: usize = 48;

/// Tenants per plugin that get counters of their own; calls for tenants
/// activated after these count under [`OTHER_TENANTS`].
pub const TENANT_SERIES_LIMIT: usize = 1_000;

/// The tenant name under which tenants beyond [`TENANT_SERIES_LIMIT`] count
/// (not a valid tenant id, so it never names a real one).
pub const OTHER_TENANTS: &str = "(other)";

/// Live counters for one (plugin, tenant), or for a plugin's work outside
/// any tenant.
pub(crate) struct Counters {
    calls: AtomicU64,
    errors: AtomicU64,
    panics: AtomicU64,
    denied: AtomicU64,
    hook_failures: AtomicU64,
    latency: [AtomicU64; BUCKETS],
    /// The call counters of live fast-path handles, summed on read.
    shards: Mutex<Vec<Weak<CallShard>>>,
}

/// One handle's call counter for one tenant. Written only by the handle
/// that owns it (its calls take `&mut self`), so counting is a load and a
/// store, not a locked read-modify-write; readers on other threads see a
/// recent value.
#[derive(Default)]
pub(crate) struct CallShard {
    calls: AtomicU64,
}

impl CallShard {
    /// Counts one call by the owning handle; returns true when this call's
    /// latency should be sampled (one in [`SAMPLE_EVERY`]).
    #[inline(always)]
    pub(crate) fn count(&self) -> bool {
        let n = self.calls.load(Relaxed);
        self.calls.store(n.wrapping_add(1), Relaxed);
        n.is_multiple_of(SAMPLE_EVERY)
    }
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            calls: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            panics: AtomicU64::new(0),
            denied: AtomicU64::new(0),
            hook_failures: AtomicU64::new(0),
            latency: std::array::from_fn(|_| AtomicU64::new(0)),
            shards: Mutex::new(Vec::new()),
        }
    }
}

/// Counts read from [`Counters`] at one moment.
#[derive(Clone, Copy)]
struct Counts {
    calls: u64,
    errors: u64,
    panics: u64,
    denied: u64,
    hook_failures: u64,
    latency: [u64; BUCKETS],
}

impl Counts {
    fn add(&mut self, other: &Self) {
        self.calls += other.calls;
        self.errors += other.errors;
        self.panics += other.panics;
        self.denied += other.denied;
        self.hook_failures += other.hook_failures;
        for (mine, theirs) in self.latency.iter_mut().zip(other.latency) {
            *mine += theirs;
        }
    }
}

impl Counters {
    /// Counts a call; returns true when this call's latency should be sampled.
    #[inline]
    pub(crate) fn start_call(&self) -> bool {
        self.calls
            .fetch_add(1, Relaxed)
            .is_multiple_of(SAMPLE_EVERY)
    }

    /// A new call counter for one handle, counted in these totals.
    pub(crate) fn new_shard(&self) -> Arc<CallShard> {
        let shard = Arc::new(CallShard::default());
        let mut shards = self.shards.lock();
        shards.retain(|s| s.strong_count() > 0);
        shards.push(Arc::downgrade(&shard));
        shard
    }

    /// Folds a handle's counter into the totals when the handle goes away.
    /// A snapshot taken at that instant may miss or double-count those calls
    /// once; the next one is exact.
    pub(crate) fn retire_shard(&self, shard: &CallShard) {
        self.calls.fetch_add(shard.calls.swap(0, Relaxed), Relaxed);
    }

    /// Adds one sampled call's latency to the histogram.
    pub(crate) fn record_latency(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX).max(1);
        let bucket = (63 - nanos.leading_zeros() as usize).min(BUCKETS - 1);
        self.latency[bucket].fetch_add(1, Relaxed);
    }

    fn count_error(&self, panicked: bool) {
        self.errors.fetch_add(1, Relaxed);
        if panicked {
            self.panics.fetch_add(1, Relaxed);
        }
    }

    fn counts(&self) -> Counts {
        let shard_calls: u64 = self
            .shards
            .lock()
            .iter()
            .filter_map(Weak::upgrade)
            .map(|s| s.calls.load(Relaxed))
            .sum();
        Counts {
            calls: self.calls.load(Relaxed) + shard_calls,
            errors: self.errors.load(Relaxed),
            panics: self.panics.load(Relaxed),
            denied: self.denied.load(Relaxed),
            hook_failures: self.hook_failures.load(Relaxed),
            latency: std::array::from_fn(|i| self.latency[i].load(Relaxed)),
        }
    }
}

/// The tenants a plugin is active for, each with its counters: the call
/// path's tenant check and its counter lookup are one map lookup. Copied on
/// write (see `Slot::active_tenants`).
#[derive(Clone, Default)]
pub(crate) struct ActiveTenants(BTreeMap<String, Arc<Counters>>);

impl ActiveTenants {
    /// Whether the plugin is active for `tenant`.
    #[inline]
    pub(crate) fn contains(&self, tenant: &str) -> bool {
        self.0.contains_key(tenant)
    }

    /// The counters of `tenant`, when the plugin is active for it.
    #[inline]
    pub(crate) fn get(&self, tenant: &str) -> Option<&Arc<Counters>> {
        self.0.get(tenant)
    }

    pub(crate) fn insert(&mut self, tenant: String, counters: Arc<Counters>) {
        self.0.insert(tenant, counters);
    }

    pub(crate) fn remove(&mut self, tenant: &str) {
        self.0.remove(tenant);
    }
}

/// Live counters for one plugin.
pub(crate) struct PluginMetrics {
    /// What happens outside any tenant: lifecycle steps' errors, denials
    /// of services called without one.
    own: Counters,
    reloads: AtomicU64,
    rollbacks: AtomicU64,
    last_error: Mutex<Option<String>>,
    custom: Mutex<BTreeMap<String, f64>>,
    /// Each tenant's counters, by tenant (bounded, see [`TENANT_SERIES_LIMIT`]).
    tenants: RwLock<BTreeMap<String, Arc<Counters>>>,
}

impl Default for PluginMetrics {
    fn default() -> Self {
        Self {
            own: Counters::default(),
            reloads: AtomicU64::new(0),
            rollbacks: AtomicU64::new(0),
            last_error: Mutex::new(None),
            custom: Mutex::new(BTreeMap::new()),
            tenants: RwLock::new(BTreeMap::new()),
        }
    }
}

impl PluginMetrics {
    /// The counters of `tenant`, created on first use (at activation); the
    /// shared [`OTHER_TENANTS`] entry once [`TENANT_SERIES_LIMIT`] tenants
    /// have their own.
    pub(crate) fn tenant(&self, tenant: &str) -> Arc<Counters> {
        if let Some(counters) = self.tenants.read().get(tenant) {
            return Arc::clone(counters);
        }
        let mut tenants = self.tenants.write();
        if let Some(counters) = tenants.get(tenant) {
            return Arc::clone(counters);
        }
        let own = tenants.len() - usize::from(tenants.contains_key(OTHER_TENANTS));
        let key = if own >= TENANT_SERIES_LIMIT {
            OTHER_TENANTS
        } else {
            tenant
        };
        Arc::clone(tenants.entry(key.to_owned()).or_default())
    }

    /// The counters of `tenant` when it already has some, else the plugin's
    /// own: for tenants named by a plugin (a service call), which must not
    /// create series.
    fn known(&self, tenant: Option<&str>) -> Option<Arc<Counters>> {
        tenant.and_then(|t| self.tenants.read().get(t).cloned())
    }

    /// Counts a failed call under `counters` (a tenant's, or `None` for the
    /// plugin's own) and keeps its message.
    pub(crate) fn record_error(&self, counters: Option<&Counters>, message: &str, panicked: bool) {
        counters.unwrap_or(&self.own).count_error(panicked);
        *self.last_error.lock() = Some(message.to_owned());
    }

    /// Counts a failed hook invocation; returns the error's message.
    pub(crate) fn record_hook_error(
        &self,
        counters: &Counters,
        error: &plugin_api::PluginError,
    ) -> String {
        let message = error.to_string();
        self.record_error(
            Some(counters),
            &message,
            matches!(error, plugin_api::PluginError::Panicked { .. }),
        );
        counters.hook_failures.fetch_add(1, Relaxed);
        message
    }

    pub(crate) fn record_reload(&self, swapped: bool) {
        if swapped {
            self.reloads.fetch_add(1, Relaxed);
        } else {
            self.rollbacks.fetch_add(1, Relaxed);
        }
    }

    /// Counts a refused host service call, under the tenant it named when
    /// that tenant has counters.
    pub(crate) fn record_denied(&self, tenant: Option<&str>) {
        match self.known(tenant) {
            Some(counters) => counters.denied.fetch_add(1, Relaxed),
            None => self.own.denied.fetch_add(1, Relaxed),
        };
    }

    pub(crate) fn record_custom(&self, name: &str, value: f64) {
        self.custom.lock().insert(name.to_owned(), value);
    }

    pub(crate) fn snapshot(&self) -> MetricsSnapshot {
        let mut total = self.own.counts();
        for counters in self.tenants.read().values() {
            total.add(&counters.counts());
        }
        MetricsSnapshot {
            calls: total.calls,
            errors: total.errors,
            panics: total.panics,
            permission_denials: total.denied,
            hook_failures: total.hook_failures,
            reloads: self.reloads.load(Relaxed),
            rollbacks: self.rollbacks.load(Relaxed),
            latency_p50_ns: quantile(&total.latency, 0.50),
            latency_p99_ns: quantile(&total.latency, 0.99),
            latency_buckets: total.latency.to_vec(),
            last_error: self.last_error.lock().clone(),
            custom: self.custom.lock().clone(),
        }
    }

    /// Every tenant's counts, by tenant (the tenants the plugin was ever
    /// activated for while loaded, within [`TENANT_SERIES_LIMIT`]).
    pub(crate) fn tenant_snapshots(&self) -> BTreeMap<String, TenantMetricsSnapshot> {
        let tenants: Vec<(String, Arc<Counters>)> = self
            .tenants
            .read()
            .iter()
            .map(|(t, c)| (t.clone(), Arc::clone(c)))
            .collect();
        tenants
            .into_iter()
            .map(|(tenant, counters)| {
                let c = counters.counts();
                let snapshot = TenantMetricsSnapshot {
                    calls: c.calls,
                    errors: c.errors,
                    panics: c.panics,
                    permission_denials: c.denied,
                    hook_failures: c.hook_failures,
                    latency_p50_ns: quantile(&c.latency, 0.50),
                    latency_p99_ns: quantile(&c.latency, 0.99),
                    latency_buckets: c.latency.to_vec(),
                };
                (tenant, snapshot)
            })
            .collect()
    }
}

/// The upper bound of the histogram bucket holding quantile `q`.
fn quantile(counts: &[u64], q: f64) -> Option<u64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (bucket, count) in counts.iter().enumerate() {
        seen += count;
        if seen >= rank {
            return Some(1u64 << (bucket + 1).min(63));
        }
    }
    None
}

/// A plugin's metrics at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricsSnapshot {
    /// Calls made into the plugin.
    pub calls: u64,
    /// Calls that returned an error or panicked.
    pub errors: u64,
    /// Panics the SDK caught.
    pub panics: u64,
    /// Host service calls refused for an undeclared permission.
    pub permission_denials: u64,
    /// Event hook invocations that failed.
    pub hook_failures: u64,
    /// Hot reloads that swapped in a new version.
    pub reloads: u64,
    /// Hot reloads rolled back.
    pub rollbacks: u64,
    /// Median call latency (power-of-two bucket upper bound), sampled.
    pub latency_p50_ns: Option<u64>,
    /// 99th percentile call latency (bucket upper bound), sampled.
    pub latency_p99_ns: Option<u64>,
    /// The sampled calls by latency: entry `i` counts those that took at
    /// least `2^i` ns and less than `2^(i+1)` ns (the first also counts
    /// below 1 ns). Left out of the JSON form; the daemon's Prometheus
    /// endpoint exports it as a histogram.
    #[serde(skip)]
    pub latency_buckets: Vec<u64>,
    /// The last error message.
    pub last_error: Option<String>,
    /// Values the plugin recorded itself.
    pub custom: BTreeMap<String, f64>,
}

/// One tenant's metrics for one plugin at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantMetricsSnapshot {
    /// Calls made into the plugin for the tenant (service, typed and
    /// fast-path calls, and hook invocations).
    pub calls: u64,
    /// Those that returned an error or panicked.
    pub errors: u64,
    /// Panics the SDK caught in them.
    pub panics: u64,
    /// Host service calls naming the tenant refused for an undeclared permission.
    pub permission_denials: u64,
    /// Event hook invocations for the tenant that failed.
    pub hook_failures: u64,
    /// Median call latency (power-of-two bucket upper bound), sampled.
    pub latency_p50_ns: Option<u64>,
    /// 99th percentile call latency (bucket upper bound), sampled.
    pub latency_p99_ns: Option<u64>,
    /// The sampled calls by latency, as in [`MetricsSnapshot::latency_buckets`].
    #[serde(skip)]
    pub latency_buckets: Vec<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(samples: &[u64], q: f64, expected: Option<u64>) {
        let m = Counters::default();
        for &ns in samples {
            m.record_latency(Duration::from_nanos(ns));
        }
        assert_eq!(
            quantile(&m.counts().latency, q),
            expected,
            "{samples:?} q={q}"
        );
    }

    #[test]
    fn quantiles_report_bucket_upper_bounds() {
        check(&[], 0.5, None);
        check(&[100], 0.5, Some(128));
        check(&[100, 100, 100, 5000], 0.5, Some(128));
        check(&[100, 100, 100, 5000], 0.99, Some(8192));
        check(&[1], 0.5, Some(2));
    }

    #[test]
    fn one_call_in_sample_every_is_sampled() {
        let m = PluginMetrics::default();
        let acme = m.tenant("acme");
        let sampled = (0..SAMPLE_EVERY * 4).filter(|_| acme.start_call()).count();
        assert_eq!(sampled, 4);
        assert_eq!(m.snapshot().calls, SAMPLE_EVERY * 4);
        assert_eq!(m.tenant_snapshots()["acme"].calls, SAMPLE_EVERY * 4);
    }

    #[test]
    fn plugin_totals_fold_every_tenant_and_its_own_counts() {
        let m = PluginMetrics::default();
        let (a, b) = (m.tenant("a"), m.tenant("b"));
        a.start_call();
        b.start_call();
        b.start_call();
        let shard = a.new_shard();
        shard.count();
        m.record_error(Some(&b), "b failed", true);
        m.record_error(None, "init failed", false);
        m.record_denied(Some("a"));
        // A tenant the plugin names itself gets no series of its own.
        m.record_denied(Some("never-activated"));
        let total = m.snapshot();
        assert_eq!(
            (
                total.calls,
                total.errors,
                total.panics,
                total.permission_denials
            ),
            (4, 2, 1, 2)
        );
        let tenants = m.tenant_snapshots();
        assert_eq!(tenants.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(
            (tenants["a"].calls, tenants["a"].permission_denials),
            (2, 1)
        );
        assert_eq!(
            (tenants["b"].calls, tenants["b"].errors, tenants["b"].panics),
            (2, 1, 1)
        );
        // A retired shard's calls stay counted.
        a.retire_shard(&shard);
        drop(shard);
        assert_eq!(m.tenant_snapshots()["a"].calls, 2);
    }

    #[test]
    fn tenants_beyond_the_limit_share_one_entry() {
        let m = PluginMetrics::default();
        for i in 0..TENANT_SERIES_LIMIT + 5 {
            m.tenant(&format!("t{i}")).start_call();
        }
        // Asked again, a tracked tenant keeps its counters.
        m.tenant("t0").start_call();
        let tenants = m.tenant_snapshots();
        assert_eq!(tenants.len(), TENANT_SERIES_LIMIT + 1);
        assert_eq!(tenants[OTHER_TENANTS].calls, 5);
        assert_eq!(tenants["t0"].calls, 2);
        assert_eq!(m.snapshot().calls, TENANT_SERIES_LIMIT as u64 + 6);
    }
}
