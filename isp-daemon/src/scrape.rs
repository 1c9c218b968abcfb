//! `GET /metrics`: the daemon's plugins and tenants in the OpenMetrics text
//! format Prometheus scrapes (the successor of its text exposition format,
//! which Prometheus asks for first), encoded by `prometheus-client`.
//!
//! Invariants:
//! - Nothing is counted here: every number is read on scrape from the
//!   host's public status API (`Host::statuses`, `Host::metrics`,
//!   `Host::tenant_metrics`, `Host::isolation_status`) and the platform's tenants, so the call path
//!   keeps its single set of counters. Test: `daemon::metrics::
//!   prometheus_scrapes_plugin_and_tenant_series` (a real Prometheus).
//! - A scrape never calls into a plugin (no health check): it reads
//!   counters and states only. It does wait for a lifecycle step in
//!   progress (a plugin's state is read under its lifecycle lock), so it
//!   runs on a blocking thread, never on the async workers.
//!
//! Series (all prefixed `plugkit_`; `plugin` is the plugin id):
//! - `plugin_calls_total`, `plugin_errors_total`, `plugin_panics_total`,
//!   `plugin_permission_denials_total`, `plugin_hook_failures_total`:
//!   counters since the plugin was loaded.
//! - `plugin_reloads_total{outcome="swapped"|"rolled_back"}`.
//! - `plugin_call_duration_seconds`: histogram of the sampled calls (the
//!   host times one call in 256), buckets at powers of four nanoseconds
//!   from ~1 µs to ~17 s; `_sum` is estimated from the buckets' midpoints.
//! - Per plugin and tenant (`plugin`, `tenant`): `plugin_tenant_calls_total`,
//!   `plugin_tenant_errors_total`, `plugin_tenant_panics_total`,
//!   `plugin_tenant_permission_denials_total`,
//!   `plugin_tenant_hook_failures_total` and
//!   `plugin_tenant_call_duration_seconds`, from `Host::tenant_metrics`:
//!   one set per tenant the plugin was activated for since it was loaded,
//!   at most `TENANT_SERIES_LIMIT` (1,000) tenants per plugin, later ones
//!   together as `tenant="(other)"`. The per-plugin families are the sum
//!   of these plus what happened outside any tenant (a lifecycle step's
//!   error); reloads are per plugin only (a reload swaps every tenant's
//!   version at once).
//! - `plugin_info{version,state}` 1, `plugin_up` 1 unless failed or cleaned up.
//! - `plugin_tenant_active{tenant}` 1 for each tenant the plugin serves.
//! - `plugin_isolation_restarts_total`, `plugin_quarantined` for plugins
//!   in a child process.
//! - `plugin_custom{name}`: values the plugin recorded itself.
//! - `tenant_info{tenant,tier}` 1 for every tenant.
//! - `flow_runs_total{flow,tenant,outcome="reached"|"missed"}` and
//!   `flow_steps_total{flow,tenant,plugin,outcome}`: the ISP flows by
//!   tenant, and each step by the plugin (or `hooks`, `platform`, `isp`)
//!   that took it, from `flow_stats`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use plugin_host::isolation::IsolationStatus;
use std::collections::BTreeMap;

use plugin_host::status::{MetricsSnapshot, PluginState, TenantMetricsSnapshot};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::daemon::Daemon;
use crate::error::Problem;

/// The content type of the OpenMetrics text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One plugin as the host reports it.
#[derive(Debug)]
struct PluginSample {
    id: String,
    version: String,
    state: PluginState,
    state_name: String,
    tenants: Vec<String>,
    metrics: MetricsSnapshot,
    /// The plugin's counters per tenant.
    by_tenant: BTreeMap<String, TenantMetricsSnapshot>,
    isolation: Option<IsolationStatus>,
}

