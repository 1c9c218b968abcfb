//! The network-automation reference plugin: SNMP v2c/v3 queries, commands
//! over SSH with pinned host keys, and Ansible playbooks through
//! `ansible-runner`, each configured per tenant.
//!
//! ```
//! use plugin_api::network_automation::{NetworkAutomation, SshCommand};
//! use plugin_api::{Plugin, TenantConfig};
//! use plugkit_network_automation::NetworkPlugin;
//!
//! let plugin = NetworkPlugin::new()?;
//! plugin.activate(&TenantConfig::new(
//!     "acme",
//!     serde_json::json!({ "snmp_community": "public", "ssh_user": "netops" }),
//! ))?;
//! // No key is configured, so SSH is refused before any connection.
//! let command = SshCommand {
//!     host: "192.0.2.1".into(),
//!     port: 22,
//!     user: "".into(),
//!     command: "show version".into(),
//!     timeout_ms: 0,
//! };
//! assert!(plugin.ssh_exec("acme", command).is_err());
//! plugin.cleanup()?;
//! # Ok::<(), plugin_api::PluginError>(())
//! ```
//!
//! # Modules
//! - `config`: a tenant's settings from its configuration (pure).
//! - `snmp`: blocking UDP on the calling thread.
//! - `ssh`: `russh` on the plugin's runtime (`runtime`), which starts no
//!   thread and is shut down by [`Plugin::cleanup`].
//! - `ansible`: one `ansible-runner` child process per playbook run.

#![deny(unsafe_code)]

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use plugin_api::hooks::{ServiceChanged, SERVICE_ACTIVATED};
use plugin_api::network_automation::{
    NetworkAutomation, PlaybookReport, PlaybookRun, SnmpOperation, SnmpRequest, SnmpTarget,
    SnmpValue, SnmpVersion, SshCommand, SshOutput, VarBind,
};
use plugin_api::{
    Health, HookAction, HookEvent, Hooks, Host, LogLevel, Plugin, PluginError, RVec, Result,
    TenantConfig,
};

mod ansible;
mod config;
mod runtime;
mod snmp;
mod ssh;

use config::TenantSettings;
use runtime::AsyncRuntime;

/// `sysDescr.0`.
const SYS_DESCR: &str = "1.3.6.1.2.1.1.1.0";
/// `sysName.0`.
const SYS_NAME: &str = "1.3.6.1.2.1.1.5.0";

/// The plugin object: per-tenant settings and the SSH runtime.
pub struct NetworkPlugin {
    host: RwLock<Option<Host>>,
    tenants: RwLock<HashMap<String, Arc<TenantSettings>>>,
    runtime: AsyncRuntime,
}

impl NetworkPlugin {
    fn settings(&self, tenant: &str) -> Result<Arc<TenantSettings>> {
        self.tenants
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(tenant)
            .cloned()
            .ok_or_else(|| {
                PluginError::not_found(format!(
                    "tenant `{tenant}` is not activated for network-automation"
                ))
            })
    }

    fn log(&self, level: LogLevel, message: &str) {
        if let Some(host) = self
            .host
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            host.log(level, message);
        }
    }

    /// `service.activated`: reads the device's identity so operators see
    /// at once whether the new service's device is reachable.
    fn identify_device(&self, tenant: &str, service: &ServiceChanged, device: &str) {
        let settings = match self.settings(tenant) {
            Ok(settings) => settings,
            Err(e) => {
                self.log(LogLevel::Warn, &format!("service.activated: {e}"));
                return;
            }
        };
        // v3 when the tenant has a v3 user, else v2c with its community.
        let version = match settings.snmp.v3_user {
            Some(_) => SnmpVersion::V3,
            None => SnmpVersion::V2c,
        };
        let request = SnmpRequest {
            target: SnmpTarget {
                address: device.into(),
                version,
                community: None.into(),
                user: None.into(),
                timeout_ms: 0,
                retries: settings.snmp.retries,
            },
            operation: SnmpOperation::Get,
            oids: vec![SYS_NAME.into(), SYS_DESCR.into()].into(),
        };
        let customer = &service.customer_id;
        match snmp::run(&request, &settings.snmp) {
            Ok(varbinds) => {
                let name = display_value(&varbinds, SYS_NAME);
                let descr = display_value(&varbinds, SYS_DESCR);
                self.log(
                    LogLevel::Info,
                    &format!(
                        "service.activated: customer {customer} device {device} answers \
                         sysName={name:?} sysDescr={descr:?}"
                    ),
                );
            }
            Err(e) => self.log(
                LogLevel::Warn,
                &format!("service.activated: customer {customer} device {device}: {e}"),
            ),
        }
    }
}

