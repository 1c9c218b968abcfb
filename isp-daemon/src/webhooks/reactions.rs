//! What the flows do with a verified provider event:
//! - a payment succeeded: the customer's invoice is `paid`, `invoice.paid`
//!   fires;
//! - a payment failed: the customer's invoice is `overdue`,
//!   `payment.failed` fires (with the provider's reason);
//! - a charge was refunded: the invoice is `refunded`, `payment.refunded`
//!   fires;
//! - a message's delivery status moved: the message's status is recorded
//!   (visible in `GET /api/webhooks/inbound`), and `message.delivered` or
//!   `message.failed` fires for those two outcomes.
//!
//! The customer is read from the payment's `metadata.customer_id`, which
//! the new-customer flow sets on every charge it takes. The new hook names
//! (`payment.refunded`, `message.delivered`, `message.failed`) go through
//! the generic hook mechanism, so no frozen interface file changes.
//! Each reaction ends in a [`FlowReport`] that the ledger keeps and that
//! goes out to integrators as a `flow.completed` event.

use std::sync::Arc;

use plugin_api::communication::{DeliveryStatus, StatusUpdate};
use plugin_api::hooks::{InvoicePaid, PaymentFailed, INVOICE_PAID, PAYMENT_FAILED};
use plugin_api::payment::{PaymentEvent, PaymentEventKind};
use serde::Serialize;
use serde_json::{json, Value};

use crate::daemon::Daemon;
use crate::flows::{FlowReport, Outcome, Step};
use crate::webhook_state::clock::now_rfc3339;
use crate::webhook_state::ledger::TenantRecords;

/// A refund went through. Payload: the payment, customer and amount.
pub const PAYMENT_REFUNDED: &str = "payment.refunded";
/// A message reached the handset. Payload: `{message_id, status}`.
pub const MESSAGE_DELIVERED: &str = "message.delivered";
/// A message could not be delivered. Payload: `{message_id, status, error_code}`.
pub const MESSAGE_FAILED: &str = "message.failed";

type Update = Box<dyn FnOnce(&mut TenantRecords) + Send>;

/// What a reaction did and what it changes in the tenant's records.
pub(crate) struct Reaction {
    pub(crate) id: String,
    pub(crate) report: FlowReport,
    pub(crate) update: Update,
}

