//! The admin page's metric history: a ring of samples per plugin (one every
//! [`INTERVAL`], [`KEPT`] of them: 15 minutes), read from the host's public
//! metrics API ([`plugin_host::Host::metrics`]) by a sampler thread.
//! Counts are cumulative as the host reports them; the page draws the
//! differences.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::Daemon;

/// Time between samples.
pub const INTERVAL: Duration = Duration::from_secs(5);
/// Samples kept per plugin (15 minutes at [`INTERVAL`]).
pub const KEPT: usize = 180;

/// One plugin's numbers at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sample {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Calls into the plugin so far.
    pub calls: u64,
    /// Calls that failed or panicked so far.
    pub errors: u64,
    /// Median call latency, ns (bucket upper bound), when sampled.
    pub p50_ns: Option<u64>,
    /// 99th percentile call latency, ns (bucket upper bound), when sampled.
    pub p99_ns: Option<u64>,
    /// Hot reloads that swapped a new version in, so far.
    pub reloads: u64,
    /// Hot reloads rolled back, so far.
    pub rollbacks: u64,
    /// Calls and errors so far per tenant (`Host::tenant_metrics`).
    pub tenants: BTreeMap<String, TenantSample>,
}

/// One tenant's numbers for one plugin at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantSample {
    /// Calls into the plugin for the tenant so far.
    pub calls: u64,
    /// Those that failed or panicked.
    pub errors: u64,
}

/// The rings, by plugin id.
#[derive(Debug, Default)]
pub struct Series {
    rings: Mutex<BTreeMap<String, VecDeque<Sample>>>,
}

impl Series {
    /// Appends `sample` to `plugin`'s ring, dropping the oldest beyond [`KEPT`].
    pub fn push(&self, plugin: &str, sample: Sample) {
        let mut rings = self.rings.lock().unwrap_or_else(PoisonError::into_inner);
        let ring = rings.entry(plugin.to_owned()).or_default();
        ring.push_back(sample);
        while ring.len() > KEPT {
            ring.pop_front();
        }
    }

    /// Forgets plugins not in `loaded` (removed ones).
    pub fn retain(&self, loaded: &[String]) {
        self.rings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|id, _| loaded.contains(id));
    }

    /// Every ring, oldest sample first.
    pub fn snapshot(&self) -> BTreeMap<String, Vec<Sample>> {
        self.rings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(id, ring)| (id.clone(), ring.iter().cloned().collect()))
            .collect()
    }
}

/// Every loaded plugin's numbers now.
pub fn sample_now(daemon: &Daemon) -> BTreeMap<String, Sample> {
    let at_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let host = daemon.host();
    host.plugin_ids()
        .into_iter()
        .filter_map(|id| {
            let m = host.metrics(&id).ok()?;
            let tenants = host
                .tenant_metrics(&id)
                .ok()?
                .into_iter()
                .map(|(tenant, t)| {
                    let sample = TenantSample {
                        calls: t.calls,
                        errors: t.errors,
                    };
                    (tenant, sample)
                })
                .collect();
            Some((
                id,
                Sample {
                    at_ms,
                    calls: m.calls,
                    errors: m.errors,
                    p50_ns: m.latency_p50_ns,
                    p99_ns: m.latency_p99_ns,
                    reloads: m.reloads,
                    rollbacks: m.rollbacks,
                    tenants,
                },
            ))
        })
        .collect()
}

/// Starts the sampler thread; it ends when the daemon is dropped or stopping.
pub fn start_sampler(daemon: &Arc<Daemon>, series: &Arc<Series>) {
    let daemon: Weak<Daemon> = Arc::downgrade(daemon);
    let series = Arc::clone(series);
    let spawned = std::thread::Builder::new()
        .name("metrics-sampler".to_owned())
        .spawn(move || loop {
            {
                let Some(daemon) = daemon.upgrade() else {
                    return;
                };
                if daemon.is_stopping() {
                    return;
                }
                let now = sample_now(&daemon);
                series.retain(&now.keys().cloned().collect::<Vec<_>>());
                for (id, sample) in now {
                    series.push(&id, sample);
                }
            }
            std::thread::sleep(INTERVAL);
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the metrics sampler: {e}; the page shows no history");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_ms: u64) -> Sample {
        Sample {
            at_ms,
            calls: at_ms,
            errors: 0,
            p50_ns: None,
            p99_ns: None,
            reloads: 0,
            rollbacks: 0,
            tenants: BTreeMap::new(),
        }
    }

    #[test]
    fn a_ring_keeps_the_newest_samples_and_forgets_removed_plugins() {
        let series = Series::default();
        for at in 0..(KEPT as u64 + 5) {
            series.push("a", sample(at));
        }
        series.push("b", sample(1));
        let rings = series.snapshot();
        assert_eq!(rings["a"].len(), KEPT);
        assert_eq!(rings["a"][0].at_ms, 5);
        assert_eq!(rings["a"].last().map(|s| s.at_ms), Some(KEPT as u64 + 4));
        series.retain(&["a".to_owned()]);
        assert_eq!(series.snapshot().keys().collect::<Vec<_>>(), ["a"]);
    }
}
