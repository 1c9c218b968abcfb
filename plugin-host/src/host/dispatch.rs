//! Hook dispatch by name: subscribers ordered per hook, resolved per
//! (hook, tenant) into cached tables of plugin versions and routes, and
//! delivered to through `hook_call`; filter chains and events.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::{Host, Inner, Slot};
use crate::hook_call::{self, Delivery, HookRoute, Outcome};
use crate::hooks::{self, HookKind, OrderingCycle, Subscription};
use crate::loader::LoadedPlugin;
use crate::metrics::Counters;

/// Why a filter chain did not return a payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FilterError {
    /// A subscriber vetoed.
    #[error("hook `{hook}`: vetoed by plugin `{plugin}`: {reason}")]
    Vetoed {
        /// The hook.
        hook: String,
        /// Who vetoed.
        plugin: String,
        /// Why.
        reason: String,
    },
    /// A subscriber failed or panicked; a filter chain fails closed.
    #[error("hook `{hook}`: filter in plugin `{plugin}` failed: {message}")]
    Failed {
        /// The hook.
        hook: String,
        /// Who failed.
        plugin: String,
        /// The error.
        message: String,
    },
    /// The subscribers' constraints form a cycle.
    #[error(transparent)]
    Cycle(#[from] OrderingCycle),
}

/// The outcome of a filter chain that ran to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilteredPayload {
    /// Content type of the final payload.
    pub content_type: String,
    /// The final payload.
    pub bytes: Vec<u8>,
    /// The plugins that ran, in order.
    pub ran: Vec<String>,
}

/// hook → tenant → resolved targets.
pub(super) type DispatchTables = BTreeMap<String, BTreeMap<String, Arc<Vec<Target>>>>;

/// One resolved hook subscriber: the plugin version that will be called.
pub(crate) struct Target {
    plugin: String,
    kind: HookKind,
    slot: Arc<Slot>,
    loaded: Arc<LoadedPlugin>,
    /// Its fast hook table in `loaded`, or its `HookHandler`.
    route: HookRoute,
    /// The subscriber's counters for the tenant the table is for.
    counters: Arc<Counters>,
}

impl hook_call::EventTarget for Target {
    #[inline(always)]
    fn route(&self) -> HookRoute {
        self.route
    }

    #[inline(always)]
    fn loaded(&self) -> &LoadedPlugin {
        &self.loaded
    }

    #[inline(always)]
    fn count(&self) -> bool {
        self.counters.start_call()
    }

    fn record_latency(&self, elapsed: std::time::Duration) {
        self.counters.record_latency(elapsed);
    }
}

/// Counts from [`Host::emit`], which skips collecting names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EmitSummary {
    /// Subscribers that handled the event.
    pub delivered: usize,
    /// Subscribers that failed (each logged with its plugin id and counted in its metrics).
    pub failed: usize,
}

/// What an event dispatch did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EventReport {
    /// Subscribers that handled it, in order.
    pub delivered: Vec<String>,
    /// Subscribers that failed, with their errors.
    pub failures: Vec<(String, String)>,
}

impl Host {
    /// Runs a filter chain for `tenant`: each active subscriber may pass,
    /// replace or veto the payload. A failing filter stops the chain.
    pub fn run_filter(
        &self,
        tenant: &str,
        hook: &str,
        content_type: &str,
        payload: &[u8],
    ) -> Result<FilteredPayload, FilterError> {
        self.inner.run_filter(tenant, hook, content_type, payload)
    }

    /// Fires an event for `tenant`: every active subscriber is called, and
    /// one failing or panicking subscriber does not stop the others.
    pub fn fire_event(
        &self,
        tenant: &str,
        hook: &str,
        content_type: &str,
        payload: &[u8],
    ) -> Result<EventReport, OrderingCycle> {
        self.inner.fire_event(tenant, hook, content_type, payload)
    }

