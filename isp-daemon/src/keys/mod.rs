//! API keys: scoped, expiring, rotatable credentials for the admin API,
//! stored only as SHA-256 digests in `api-keys.json` in the state directory.
//!
//! - `format`: the secret's text form (prefix, base62, CRC32 checksum), pure.
//! - `scope`: the scopes and scope sets, pure.
//! - `store`: the key file and the in-memory index that checks a presented
//!   secret per request.
//!
//! Invariants:
//! - A secret is never stored, logged or listed: the file holds its SHA-256
//!   and a hint (prefix and last 4 characters); the secret is returned once,
//!   by `create` and `rotate`. SHA-256 and not a slow password hash: a
//!   secret has 178 random bits, so a stolen digest cannot be reversed by
//!   guessing, and a check must cost microseconds, not the 50 ms a
//!   password hash is tuned to.
//! - The file changes only through `plugkit_durable::write_atomic`, and the
//!   in-memory index only after the write succeeded: a failed write leaves
//!   both as they were.
//! - A corrupt or unreadable file stops the daemon's start with an error
//!   naming it; it is never overwritten or emptied.

mod format;
mod scope;
mod store;

pub use format::{check_shape, ShapeError, PREFIX};
pub use scope::{Scope, ScopeSet, UnknownScope};
pub use store::{
    Caller, KeyStore, KeyStoreError, KeyView, NewKey, Refusal, RotatedKey, Session, KEYS_FILE,
    MAX_EXPIRY_SECS, MAX_GRACE_SECS, MAX_SESSIONS, SESSION_SECS,
};
