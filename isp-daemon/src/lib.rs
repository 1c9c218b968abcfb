//! isp-daemon: plugkit's host embedded in an ISP service. It starts the
//! installed plugins, keeps tenants on tiers with their plugin settings,
//! runs the ISP flows through hooks and category services, and serves an
//! admin API and page. `--demo` runs the demo script against local stand-ins
//! of Twilio and Stripe.
//!
//! ```no_run
//! use std::sync::Arc;
//! use isp_daemon::{Config, Daemon, StartOptions};
//!
//! # fn main() -> anyhow::Result<()> {
//! let daemon = Arc::new(Daemon::start(Config::embedded()?, StartOptions::default())?);
//! let reports = isp_daemon::demo::run(&daemon, &|line| println!("{line}"));
//! println!("{} flows ran", reports.len());
//! for line in daemon.shutdown() {
//!     println!("{line}");
//! }
//! # Ok(()) }
//! ```
//!
//! # Modules
//! - `config`: the TOML configuration and the embedded default (pure but
//!   for reading files).
//! - `daemon`: the host and the platform, and every operation on them.
//! - `requests`: the flows' inputs and their validation (pure).
//! - `flows`: the ISP flows (new customer, device alert, tier change).
//! - `api`: the admin HTTP API and page (the only async code besides `main`);
//!   `auth` guards its routes (keys, scopes, rate limits), `keys` stores the
//!   API keys, `ratelimit` holds a bucket per key and scope.
//! - `demo`, `standins`, `peers`, `install`: the demo script, the Twilio and
//!   Stripe stand-ins, the snmpd/sshd devices, `--plugins-from-build`.
//! - `live`: `--watch`, hot reload of the plugin directories.
//! - `scratch`: temporary directories that record their owner, so a
//!   killed daemon's leftovers are removed by the next start.
//! - `webhook_state` (below the daemon: configuration, ledger, outbox,
//!   signing, schedule) and `webhooks` (above it: the public provider
//!   routes, the admin routes, the delivery worker).
//! - `upload` (pure: an uploaded package verified in memory) and `series`
//!   (the metric ring the page charts), for the operator's page.
//! - `scrape`: `GET /metrics` for Prometheus; `telemetry`: the log
//!   subscriber and the request log; `limits`: the server loop's timeouts
//!   and caps; `flow_stats`: flow outcomes by tenant.

#![deny(unsafe_code)]

mod answer;
pub mod api;
pub mod auth;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod error;
pub mod flow_stats;
pub mod flows;
pub mod install;
pub mod keys;
pub mod limits;
pub mod live;
pub mod peers;
pub mod provision_flag;
pub mod provisioning;
pub mod ratelimit;
pub mod requests;
pub mod scrape;
pub mod scratch;
pub mod series;
pub mod standins;
pub mod telemetry;
pub mod upload;
pub mod vault;
pub mod webhook_state;
pub mod webhooks;
pub mod wording;

pub use config::Config;
pub use daemon::{Daemon, StartOptions};
pub use error::{Problem, ProblemKind};
