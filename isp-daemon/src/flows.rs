//! The ISP flows, run through hooks and category services:
//! - a new customer: `customer.created`, then `before_payment_process` and
//!   the tenant's payment provider for the first charge, then a welcome SMS
//!   through its communication provider, then network automation (SNMP, SSH)
//!   against the customer's device, then `service.activated`;
//! - a device alert: `device.alert`, which pages the tenant's on-call number;
//! - a tier change: the platform moves the tenant, and plugins the new tier
//!   entitles are activated (those it does not, deactivated).
//!
//! A tenant without a provider gets a "skipped" step saying why, not an
//! error. Each flow returns a [`FlowReport`]: the steps, who took each, and
//! how it went.

use plugin_api::categories::*;
use plugin_api::communication::OutboundMessage;
use plugin_api::hooks::{
    CustomerCreated, DeviceAlert, InvoicePaid, PaymentFailed, PaymentIntent, ServiceChanged,
    BEFORE_PAYMENT_PROCESS, CUSTOMER_CREATED, DEVICE_ALERT, INVOICE_PAID, PAYMENT_FAILED,
    SERVICE_ACTIVATED,
};
use plugin_api::network_automation::{
    SnmpOperation, SnmpRequest, SnmpTarget, SnmpValue, SnmpVersion, SshCommand, VarBind,
};
use plugin_api::payment::{CreatePayment, Money, PaymentStatus};
use plugin_api::{communication, network_automation, payment, KeyValue};
use plugin_host::dispatch::FilterError;
use plugin_host::PluginHandle;
use serde::Serialize;
use serde_json::Value;

use crate::daemon::Daemon;
use crate::error::Problem;
pub use crate::requests::{DeviceAlertRequest, NewCustomer, TierChangeRequest};

/// `sysName.0`.
const SYS_NAME: &str = "1.3.6.1.2.1.1.5.0";
/// `sysDescr.0`.
const SYS_DESCR: &str = "1.3.6.1.2.1.1.1.0";
/// The test card every Stripe account (and the stand-in) accepts.
const DEFAULT_PAYMENT_METHOD: &str = "pm_card_visa";

/// How a step went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Done.
    Done,
    /// Not applicable for this tenant or customer; the message says why.
    Skipped,
    /// A filter refused it.
    Vetoed,
    /// Tried and failed.
    Failed,
}

/// One step of a flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// Who took it: a plugin id, `hooks`, `platform` or `isp`.
    pub actor: String,
    /// How it went.
    pub outcome: Outcome,
    /// What happened.
    pub message: String,
}

/// What a flow did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowReport {
    /// `new-customer`, `device-alert` or `tier-change`.
    pub flow: &'static str,
    /// The tenant.
    pub tenant: String,
    /// Whether the flow reached its goal.
    pub ok: bool,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

impl FlowReport {
    fn new(flow: &'static str, tenant: &str) -> Self {
        Self {
            flow,
            tenant: tenant.to_owned(),
            ok: true,
            steps: Vec::new(),
        }
    }

    fn step(&mut self, actor: &str, outcome: Outcome, message: impl Into<String>) {
        if matches!(outcome, Outcome::Failed | Outcome::Vetoed) {
            self.ok = false;
        }
        self.steps.push(Step {
            actor: actor.to_owned(),
            outcome,
            message: message.into(),
        });
    }

    fn done(&mut self, actor: &str, message: impl Into<String>) {
        self.step(actor, Outcome::Done, message);
    }

    fn skipped(&mut self, actor: &str, message: impl Into<String>) {
        self.step(actor, Outcome::Skipped, message);
    }

    fn failed(&mut self, actor: &str, message: impl Into<String>) {
        self.step(actor, Outcome::Failed, message);
    }

    /// One line per step: `[actor] tenant: message`.
    pub fn lines(&self) -> Vec<String> {
        self.steps
            .iter()
            .map(|s| {
                let prefix = match s.outcome {
                    Outcome::Done => "",
                    Outcome::Skipped => "skipped: ",
                    Outcome::Vetoed => "vetoed: ",
                    Outcome::Failed => "FAILED: ",
                };
                format!("[{}] {}: {prefix}{}", s.actor, self.tenant, s.message)
            })
            .collect()
    }
}

/// `4999, "usd"` → `49.99 USD`.
pub(crate) fn money(minor: i64, currency: &str) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    format!(
        "{sign}{}.{:02} {}",
        abs / 100,
        abs % 100,
        currency.to_uppercase()
    )
}

