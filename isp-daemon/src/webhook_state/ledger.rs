//! The inbound ledger, `<state dir>/webhooks/inbound.json`: the event ids
//! already taken (so a redelivery never reaches a flow twice), the refusal
//! and acceptance counters, the last events with what the flows did, and
//! what the events told about each tenant's payments, invoices and messages.
//!
//! Written whole through `plugkit-durable` (temp file, fsync, rename) when
//! an event is claimed and when its outcome is recorded; refusals are
//! counted in memory and written with the next event, so an unsigned flood
//! costs no disk writes.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Problem;

/// Ids kept for de-duplication. Stripe retries for three days and Twilio
/// for less; at a few hundred events an hour this covers that span.
const SEEN_LIMIT: usize = 20_000;
/// Accepted events kept for the API view.
const RECENT_LIMIT: usize = 200;
/// The file's format.
const FORMAT: u32 = 1;

/// Why a request was refused (or taken), as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Count {
    /// Verified, new, handed to the flows.
    Accepted,
    /// Verified, but its id was taken before.
    Duplicate,
    /// No signature header.
    Unsigned,
    /// A signature that does not match.
    BadSignature,
    /// A valid signature outside the timestamp tolerance.
    Stale,
    /// Signed, but not an event this route understands.
    Malformed,
    /// No such plugin for the tenant, or a plugin that takes no webhooks.
    NotFound,
    /// Not checked: the plugin could not (no secret configured, not
    /// serving) or the ledger could not be written; answered 503.
    Unavailable,
}

impl Count {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Duplicate => "duplicate",
            Self::Unsigned => "unsigned",
            Self::BadSignature => "bad_signature",
            Self::Stale => "stale",
            Self::Malformed => "malformed",
            Self::NotFound => "not_found",
            Self::Unavailable => "unavailable",
        }
    }
}

/// An accepted event and what came of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Received {
    pub(crate) plugin: String,
    pub(crate) tenant: String,
    pub(crate) id: String,
    pub(crate) kind: String,
    pub(crate) received_at: String,
    pub(crate) outcome: Option<Value>,
}

/// What the events said about one tenant.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct TenantRecords {
    /// Invoice state by customer: `paid`, `overdue`, `refunded`.
    pub(crate) invoices: BTreeMap<String, Value>,
    /// Payment status by the provider's payment id.
    pub(crate) payments: BTreeMap<String, Value>,
    /// Message status by the provider's message id.
    pub(crate) messages: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    format: u32,
    seen: VecDeque<String>,
    counts: BTreeMap<String, BTreeMap<String, u64>>,
    recent: VecDeque<Received>,
    tenants: BTreeMap<String, TenantRecords>,
}

/// The ledger; one per daemon.
#[derive(Debug)]
pub(crate) struct Ledger {
    path: PathBuf,
    state: Mutex<State>,
}

impl Ledger {
    pub(crate) fn open(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join("inbound.json");
        let state = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<State>(&bytes).map_err(|e| {
                anyhow::anyhow!(
                    "{} is not an inbound webhook ledger ({e}); move it aside to start a new one \
                     (redeliveries of events it knew would then reach the flows again)",
                    path.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State {
                format: FORMAT,
                ..State::default()
            },
            Err(e) => anyhow::bail!("reading {}: {e}", path.display()),
        };
        Ok(Self {
            path,
            state: Mutex::new(state),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn save(&self, state: &State) -> Result<(), Problem> {
        let bytes = serde_json::to_vec_pretty(state)
            .map_err(|e| Problem::internal(format!("encoding the inbound ledger: {e}")))?;
        plugkit_durable::write_atomic(&self.path, &bytes, 0o600).map_err(|e| {
            Problem::internal(format!(
                "cannot write the inbound webhook ledger {}: {e}; the provider will redeliver",
                self.path.display()
            ))
        })
    }

    /// Counts a request for `plugin` without writing.
    pub(crate) fn count(&self, plugin: &str, count: Count) {
        let mut state = self.lock();
        *state
            .counts
            .entry(plugin.to_owned())
            .or_default()
            .entry(count.name().to_owned())
            .or_default() += 1;
    }

    /// Takes `event` for the flows: false (and counted as a duplicate) when
    /// its id was taken before. The id is on disk before this returns true,
    /// so after a crash a redelivery is a duplicate: at most once per id.
    pub(crate) fn claim(&self, event: Received) -> Result<bool, Problem> {
        let key = format!("{}/{}/{}", event.plugin, event.tenant, event.id);
        let mut state = self.lock();
        if state.seen.contains(&key) {
            drop(state);
            self.count(&event.plugin, Count::Duplicate);
            return Ok(false);
        }
        // Written from a copy first: a failed write leaves the id unclaimed,
        // so the provider's redelivery is taken, not dropped as a duplicate.
        let mut next = state.clone();
        next.seen.push_back(key);
        while next.seen.len() > SEEN_LIMIT {
            next.seen.pop_front();
        }
        *next
            .counts
            .entry(event.plugin.clone())
            .or_default()
            .entry(Count::Accepted.name().to_owned())
            .or_default() += 1;
        next.recent.push_back(event);
        while next.recent.len() > RECENT_LIMIT {
            next.recent.pop_front();
        }
        self.save(&next)?;
        *state = next;
        Ok(true)
    }

    /// Records what the flows did with the event `id` of `plugin`/`tenant`
    /// and what it says about the tenant's records.
    pub(crate) fn settle(
        &self,
        plugin: &str,
        tenant: &str,
        id: &str,
        outcome: Value,
        update: impl FnOnce(&mut TenantRecords),
    ) -> Result<(), Problem> {
        let mut state = self.lock();
        if let Some(received) = state
            .recent
            .iter_mut()
            .rev()
            .find(|r| r.plugin == plugin && r.tenant == tenant && r.id == id)
        {
            received.outcome = Some(outcome);
        }
        update(state.tenants.entry(tenant.to_owned()).or_default());
        self.save(&state)
    }

    /// The API view: counters per plugin and in total, the last events,
    /// and each tenant's records.
    pub(crate) fn view(&self) -> Value {
        let state = self.lock();
        let mut total: BTreeMap<&str, u64> = BTreeMap::new();
        for counts in state.counts.values() {
            for (name, n) in counts {
                *total.entry(name.as_str()).or_default() += n;
            }
        }
        serde_json::json!({
            "counts": total,
            "by_plugin": state.counts,
            "recent": state.recent,
            "tenants": state.tenants,
        })
    }
}
