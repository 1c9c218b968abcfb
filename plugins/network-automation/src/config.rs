//! A tenant's settings, parsed and checked from its configuration at
//! activation. Pure: no IO, so every rule is unit-tested with plain values.
//!
//! Invariant: credentials are held as [`Secret`]s from the moment they are
//! parsed, so no `Debug` or log line can show them.

use std::time::Duration;

use plugin_api::{PluginError, Result, Secret, TenantConfig};
use serde::Serialize;

use crate::ansible::AnsibleSettings;
use crate::snmp::SnmpDefaults;
use crate::ssh::{HostPin, KeySource, SshSettings};

/// Every key the plugin reads; `plugin.toml` declares exactly these.
#[cfg(test)]
pub(crate) const KEYS: &[&str] = &[
    "snmp_community",
    "snmp_v3_user",
    "snmp_v3_auth_protocol",
    "snmp_v3_auth_password",
    "snmp_v3_priv_protocol",
    "snmp_v3_priv_password",
    "snmp_timeout_ms",
    "snmp_retries",
    "snmp_max_repetitions",
    "ssh_user",
    "ssh_private_key_path",
    "ssh_private_key",
    "ssh_private_key_passphrase",
    "ssh_known_hosts",
    "ssh_timeout_ms",
    "ansible_runner",
    "ansible_timeout_ms",
];

/// The keys whose values are credentials; `plugin.toml` marks exactly these sensitive.
#[cfg(test)]
pub(crate) const SENSITIVE_KEYS: &[&str] = &[
    "snmp_community",
    "snmp_v3_auth_password",
    "snmp_v3_priv_password",
    "ssh_private_key",
    "ssh_private_key_passphrase",
];

/// The configuration as it arrives. Deliberately no `Debug`: it holds
/// credentials in the clear until [`TenantSettings::from_config`] wraps them.
#[derive(Serialize)]
pub(crate) struct RawConfig {
    snmp_community: Option<String>,
    snmp_v3_user: Option<String>,
    snmp_v3_auth_protocol: String,
    snmp_v3_auth_password: Option<String>,
    snmp_v3_priv_protocol: String,
    snmp_v3_priv_password: Option<String>,
    snmp_timeout_ms: u64,
    snmp_retries: u32,
    snmp_max_repetitions: u32,
    ssh_user: Option<String>,
    ssh_private_key_path: Option<String>,
    ssh_private_key: Option<String>,
    ssh_private_key_passphrase: Option<String>,
    ssh_known_hosts: Vec<String>,
    ssh_timeout_ms: u64,
    ansible_runner: Option<String>,
    ansible_timeout_ms: u64,
}

/// The defaults `plugin.toml` declares; a unit test keeps them in step.
impl Default for RawConfig {
    fn default() -> Self {
        Self {
            snmp_community: None,
            snmp_v3_user: None,
            snmp_v3_auth_protocol: "SHA".to_owned(),
            snmp_v3_auth_password: None,
            snmp_v3_priv_protocol: "AES".to_owned(),
            snmp_v3_priv_password: None,
            snmp_timeout_ms: 2_000,
            snmp_retries: 1,
            snmp_max_repetitions: 25,
            ssh_user: None,
            ssh_private_key_path: None,
            ssh_private_key: None,
            ssh_private_key_passphrase: None,
            ssh_known_hosts: Vec::new(),
            ssh_timeout_ms: 30_000,
            ansible_runner: None,
            ansible_timeout_ms: 600_000,
        }
    }
}

/// Everything one tenant's calls need.
#[derive(Debug)]
pub(crate) struct TenantSettings {
    pub(crate) snmp: SnmpDefaults,
    pub(crate) ssh: SshSettings,
    pub(crate) ansible: AnsibleSettings,
}

