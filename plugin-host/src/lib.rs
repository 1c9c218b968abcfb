//! plugkit's host: loads native plugins through a stable ABI, runs them
//! through their lifecycle, dispatches hooks to them and calls their
//! category services.
//!
//! ```no_run
//! use plugin_host::{Host, HostConfig, LoadOptions};
//!
//! # fn main() -> Result<(), plugin_host::HostError> {
//! let host = Host::new(HostConfig::default())?;
//! let id = host.load("plugins/libplugkit_twilio.so".as_ref(), LoadOptions::default())?;
//! host.initialize(&id)?;
//! host.activate(&id, "acme", r#"{"account_sid": "AC..."}"#)?;
//! println!("{:?}", host.health().status);
//! host.cleanup(&id)?;
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

pub mod discovery;
mod error;
pub mod fast;
mod fast_hooks;
mod hook_call;
mod hooks;
mod host;
pub mod isolation;
mod lifecycle;
mod live;
mod loader;
mod metrics;
mod peer_text;
mod quarantine;
mod reload;
mod reply_buf;
mod services;
mod signature;
mod supervisor;
pub mod tenancy;
mod watch;

// The embedding API: what a daemon that hosts plugins needs.
pub use error::{Call, HostError};
pub use host::{Host, HostConfig, LoadOptions, PluginHandle};
pub use tenancy::{Platform, PlatformConfig, PlatformError};

/// Plugin packages without loading them: manifests, embedded identities,
/// signatures and dependency resolution (the `plugin-package` crate, which
/// the tools use too).
pub use plugin_package as package;

/// What the host reports about its plugins: lifecycle states, health,
/// metrics, start reports and unloading.
pub mod status {
    pub use crate::host::{HealthReport, PluginHealth, PluginStatus};
    pub use crate::lifecycle::{PluginState, Transition};
    pub use crate::loader::{PinnedLibrary, PluginIdentity, UnloadStats};
    pub use crate::metrics::{
        MetricsSnapshot, TenantMetricsSnapshot, OTHER_TENANTS, TENANT_SERIES_LIMIT,
    };
    pub use crate::supervisor::{SkippedPlugin, StartReport};
    pub use crate::watch::LiveReloadHealth;
}

/// Hook subscriptions, their order, and what dispatching a hook did.
pub mod dispatch {
    pub use crate::fast_hooks::HookHandle;
    pub use crate::hooks::{HookKind, OrderingCycle, Subscription};
    pub use crate::host::{EmitSummary, EventReport, FilterError, FilteredPayload};
}

/// Hot reload of one plugin, and the live loop that watches plugin folders.
pub mod hot_reload {
    pub use crate::live::{LiveEvent, LiveOptions, LiveReload, OnStarted};
    pub use crate::reload::{ReloadOutcome, ReloadReport, ReloadStep};
}