    /// Fires an event like [`Host::fire_event`] but returns only counts: the
    /// hot path for emitters that do not need subscriber names (failures are
    /// still logged with the plugin id and counted in its metrics).
    pub fn emit(
        &self,
        tenant: &str,
        hook: &str,
        content_type: &str,
        payload: &[u8],
    ) -> Result<EmitSummary, OrderingCycle> {
        self.inner.emit(tenant, hook, content_type, payload)
    }

    /// Fires an event with a JSON payload.
    pub fn fire_json<T: Serialize>(
        &self,
        tenant: &str,
        hook: &str,
        payload: &T,
    ) -> Result<EventReport, OrderingCycle> {
        match serde_json::to_vec(payload) {
            Ok(bytes) => self.fire_event(tenant, hook, "application/json", &bytes),
            Err(e) => {
                // Nothing is delivered rather than an empty payload.
                tracing::error!(hook, tenant, "hook payload does not serialize: {e}");
                Ok(EventReport {
                    delivered: Vec::new(),
                    failures: vec![(
                        "<host>".to_owned(),
                        format!("payload does not serialize: {e}"),
                    )],
                })
            }
        }
    }

    /// The ordered subscribers of a hook.
    pub fn subscribers(&self, hook: &str) -> Result<Vec<Subscription>, OrderingCycle> {
        let subs = self.inner.subscriptions.read();
        let of_hook: Vec<Subscription> = subs.iter().filter(|s| s.hook == hook).cloned().collect();
        hooks::order(hook, &of_hook)
    }
}

impl Inner {
    pub(super) fn rebuild_hook_order(&self) {
        // Orders are computed lazily per hook; dropping the caches is enough.
        self.hook_order.write().clear();
        self.invalidate_dispatch();
    }

    /// Drops the resolved dispatch tables (they hold plugin versions).
    pub(crate) fn invalidate_dispatch(&self) {
        let mut dispatch = self.dispatch.write();
        self.dispatch_generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        dispatch.clear();
    }

    /// The subscribers `tenant` gets for `hook`, resolved to plugin versions.
    fn targets(&self, hook: &str, tenant: &str) -> Result<Arc<Vec<Target>>, OrderingCycle> {
        if let Some(table) = self
            .dispatch
            .read()
            .get(hook)
            .and_then(|by_tenant| by_tenant.get(tenant))
        {
            return Ok(table.clone());
        }
        let generation = self
            .dispatch_generation
            .load(std::sync::atomic::Ordering::SeqCst);
        let order = self.ordered(hook)?;
        let table: Vec<Target> = order
            .iter()
            .filter_map(|sub| {
                let (slot, loaded, counters) = self.subscriber(&sub.plugin, tenant)?;
                let route = hook_call::route_for(&sub.plugin, &loaded)?;
                Some(Target {
                    plugin: sub.plugin.clone(),
                    kind: sub.kind,
                    slot,
                    loaded,
                    route,
                    counters,
                })
            })
            .collect();
        let table = Arc::new(table);
        let mut dispatch = self.dispatch.write();
        // Something changed while resolving: use the table once, do not keep it.
        if self
            .dispatch_generation
            .load(std::sync::atomic::Ordering::SeqCst)
            == generation
        {
            dispatch
                .entry(hook.to_owned())
                .or_default()
                .insert(tenant.to_owned(), table.clone());
        }
        Ok(table)
    }

    pub(crate) fn ordered(&self, hook: &str) -> Result<Arc<Vec<Subscription>>, OrderingCycle> {
        if let Some(order) = self.hook_order.read().get(hook) {
            return Ok(order.clone());
        }
        let of_hook: Vec<Subscription> = self
            .subscriptions
            .read()
            .iter()
            .filter(|s| s.hook == hook)
            .cloned()
            .collect();
        let order = Arc::new(hooks::order(hook, &of_hook)?);
        self.hook_order
            .write()
            .insert(hook.to_owned(), order.clone());
        Ok(order)
    }

    /// The subscriber's current version and its counters for the tenant,
    /// if it is active for the tenant.
    pub(crate) fn subscriber(
        &self,
        plugin: &str,
        tenant: &str,
    ) -> Option<(Arc<Slot>, Arc<LoadedPlugin>, Arc<Counters>)> {
        let slot = self.plugins.read().get(plugin).cloned()?;
        let counters = slot.active_tenants.read().get(tenant).cloned()?;
        let loaded = slot.current.read().clone();
        Some((slot, loaded, counters))
    }

