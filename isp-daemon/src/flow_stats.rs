//! How the ISP flows went, by flow, tenant and step: the per-tenant view
//! `GET /metrics` gives of the plugins' work (`plugkit_flow_runs_total`,
//! `plugkit_flow_steps_total`). Counted once per finished flow, never per
//! plugin call, so the call path keeps its single set of counters.
//!
//! Invariant: every flow the daemon runs (API, demo) is counted once when
//! its report is complete (`flows::counted`); this module knows nothing of
//! the flows themselves (no import of `flows`). Test:
//! `flow_stats::tests::a_report_counts_its_run_and_each_step`.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

/// A step's key: `(flow, tenant, actor, outcome)`.
type StepKey = (String, String, String, &'static str);

/// `(flow, tenant, actor, outcome)` → steps; `(flow, tenant, reached)` → runs.
#[derive(Debug, Default)]
pub struct FlowStats {
    steps: Mutex<BTreeMap<StepKey, u64>>,
    runs: Mutex<BTreeMap<(String, String, bool), u64>>,
}

impl FlowStats {
    /// Counts a finished run of `flow` for `tenant`, whether it reached its
    /// goal, and each step as `(actor, outcome)`.
    pub fn record<'a>(
        &self,
        flow: &str,
        tenant: &str,
        reached: bool,
        steps: impl IntoIterator<Item = (&'a str, &'static str)>,
    ) {
        let mut counted = self.steps.lock().unwrap_or_else(PoisonError::into_inner);
        for (actor, outcome) in steps {
            *counted
                .entry((
                    flow.to_owned(),
                    tenant.to_owned(),
                    actor.to_owned(),
                    outcome,
                ))
                .or_default() += 1;
        }
        drop(counted);
        *self
            .runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((flow.to_owned(), tenant.to_owned(), reached))
            .or_default() += 1;
    }

    /// `(flow, tenant, actor, outcome, count)` for every step counted.
    pub fn steps(&self) -> Vec<(String, String, String, &'static str, u64)> {
        self.steps
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|((f, t, a, o), n)| (f.clone(), t.clone(), a.clone(), *o, *n))
            .collect()
    }

    /// `(flow, tenant, reached its goal, count)` for every run counted.
    pub fn runs(&self) -> Vec<(String, String, bool, u64)> {
        self.runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|((f, t, ok), n)| (f.clone(), t.clone(), *ok, *n))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_counts_its_run_and_each_step() {
        let stats = FlowStats::default();
        let flow = "new-customer";
        stats.record(flow, "acme", true, [("stripe", "done"), ("twilio", "done")]);
        stats.record(flow, "acme", false, [("stripe", "failed")]);
        stats.record(flow, "corner", true, [("stripe", "skipped")]);
        let step = |tenant: &str, actor: &str, outcome: &str| {
            stats
                .steps()
                .into_iter()
                .find(|(_, t, a, o, _)| t == tenant && a == actor && *o == outcome)
                .map(|s| s.4)
        };
        assert_eq!(step("acme", "stripe", "done"), Some(1));
        assert_eq!(step("acme", "stripe", "failed"), Some(1));
        assert_eq!(step("acme", "twilio", "done"), Some(1));
        assert_eq!(step("corner", "stripe", "skipped"), Some(1));
        assert_eq!(step("corner", "twilio", "done"), None);
        let runs = stats.runs();
        assert!(runs.contains(&(flow.to_owned(), "acme".to_owned(), true, 1)));
        assert!(runs.contains(&(flow.to_owned(), "acme".to_owned(), false, 1)));
        assert!(runs.contains(&(flow.to_owned(), "corner".to_owned(), true, 1)));
    }
}
