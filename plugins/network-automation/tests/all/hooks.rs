//! The `service.activated` hook, called the way the host calls it: through
//! the exported root module and the stable-ABI objects, with a host that
//! records log lines. The device is the real test snmpd.

use std::sync::{Arc, Mutex};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RArc, ROption, RResult, RSlice, RStr, RString, RVec};
use plugin_api::abi::{
    HookCall, HookOutcome, HostServices, HostServices_TO, Payload, PluginInstance, TenantActivation,
};
use plugin_api::hooks::{ServiceChanged, SERVICE_ACTIVATED};
use plugin_api::{LogLevel, PluginError};
use plugkit_testkit::process::free_udp_port;
use plugkit_testkit::snmpd::{
    Snmpd, COMMUNITY, SYS_NAME, V3_AUTH_PASSWORD, V3_PRIV_PASSWORD, V3_USER,
};
use serde_json::json;

/// A host that keeps every log line.
#[derive(Clone, Default)]
struct RecordingHost {
    lines: Arc<Mutex<Vec<(LogLevel, String)>>>,
}

impl RecordingHost {
    fn lines(&self) -> Vec<(LogLevel, String)> {
        self.lines.lock().expect("log lock").clone()
    }
}

impl HostServices for RecordingHost {
    fn log(&self, level: LogLevel, message: RStr<'_>) {
        self.lines
            .lock()
            .expect("log lock")
            .push((level, message.to_string()));
    }
    fn config_json(&self) -> RString {
        "{}".into()
    }
    fn secret(&self, _: RStr<'_>, name: RStr<'_>) -> RResult<RString, PluginError> {
        RResult::RErr(PluginError::not_found(name.as_str()))
    }
    fn emit(&self, _: RStr<'_>, _: RStr<'_>, _: Payload) -> RResult<(), PluginError> {
        RResult::ROk(())
    }
    fn state_get(&self, _: RStr<'_>, _: RStr<'_>) -> RResult<ROption<RVec<u8>>, PluginError> {
        RResult::ROk(ROption::RNone)
    }
    fn state_put(&self, _: RStr<'_>, _: RStr<'_>, _: RSlice<'_, u8>) -> RResult<(), PluginError> {
        RResult::ROk(())
    }
    fn metric(&self, _: RStr<'_>, _: f64) -> RResult<(), PluginError> {
        RResult::ROk(())
    }
}

fn instantiate(host: &RecordingHost) -> PluginInstance {
    let module = plugkit_network_automation::__plugkit_root_module();
    let instance = match (module.instantiate())() {
        RResult::ROk(instance) => instance,
        RResult::RErr(e) => panic!("instantiate failed: {e}"),
    };
    let services = HostServices_TO::from_ptr(RArc::new(host.clone()), TD_Opaque);
    assert!(instance.base.initialize(services).is_ok());
    instance
}

fn activate(instance: &PluginInstance, tenant: &str, config: serde_json::Value) {
    let result = instance.base.activate(TenantActivation {
        tenant: tenant.into(),
        config_json: config.to_string().into(),
    });
    assert!(result.is_ok(), "{result:?}");
}

fn fire(instance: &PluginInstance, tenant: &str, device: Option<String>) -> HookOutcome {
    let payload = serde_json::to_vec(&ServiceChanged {
        customer_id: "cust-42".to_owned(),
        plan: "fiber-1g".to_owned(),
        device_address: device,
    })
    .expect("payload serializes");
    let hooks = instance
        .hooks
        .as_ref()
        .into_option()
        .expect("hooks exported");
    hooks.on_hook(HookCall {
        tenant: tenant.into(),
        hook: SERVICE_ACTIVATED.into(),
        content_type: "application/json".into(),
        payload: payload.as_slice().into(),
    })
}

const SECRETS: [&str; 3] = [COMMUNITY, V3_AUTH_PASSWORD, V3_PRIV_PASSWORD];

#[test]
fn service_activated_logs_the_devices_identity_and_never_a_credential() {
    let snmpd = Snmpd::shared().expect("snmpd starts");
    let host = RecordingHost::default();
    let instance = instantiate(&host);
    assert!(
        instance
            .category_local::<plugin_api::network_automation::Contract>()
            .is_some(),
        "network-automation category exported"
    );
    activate(
        &instance,
        "v2c-tenant",
        json!({ "snmp_community": COMMUNITY }),
    );
    activate(
        &instance,
        "v3-tenant",
        json!({
            "snmp_v3_user": V3_USER,
            "snmp_v3_auth_password": V3_AUTH_PASSWORD,
            "snmp_v3_priv_password": V3_PRIV_PASSWORD,
            "snmp_timeout_ms": 300,
            "snmp_retries": 0,
        }),
    );

    for tenant in ["v2c-tenant", "v3-tenant"] {
        let before = host.lines().len();
        assert_eq!(
            fire(&instance, tenant, Some(snmpd.address())),
            HookOutcome::Continue
        );
        let lines = host.lines();
        let new: Vec<&(LogLevel, String)> = lines[before..].iter().collect();
        assert!(
            new.iter().any(|(level, line)| *level == LogLevel::Info
                && line.contains("cust-42")
                && line.contains(&format!("sysName={SYS_NAME:?}"))
                && line.contains("sysDescr=\"Linux")),
            "{tenant}: {new:?}"
        );
    }

    // No device: nothing to query, nothing logged.
    let before = host.lines().len();
    assert_eq!(fire(&instance, "v2c-tenant", None), HookOutcome::Continue);
    assert_eq!(host.lines().len(), before);

    // A device that does not answer is a warning, not a failed hook.
    let silent = format!("127.0.0.1:{}", free_udp_port().expect("free port"));
    assert_eq!(
        fire(&instance, "v3-tenant", Some(silent.clone())),
        HookOutcome::Continue
    );
    let lines = host.lines();
    let (level, line) = lines.last().expect("a warning");
    assert_eq!(*level, LogLevel::Warn);
    assert!(
        line.contains(&silent) && line.contains("snmp_timeout"),
        "{line}"
    );

    assert!(instance.base.cleanup().is_ok());
    for (_, line) in host.lines() {
        for secret in SECRETS {
            assert!(
                !line.contains(secret),
                "credential `{secret}` logged: {line}"
            );
        }
    }
}

#[test]
fn malformed_service_activated_payload_fails_the_hook() {
    let host = RecordingHost::default();
    let instance = instantiate(&host);
    activate(&instance, "t", json!({}));
    let hooks = instance
        .hooks
        .as_ref()
        .into_option()
        .expect("hooks exported");
    let outcome = hooks.on_hook(HookCall {
        tenant: "t".into(),
        hook: SERVICE_ACTIVATED.into(),
        content_type: "application/json".into(),
        payload: b"{\"plan\": 1}".as_slice().into(),
    });
    assert!(
        matches!(
            outcome,
            HookOutcome::Failed(PluginError::InvalidRequest { .. })
        ),
        "{outcome:?}"
    );
}