    fn run_filter(
        &self,
        tenant: &str,
        hook: &str,
        content_type: &str,
        payload: &[u8],
    ) -> Result<FilteredPayload, FilterError> {
        let targets = self.targets(hook, tenant)?;
        let mut content_type = content_type.to_owned();
        let mut bytes = payload.to_vec();
        let mut ran = Vec::new();
        let mut out = Vec::new();
        for sub in targets.iter().filter(|t| t.kind == HookKind::Filter) {
            let slot = &sub.slot;
            let call = Delivery {
                tenant,
                hook,
                content_type: &content_type,
                payload: &bytes,
            };
            sub.counters.start_call();
            let outcome = hook_call::deliver(&sub.loaded, sub.route, call, &mut out);
            ran.push(sub.plugin.clone());
            match outcome {
                Outcome::Continue => {}
                Outcome::Replace { split } => {
                    content_type = String::from_utf8_lossy(&out[..split]).into_owned();
                    bytes = out[split..].to_vec();
                }
                Outcome::Veto => {
                    let reason = String::from_utf8_lossy(&out).into_owned();
                    tracing::info!(plugin = %sub.plugin, hook, tenant, "filter vetoed: {reason}");
                    return Err(FilterError::Vetoed {
                        hook: hook.to_owned(),
                        plugin: sub.plugin.clone(),
                        reason,
                    });
                }
                Outcome::Failed(error) => {
                    let message = slot.metrics.record_hook_error(&sub.counters, &error);
                    tracing::error!(plugin = %sub.plugin, hook, tenant, "filter failed: {message}");
                    return Err(FilterError::Failed {
                        hook: hook.to_owned(),
                        plugin: sub.plugin.clone(),
                        message,
                    });
                }
            }
        }
        Ok(FilteredPayload {
            content_type,
            bytes,
            ran,
        })
    }

    pub(super) fn fire_event(
        &self,
        tenant: &str,
        hook: &str,
        content_type: &str,
        payload: &[u8],
    ) -> Result<EventReport, OrderingCycle> {
        let mut report = EventReport::default();
        self.dispatch_event(
            tenant,
            hook,
            content_type,
            payload,
            |target, failure| match failure {
                None => report.delivered.push(target.plugin.clone()),
                Some(message) => report.failures.push((target.plugin.clone(), message)),
            },
        )?;
        Ok(report)
    }

    fn emit(
        &self,
        tenant: &str,
        hook: &str,
        content_type: &str,
        payload: &[u8],
    ) -> Result<EmitSummary, OrderingCycle> {
        let mut summary = EmitSummary::default();
        self.dispatch_event(tenant, hook, content_type, payload, |_, failure| {
            if failure.is_some() {
                summary.failed += 1;
            } else {
                summary.delivered += 1;
            }
        })?;
        Ok(summary)
    }

    /// Calls every event subscriber; a failing one is logged and counted,
    /// and never stops the others.
    #[inline]
    fn dispatch_event(
        &self,
        tenant: &str,
        hook: &str,
        content_type: &str,
        payload: &[u8],
        mut outcome: impl FnMut(&Target, Option<String>),
    ) -> Result<(), OrderingCycle> {
        let targets = self.targets(hook, tenant)?;
        let call = Delivery {
            tenant,
            hook,
            content_type,
            payload,
        };
        // Events ignore replies; a subscriber that writes one grows this once.
        let mut out = Vec::new();
        let events = targets.iter().filter(|t| t.kind == HookKind::Event);
        hook_call::deliver_events(events, call, &mut out, |target, failure| match failure {
            Some(error) => {
                let message = target
                    .slot
                    .metrics
                    .record_hook_error(&target.counters, &error);
                tracing::warn!(plugin = %target.plugin, hook, tenant, "event subscriber failed: {message}");
                outcome(target, Some(message));
            }
            None => outcome(target, None),
        });
        Ok(())
    }
}