/// The delivery of a hook as a step.
fn hook_step(
    report: &mut FlowReport,
    hook: &str,
    fired: Result<plugin_host::dispatch::EventReport, String>,
) {
    match fired {
        Ok(events) => {
            let delivered = if events.delivered.is_empty() {
                "no subscriber".to_owned()
            } else {
                events.delivered.join(", ")
            };
            report.done("hooks", format!("{hook} → {delivered}"));
            for (plugin, error) in events.failures {
                report.failed(&plugin, format!("{hook} handler failed: {error}"));
            }
        }
        Err(e) => report.failed("hooks", format!("{hook}: {e}")),
    }
}

fn fire<T: Serialize>(daemon: &Daemon, report: &mut FlowReport, hook: &str, payload: &T) {
    let fired = daemon
        .host()
        .fire_json(&report.tenant.clone(), hook, payload)
        .map_err(|e| e.to_string());
    hook_step(report, hook, fired);
}

/// Runs the new-customer flow.
pub fn new_customer(daemon: &Daemon, request: &NewCustomer) -> Result<FlowReport, Problem> {
    counted(daemon, run_new_customer(daemon, request))
}

/// Counts a finished flow for `GET /metrics` (see `flow_stats`).
fn counted(daemon: &Daemon, report: Result<FlowReport, Problem>) -> Result<FlowReport, Problem> {
    if let Ok(report) = &report {
        let steps = report.steps.iter().map(|s| {
            let outcome = match s.outcome {
                Outcome::Done => "done",
                Outcome::Skipped => "skipped",
                Outcome::Vetoed => "vetoed",
                Outcome::Failed => "failed",
            };
            (s.actor.as_str(), outcome)
        });
        daemon
            .flow_stats()
            .record(report.flow, &report.tenant, report.ok, steps);
    }
    report
}

fn run_new_customer(daemon: &Daemon, request: &NewCustomer) -> Result<FlowReport, Problem> {
    let tier = daemon.tier_of(&request.tenant)?;
    request
        .validate()
        .map_err(|e| Problem::unprocessable(e).tenant(&request.tenant))?;
    let tenant = request.tenant.as_str();
    // Log lines of the plugins this flow calls carry the tenant (telemetry).
    let _span = tracing::info_span!("flow", flow = "new-customer", tenant).entered();
    let currency = request.currency.to_lowercase();
    let mut report = FlowReport::new("new-customer", tenant);
    let created = CustomerCreated {
        customer_id: request.customer_id.clone(),
        name: request.name.clone(),
        phone: request.phone.clone(),
        email: request.email.clone(),
        plan: request.plan.clone(),
        monthly_price_minor: request.monthly_price_minor,
        currency: currency.clone(),
        device_address: request.device_address.clone(),
    };
    fire(daemon, &mut report, CUSTOMER_CREATED, &created);

    if !first_charge(daemon, &mut report, request, &tier, &currency) {
        report.failed(
            "isp",
            format!(
                "customer {} is not activated: the first charge did not go through",
                request.customer_id
            ),
        );
        return Ok(report);
    }
    welcome_sms(daemon, &mut report, request, &tier);
    if !provision(daemon, &mut report, request, &tier) {
        report.failed(
            "isp",
            format!(
                "service of customer {} is not activated: provisioning failed",
                request.customer_id
            ),
        );
        return Ok(report);
    }
    let activated = ServiceChanged {
        customer_id: request.customer_id.clone(),
        plan: request.plan.clone(),
        device_address: request
            .device_address
            .as_deref()
            .and_then(|d| daemon.devices().snmp_address(d).ok()),
    };
    fire(daemon, &mut report, SERVICE_ACTIVATED, &activated);
    report.done(
        "isp",
        format!(
            "customer {} ({}) is active on plan {}",
            request.customer_id, request.name, request.plan
        ),
    );
    Ok(report)
}

