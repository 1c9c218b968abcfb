//! The fast hook path: a hook's subscribers for one tenant resolved once
//! into a [`HookHandle`], re-resolved only when something changed, and
//! each delivered through the plugin's fast hook table
//! (`plugin_api::fast_hooks`) with its arguments behind one pointer and a
//! status byte back.
//!
//! ```no_run
//! # fn demo(host: &plugin_host::Host) -> Result<(), plugin_host::dispatch::OrderingCycle> {
//! let mut alert = host.hook("device.alert", "acme")?; // resolved once
//! let summary = alert.emit("application/json", br#"{"device":"cpe-17"}"#)?;
//! println!("{} delivered, {} failed", summary.delivered, summary.failed);
//! # Ok(()) }
//! ```
//!
//! # What an emit does
//! One acquire load of the host's dispatch generation, compared with the
//! one the handle resolved at; then per subscriber a load and a store on
//! the subscriber's own counter and the plugin's `extern "C"` `on_hook`
//! (panic-guarded in the plugin). No string compared, no lock, no
//! allocation, no ABI enum moved; a failure is logged and counted.
//!
//! # Invariants (and the tests that keep them)
//! - Every change that alters who receives a hook (activate, deactivate,
//!   subscriptions, a reload's swap, unload) bumps the generation after the
//!   change, so the next emit resolves again: a tenant deactivated after
//!   the handle was taken is not delivered to
//!   (`fast_hooks::a_hook_handle_skips_a_subscriber_deactivated_after_it_was_taken`),
//!   and a reloaded subscriber is reached in its new version
//!   (`fast_hooks::a_hook_handle_follows_a_reload_of_a_subscriber`).
//! - A subscriber's panic or error is a failure of that subscriber only,
//!   counted in its metrics; the others still run
//!   (`fast_hooks::a_panicking_subscriber_through_a_hook_handle_is_a_counted_failure`).
//! - Calls are counted exactly, on the handle's own counters
//!   (`fast_hooks::hook_handle_deliveries_are_counted_exactly`).
//! - A handle holds each subscriber's version, counted in its
//!   `fast_bound`, so a reload's drain does not wait for parked handles.
//! - Plugins without the table (built before plugin-api 0.2.3, or in
//!   process isolation) are delivered to through `HookHandler`
//!   (`fast_hooks::a_plugin_without_the_fast_hook_table_is_delivered_to_by_its_handler`).

use std::sync::atomic::Ordering::{Acquire, Release};
use std::sync::Arc;
use std::time::Instant;

use plugin_api::abi::PluginError;

use crate::hook_call::{
    deliver, deliver_events, route_for, Delivery, EventTarget, HookRoute, Outcome,
};
use crate::hooks::{HookKind, OrderingCycle};
use crate::host::{EmitSummary, EventReport, FilterError, FilteredPayload, Host, Inner, Slot};
use crate::loader::LoadedPlugin;
use crate::metrics::{CallShard, Counters};

/// A version a handle delivers to, counted in its `fast_bound` so a
/// reload's drain does not wait for a parked handle.
struct Held(Arc<LoadedPlugin>);

impl Held {
    fn new(loaded: Arc<LoadedPlugin>) -> Self {
        loaded.fast_bound.fetch_add(1, Release);
        Self(loaded)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.fast_bound.fetch_sub(1, Release);
    }
}

/// One resolved subscriber of a [`HookHandle`].
struct Subscriber {
    slot: Arc<Slot>,
    held: Held,
    route: HookRoute,
    /// The subscriber's counters for the handle's tenant.
    counters: Arc<Counters>,
    shard: Arc<CallShard>,
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.counters.retire_shard(&self.shard);
    }
}

impl EventTarget for Subscriber {
    #[inline(always)]
    fn route(&self) -> HookRoute {
        self.route
    }

    #[inline(always)]
    fn loaded(&self) -> &LoadedPlugin {
        &self.held.0
    }

    #[inline(always)]
    fn count(&self) -> bool {
        self.shard.count()
    }

    fn record_latency(&self, elapsed: std::time::Duration) {
        self.counters.record_latency(elapsed);
    }
}