impl TenantSettings {
    /// Parses and checks a tenant's configuration.
    pub(crate) fn from_config(config: &TenantConfig) -> Result<Self> {
        // Key by key rather than `config.parse()`, so a wrong type is
        // reported against the key that has it.
        let d = RawConfig::default();
        let raw = RawConfig {
            snmp_community: config.get("snmp_community")?,
            snmp_v3_user: config.get("snmp_v3_user")?,
            snmp_v3_auth_protocol: config
                .get("snmp_v3_auth_protocol")?
                .unwrap_or(d.snmp_v3_auth_protocol),
            snmp_v3_auth_password: config.get("snmp_v3_auth_password")?,
            snmp_v3_priv_protocol: config
                .get("snmp_v3_priv_protocol")?
                .unwrap_or(d.snmp_v3_priv_protocol),
            snmp_v3_priv_password: config.get("snmp_v3_priv_password")?,
            snmp_timeout_ms: config.get("snmp_timeout_ms")?.unwrap_or(d.snmp_timeout_ms),
            snmp_retries: config.get("snmp_retries")?.unwrap_or(d.snmp_retries),
            snmp_max_repetitions: config
                .get("snmp_max_repetitions")?
                .unwrap_or(d.snmp_max_repetitions),
            ssh_user: config.get("ssh_user")?,
            ssh_private_key_path: config.get("ssh_private_key_path")?,
            ssh_private_key: config.get("ssh_private_key")?,
            ssh_private_key_passphrase: config.get("ssh_private_key_passphrase")?,
            ssh_known_hosts: config.get("ssh_known_hosts")?.unwrap_or(d.ssh_known_hosts),
            ssh_timeout_ms: config.get("ssh_timeout_ms")?.unwrap_or(d.ssh_timeout_ms),
            ansible_runner: config.get("ansible_runner")?,
            ansible_timeout_ms: config
                .get("ansible_timeout_ms")?
                .unwrap_or(d.ansible_timeout_ms),
        };
        Self::from_raw(raw)
    }

