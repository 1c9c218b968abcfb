//! Webhooks in both directions, above the daemon: the providers' callbacks
//! into the plugins (`inbound`, then `reactions`, which drive the flows),
//! the admin routes (`admin`), and the delivery worker (`worker`) that
//! sends the outbox's signed events to integrators. Their state and pure
//! rules are in `webhook_state`, which the daemon holds.

pub mod admin;
pub mod inbound;
pub mod reactions;
pub mod worker;

pub use worker::{start_delivery, DeliveryWorker};

use crate::daemon::Daemon;
use crate::flows::FlowReport;

/// Queues `flow.completed` for a flow run through `source` (`admin-api`,
/// `webhook`), with the flow's report.
pub fn flow_completed(daemon: &Daemon, source: &str, report: &FlowReport) {
    daemon.webhooks().outbox().emit(
        "flow.completed",
        serde_json::json!({"source": source, "flow": report.flow, "tenant": report.tenant,
                           "ok": report.ok, "report": report}),
    );
}
