//! Integration tests of the network-automation plugin, driven in-process
//! through `Plugin`/`Network`/`Hooks` against real peers (Net-SNMP snmpd,
//! OpenSSH sshd, ansible-runner) that the tests start themselves. One
//! binary, one module per topic; each peer is started once per binary.

mod ansible;
mod hooks;
mod manifest;
mod snmp;
mod ssh;

use plugin_api::network_automation::NetworkAutomation;
use plugin_api::{Plugin, PluginError, TenantConfig};
use plugkit_network_automation::NetworkPlugin;

/// A plugin with one tenant activated with `config`.
pub(crate) fn plugin_with(tenant: &str, config: serde_json::Value) -> NetworkPlugin {
    let plugin = NetworkPlugin::new().expect("plugin builds");
    plugin
        .activate(&TenantConfig::new(tenant, config))
        .expect("tenant config is valid");
    plugin
}

/// The provider error code and message of a failed call.
pub(crate) fn provider_error<T: std::fmt::Debug>(
    result: Result<T, PluginError>,
) -> (String, String) {
    match result {
        Err(PluginError::Provider { code, message, .. }) => (code.into(), message.into()),
        other => panic!("expected a provider error, got {other:?}"),
    }
}

#[test]
fn calls_for_a_tenant_that_is_not_activated_are_refused() {
    let plugin = plugin_with("acme", serde_json::json!({}));
    let result = plugin.ssh_exec(
        "globex",
        plugin_api::network_automation::SshCommand {
            host: "127.0.0.1".into(),
            port: 22,
            user: "root".into(),
            command: "true".into(),
            timeout_ms: 0,
        },
    );
    assert!(
        matches!(&result, Err(PluginError::NotFound { what }) if what.contains("globex")),
        "{result:?}"
    );
}
