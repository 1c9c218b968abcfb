//! The stable-ABI contract between a plugkit host and its plugins, and the
//! safe SDK plugin authors write against.
//!
//! A plugin is a `cdylib` that implements [`Plugin`] (and any extension
//! traits) in plain Rust and exports itself with one line:
//!
//! ```
//! use plugin_api::{Plugin, Result, Service};
//!
//! pub struct Echo;
//!
//! impl Plugin for Echo {
//!     const ID: &'static str = "echo";
//!     const NAME: &'static str = "Echo";
//!     const CATEGORY: &'static str = "custom";
//!     fn new() -> Result<Self> {
//!         Ok(Echo)
//!     }
//! }
//!
//! impl Service for Echo {
//!     fn invoke(&self, _tenant: &str, _method: &str, payload: &[u8]) -> Result<Vec<u8>> {
//!         Ok(payload.to_vec())
//!     }
//! }
//!
//! plugin_api::export_plugin!(Echo, extensions: [service]);
//! ```
//!
//! The SDK runs every call under a panic guard: a panic becomes
//! [`PluginError::Panicked`] and never unwinds into the host. It also replaces
//! the library's panic hook with one that logs through the host and never
//! captures a backtrace.
//!
//! # Layout
//! - [`abi`]: the frozen core every plugin and host share (root module,
//!   lifecycle, hooks, service, state, host services, the open list of
//!   category objects). Depends on nothing else in this crate.
//! - [`category`]: how a category contract is declared once; one module per
//!   category ([`communication`], [`payment`], [`network_automation`],
//!   [`crm`]) holds its model types and its one declaration.
//! - [`sdk`]: the plain-Rust traits and adapters authors use; depends on
//!   [`abi`] only.
//! - [`fast`]: the optional fast call table (by method id, reply into the
//!   host's buffer), exported through the open category list under a
//!   reserved name; added in 0.2.2, frozen since.
//! - [`fast_hooks`]: the optional fast hook table (borrowed arguments
//!   behind one pointer, a status byte back), exported the same way by
//!   every `hooks` plugin; added in 0.2.3, not frozen yet.
//!
//! # Versioning: when this crate's version changes
//! This crate has its own version, independent of the workspace's, because
//! it is the contract every built plugin carries. Measured with abi_stable
//! 0.11: a newer host rejects a plugin whose prefix types have fewer fields,
//! even with `#[sabi(last_prefix_field)]`. So:
//! 1. **Patch (0.2.x → 0.2.x+1)**: additive changes only — a new category
//!    module, a new hook name, new SDK helpers. No existing ABI type changes;
//!    hosts accept plugins of every patch of the same minor, older or newer.
//! 2. **Minor (0.2 → 0.3)**: any change to a type in [`abi`] or to a shipped
//!    category declaration. The host refuses plugins of another minor with
//!    "rebuild against plugin-api 0.3", before looking at their layout.
//! 3. The tidy test keeps this honest: it hashes the frozen files and fails
//!    when one changes while the version does not.
//!
//! Enum-like sets that must grow without a rebuild (categories, hooks) are
//! open lists or strings, never enums in the ABI.

#![deny(missing_docs)]

pub mod abi;
pub mod category;
pub mod fast;
pub mod fast_hooks;
pub mod hooks;
pub mod sdk;

category::known_categories!(communication, payment, network_automation, crm);

pub use abi::{HealthStatus, KeyValue, LogLevel, PluginError, WebhookRequest};
pub use sdk::{
    Error, Health, HookAction, HookEvent, Hooks, Host, Plugin, Result, Secret, Service, Stateful,
    TenantConfig,
};

/// The stable-ABI string, vector and option types the category models use.
pub use abi_stable::std_types::{ROption, RString, RVec};

/// The version of this crate, compiled into every plugin.
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");

#[doc(hidden)]
pub use abi_stable as __abi_stable;