/// The first charge; false when it was refused or failed.
fn first_charge(
    daemon: &Daemon,
    report: &mut FlowReport,
    request: &NewCustomer,
    tier: &str,
    currency: &str,
) -> bool {
    let tenant = request.tenant.as_str();
    let Some(provider) = daemon
        .host()
        .provider_for_tenant::<payment::Contract>(tenant)
    else {
        let why = daemon.missing_provider::<payment::Contract>(tenant, tier);
        report.skipped("payment", format!("{why}; no charge taken"));
        return true;
    };
    let id = provider.id().to_owned();
    let intent = PaymentIntent {
        customer_id: request.customer_id.clone(),
        amount_minor: request.monthly_price_minor,
        currency: currency.to_owned(),
        notes: vec![format!("first month of plan {}", request.plan)],
    };
    let payload = serde_json::to_vec(&intent).unwrap_or_default();
    let intent = match daemon.host().run_filter(
        tenant,
        BEFORE_PAYMENT_PROCESS,
        "application/json",
        &payload,
    ) {
        Ok(filtered) => {
            let ran = if filtered.ran.is_empty() {
                "no filter".to_owned()
            } else {
                filtered.ran.join(", ")
            };
            report.done("hooks", format!("{BEFORE_PAYMENT_PROCESS} passed ({ran})"));
            match serde_json::from_slice::<PaymentIntent>(&filtered.bytes) {
                Ok(intent) => intent,
                Err(e) => {
                    report.failed(
                        "hooks",
                        format!("{BEFORE_PAYMENT_PROCESS} returned a payload that is not a payment intent: {e}"),
                    );
                    return false;
                }
            }
        }
        Err(FilterError::Vetoed { plugin, reason, .. }) => {
            report.step(&plugin, Outcome::Vetoed, reason.clone());
            payment_failed(daemon, report, request, currency, &reason);
            return false;
        }
        Err(e) => {
            report.failed("hooks", e.to_string());
            payment_failed(daemon, report, request, currency, &e.to_string());
            return false;
        }
    };
    let create = CreatePayment {
        amount: Money {
            amount_minor: intent.amount_minor,
            currency: intent.currency.as_str().into(),
        },
        customer: None.into(),
        payment_method: Some(
            request
                .payment_method
                .as_deref()
                .unwrap_or(DEFAULT_PAYMENT_METHOD)
                .into(),
        )
        .into(),
        confirm: true,
        manual_capture: false,
        description: Some(format!("{}: first month of {}", tenant, request.plan).into()).into(),
        metadata: vec![
            KeyValue::new("tenant", tenant),
            KeyValue::new("customer_id", request.customer_id.as_str()),
        ]
        .into(),
        idempotency_key: format!("{tenant}:{}:first-charge", request.customer_id).into(),
    };
    match provider
        .payment()
        .and_then(|p| p.create_payment(tenant, create))
    {
        Ok(payment) if payment.status == PaymentStatus::Succeeded => {
            report.done(
                &id,
                format!(
                    "charged {} ({})",
                    money(
                        payment.amount.amount_minor,
                        payment.amount.currency.as_str()
                    ),
                    payment.id
                ),
            );
            let paid = InvoicePaid {
                invoice_id: format!("in-{}-1", request.customer_id),
                customer_id: request.customer_id.clone(),
                amount_minor: payment.amount.amount_minor,
                currency: payment.amount.currency.to_string(),
                payment_id: Some(payment.id.to_string()),
            };
            fire(daemon, report, INVOICE_PAID, &paid);
            true
        }
        Ok(payment) => {
            let why = format!(
                "payment {} of {} is {:?}, not succeeded",
                payment.id,
                money(
                    payment.amount.amount_minor,
                    payment.amount.currency.as_str()
                ),
                payment.status
            );
            report.failed(&id, why.clone());
            payment_failed(daemon, report, request, currency, &why);
            false
        }
        Err(e) => {
            report.failed(&id, e.to_string());
            payment_failed(daemon, report, request, currency, &e.to_string());
            false
        }
    }
}

fn payment_failed(
    daemon: &Daemon,
    report: &mut FlowReport,
    request: &NewCustomer,
    currency: &str,
    reason: &str,
) {
    let failed = PaymentFailed {
        customer_id: request.customer_id.clone(),
        amount_minor: request.monthly_price_minor,
        currency: currency.to_owned(),
        reason: reason.to_owned(),
    };
    fire(daemon, report, PAYMENT_FAILED, &failed);
}

