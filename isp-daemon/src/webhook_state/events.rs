//! Which events integrators get, and where they come from:
//! - the audit log (`audit.jsonl`, appended and synced by the platform and
//!   the daemon), read from a durable cursor: `plugin.installed`,
//!   `plugin.removed`, `plugin.activated`, `plugin.deactivated`,
//!   `plugin.failed` (an install or activation of a plugin that failed),
//!   `provisioning.failed` (a provisioning refresh that failed as a whole:
//!   registry down, catalog refused; no plugin concerned),
//!   `plugin.released`, `reload.swapped`, `reload.rolled_back`,
//!   `tenant.tier_changed`, `tenant.config_changed`, `tenant.added`;
//! - the host's plugin states: `plugin.failed` when a plugin enters the
//!   failed state (a crash loop's quarantine, a failed start);
//! - the flows: `flow.completed` with the flow's report.
//!
//! An audit line's message id is derived from its byte offset and content,
//! so a line read twice (a crash between queuing and saving the cursor)
//! is queued under the same `webhook-id`.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Every event type the daemon sends.
pub const EVENT_TYPES: &[&str] = &[
    "plugin.installed",
    "plugin.removed",
    "plugin.activated",
    "plugin.deactivated",
    "plugin.failed",
    "plugin.released",
    "reload.swapped",
    "reload.rolled_back",
    "tenant.tier_changed",
    "tenant.config_changed",
    "tenant.added",
    "flow.completed",
    "provisioning.failed",
];

/// The event type of an audit entry, or `None` for entries integrators
/// are not told about (a refused request changed nothing).
pub fn event_of_audit(entry: &Value) -> Option<&'static str> {
    let action = entry.get("action")?.as_str()?;
    let outcome = entry.get("outcome")?.as_str()?;
    Some(match (action, outcome) {
        ("install", "failed") if entry.get("plugin").is_none_or(Value::is_null) => {
            "provisioning.failed"
        }
        ("install", "ok") => "plugin.installed",
        ("install" | "activate", "failed") => "plugin.failed",
        ("remove", "ok") => "plugin.removed",
        ("activate", "ok") => "plugin.activated",
        ("deactivate", "ok") => "plugin.deactivated",
        ("reload", "ok") => "reload.swapped",
        ("reload", "failed" | "refused") | ("rollback", _) => "reload.rolled_back",
        ("tier_change", "ok") => "tenant.tier_changed",
        ("config_change", "ok") => "tenant.config_changed",
        ("add_tenant", "ok") => "tenant.added",
        ("release_quarantine", "ok") => "plugin.released",
        _ => return None,
    })
}

/// The message id of the audit line at byte `offset`.
pub fn audit_message_id(offset: u64, line: &str) -> String {
    let digest = Sha256::digest(line.as_bytes());
    let short: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("msg_audit_{offset}_{short}")
}

/// The audit detail of each tenant's plugin the daemon stops when it shuts
/// down (its request is kept, and restored at the next start).
pub const SHUTDOWN_DETAIL: &str =
    "daemon stopping; the request is kept and restored at the next start";

/// The audit detail plugin-host's tenancy writes for a request it restores
/// at start.
pub const RESTORE_DETAIL: &str = "restored after a restart";

/// The actor of what the daemon does by itself (start-up, shutdown).
const DAEMON_ACTORS: &[&str] = &["isp-daemon", "system"];

/// Why an audit entry happened, for the event's `cause`: `"restart"` for
/// the deactivations a shutdown records and the activations the next start
/// restores, `"daemon"` for the rest of what the daemon does by itself
/// (start-up seeding of configured tenants), `"operator"` for everything an
/// API key, the admin token or a command did.
pub fn cause_of(entry: &Value) -> &'static str {
    let text = |name: &str| entry.get(name).and_then(Value::as_str).unwrap_or_default();
    let restart = match text("action") {
        "deactivate" => text("detail").starts_with(SHUTDOWN_DETAIL),
        "activate" => text("detail").starts_with(RESTORE_DETAIL),
        _ => false,
    };
    if restart {
        "restart"
    } else if DAEMON_ACTORS.contains(&text("actor")) {
        "daemon"
    } else {
        "operator"
    }
}

/// The event's data: the audit entry's fields, and its `cause`
/// ([`cause_of`]: `"restart"`, `"daemon"` or `"operator"`).
pub fn audit_data(entry: &Value) -> Value {
    let field = |name: &str| entry.get(name).cloned().unwrap_or(Value::Null);
    json!({
        "time": field("time"), "actor": field("actor"), "tenant": field("tenant"),
        "plugin": field("plugin"), "from_version": field("from_version"),
        "to_version": field("to_version"), "action": field("action"),
        "outcome": field("outcome"), "detail": field("detail"),
        "cause": cause_of(entry),
    })
}