/// Runs `react` on a thread of its own (the provider has had its answer),
/// then records the outcome and tells integrators.
pub(crate) fn spawn(
    daemon: &Arc<Daemon>,
    plugin: &str,
    tenant: &str,
    react: impl FnOnce(&Daemon, &str, &str) -> Reaction + Send + 'static,
) {
    let daemon = Arc::clone(daemon);
    let (plugin, tenant) = (plugin.to_owned(), tenant.to_owned());
    let spawned = std::thread::Builder::new()
        .name("webhook-flow".to_owned())
        .spawn(move || {
            let reaction = react(&daemon, &plugin, &tenant);
            let outcome = serde_json::to_value(&reaction.report).unwrap_or(Value::Null);
            if let Err(e) = daemon.webhooks().ledger().settle(
                &plugin,
                &tenant,
                &reaction.id,
                outcome.clone(),
                reaction.update,
            ) {
                tracing::error!(plugin, tenant, "{}", e.error);
            }
            daemon.webhooks().outbox().emit(
                "flow.completed",
                json!({"source": "webhook", "plugin": plugin, "event_id": reaction.id,
                       "flow": reaction.report.flow, "tenant": tenant, "ok": reaction.report.ok,
                       "report": outcome}),
            );
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start a thread for a webhook's flow: {e}");
    }
}

fn report(flow: &'static str, tenant: &str) -> FlowReport {
    FlowReport {
        flow,
        tenant: tenant.to_owned(),
        ok: true,
        steps: Vec::new(),
    }
}

fn step(report: &mut FlowReport, actor: &str, outcome: Outcome, message: impl Into<String>) {
    if matches!(outcome, Outcome::Failed | Outcome::Vetoed) {
        report.ok = false;
    }
    report.steps.push(Step {
        actor: actor.to_owned(),
        outcome,
        message: message.into(),
    });
}

fn fire<T: Serialize>(daemon: &Daemon, report: &mut FlowReport, hook: &str, payload: &T) {
    let tenant = report.tenant.clone();
    match daemon.host().fire_json(&tenant, hook, payload) {
        Ok(events) => {
            let delivered = if events.delivered.is_empty() {
                "no subscriber".to_owned()
            } else {
                events.delivered.join(", ")
            };
            step(
                report,
                "hooks",
                Outcome::Done,
                format!("{hook} → {delivered}"),
            );
            for (plugin, error) in events.failures {
                step(
                    report,
                    &plugin,
                    Outcome::Failed,
                    format!("{hook} handler failed: {error}"),
                );
            }
        }
        Err(e) => step(report, "hooks", Outcome::Failed, format!("{hook}: {e}")),
    }
}

/// `data.object.metadata.customer_id` of a Stripe event body.
fn customer_of(body: &[u8]) -> Option<String> {
    let event: Value = serde_json::from_slice(body).ok()?;
    event
        .pointer("/data/object/metadata/customer_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// A verified payment event.
pub(crate) fn payment_event(
    daemon: &Daemon,
    plugin: &str,
    tenant: &str,
    event: &PaymentEvent,
    body: &[u8],
) -> Reaction {
    let mut report = report("payment-webhook", tenant);
    let payment_id = event
        .payment_id
        .clone()
        .into_option()
        .map_or_else(|| event.id.to_string(), |p| p.to_string());
    let (amount_minor, currency) = event
        .amount
        .clone()
        .into_option()
        .map_or((0, String::new()), |m| {
            (m.amount_minor, m.currency.to_string())
        });
    let customer = customer_of(body);
    let (payment_status, invoice_status) = match event.kind {
        PaymentEventKind::PaymentSucceeded => ("succeeded", Some("paid")),
        PaymentEventKind::PaymentFailed => ("failed", Some("overdue")),
        PaymentEventKind::ChargeRefunded => ("refunded", Some("refunded")),
        _ => ("other", None),
    };
    let customer_id = customer.clone().unwrap_or_default();
    match event.kind {
        PaymentEventKind::PaymentSucceeded => {
            let paid = InvoicePaid {
                invoice_id: payment_id.clone(),
                customer_id: customer_id.clone(),
                amount_minor,
                currency: currency.clone(),
                payment_id: Some(payment_id.clone()),
            };
            fire(daemon, &mut report, INVOICE_PAID, &paid);
        }
        PaymentEventKind::PaymentFailed => {
            let reason = event.failure_message.clone().into_option().map_or_else(
                || "the provider gave no reason".to_owned(),
                |r| r.to_string(),
            );
            let failed = PaymentFailed {
                customer_id: customer_id.clone(),
                amount_minor,
                currency: currency.clone(),
                reason,
            };
            fire(daemon, &mut report, PAYMENT_FAILED, &failed);
        }
        PaymentEventKind::ChargeRefunded => {
            let refunded = json!({
                "payment_id": payment_id, "customer_id": customer_id,
                "amount_minor": amount_minor, "currency": currency,
            });
            fire(daemon, &mut report, PAYMENT_REFUNDED, &refunded);
        }
        _ => step(
            &mut report,
            "isp",
            Outcome::Skipped,
            format!("no flow acts on {}", event.event_type),
        ),
    }
    match (&customer, invoice_status) {
        (Some(customer), Some(status)) => step(
            &mut report,
            "isp",
            Outcome::Done,
            format!("the invoice of customer {customer} is {status} (payment {payment_id})"),
        ),
        (None, Some(_)) => step(
            &mut report,
            "isp",
            Outcome::Skipped,
            format!(
                "payment {payment_id} names no customer (metadata.customer_id); no invoice changed"
            ),
        ),
        _ => {}
    }
    let at = now_rfc3339();
    let record = json!({
        "status": payment_status, "event": event.id.as_str(), "event_type": event.event_type.as_str(),
        "amount_minor": amount_minor, "currency": currency, "customer_id": customer, "updated_at": at,
        "plugin": plugin,
    });
    let invoice = invoice_status.map(|status| {
        json!({"status": status, "payment_id": payment_id, "amount_minor": amount_minor,
               "currency": record["currency"], "updated_at": at})
    });
    let payment_key = payment_id.clone();
    Reaction {
        id: event.id.to_string(),
        report,
        update: Box::new(move |records| {
            records.payments.insert(payment_key, record);
            if let (Some(customer), Some(invoice)) = (customer, invoice) {
                records.invoices.insert(customer, invoice);
            }
        }),
    }
}

/// A verified delivery-status callback (`id` is `MessageSid:status`).
pub(crate) fn message_status(
    daemon: &Daemon,
    plugin: &str,
    tenant: &str,
    id: &str,
    update: &StatusUpdate,
) -> Reaction {
    let mut report = report("message-webhook", tenant);
    let message_id = update.provider_message_id.to_string();
    let status = serde_json::to_value(update.status).unwrap_or(Value::Null);
    let error_code = update.error_code.into_option();
    let payload = json!({"message_id": message_id, "status": status, "error_code": error_code});
    match update.status {
        DeliveryStatus::Delivered => fire(daemon, &mut report, MESSAGE_DELIVERED, &payload),
        DeliveryStatus::Failed | DeliveryStatus::Undelivered => {
            fire(daemon, &mut report, MESSAGE_FAILED, &payload);
        }
        _ => {}
    }
    step(
        &mut report,
        plugin,
        Outcome::Done,
        format!(
            "message {message_id} is {}",
            status.as_str().unwrap_or("unknown")
        ),
    );
    let record = json!({"status": status, "error_code": error_code, "updated_at": now_rfc3339(), "plugin": plugin});
    Reaction {
        id: id.to_owned(),
        report,
        update: Box::new(move |records| {
            records.messages.insert(message_id, record);
        }),
    }
}