fn welcome_sms(daemon: &Daemon, report: &mut FlowReport, request: &NewCustomer, tier: &str) {
    let tenant = request.tenant.as_str();
    let Some(provider) = daemon
        .host()
        .provider_for_tenant::<communication::Contract>(tenant)
    else {
        let why = daemon.missing_provider::<communication::Contract>(tenant, tier);
        report.skipped("sms", format!("{why}; no welcome SMS"));
        return;
    };
    let Some(phone) = &request.phone else {
        report.skipped(
            provider.id(),
            "the customer gave no phone number; no welcome SMS",
        );
        return;
    };
    let message = OutboundMessage {
        to: phone.as_str().into(),
        body: welcome_text(tenant, request).into(),
        ..OutboundMessage::default()
    };
    match provider
        .communication()
        .and_then(|c| c.send_message(tenant, message))
    {
        Ok(receipt) => report.done(
            provider.id(),
            format!(
                "welcome SMS to {phone} {} ({})",
                format!("{:?}", receipt.status).to_lowercase(),
                receipt.provider_message_id
            ),
        ),
        // The customer is signed up and paid; a lost SMS does not undo that.
        Err(e) => report.failed(provider.id(), format!("welcome SMS to {phone}: {e}")),
    }
}

/// The welcome text for a customer.
pub(crate) fn welcome_text(tenant: &str, request: &NewCustomer) -> String {
    format!(
        "Welcome to {tenant}, {}! Your {} service is being activated.",
        request.name, request.plan
    )
}

/// Network automation; false when provisioning failed.
fn provision(daemon: &Daemon, report: &mut FlowReport, request: &NewCustomer, tier: &str) -> bool {
    let tenant = request.tenant.as_str();
    let Some(provider) = daemon
        .host()
        .provider_for_tenant::<network_automation::Contract>(tenant)
    else {
        let why = daemon.missing_provider::<network_automation::Contract>(tenant, tier);
        report.skipped("network", format!("{why}; the device is not provisioned"));
        return true;
    };
    let id = provider.id().to_owned();
    let address = match request
        .device_address
        .as_deref()
        .map(|d| daemon.devices().snmp_address(d))
    {
        None => {
            report.skipped(&id, "the customer has no device address; nothing to query");
            None
        }
        Some(Err(why)) => {
            report.skipped(&id, format!("no SNMP device: {why}"));
            None
        }
        Some(Ok(address)) => Some(address),
    };
    if let Some(address) = address {
        if !snmp_identify(&provider, report, tenant, &address) {
            return false;
        }
    }
    match request
        .device_ssh
        .as_deref()
        .map(|d| daemon.devices().ssh_endpoint(d))
    {
        None => {
            report.skipped(
                &id,
                "the customer's device has no SSH endpoint; no command run",
            );
            true
        }
        Some(Err(why)) => {
            report.skipped(&id, format!("no SSH device: {why}"));
            true
        }
        Some(Ok((host, port))) => ssh_provision(&provider, report, request, &host, port),
    }
}

fn snmp_identify(
    provider: &PluginHandle,
    report: &mut FlowReport,
    tenant: &str,
    address: &str,
) -> bool {
    let request = SnmpRequest {
        target: SnmpTarget {
            address: address.into(),
            version: SnmpVersion::V2c,
            community: None.into(),
            user: None.into(),
            timeout_ms: 0,
            retries: 1,
        },
        operation: SnmpOperation::Get,
        oids: vec![SYS_NAME.into(), SYS_DESCR.into()].into(),
    };
    match provider
        .network_automation()
        .and_then(|n| n.snmp(tenant, request))
    {
        Ok(varbinds) => {
            report.done(
                provider.id(),
                format!(
                    "SNMP GET {address}: sysName={:?} sysDescr={:?}",
                    value_of(&varbinds, SYS_NAME),
                    value_of(&varbinds, SYS_DESCR)
                ),
            );
            true
        }
        Err(e) => {
            report.failed(provider.id(), format!("SNMP GET {address}: {e}"));
            false
        }
    }
}

