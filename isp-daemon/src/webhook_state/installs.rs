//! Which install audit entries become `plugin.installed` events: one per
//! real install or upgrade. Several audit lines record one install (the
//! platform's registration of the manifest, then provisioning's or the
//! package upload's own line), and every start registers each plugin
//! again (`0.1.0 → 0.1.0`); integrators must hear of the install once.
//!
//! Pure: the worker reads and writes the remembered versions
//! (`<state dir>/webhooks/installed-versions.json`).

use std::collections::BTreeMap;

use serde_json::Value;

/// Per plugin id, the version the last `plugin.installed` event announced.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct InstalledVersions(BTreeMap<String, String>);

impl InstalledVersions {
    /// From the saved JSON object (id → version); empty when unreadable.
    pub fn from_json(bytes: &[u8]) -> Self {
        Self(serde_json::from_slice(bytes).unwrap_or_default())
    }

    /// The JSON object to save.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(&self.0).unwrap_or_default()
    }

    /// Whether the audit `entry`, whose event would be `event_type`, is
    /// sent. A `plugin.installed` whose version did not change (`from ==
    /// to`, a start registering what was installed) or whose version the
    /// last `plugin.installed` of that plugin already announced is not;
    /// `plugin.removed` forgets the plugin, so a reinstall is announced.
    pub fn admit(&mut self, event_type: &str, entry: &Value) -> bool {
        let Some(plugin) = entry.get("plugin").and_then(Value::as_str) else {
            return true;
        };
        match event_type {
            "plugin.installed" => {
                let to = entry.get("to_version").and_then(Value::as_str);
                let from = entry.get("from_version").and_then(Value::as_str);
                let Some(to) = to else { return true };
                if from == Some(to) || self.0.get(plugin).map(String::as_str) == Some(to) {
                    return false;
                }
                self.0.insert(plugin.to_owned(), to.to_owned());
                true
            }
            "plugin.removed" => {
                self.0.remove(plugin);
                true
            }
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn installed(plugin: &str, from: Option<&str>, to: &str) -> Value {
        json!({"action": "install", "outcome": "ok", "plugin": plugin,
               "from_version": from, "to_version": to})
    }

    #[test]
    fn one_install_is_announced_once_and_a_restart_announces_nothing() {
        let mut seen = InstalledVersions::default();
        let mut check = |event: &str, entry: Value, expected: bool| {
            assert_eq!(seen.admit(event, &entry), expected, "{event} {entry}");
        };
        // Provisioning: the registration, then provisioning's own line.
        check("plugin.installed", installed("twilio", None, "0.1.0"), true);
        check(
            "plugin.installed",
            installed("twilio", None, "0.1.0"),
            false,
        );
        // A restart registers what is installed again.
        check(
            "plugin.installed",
            installed("twilio", Some("0.1.0"), "0.1.0"),
            false,
        );
        // An upgrade is announced once.
        check(
            "plugin.installed",
            installed("twilio", Some("0.1.0"), "0.2.0"),
            true,
        );
        check(
            "plugin.installed",
            installed("twilio", Some("0.1.0"), "0.2.0"),
            false,
        );
        // Removed, then installed again: announced again.
        check("plugin.removed", json!({"plugin": "twilio"}), true);
        check("plugin.installed", installed("twilio", None, "0.2.0"), true);
        // Other events pass.
        check("plugin.activated", json!({"plugin": "twilio"}), true);
        let saved = InstalledVersions::from_json(&seen.to_json());
        assert_eq!(saved, seen);
    }
}
