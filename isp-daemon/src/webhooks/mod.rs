//! Webhooks in both directions: providers' callbacks into the plugins
//! (`inbound`, `ledger`, `reactions`) and signed events out to integrators
//! (`outbound`), with their admin routes (`admin`) and the `[webhooks]`
//! configuration section.
//!
//! One [`Webhooks`] per daemon, opened by `Daemon::start` over
//! `<state dir>/webhooks/`; the delivery worker runs beside the daemon
//! ([`start_delivery`]) and holds it only weakly.

pub mod admin;
mod clock;
pub mod inbound;
mod ledger;
pub mod outbound;
pub mod reactions;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

pub use outbound::worker::{start_delivery, DeliveryWorker};

/// `[webhooks]` in the daemon configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksConfig {
    /// The base URL the providers call, as they see it (scheme, host, any
    /// path prefix of a reverse proxy), e.g. `https://isp.example.net`.
    /// Twilio signs the full URL it called, so behind a proxy this must be
    /// set; unset, `http://<Host header>` is assumed.
    #[serde(default)]
    pub public_url: Option<String>,
    /// How outbound events are delivered.
    #[serde(default)]
    pub delivery: outbound::DeliveryConfig,
    /// Endpoints from the configuration, seeded into the state when new.
    #[serde(default)]
    pub endpoints: Vec<outbound::ConfiguredEndpoint>,
}

/// The webhook state of one daemon: the inbound ledger and the outbox.
#[derive(Debug)]
pub struct Webhooks {
    dir: PathBuf,
    public_url: Option<String>,
    ledger: ledger::Ledger,
    outbox: Arc<outbound::Outbox>,
}

impl Webhooks {
    /// Opens (creating) `<state_dir>/webhooks/`; `resolve` turns a secret
    /// reference of a configured endpoint into its value.
    pub fn open(
        config: &WebhooksConfig,
        state_dir: &Path,
        resolve: &dyn Fn(&str) -> Result<String, String>,
    ) -> anyhow::Result<Self> {
        let dir = state_dir.join("webhooks");
        std::fs::create_dir_all(&dir).map_err(|e| {
            anyhow::anyhow!("creating the webhook state folder {}: {e}", dir.display())
        })?;
        let ledger = ledger::Ledger::open(&dir)?;
        let outbox = outbound::Outbox::open(&dir, config.delivery.clone())?;
        outbox.seed(&config.endpoints, resolve)?;
        Ok(Self {
            dir,
            public_url: config
                .public_url
                .as_ref()
                .map(|u| u.trim_end_matches('/').to_owned()),
            ledger,
            outbox: Arc::new(outbox),
        })
    }

    /// `<state dir>/webhooks`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The outbox of outbound deliveries.
    pub fn outbox(&self) -> &Arc<outbound::Outbox> {
        &self.outbox
    }
}
