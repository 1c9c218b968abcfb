//! Outbound webhooks: endpoints, the durable outbox, dead letters and the
//! delivery log, all under `<state dir>/webhooks/`:
//! - `endpoints.json`: the endpoints (url, event filter, `whsec_` secrets,
//!   disabled or not), written whole through `plugkit-durable`, mode 0600;
//! - `outbox/<message>.<endpoint>.json`: one file per pending delivery,
//!   written through `plugkit-durable` before anything is sent;
//! - `dead/<message>.<endpoint>.json`: deliveries that ran out of attempts
//!   or whose endpoint answered 410 Gone;
//! - `log/<endpoint>.jsonl`: one appended, synced line per attempt.
//!
//! Invariants: an outbox file is removed only after its endpoint answered
//! 2xx, or when it moves to `dead/` (so a daemon killed mid-delivery sends
//! it again after restart: at least once, the same `webhook-id`); requests
//! go only to the URL of a stored endpoint, without following redirects.

pub mod events;
pub mod schedule;
pub mod sign;
mod store;
pub mod worker;

pub use store::{ConfiguredEndpoint, DeliveryConfig, Outbox};