fn display_value(varbinds: &[VarBind], oid: &str) -> String {
    match varbinds
        .iter()
        .find(|vb| vb.oid.as_str() == oid)
        .map(|vb| &vb.value)
    {
        Some(SnmpValue::OctetString(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
        Some(other) => format!("{other:?}"),
        None => "<missing>".to_owned(),
    }
}

impl Plugin for NetworkPlugin {
    const ID: &'static str = plugin_api::manifest_id!();
    const NAME: &'static str = "Network Automation";
    const CATEGORY: &'static str = "network-automation";

    fn new() -> Result<Self> {
        Ok(Self {
            host: RwLock::new(None),
            tenants: RwLock::new(HashMap::new()),
            runtime: AsyncRuntime::new(),
        })
    }

    fn initialize(&self, host: &Host) -> Result<()> {
        *self.host.write().unwrap_or_else(PoisonError::into_inner) = Some(host.clone());
        Ok(())
    }

    fn activate(&self, tenant: &TenantConfig) -> Result<()> {
        let settings = TenantSettings::from_config(tenant)?;
        let summary = format!(
            "activated tenant {}: snmp v2c community {}, v3 user {}, {} pinned SSH host {}",
            tenant.tenant(),
            if settings.snmp.community.is_some() {
                "set"
            } else {
                "unset"
            },
            settings.snmp.v3_user.as_deref().unwrap_or("unset"),
            settings.ssh.pins.len(),
            if settings.ssh.pins.len() == 1 {
                "key"
            } else {
                "keys"
            },
        );
        self.tenants
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(tenant.tenant().to_owned(), Arc::new(settings));
        self.log(LogLevel::Info, &summary);
        Ok(())
    }

    fn deactivate(&self, tenant: &str) -> Result<()> {
        self.tenants
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(tenant);
        Ok(())
    }

    fn cleanup(&self) -> Result<()> {
        self.runtime.shutdown();
        self.tenants
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        *self.host.write().unwrap_or_else(PoisonError::into_inner) = None;
        Ok(())
    }

    fn health(&self) -> Health {
        Health::healthy()
    }
}

impl NetworkAutomation for NetworkPlugin {
    fn snmp(&self, tenant: &str, request: SnmpRequest) -> Result<RVec<VarBind>> {
        let settings = self.settings(tenant)?;
        snmp::run(&request, &settings.snmp).map(RVec::from)
    }

    fn ssh_exec(&self, tenant: &str, command: SshCommand) -> Result<SshOutput> {
        let settings = self.settings(tenant)?;
        ssh::exec(&self.runtime, &settings.ssh, &command)
    }

    fn run_playbook(&self, tenant: &str, run: PlaybookRun) -> Result<PlaybookReport> {
        let settings = self.settings(tenant)?;
        ansible::run_playbook(&settings.ansible, &run)
    }
}

impl Hooks for NetworkPlugin {
    fn on_hook(&self, event: HookEvent<'_>) -> Result<HookAction> {
        if event.hook == SERVICE_ACTIVATED {
            let service: ServiceChanged = event.json()?;
            if let Some(device) = service.device_address.as_deref().filter(|d| !d.is_empty()) {
                self.identify_device(event.tenant, &service, device);
            }
        }
        Ok(HookAction::Continue)
    }
}

plugin_api::export_plugin!(NetworkPlugin, extensions: [network_automation, hooks]);