fn value_of(varbinds: &[VarBind], oid: &str) -> String {
    let text = match varbinds
        .iter()
        .find(|v| v.oid.as_str() == oid)
        .map(|v| &v.value)
    {
        Some(SnmpValue::OctetString(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
        Some(other) => format!("{other:?}"),
        None => "<missing>".to_owned(),
    };
    let mut short: String = text.chars().take(60).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    short
}

fn ssh_provision(
    provider: &PluginHandle,
    report: &mut FlowReport,
    request: &NewCustomer,
    host: &str,
    port: u16,
) -> bool {
    let line = format!(
        "echo provisioned plan {} for customer {}",
        request.plan, request.customer_id
    );
    let command = SshCommand {
        host: host.into(),
        port,
        user: "".into(),
        command: line.as_str().into(),
        timeout_ms: 0,
    };
    match provider
        .network_automation()
        .and_then(|n| n.ssh_exec(&request.tenant, command))
    {
        Ok(output) => {
            let status = output.exit_status.into_option();
            let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
            if status == Some(0) {
                report.done(
                    provider.id(),
                    format!("SSH {host}:{port} `{line}` → exit 0: {stdout}"),
                );
                true
            } else {
                let ended = match (status, output.exit_signal.into_option()) {
                    (Some(code), _) => format!("exit {code}"),
                    (None, Some(signal)) => format!(
                        "killed by SIG{}{}",
                        signal.name,
                        if signal.core_dumped {
                            " (core dumped)"
                        } else {
                            ""
                        }
                    ),
                    (None, None) => "ended without an exit status from the server".to_owned(),
                };
                report.failed(
                    provider.id(),
                    format!(
                        "SSH {host}:{port} `{line}` → {ended}: {}",
                        String::from_utf8_lossy(&output.stderr).trim()
                    ),
                );
                false
            }
        }
        Err(e) => {
            report.failed(provider.id(), format!("SSH {host}:{port}: {e}"));
            false
        }
    }
}

/// Runs the device-alert flow.
pub fn device_alert(daemon: &Daemon, request: &DeviceAlertRequest) -> Result<FlowReport, Problem> {
    counted(daemon, run_device_alert(daemon, request))
}

fn run_device_alert(daemon: &Daemon, request: &DeviceAlertRequest) -> Result<FlowReport, Problem> {
    daemon.tier_of(&request.tenant)?;
    request
        .validate()
        .map_err(|e| Problem::unprocessable(e).tenant(&request.tenant))?;
    let tenant = request.tenant.as_str();
    // Log lines of the plugins this flow calls carry the tenant (telemetry).
    let _span = tracing::info_span!("flow", flow = "device-alert", tenant).entered();
    let mut report = FlowReport::new("device-alert", tenant);
    let alert = DeviceAlert {
        device: request.device.clone(),
        severity: request.severity.clone(),
        message: request.message.clone(),
    };
    let events = match daemon.host().fire_json(tenant, DEVICE_ALERT, &alert) {
        Ok(events) => events,
        Err(e) => {
            report.failed("hooks", format!("{DEVICE_ALERT}: {e}"));
            return Ok(report);
        }
    };
    if events.delivered.is_empty() && events.failures.is_empty() {
        report.skipped(
            "hooks",
            format!("no plugin active for this tenant handles {DEVICE_ALERT}; nobody was paged"),
        );
    }
    let communication = daemon.host().providers::<communication::Contract>();
    for plugin in &events.delivered {
        if !communication.contains(plugin) {
            report.done(
                plugin,
                format!(
                    "handled the {} alert on {}",
                    request.severity, request.device
                ),
            );
            continue;
        }
        match daemon.shown_setting(tenant, plugin, "on_call_number") {
            Some(Value::String(number)) => report.done(
                plugin,
                format!(
                    "paged on-call {number} by SMS about the {} alert on {}",
                    request.severity, request.device
                ),
            ),
            _ => report.skipped(
                plugin,
                "no on_call_number is configured for this tenant; nobody was paged",
            ),
        }
    }
    for (plugin, error) in &events.failures {
        report.failed(plugin, format!("{DEVICE_ALERT} handler failed: {error}"));
    }
    Ok(report)
}

/// Runs the tier-change flow as `actor`.
pub fn change_tier(
    daemon: &Daemon,
    actor: &str,
    request: &TierChangeRequest,
) -> Result<FlowReport, Problem> {
    counted(daemon, run_change_tier(daemon, actor, request))
}

fn run_change_tier(
    daemon: &Daemon,
    actor: &str,
    request: &TierChangeRequest,
) -> Result<FlowReport, Problem> {
    let tenant = request.tenant.as_str();
    // Log lines of the plugins this flow calls carry the tenant (telemetry).
    let _span = tracing::info_span!("flow", flow = "tier-change", tenant).entered();
    daemon.tier_of(tenant)?;
    let platform = daemon.platform().as_actor(actor);
    let change = platform
        .change_tier(tenant, &request.tier)
        .map_err(|e| Problem::from(e).tenant(tenant))?;
    let mut report = FlowReport::new("tier-change", tenant);
    if change.from == change.to {
        report.skipped(
            "platform",
            format!("already on tier {}; nothing changed", change.to),
        );
        return Ok(report);
    }
    report.done("platform", format!("tier {} → {}", change.from, change.to));
    for plugin in &change.deactivated {
        report.done(
            plugin,
            format!(
                "deactivated: tier {} does not include it (its settings are kept)",
                change.to
            ),
        );
    }
    for plugin in &change.activated {
        report.done(plugin, format!("activated: entitled by tier {}", change.to));
    }
    for (plugin, error) in &change.failed {
        report.failed(plugin, error.clone());
    }
    hook_step(
        &mut report,
        plugin_api::hooks::CUSTOMER_TIER_CHANGED,
        Ok(change.hook.clone()),
    );
    for (plugin, outcome) in daemon.activate_waiting(actor, tenant) {
        match outcome {
            Ok(()) => report.done(
                &plugin,
                format!(
                    "activated: its configured settings were waiting for tier {}",
                    change.to
                ),
            ),
            Err(e) => report.failed(&plugin, e.error),
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_shown_in_major_units() {
        let check = |minor, currency, expected: &str| assert_eq!(money(minor, currency), expected);
        check(4999, "usd", "49.99 USD");
        check(5, "eur", "0.05 EUR");
        check(100000, "usd", "1000.00 USD");
        check(-250, "usd", "-2.50 USD");
    }

    fn customer() -> NewCustomer {
        NewCustomer {
            tenant: "acme".to_owned(),
            customer_id: "c-1".to_owned(),
            name: "Ada".to_owned(),
            phone: Some("+14155550123".to_owned()),
            email: None,
            plan: "fiber".to_owned(),
            monthly_price_minor: 4999,
            currency: "usd".to_owned(),
            device_address: None,
            device_ssh: None,
            payment_method: None,
        }
    }

    #[test]
    fn new_customer_requests_are_checked_field_by_field() {
        let check = |change: &dyn Fn(&mut NewCustomer), expected: Result<(), &str>| {
            let mut request = customer();
            change(&mut request);
            match (request.validate(), expected) {
                (Ok(()), Ok(())) => {}
                (Err(got), Err(part)) => assert!(got.contains(part), "{got:?} lacks {part:?}"),
                (got, expected) => panic!("{request:?}: got {got:?}, expected {expected:?}"),
            }
        };
        check(&|_| {}, Ok(()));
        check(&|r| r.phone = None, Ok(()));
        check(&|r| r.currency = "EUR".to_owned(), Ok(()));
        check(&|r| r.customer_id = String::new(), Err("`customer_id`"));
        check(&|r| r.customer_id = "a b".to_owned(), Err("`customer_id`"));
        check(&|r| r.name = " ".to_owned(), Err("`name`"));
        check(&|r| r.plan = String::new(), Err("`plan`"));
        check(
            &|r| r.monthly_price_minor = -1,
            Err("`monthly_price_minor`"),
        );
        check(&|r| r.currency = "dollars".to_owned(), Err("`currency`"));
        check(&|r| r.phone = Some("555-0100".to_owned()), Err("`phone`"));
        check(&|r| r.phone = Some("+1".to_owned()), Err("`phone`"));
        check(
            &|r| r.device_address = Some(String::new()),
            Err("`device_address`"),
        );
    }

    #[test]
    fn alerts_need_a_known_severity() {
        let alert = |severity: &str| DeviceAlertRequest {
            tenant: "acme".to_owned(),
            device: "olt-1".to_owned(),
            severity: severity.to_owned(),
            message: "down".to_owned(),
        };
        for ok in ["info", "warning", "critical"] {
            assert_eq!(alert(ok).validate(), Ok(()));
        }
        let refused = alert("meh").validate().expect_err("refused");
        assert!(refused.contains("`severity`"), "{refused}");
    }

    #[test]
    fn report_lines_name_the_actor_the_tenant_and_the_outcome() {
        let mut report = FlowReport::new("new-customer", "acme");
        report.done("stripe", "charged 49.99 USD (pi_1)");
        report.skipped("sms", "tier free has no communication provider");
        assert!(report.ok);
        report.step("stripe", Outcome::Vetoed, "too much");
        report.failed("twilio", "down");
        assert!(!report.ok);
        assert_eq!(
            report.lines(),
            [
                "[stripe] acme: charged 49.99 USD (pi_1)",
                "[sms] acme: skipped: tier free has no communication provider",
                "[stripe] acme: vetoed: too much",
                "[twilio] acme: FAILED: down",
            ]
        );
    }
}