impl Subscriber {
    /// Counts, delivers, samples the latency one time in 256.
    #[inline(always)]
    fn deliver(&self, call: Delivery<'_>, out: &mut Vec<u8>) -> Outcome {
        let start = self.shard.count().then(Instant::now);
        let outcome = deliver(&self.held.0, self.route, call, out);
        if let Some(start) = start {
            self.counters.record_latency(start.elapsed());
        }
        outcome
    }

    #[cold]
    #[inline(never)]
    fn failed(&self, call: Delivery<'_>, error: &PluginError, what: &str) -> String {
        let message = self.slot.metrics.record_hook_error(&self.counters, error);
        tracing::warn!(
            plugin = %self.slot.id,
            hook = call.hook,
            tenant = call.tenant,
            "{what} failed: {message}"
        );
        message
    }
}

/// One hook for one tenant, its subscribers resolved to plugin versions
/// and ordered (filters and events apart). Emits take `&mut self` (the
/// handle owns its subscribers' call counters); clone one per thread.
pub struct HookHandle {
    host: Host,
    hook: Box<str>,
    tenant: Box<str>,
    /// The host's dispatch generation the subscribers were resolved at.
    generation: u64,
    events: Vec<Subscriber>,
    filters: Vec<Subscriber>,
    /// Reused for replies the emit path does not keep.
    scratch: Vec<u8>,
}

impl Host {
    /// Resolves the subscribers of `hook` for `tenant` into a handle that
    /// delivers to them without looking them up again (see
    /// [`HookHandle::emit`]).
    ///
    /// # Errors
    /// [`OrderingCycle`] when the subscribers' `before`/`after` constraints
    /// form a cycle.
    pub fn hook(&self, hook: &str, tenant: &str) -> Result<HookHandle, OrderingCycle> {
        let mut handle = HookHandle::unresolved(self.clone(), hook.into(), tenant.into());
        handle.resolve(self.inner.dispatch_generation.load(Acquire))?;
        Ok(handle)
    }
}

impl Clone for HookHandle {
    /// A handle for the same hook and tenant with counters of its own.
    fn clone(&self) -> Self {
        let mut handle =
            HookHandle::unresolved(self.host.clone(), self.hook.clone(), self.tenant.clone());
        // A cycle now is reported by the clone's first emit.
        drop(handle.resolve(self.host.inner.dispatch_generation.load(Acquire)));
        handle
    }
}