    fn from_raw(raw: RawConfig) -> Result<Self> {
        let snmp = SnmpDefaults {
            community: non_empty(raw.snmp_community).map(Secret::new),
            v3_user: non_empty(raw.snmp_v3_user),
            auth_protocol: crate::snmp::parse_auth_protocol(&raw.snmp_v3_auth_protocol)
                .map_err(|m| PluginError::invalid_config("snmp_v3_auth_protocol", m))?,
            auth_password: non_empty(raw.snmp_v3_auth_password).map(Secret::new),
            priv_protocol: crate::snmp::parse_priv_protocol(&raw.snmp_v3_priv_protocol)
                .map_err(|m| PluginError::invalid_config("snmp_v3_priv_protocol", m))?,
            priv_password: non_empty(raw.snmp_v3_priv_password).map(Secret::new),
            timeout: positive_ms("snmp_timeout_ms", raw.snmp_timeout_ms)?,
            retries: raw.snmp_retries,
            max_repetitions: match raw.snmp_max_repetitions {
                0 => {
                    return Err(PluginError::invalid_config(
                        "snmp_max_repetitions",
                        "must be at least 1 (25 is a good start)",
                    ))
                }
                n => n,
            },
        };

        let key = match (
            non_empty(raw.ssh_private_key_path),
            non_empty(raw.ssh_private_key),
        ) {
            (Some(_), Some(_)) => {
                return Err(PluginError::invalid_config(
                    "ssh_private_key",
                    "set either `ssh_private_key_path` or `ssh_private_key`, not both",
                ))
            }
            (Some(path), None) => Some(KeySource::Path(path.into())),
            (None, Some(inline)) => Some(KeySource::Inline(Secret::new(inline))),
            (None, None) => None,
        };
        let pins = raw
            .ssh_known_hosts
            .iter()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
            .map(|(i, line)| {
                HostPin::parse(line).map_err(|m| {
                    PluginError::invalid_config("ssh_known_hosts", format!("entry {}: {m}", i + 1))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let ssh = SshSettings {
            user: non_empty(raw.ssh_user),
            key,
            passphrase: non_empty(raw.ssh_private_key_passphrase).map(Secret::new),
            pins,
            timeout: positive_ms("ssh_timeout_ms", raw.ssh_timeout_ms)?,
        };

        let ansible = AnsibleSettings {
            runner: non_empty(raw.ansible_runner).map(Into::into),
            timeout: positive_ms("ansible_timeout_ms", raw.ansible_timeout_ms)?,
        };
        Ok(Self { snmp, ssh, ansible })
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

fn positive_ms(key: &str, ms: u64) -> Result<Duration> {
    if ms == 0 {
        return Err(PluginError::invalid_config(
            key,
            "must be a positive number of milliseconds",
        ));
    }
    Ok(Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(config: serde_json::Value, expected: std::result::Result<(), &str>) {
        let parsed = TenantSettings::from_config(&TenantConfig::new("t", config));
        match (parsed, expected) {
            (Ok(_), Ok(())) => {}
            (Err(e), Err(needle)) => {
                let text = e.to_string();
                assert!(
                    text.contains(needle),
                    "error `{text}` should contain `{needle}`"
                );
            }
            (Ok(_), Err(needle)) => panic!("expected an error containing `{needle}`"),
            (Err(e), Ok(())) => panic!("unexpected error: {e}"),
        }
    }

    #[test]
    fn accepts_empty_and_full_configs() {
        check(json!({}), Ok(()));
        check(
            json!({
                "snmp_community": "public",
                "snmp_v3_user": "u",
                "snmp_v3_auth_protocol": "SHA-256",
                "snmp_v3_auth_password": "a",
                "snmp_v3_priv_protocol": "AES-256",
                "snmp_v3_priv_password": "p",
                "snmp_timeout_ms": 500,
                "ssh_user": "netops",
                "ssh_private_key_path": "/etc/keys/id_ed25519",
                "ssh_known_hosts": [
                    "# core routers",
                    "10.0.0.1:22 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINZWXOsuGpvOZkuzLvEXPMAW85fVnO/NQwzImQvHqWKz r1",
                ],
                "ansible_runner": "/opt/ansible/bin/ansible-runner",
            }),
            Ok(()),
        );
    }

    #[test]
    fn rejects_bad_values_naming_the_key() {
        check(
            json!({"snmp_v3_auth_protocol": "SHA3"}),
            Err("snmp_v3_auth_protocol"),
        );
        check(
            json!({"snmp_v3_priv_protocol": "3DES"}),
            Err("snmp_v3_priv_protocol"),
        );
        check(json!({"snmp_timeout_ms": 0}), Err("snmp_timeout_ms"));
        check(
            json!({"snmp_max_repetitions": 0}),
            Err("snmp_max_repetitions"),
        );
        check(json!({"ssh_timeout_ms": "soon"}), Err("`ssh_timeout_ms`"));
        check(
            json!({"ssh_private_key_path": "/k", "ssh_private_key": "-----BEGIN"}),
            Err("not both"),
        );
        check(
            json!({"ssh_known_hosts": ["10.0.0.1:22 ssh-ed25519"]}),
            Err("entry 1"),
        );
    }

    #[test]
    fn debug_never_shows_credentials() {
        let settings = TenantSettings::from_config(&TenantConfig::new(
            "t",
            json!({
                "snmp_community": "c0mmunity-s3cret",
                "snmp_v3_user": "u",
                "snmp_v3_auth_password": "auth-s3cret",
                "snmp_v3_priv_password": "priv-s3cret",
                "ssh_private_key": "-----BEGIN OPENSSH PRIVATE KEY-----key-s3cret",
                "ssh_private_key_passphrase": "pass-s3cret",
            }),
        ))
        .expect("valid config");
        let shown = format!("{settings:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
    }

    /// plugin.toml documents the same keys, sensitivity and defaults the code uses.
    #[test]
    fn manifest_declares_every_key_with_the_code_defaults() {
        let manifest: toml::Table =
            toml::from_str(include_str!("../plugin.toml")).expect("plugin.toml parses");
        let config = manifest["config"].as_table().expect("[config] table");
        let declared: Vec<&str> = config.keys().map(String::as_str).collect();
        let mut expected = KEYS.to_vec();
        expected.sort_unstable();
        assert_eq!(declared, expected, "keys in plugin.toml vs config::KEYS");

        let defaults = serde_json::to_value(RawConfig::default()).expect("serializes");
        for (key, spec) in config {
            let spec = spec.as_table().expect("key table");
            let sensitive = spec.get("sensitive").and_then(toml::Value::as_bool) == Some(true);
            assert_eq!(
                sensitive,
                SENSITIVE_KEYS.contains(&key.as_str()),
                "sensitive flag of {key}"
            );
            assert!(
                spec.contains_key("type") && spec.contains_key("description"),
                "{key}"
            );
            let code_default = &defaults[key.as_str()];
            match spec.get("default") {
                Some(value) => {
                    let manifest_default = serde_json::to_value(value).expect("toml to json");
                    assert_eq!(&manifest_default, code_default, "default of {key}");
                }
                None => assert!(code_default.is_null(), "{key} has a default in code only"),
            }
        }
    }
}
