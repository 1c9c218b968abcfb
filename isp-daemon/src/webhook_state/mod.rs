//! The webhooks' state and their pure rules, below the daemon: the
//! `[webhooks]` configuration, the inbound ledger (`ledger`), the outbox of
//! outbound deliveries (`outbox`), Standard Webhooks signing (`sign`), the
//! retry schedule (`schedule`), which events integrators get (`events`) and
//! the clock's formats (`clock`). It names neither the daemon nor the flows,
//! so the daemon can hold a [`Webhooks`]; the routes and the worker that use
//! them live in `webhooks`, above the daemon.
//!
//! Everything is under `<state dir>/webhooks/`:
//! - `inbound.json`: the inbound ledger (ids taken, counters, records);
//! - `endpoints.json`: the endpoints (url, event filter, `whsec_` secrets,
//!   disabled or not), written whole through `plugkit-durable`, mode 0600;
//! - `outbox/<message>.<endpoint>.json`: one file per pending delivery,
//!   written through `plugkit-durable` before anything is sent;
//! - `dead/<message>.<endpoint>.json`: deliveries that ran out of attempts
//!   or whose endpoint answered 410 Gone;
//! - `log/<endpoint>.jsonl`: one appended, synced line per attempt;
//! - `audit-cursor.json`: how far the audit log has been turned into events;
//! - `installed-versions.json`: the version each plugin's last
//!   `plugin.installed` announced (`installs`).

pub(crate) mod clock;
pub mod events;
pub mod installs;
pub(crate) mod ledger;
pub mod outbox;
pub mod schedule;
pub mod sign;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

pub use outbox::{ConfiguredEndpoint, DeliveryConfig, Outbox};

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
    /// How outbound events are delivered (`[webhooks.delivery]`).
    #[serde(default)]
    pub delivery: DeliveryConfig,
    /// Endpoints from the configuration (`[[webhooks.endpoints]]`), added
    /// to the state when new; after that the state (the API) wins.
    #[serde(default)]
    pub endpoints: Vec<ConfiguredEndpoint>,
}

/// The webhook state of one daemon: the inbound ledger and the outbox.
#[derive(Debug)]
pub struct Webhooks {
    dir: PathBuf,
    public_url: Option<String>,
    ledger: ledger::Ledger,
    outbox: Arc<Outbox>,
}

impl Webhooks {
    /// Opens (creating) `<state_dir>/webhooks/`; `resolve` turns a secret
    /// reference of a configured endpoint into its value. A new cursor
    /// starts at the audit log's current end, so endpoints are not sent
    /// the history from before webhooks were set up.
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
        let outbox = Outbox::open(&dir, config.delivery.clone())?;
        outbox.seed(&config.endpoints, resolve)?;
        outbox.start_cursor(&state_dir.join("audit.jsonl"))?;
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

    /// The configured public base URL, without a trailing `/`.
    pub fn public_url(&self) -> Option<&str> {
        self.public_url.as_deref()
    }

    /// The inbound ledger.
    pub(crate) fn ledger(&self) -> &ledger::Ledger {
        &self.ledger
    }

    /// The outbox of outbound deliveries.
    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }
}