/// Everything one scrape reports, read at once.
#[derive(Debug)]
struct Sample {
    plugins: Vec<PluginSample>,
    tenants: Vec<(String, String)>,
    flow_runs: Vec<(String, String, bool, u64)>,
    flow_steps: Vec<(String, String, String, &'static str, u64)>,
}

impl Sample {
    fn of(daemon: &Daemon) -> Self {
        let host = daemon.host();
        let plugins = host
            .statuses()
            .into_iter()
            .filter_map(|status| {
                let id = status.identity.id.clone();
                // A plugin removed between the two reads is left out.
                let metrics = host.metrics(&id).ok()?;
                let by_tenant = host.tenant_metrics(&id).ok()?;
                Some(PluginSample {
                    isolation: host.isolation_status(&id),
                    version: status.identity.version.clone(),
                    state: status.state,
                    state_name: status.state.to_string(),
                    tenants: status.tenants,
                    metrics,
                    by_tenant,
                    id,
                })
            })
            .collect();
        Self {
            plugins,
            tenants: daemon.platform().tenants(),
            flow_runs: daemon.flow_stats().runs(),
            flow_steps: daemon.flow_stats().steps(),
        }
    }
}

/// A histogram whose buckets were counted elsewhere: `(upper bound in
/// seconds, count in that bucket alone)`, the last bound `f64::MAX`, which
/// prometheus-client writes as `+Inf` (`f64::INFINITY` would be `inf`).
#[derive(Debug)]
struct ConstHistogram {
    sum: f64,
    count: u64,
    buckets: Vec<(f64, u64)>,
}

impl EncodeMetric for ConstHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_histogram::<NoLabelSet>(self.sum, self.count, &self.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// Regroups the host's power-of-two latency buckets (bucket `i` holds
/// samples of at least `2^i` ns and below `2^(i+1)` ns) into buckets at
/// every second power of two, from `2^10` ns (~1 µs) to `2^34` ns (~17 s).
fn histogram(power_of_two_counts: &[u64]) -> ConstHistogram {
    const FIRST: u32 = 10;
    const LAST: u32 = 34;
    let mut buckets: Vec<(f64, u64)> = (FIRST..=LAST)
        .step_by(2)
        .map(|p| ((1u64 << p) as f64 / 1e9, 0))
        .chain(std::iter::once((f64::MAX, 0)))
        .collect();
    let (mut sum, mut count) = (0.0, 0);
    for (i, &n) in power_of_two_counts.iter().enumerate() {
        if n == 0 {
            continue;
        }
        let upper = (i as u32 + 1).min(63);
        let slot = buckets
            .iter()
            .position(|(bound, _)| (1u64 << upper) as f64 / 1e9 <= *bound)
            .unwrap_or(buckets.len() - 1);
        buckets[slot].1 += n;
        count += n;
        sum += n as f64 * 1.5 * (1u64 << i.min(62)) as f64 / 1e9;
    }
    ConstHistogram {
        sum,
        count,
        buckets,
    }
}

type Labels<'a> = Vec<(&'static str, &'a str)>;

/// Encodes one family: `metric` for each `(labels, value)`.
fn family<'a, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    rows: impl IntoIterator<Item = (Labels<'a>, M)>,
) -> Result<(), std::fmt::Error> {
    let mut rows = rows.into_iter().peekable();
    let Some((_, first)) = rows.peek() else {
        return Ok(());
    };
    let mut family = encoder.encode_descriptor(name, help, unit, first.metric_type())?;
    for (labels, metric) in rows {
        metric.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for Sample {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let e = &mut encoder;
        let by_plugin = |value: fn(&MetricsSnapshot) -> u64| {
            self.plugins.iter().map(move |p| {
                (
                    vec![("plugin", p.id.as_str())],
                    ConstCounter::new(value(&p.metrics)),
                )
            })
        };
        family(
            e,
            "plugin_calls",
            "Calls made into the plugin.",
            None,
            by_plugin(|m| m.calls),
        )?;
        family(
            e,
            "plugin_errors",
            "Calls that returned an error or panicked.",
            None,
            by_plugin(|m| m.errors),
        )?;
        family(
            e,
            "plugin_panics",
            "Panics the plugin SDK caught.",
            None,
            by_plugin(|m| m.panics),
        )?;
        family(
            e,
            "plugin_permission_denials",
            "Host service calls refused for a permission the plugin did not declare.",
            None,
            by_plugin(|m| m.permission_denials),
        )?;
        family(
            e,
            "plugin_hook_failures",
            "Event hook invocations that failed.",
            None,
            by_plugin(|m| m.hook_failures),
        )?;
        family(
            e,
            "plugin_reloads",
            "Hot reloads: swapped in a new version, or rolled back.",
            None,
            self.plugins.iter().flat_map(|p| {
                [
                    (
                        vec![("plugin", p.id.as_str()), ("outcome", "swapped")],
                        ConstCounter::new(p.metrics.reloads),
                    ),
                    (
                        vec![("plugin", p.id.as_str()), ("outcome", "rolled_back")],
                        ConstCounter::new(p.metrics.rollbacks),
                    ),
                ]
            }),
        )?;
        family(
            e,
            "plugin_call_duration",
            "Latency of the sampled calls into the plugin (one call in 256 is timed).",
            Some(&Unit::Seconds),
            self.plugins.iter().map(|p| {
                (
                    vec![("plugin", p.id.as_str())],
                    histogram(&p.metrics.latency_buckets),
                )
            }),
        )?;
        let by_tenant = |value: fn(&TenantMetricsSnapshot) -> u64| {
            self.plugins.iter().flat_map(move |p| {
                p.by_tenant.iter().map(move |(tenant, m)| {
                    (
                        vec![("plugin", p.id.as_str()), ("tenant", tenant.as_str())],
                        ConstCounter::new(value(m)),
                    )
                })
            })
        };
        family(
            e,
            "plugin_tenant_calls",
            "Calls made into the plugin for the tenant (hook invocations included).",
            None,
            by_tenant(|m| m.calls),
        )?;
        family(
            e,
            "plugin_tenant_errors",
            "Calls for the tenant that returned an error or panicked.",
            None,
            by_tenant(|m| m.errors),
        )?;
        family(
            e,
            "plugin_tenant_panics",
            "Panics the plugin SDK caught in calls for the tenant.",
            None,
            by_tenant(|m| m.panics),
        )?;
        family(
            e,
            "plugin_tenant_permission_denials",
            "Host service calls naming the tenant refused for a permission the plugin did not declare.",
            None,
            by_tenant(|m| m.permission_denials),
        )?;
        family(
            e,
            "plugin_tenant_hook_failures",
            "Event hook invocations for the tenant that failed.",
            None,
            by_tenant(|m| m.hook_failures),
        )?;
        family(
            e,
            "plugin_tenant_call_duration",
            "Latency of the sampled calls into the plugin for the tenant (one call in 256 is timed).",
            Some(&Unit::Seconds),
            self.plugins.iter().flat_map(|p| {
                p.by_tenant.iter().map(move |(tenant, m)| {
                    (
                        vec![("plugin", p.id.as_str()), ("tenant", tenant.as_str())],
                        histogram(&m.latency_buckets),
                    )
                })
            }),
        )?;
        family(
            e,
            "plugin_info",
            "The loaded plugin's version and lifecycle state (always 1).",
            None,
            self.plugins.iter().map(|p| {
                (
                    vec![
                        ("plugin", p.id.as_str()),
                        ("version", p.version.as_str()),
                        ("state", p.state_name.as_str()),
                    ],
                    ConstGauge::new(1i64),
                )
            }),
        )?;
        family(
            e,
            "plugin_up",
            "1 while the plugin can be called, 0 when it failed or was cleaned up.",
            None,
            self.plugins.iter().map(|p| {
                let up = !matches!(p.state, PluginState::Failed | PluginState::CleanedUp);
                (
                    vec![("plugin", p.id.as_str())],
                    ConstGauge::new(i64::from(up)),
                )
            }),
        )?;
        family(
            e,
            "plugin_tenant_active",
            "1 for each tenant the plugin is active for.",
            None,
            self.plugins.iter().flat_map(|p| {
                p.tenants.iter().map(|t| {
                    (
                        vec![("plugin", p.id.as_str()), ("tenant", t.as_str())],
                        ConstGauge::new(1i64),
                    )
                })
            }),
        )?;
        family(
            e,
            "plugin_isolation_restarts",
            "Restarts of an isolated plugin's child process after crashes.",
            None,
            self.plugins.iter().filter_map(|p| {
                let i = p.isolation.as_ref()?;
                Some((
                    vec![("plugin", p.id.as_str())],
                    ConstCounter::new(i.restarts),
                ))
            }),
        )?;
        family(
            e,
            "plugin_quarantined",
            "1 when an isolated plugin is quarantined after repeated crashes.",
            None,
            self.plugins.iter().filter_map(|p| {
                let i = p.isolation.as_ref()?;
                Some((
                    vec![("plugin", p.id.as_str())],
                    ConstGauge::new(i64::from(i.quarantined.is_some())),
                ))
            }),
        )?;
        family(
            e,
            "plugin_custom",
            "Values the plugin recorded itself through the host's metrics service.",
            None,
            self.plugins.iter().flat_map(|p| {
                p.metrics.custom.iter().map(|(name, value)| {
                    (
                        vec![("plugin", p.id.as_str()), ("name", name.as_str())],
                        ConstGauge::new(*value),
                    )
                })
            }),
        )?;
        family(
            e,
            "tenant_info",
            "Every tenant with its tier (always 1).",
            None,
            self.tenants.iter().map(|(tenant, tier)| {
                (
                    vec![("tenant", tenant.as_str()), ("tier", tier.as_str())],
                    ConstGauge::new(1i64),
                )
            }),
        )?;
        family(
            e,
            "flow_runs",
            "ISP flows run, by tenant and whether they reached their goal.",
            None,
            self.flow_runs.iter().map(|(flow, tenant, ok, n)| {
                let outcome = if *ok { "reached" } else { "missed" };
                (
                    vec![
                        ("flow", flow.as_str()),
                        ("tenant", tenant.as_str()),
                        ("outcome", outcome),
                    ],
                    ConstCounter::new(*n),
                )
            }),
        )?;
        family(
            e,
            "flow_steps",
            "Steps of the ISP flows by tenant and actor (a plugin id, hooks, platform or isp) and outcome.",
            None,
            self.flow_steps.iter().map(|(flow, tenant, actor, outcome, n)| {
                (
                    vec![
                        ("flow", flow.as_str()),
                        ("tenant", tenant.as_str()),
                        ("plugin", actor.as_str()),
                        ("outcome", *outcome),
                    ],
                    ConstCounter::new(*n),
                )
            }),
        )?;
        Ok(())
    }
}

/// The daemon's metrics in the OpenMetrics text format.
pub fn render(daemon: &Daemon) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_prefix("plugkit");
    registry.register_collector(Box::new(Sample::of(daemon)));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)?;
    Ok(out)
}

