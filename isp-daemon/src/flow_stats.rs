//! How the ISP flows went, by flow, tenant and step: the per-tenant view
//! `GET /metrics` gives of the plugins' work (`plugkit_flow_runs_total`,
//! `plugkit_flow_steps_total`). Counted once per finished flow, never per
//! plugin call, so the call path keeps its single set of counters.
//!
//! Invariant: every flow the daemon runs (API, demo) is counted once when
//! its report is complete (see `flows`). Test:
//! `flow_stats::tests::a_report_counts_its_run_and_each_step`.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use crate::flows::{FlowReport, Outcome};

/// A step's key: `(flow, tenant, actor, outcome)`.
type StepKey = (String, String, String, &'static str);

/// `(flow, tenant, actor, outcome)` → steps; `(flow, tenant, reached)` → runs.
#[derive(Debug, Default)]
pub struct FlowStats {
    steps: Mutex<BTreeMap<StepKey, u64>>,
    runs: Mutex<BTreeMap<(String, String, bool), u64>>,
}

/// A step outcome's label value.
pub fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Done => "done",
        Outcome::Skipped => "skipped",
        Outcome::Vetoed => "vetoed",
        Outcome::Failed => "failed",
    }
}

impl FlowStats {
    /// Counts a finished flow and each of its steps.
    pub fn record(&self, report: &FlowReport) {
        let mut steps = self.steps.lock().unwrap_or_else(PoisonError::into_inner);
        for step in &report.steps {
            *steps
                .entry((
                    report.flow.to_owned(),
                    report.tenant.clone(),
                    step.actor.clone(),
                    outcome_name(step.outcome),
                ))
                .or_default() += 1;
        }
        drop(steps);
        *self
            .runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((report.flow.to_owned(), report.tenant.clone(), report.ok))
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
    use crate::flows::Step;

    fn report(tenant: &str, steps: &[(&str, Outcome)]) -> FlowReport {
        let steps: Vec<Step> = steps
            .iter()
            .map(|(actor, outcome)| Step {
                actor: (*actor).to_owned(),
                outcome: *outcome,
                message: String::new(),
            })
            .collect();
        FlowReport {
            flow: "new-customer",
            tenant: tenant.to_owned(),
            ok: !steps
                .iter()
                .any(|s| matches!(s.outcome, Outcome::Failed | Outcome::Vetoed)),
            steps,
        }
    }

    #[test]
    fn a_report_counts_its_run_and_each_step() {
        let stats = FlowStats::default();
        stats.record(&report(
            "acme",
            &[("stripe", Outcome::Done), ("twilio", Outcome::Done)],
        ));
        stats.record(&report("acme", &[("stripe", Outcome::Failed)]));
        stats.record(&report("corner", &[("stripe", Outcome::Skipped)]));
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
        assert!(runs.contains(&("new-customer".to_owned(), "acme".to_owned(), true, 1)));
        assert!(runs.contains(&("new-customer".to_owned(), "acme".to_owned(), false, 1)));
        assert!(runs.contains(&("new-customer".to_owned(), "corner".to_owned(), true, 1)));
    }
}