/// The filters of an endpoint's `events` list that match no event type the
/// daemon sends: a filter is `*`, a type of [`EVENT_TYPES`], or
/// `<prefix>.*` where some type starts with `<prefix>.`.
pub fn unknown_event_filters(filters: &[String]) -> Vec<&str> {
    filters
        .iter()
        .map(String::as_str)
        .filter(|filter| {
            let known = *filter == "*"
                || EVENT_TYPES.contains(filter)
                || filter.strip_suffix(".*").is_some_and(|prefix| {
                    EVENT_TYPES.iter().any(|t| {
                        t.strip_prefix(prefix)
                            .is_some_and(|rest| rest.starts_with('.'))
                    })
                });
            !known
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_filters_must_match_an_event_type_the_daemon_sends() {
        let check = |filters: &[&str], unknown: &[&str]| {
            let filters: Vec<String> = filters.iter().map(|f| (*f).to_owned()).collect();
            assert_eq!(unknown_event_filters(&filters), unknown, "{filters:?}");
        };
        check(&["*"], &[]);
        check(&["plugin.installed", "flow.completed"], &[]);
        check(&["plugin.*", "tenant.*", "reload.*"], &[]);
        // New-user trial: a misspelt type was accepted and never delivered.
        check(&["plugin.instaled"], &["plugin.instaled"]);
        check(&["invoice.paid", "plugin.*"], &["invoice.paid"]);
        check(
            &["plug.*", "plugin", "*.installed", ""],
            &["plug.*", "plugin", "*.installed", ""],
        );
        check(&["Plugin.Installed"], &["Plugin.Installed"]);
    }

    #[test]
    fn a_restart_is_told_apart_from_an_operators_action_by_its_cause() {
        let cause = |actor: &str, action: &str, detail: &str| {
            cause_of(&json!({"actor": actor, "action": action, "outcome": "ok", "detail": detail}))
        };
        assert_eq!(
            cause("isp-daemon", "deactivate", SHUTDOWN_DETAIL),
            "restart"
        );
        assert_eq!(cause("isp-daemon", "activate", RESTORE_DETAIL), "restart");
        assert_eq!(cause("isp-daemon", "activate", "requested"), "daemon");
        assert_eq!(cause("key_ab12", "deactivate", ""), "operator");
        assert_eq!(cause("key_ab12", "activate", ""), "operator");
        let data = audit_data(&json!({"actor": "isp-daemon", "action": "deactivate",
            "outcome": "ok", "detail": SHUTDOWN_DETAIL}));
        assert_eq!(data["cause"], "restart");
    }

    #[test]
    fn audit_entries_become_the_events_integrators_care_about() {
        let check = |action: &str, outcome: &str, expected: Option<&str>| {
            let entry = json!({"action": action, "outcome": outcome});
            assert_eq!(event_of_audit(&entry), expected, "{action} {outcome}");
        };
        check("install", "ok", Some("plugin.installed"));
        // A refresh refused as a whole concerns no plugin (regression: it was
        // `plugin.failed` with a null plugin).
        check("install", "failed", Some("provisioning.failed"));
        assert_eq!(
            event_of_audit(&json!({"action": "install", "outcome": "failed", "plugin": "twilio"})),
            Some("plugin.failed")
        );
        check("activate", "ok", Some("plugin.activated"));
        check("activate", "refused", None);
        check("activate", "failed", Some("plugin.failed"));
        check("deactivate", "ok", Some("plugin.deactivated"));
        check("reload", "ok", Some("reload.swapped"));
        check("reload", "failed", Some("reload.rolled_back"));
        check("rollback", "ok", Some("reload.rolled_back"));
        check("remove", "ok", Some("plugin.removed"));
        check("tier_change", "ok", Some("tenant.tier_changed"));
        check("tier_change", "refused", None);
        check("something_new", "ok", None);
        for event in [
            "plugin.installed",
            "reload.rolled_back",
            "tenant.tier_changed",
            "provisioning.failed",
        ] {
            assert!(EVENT_TYPES.contains(&event));
        }
    }

    #[test]
    fn an_audit_line_keeps_its_message_id() {
        let a = audit_message_id(120, "{\"x\":1}");
        assert_eq!(a, audit_message_id(120, "{\"x\":1}"));
        assert_ne!(a, audit_message_id(121, "{\"x\":1}"));
        assert_ne!(a, audit_message_id(120, "{\"x\":2}"));
        assert!(a.starts_with("msg_audit_120_"));
    }
}