/// `GET /metrics`: the OpenMetrics text of [`render`]. The API's route
/// table puts it behind the scope `metrics:read`.
pub(crate) async fn scrape(State(daemon): State<Arc<Daemon>>) -> Response {
    // A plugin's state is read under its lifecycle lock, which a lifecycle
    // step (activation, say) holds while the plugin works: wait for it on a
    // blocking thread, never on the async workers.
    let permit = crate::limits::blocking_permit().await;
    let rendered = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        render(&daemon)
    })
    .await;
    match rendered.unwrap_or(Err(std::fmt::Error)) {
        Ok(text) => (
            [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
            text,
        )
            .into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(Problem::internal(
                "the metrics could not be read or encoded; see the daemon's log and report \
                 this as a bug",
            )),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(counts: &[(usize, u64)], expected: &[(f64, u64)]) {
        let mut power_of_two = vec![0u64; 48];
        for &(i, n) in counts {
            power_of_two[i] = n;
        }
        let h = histogram(&power_of_two);
        let got: Vec<(f64, u64)> = h.buckets.iter().copied().filter(|(_, n)| *n > 0).collect();
        assert_eq!(got, expected, "{counts:?}");
        assert_eq!(h.count, counts.iter().map(|(_, n)| n).sum::<u64>());
    }

    #[test]
    fn power_of_two_buckets_fall_into_the_first_bound_above_them() {
        check(&[], &[]);
        // [512, 1024) ns: below 2^10 ns.
        check(&[(9, 3)], &[(1024e-9, 3)]);
        // [1024, 2048) and [2048, 4096) ns: below 2^12 ns.
        check(&[(10, 1), (11, 2)], &[(4096e-9, 3)]);
        // Everything below 2 ns counts in the first bucket.
        check(&[(0, 5)], &[(1024e-9, 5)]);
        // Beyond 2^34 ns: +Inf.
        check(&[(40, 1)], &[(f64::MAX, 1)]);
    }
}
