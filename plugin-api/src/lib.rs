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
//! # Evolving the interface
//! Measured with abi_stable 0.11: an older host accepts a newer plugin, but a
//! newer host *rejects* an older plugin whose prefix types have fewer fields,
//! even with `#[sabi(last_prefix_field)]`. So:
//! 1. Never edit a type in [`abi`] or a category module in place.
//! 2. New capabilities arrive as new extension traits in a new minor version
//!    of this crate (0.x → 0.(x+1)); the host refuses plugins built against
//!    another minor with "rebuild against plugin-api 0.(x+1)", before looking
//!    at their layout.
//! 3. Enum-like sets that must grow without a rebuild (the plugin category)
//!    travel as strings.

#![deny(missing_docs)]

pub mod abi;
pub mod communication;
pub mod hooks;
pub mod network;
pub mod payment;
pub mod sdk;

pub use abi::{HealthStatus, KeyValue, LogLevel, PluginError, WebhookRequest};
pub use sdk::{
    Category, Error, Health, HookAction, HookEvent, Hooks, Host, Plugin, Result, Secret, Service,
    Stateful, TenantConfig,
};

/// The version of this crate, compiled into every plugin.
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");

#[doc(hidden)]
pub use abi_stable as __abi_stable;
