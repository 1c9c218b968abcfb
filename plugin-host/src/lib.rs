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

mod discovery;
mod elf;
mod error;
mod graph;
mod hooks;
mod host;
mod lifecycle;
mod live;
mod loader;
mod manifest;
mod metrics;
mod reload;
mod services;
mod signature;
mod supervisor;
pub(crate) mod tenancy;
mod watch;

pub use error::{Call, HostError};
pub use hooks::{HookKind, OrderingCycle, Subscription};
pub use host::{
    EmitSummary, EventReport, FilterError, FilteredPayload, HealthReport, Host, HostConfig,
    LoadOptions, PluginHandle, PluginHealth, PluginStatus,
};
pub use lifecycle::{PluginState, Transition};
pub use live::{LiveEvent, LiveOptions, LiveReload, OnStarted};
pub use loader::{PinnedLibrary, PluginIdentity, UnloadStats};
pub use metrics::MetricsSnapshot;
pub use reload::{ReloadOutcome, ReloadReport, ReloadStep};
pub use services::Permission;
pub use signature::{
    embedded_identity, public_key_id, verify_signature, Expected, SignatureError, SignatureStatus,
    SignedClaims, TrustPolicy, VerifiedSignature,
};
pub use supervisor::{SkippedPlugin, StartReport};
pub use tenancy::{
    env_var_name, example_toml, plan_tier_change, AuditAction, AuditEntry, AuditLog, AuditOutcome,
    ConfigError, ConfigProblem, ConfigSource, Environment, PersistError, Platform, PlatformConfig,
    PlatformError, RestoreReport, SecretError, TenantPluginView, TenantView, TierChange, TierError,
    TierPlan, Tiers, VaultConfig, AUDIT_FILE, REDACTED, REGISTRY_FILE, TENANTS_FILE,
};

pub use discovery::{discover, DiscoveredPlugin, Discovery, DiscoveryProblem, EmbeddedIdentity};
pub use graph::{BlockReason, Blocked, DependencyGraph, Resolution, ResolutionProblem};
pub use manifest::{
    Category, ConfigKey, ConfigSchema, ConfigType, ConfigTypeMismatch, Dependency, Hook, Manifest,
    ManifestError, ManifestProblem, Position,
};

/// The configuration layering on text inputs, for `cargo xtask fuzz`.
#[doc(hidden)]
pub use tenancy::layered_config_report;

/// Synthetic inputs for the benchmarks.
#[doc(hidden)]
pub use graph::bench;
