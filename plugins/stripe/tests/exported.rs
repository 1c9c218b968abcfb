//! The plugin as the host sees it, in-process: through the root module that
//! `export_plugin!` exports and the stable-ABI objects it builds, with a
//! recording host. Checks identity, the payment and hooks extensions, and
//! that no log line carries a credential.
//!
//! A separate test binary, because instantiating replaces the process's
//! panic hook with the SDK's.

use std::sync::Arc;

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RArc, ROption, RResult, RSlice, RStr, RString, RVec};
use anyhow::{Context, Result};
use parking_lot::Mutex;
use plugin_api::abi::{
    HookCall, HookOutcome, HostServices, HostServices_TO, LogLevel, Payload, PluginError,
    TenantActivation,
};
use plugin_api::WebhookRequest;

const SECRET_KEY: &str = "sk_test_exported_secret_0001";
const WEBHOOK_SECRET: &str = "whsec_exported_secret_0002";

#[derive(Clone, Default)]
struct RecordingHost {
    lines: Arc<Mutex<Vec<String>>>,
}

impl HostServices for RecordingHost {
    fn log(&self, level: LogLevel, message: RStr<'_>) {
        self.lines.lock().push(format!("{level:?} {message}"));
    }
    fn config_json(&self) -> RString {
        "{}".into()
    }
    fn secret(&self, _tenant: RStr<'_>, name: RStr<'_>) -> RResult<RString, PluginError> {
        RResult::RErr(PluginError::not_found(name.as_str()))
    }
    fn emit(
        &self,
        _tenant: RStr<'_>,
        _hook: RStr<'_>,
        _payload: Payload,
    ) -> RResult<(), PluginError> {
        RResult::RErr(PluginError::PermissionDenied {
            permission: "hooks:emit".into(),
        })
    }
    fn state_get(
        &self,
        _tenant: RStr<'_>,
        _key: RStr<'_>,
    ) -> RResult<ROption<RVec<u8>>, PluginError> {
        RResult::ROk(ROption::RNone)
    }
    fn state_put(
        &self,
        _tenant: RStr<'_>,
        _key: RStr<'_>,
        _value: RSlice<'_, u8>,
    ) -> RResult<(), PluginError> {
        RResult::ROk(())
    }
    fn metric(&self, _name: RStr<'_>, _value: f64) -> RResult<(), PluginError> {
        RResult::ROk(())
    }
}

fn call<'a>(hook: &'a str, payload: &'a [u8]) -> HookCall<'a> {
    HookCall {
        tenant: "acme".into(),
        hook: hook.into(),
        content_type: "application/json".into(),
        payload: payload.into(),
    }
}

#[test]
fn the_exported_plugin_serves_payments_and_hooks_and_logs_no_secret() -> Result<()> {
    let module = plugkit_stripe::__plugkit_root_module();
    let info = (module.info())();
    assert_eq!(
        (
            info.id.as_str(),
            info.category.as_str(),
            info.version.as_str(),
            info.api_version.as_str()
        ),
        (
            "stripe",
            "payment",
            env!("CARGO_PKG_VERSION"),
            plugin_api::API_VERSION
        )
    );

    let instance = (module.instantiate())().into_result()?;
    let host = RecordingHost::default();
    instance
        .base
        .initialize(HostServices_TO::from_ptr(
            RArc::new(host.clone()),
            TD_Opaque,
        ))
        .into_result()?;
    let config = serde_json::json!({
        "secret_key": SECRET_KEY,
        "webhook_secret": WEBHOOK_SECRET,
        "base_url": "http://127.0.0.1:9",
        "max_amount_minor": 10_000,
    });
    instance
        .base
        .activate(TenantActivation {
            tenant: "acme".into(),
            config_json: config.to_string().into(),
        })
        .into_result()?;

    let hooks = instance
        .hooks
        .as_ref()
        .into_option()
        .context("the hooks extension is exported")?;
    let intent = serde_json::to_vec(
        &serde_json::json!({"customer_id": "c1", "amount_minor": 20_000, "currency": "usd"}),
    )?;
    assert!(
        matches!(hooks.on_hook(call("before_payment_process", &intent)), HookOutcome::Veto(reason) if reason.contains("max_amount_minor"))
    );
    let small = serde_json::to_vec(
        &serde_json::json!({"customer_id": "c1", "amount_minor": 500, "currency": "usd"}),
    )?;
    assert_eq!(
        hooks.on_hook(call("before_payment_process", &small)),
        HookOutcome::Continue
    );
    let invoice = serde_json::to_vec(&serde_json::json!({
        "invoice_id": "in_77", "customer_id": "c1", "amount_minor": 500, "currency": "usd", "payment_id": "pi_1",
    }))?;
    assert_eq!(
        hooks.on_hook(call("invoice.paid", &invoice)),
        HookOutcome::Continue
    );
    assert!(matches!(
        hooks.on_hook(call("invoice.paid", b"not json")),
        HookOutcome::Failed(PluginError::InvalidRequest { .. })
    ));

    let payment = instance
        .category_local::<plugin_api::payment::Contract>()
        .context("the payment extension is exported")?;
    let forged = WebhookRequest {
        body: br#"{"id":"evt_1","object":"event"}"#.to_vec().into(),
        signature: "t=1,v1=00".into(),
        ..Default::default()
    };
    let refused = payment.parse_webhook("acme".into(), forged).into_result();
    assert!(
        matches!(refused, Err(PluginError::InvalidRequest { .. })),
        "{refused:?}"
    );

    instance.base.deactivate("acme".into()).into_result()?;
    instance.base.cleanup().into_result()?;

    let lines = host.lines.lock().clone();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("Info tenant acme: activated")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("invoice in_77 paid")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("Warn tenant acme: webhook refused")),
        "{lines:#?}"
    );
    for line in &lines {
        assert!(
            !line.contains(SECRET_KEY) && !line.contains(WEBHOOK_SECRET),
            "a secret in the log: {line}"
        );
        assert!(
            !line.contains("sk_test") && !line.contains("whsec_"),
            "a key in the log: {line}"
        );
    }
    Ok(())
}
