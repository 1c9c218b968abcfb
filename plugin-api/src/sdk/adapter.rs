//! The panic-guarded adapters: `guard` runs an author's code so a panic
//! becomes `PluginError::Panicked`, the library's panic hook logs through
//! the host without a backtrace, and `Adapter<P>` implements the frozen ABI
//! traits over an author's `Plugin`.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Once};

use abi_stable::std_types::{ROption, RResult, RSlice, RStr, RVec};
use parking_lot::RwLock;

use super::{HookAction, HookEvent, Hooks, Host, Plugin, Result, Service, Stateful, TenantConfig};
use crate::abi::{
    self, HealthReport, HealthStatus, HookCall, HookOutcome, HostServicesBox, LogLevel, Payload,
    PluginError, SavedState, TenantActivation,
};

/// Runs `f`, turning a panic into [`PluginError::Panicked`].
#[inline(always)]
pub(crate) fn guard<T>(f: impl FnOnce() -> Result<T>) -> RResult<T, PluginError> {
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(value)) => RResult::ROk(value),
        Ok(Err(error)) => RResult::RErr(error),
        Err(payload) => RResult::RErr(panicked(payload)),
    }
}

#[cold]
pub(crate) fn panicked(payload: Box<dyn Any + Send>) -> PluginError {
    PluginError::Panicked {
        message: panic_message(&*payload).into(),
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// The host this library was initialized by, for the panic hook.
pub(super) static PANIC_LOG: RwLock<Option<Host>> = RwLock::new(None);
static PANIC_HOOK: Once = Once::new();

/// Replaces this library's panic hook (each cdylib has its own std) with one
/// that forwards to the host log and never captures a backtrace: with
/// `RUST_BACKTRACE=1` the default hook symbolizes every caught panic, which
/// pins the library and grows memory without bound.
pub(super) fn install_panic_hook() {
    PANIC_HOOK.call_once(|| {
        panic::set_hook(Box::new(|info| {
            let message = panic_message(info.payload());
            let line = match info.location() {
                Some(loc) => format!("panicked at {}:{}: {message}", loc.file(), loc.line()),
                None => format!("panicked: {message}"),
            };
            match PANIC_LOG.try_read().as_ref().and_then(|h| h.as_ref()) {
                Some(host) => host.log(LogLevel::Error, &line),
                None => eprintln!("plugin {line}"),
            }
        }));
    });
}

/// Wraps an author's plugin so it can implement the ABI traits.
#[doc(hidden)]
pub struct Adapter<P>(pub(crate) P);

impl<P> Adapter<P> {
    /// The author's plugin.
    #[inline(always)]
    pub(crate) fn plugin(&self) -> &P {
        &self.0
    }
}

impl<P: Plugin> abi::BasePlugin for Adapter<P> {
    fn initialize(&self, host: HostServicesBox) -> RResult<(), PluginError> {
        let host = Host {
            inner: Arc::new(host),
        };
        *PANIC_LOG.write() = Some(host.clone());
        guard(|| self.0.initialize(&host))
    }

    fn activate(&self, tenant: TenantActivation) -> RResult<(), PluginError> {
        guard(|| {
            let values: serde_json::Value = serde_json::from_str(tenant.config_json.as_str())
                .map_err(|e| PluginError::invalid_config("<tenant>", e.to_string()))?;
            self.0
                .activate(&TenantConfig::new(tenant.tenant.as_str(), values))
        })
    }

    fn deactivate(&self, tenant: RStr<'_>) -> RResult<(), PluginError> {
        guard(|| self.0.deactivate(tenant.as_str()))
    }

    fn cleanup(&self) -> RResult<(), PluginError> {
        let result = guard(|| self.0.cleanup());
        // The host object points into the host, which outlives us, but a
        // cleaned-up plugin must hold nothing that keeps the host busy.
        *PANIC_LOG.write() = None;
        result
    }

    fn health(&self) -> HealthReport {
        match guard(|| Ok(self.0.health())) {
            RResult::ROk(h) => HealthReport {
                status: h.status,
                message: h.message.into(),
            },
            RResult::RErr(e) => HealthReport {
                status: HealthStatus::Unhealthy,
                message: e.to_string().into(),
            },
        }
    }
}

impl<P: Hooks> abi::HookHandler for Adapter<P> {
    fn on_hook(&self, call: HookCall<'_>) -> HookOutcome {
        let event = HookEvent {
            tenant: call.tenant.as_str(),
            hook: call.hook.as_str(),
            content_type: call.content_type.as_str(),
            payload: call.payload.as_slice(),
        };
        match guard(|| self.0.on_hook(event)) {
            RResult::ROk(HookAction::Continue) => HookOutcome::Continue,
            RResult::ROk(HookAction::Replace {
                content_type,
                bytes,
            }) => HookOutcome::Replace(Payload {
                content_type: content_type.into(),
                bytes: bytes.into(),
            }),
            RResult::ROk(HookAction::Veto(reason)) => HookOutcome::Veto(reason.into()),
            RResult::RErr(e) => HookOutcome::Failed(e),
        }
    }
}

impl<P: Service> abi::Service for Adapter<P> {
    #[inline]
    fn invoke(
        &self,
        tenant: RStr<'_>,
        method: RStr<'_>,
        payload: RSlice<'_, u8>,
    ) -> RResult<RVec<u8>, PluginError> {
        guard(|| {
            self.0
                .invoke(tenant.as_str(), method.as_str(), payload.as_slice())
                .map(RVec::from)
        })
    }
}

impl<P: Stateful> abi::Stateful for Adapter<P> {
    fn save_state(&self) -> RResult<ROption<SavedState>, PluginError> {
        guard(|| {
            self.0.save_state().map(|bytes| {
                ROption::RSome(SavedState {
                    format_version: P::STATE_VERSION,
                    bytes: bytes.into(),
                })
            })
        })
    }

    fn restore_state(&self, state: SavedState) -> RResult<(), PluginError> {
        guard(|| {
            self.0
                .restore_state(state.format_version, state.bytes.as_slice())
        })
    }
}