impl HookHandle {
    /// A handle with no subscribers yet; its first `resolve` fills it.
    fn unresolved(host: Host, hook: Box<str>, tenant: Box<str>) -> Self {
        HookHandle {
            host,
            hook,
            tenant,
            generation: u64::MAX,
            events: Vec::new(),
            filters: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// The hook's name.
    pub fn hook(&self) -> &str {
        &self.hook
    }

    /// The tenant it fires for.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The event subscribers it delivers to now, in order.
    pub fn event_subscribers(&self) -> Vec<&str> {
        self.events.iter().map(|s| s.slot.id.as_str()).collect()
    }

    /// How many subscribers (events and filters) it reaches through their
    /// fast hook table; the others go through the frozen `HookHandler`.
    pub fn delivered_by_table(&self) -> usize {
        self.events
            .iter()
            .chain(&self.filters)
            .filter(|s| matches!(s.route, HookRoute::Table(_)))
            .count()
    }

    /// Resolves the subscribers as of `generation`.
    #[cold]
    #[inline(never)]
    fn resolve(&mut self, generation: u64) -> Result<(), OrderingCycle> {
        let inner: &Inner = &self.host.inner;
        // The old subscribers go first: their counts fold into the totals.
        self.events.clear();
        self.filters.clear();
        let order = inner.ordered(&self.hook)?;
        for sub in order.iter() {
            let Some((slot, loaded, counters)) = inner.subscriber(&sub.plugin, &self.tenant) else {
                continue;
            };
            let Some(route) = route_for(&slot.id, &loaded) else {
                continue;
            };
            let subscriber = Subscriber {
                shard: counters.new_shard(),
                counters,
                held: Held::new(loaded),
                route,
                slot,
            };
            match sub.kind {
                HookKind::Event => self.events.push(subscriber),
                HookKind::Filter => self.filters.push(subscriber),
            }
        }
        self.generation = generation;
        Ok(())
    }

    /// Resolves again when anything changed since the last emit.
    #[inline(always)]
    fn refresh(&mut self) -> Result<(), OrderingCycle> {
        let generation = self.host.inner.dispatch_generation.load(Acquire);
        if generation != self.generation {
            self.resolve(generation)?;
        }
        Ok(())
    }

    /// Resolves again when needed, then delivers one event to every event
    /// subscriber (`emit` and `fire`): a failure is counted and logged
    /// here, and `each` hears every subscriber with its failure's message.
    #[inline(always)]
    fn deliver_to_events(
        &mut self,
        content_type: &str,
        payload: &[u8],
        mut each: impl FnMut(&Subscriber, Option<String>),
    ) -> Result<(), OrderingCycle> {
        self.refresh()?;
        let call = Delivery {
            tenant: &self.tenant,
            hook: &self.hook,
            content_type,
            payload,
        };
        deliver_events(&self.events, call, &mut self.scratch, |sub, failure| {
            let failure = failure.map(|error| sub.failed(call, &error, "event subscriber"));
            each(sub, failure);
        });
        Ok(())
    }

    /// Fires the event to every subscriber active for the tenant; one
    /// failing or panicking subscriber does not stop the others (failures
    /// are logged with the plugin id and counted in its metrics).
    ///
    /// # Errors
    /// [`OrderingCycle`] when the subscribers' constraints form a cycle.
    #[inline]
    pub fn emit(
        &mut self,
        content_type: &str,
        payload: &[u8],
    ) -> Result<EmitSummary, OrderingCycle> {
        let mut summary = EmitSummary::default();
        self.deliver_to_events(content_type, payload, |_, failure| match failure {
            Some(_) => summary.failed += 1,
            None => summary.delivered += 1,
        })?;
        Ok(summary)
    }

    /// [`HookHandle::emit`], reporting who handled the event and who failed.
    ///
    /// # Errors
    /// As for [`HookHandle::emit`].
    pub fn fire(
        &mut self,
        content_type: &str,
        payload: &[u8],
    ) -> Result<EventReport, OrderingCycle> {
        let mut report = EventReport::default();
        self.deliver_to_events(content_type, payload, |sub, failure| match failure {
            Some(message) => report.failures.push((sub.slot.id.clone(), message)),
            None => report.delivered.push(sub.slot.id.clone()),
        })?;
        Ok(report)
    }

    /// Runs the filter chain: each filter may pass, replace or veto the
    /// payload; a failing filter stops the chain (fails closed).
    ///
    /// # Errors
    /// [`FilterError::Vetoed`], [`FilterError::Failed`] naming the plugin,
    /// or [`FilterError::Cycle`].
    pub fn filter(
        &mut self,
        content_type: &str,
        payload: &[u8],
    ) -> Result<FilteredPayload, FilterError> {
        self.refresh()?;
        let mut content_type = content_type.to_owned();
        let mut bytes = payload.to_vec();
        let mut ran = Vec::with_capacity(self.filters.len());
        for sub in &self.filters {
            let call = Delivery {
                tenant: &self.tenant,
                hook: &self.hook,
                content_type: &content_type,
                payload: &bytes,
            };
            let outcome = sub.deliver(call, &mut self.scratch);
            ran.push(sub.slot.id.clone());
            match outcome {
                Outcome::Continue => {}
                Outcome::Replace { split } => {
                    content_type = String::from_utf8_lossy(&self.scratch[..split]).into_owned();
                    bytes = self.scratch[split..].to_vec();
                }
                Outcome::Veto => {
                    let reason = String::from_utf8_lossy(&self.scratch).into_owned();
                    tracing::info!(plugin = %sub.slot.id, hook = %self.hook, tenant = %self.tenant, "filter vetoed: {reason}");
                    return Err(FilterError::Vetoed {
                        hook: self.hook.to_string(),
                        plugin: sub.slot.id.clone(),
                        reason,
                    });
                }
                Outcome::Failed(error) => {
                    let message = sub.failed(call, &error, "filter");
                    return Err(FilterError::Failed {
                        hook: self.hook.to_string(),
                        plugin: sub.slot.id.clone(),
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
}
