//! The API key store: `api-keys.json` in the state directory (digests,
//! never secrets), and an in-memory index from digest to key that
//! [`KeyStore::authenticate`] reads on every request.
//!
//! Times are whole seconds since the Unix epoch, passed in by the caller so
//! that expiry and grace periods are tested with plain values.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::format::{self, ShapeError};
use super::scope::{Scope, ScopeSet};

/// The key file's name in the state directory.
pub const KEYS_FILE: &str = "api-keys.json";
/// The longest grace period a rotation may give the old secret (30 days).
pub const MAX_GRACE_SECS: u64 = 30 * 24 * 3600;

/// The longest lifetime `expires_in_secs` may give a new key (10 years of
/// 365 days); a key meant to live longer is made without an expiry.
pub const MAX_EXPIRY_SECS: u64 = 10 * 365 * 24 * 3600;
/// The grace period when a rotation names none (1 hour).
const DEFAULT_GRACE_SECS: u64 = 3600;
/// The key file's format version.
const FORMAT: u32 = 1;

/// The key file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    format: u32,
    keys: Vec<KeyRecord>,
}

/// One key as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyRecord {
    id: String,
    name: String,
    scopes: Vec<Scope>,
    created: u64,
    #[serde(default)]
    expires: Option<u64>,
    #[serde(default)]
    revoked: Option<u64>,
    #[serde(default)]
    last_used: Option<u64>,
    /// The current secret (`retires` unset) and, during a rotation's grace
    /// period, the previous ones.
    secrets: Vec<SecretRecord>,
    /// Made by `POST /api/session` for the admin page (see `session`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    session: bool,
}

/// One secret of a key, as its digest.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretRecord {
    /// SHA-256 of the secret, lowercase hex.
    sha256: String,
    /// `ispk_…` and the last 4 characters.
    hint: String,
    created: u64,
    /// When a rotated-out secret stops working.
    #[serde(default)]
    retires: Option<u64>,
}

/// What the index knows of one secret.
struct Live {
    id: Arc<str>,
    scopes: ScopeSet,
    expires: Option<u64>,
    revoked: Option<u64>,
    retires: Option<u64>,
    last_used: Arc<AtomicU64>,
}

#[derive(Default)]
struct Inner {
    file: KeyFile,
    by_digest: HashMap<[u8; 32], Live>,
    /// Per key id; 0 = never used since the file was read.
    last_used: HashMap<String, Arc<AtomicU64>>,
}

impl Inner {
    fn index(file: KeyFile, previous: Option<&Inner>) -> Result<Self, String> {
        let mut by_digest = HashMap::new();
        let mut last_used = HashMap::new();
        for key in &file.keys {
            let used = previous.and_then(|p| p.last_used.get(&key.id)).map_or_else(
                || Arc::new(AtomicU64::new(key.last_used.unwrap_or(0))),
                Arc::clone,
            );
            last_used.insert(key.id.clone(), Arc::clone(&used));
            let id: Arc<str> = Arc::from(key.id.as_str());
            let scopes: ScopeSet = key.scopes.iter().copied().collect();
            for secret in &key.secrets {
                let digest = parse_hex(&secret.sha256).ok_or_else(|| {
                    format!("key {} has a sha256 that is not 64 hex digits", key.id)
                })?;
                let live = Live {
                    id: Arc::clone(&id),
                    scopes,
                    expires: key.expires,
                    revoked: key.revoked,
                    retires: secret.retires,
                    last_used: Arc::clone(&used),
                };
                if by_digest.insert(digest, live).is_some() {
                    return Err(format!("key {} repeats a secret's digest", key.id));
                }
            }
        }
        Ok(Self {
            file,
            by_digest,
            last_used,
        })
    }

    /// The file as it should be written: last-used times from the index.
    fn file_with_usage(&self) -> KeyFile {
        let mut file = self.file.clone();
        for key in &mut file.keys {
            let used = self
                .last_used
                .get(&key.id)
                .map_or(0, |u| u.load(Ordering::Relaxed));
            key.last_used = (used > 0).then_some(used);
        }
        file
    }
}

/// The caller a key authenticated: its id (what the audit log names) and scopes.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The key's id, `key_…`.
    pub id: Arc<str>,
    /// What it may do.
    pub scopes: ScopeSet,
}

/// Why a presented secret does not authenticate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not shaped like a key.
    #[error("the bearer credential is not an API key: {0}")]
    Malformed(ShapeError),
    /// Well-formed, but no key has it.
    #[error("no API key has this secret; ask the operator for a key")]
    Unknown,
    /// The key was revoked.
    #[error("API key {id} was revoked at {at}; ask the operator for a new key")]
    Revoked {
        /// The key.
        id: String,
        /// When, RFC 3339.
        at: String,
    },
    /// The key expired.
    #[error("API key {id} expired at {at}; ask the operator for a new key")]
    Expired {
        /// The key.
        id: String,
        /// When, RFC 3339.
        at: String,
    },
    /// The secret was rotated out and its grace period is over.
    #[error("this secret of API key {id} was replaced by a rotation and stopped working at {at}; use the new secret")]
    Retired {
        /// The key.
        id: String,
        /// When, RFC 3339.
        at: String,
    },
}

/// A failure of the key store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyStoreError {
    /// The key file cannot be read.
    #[error("cannot read the API key file {}: {source}; fix its permissions (the daemon never replaces it)", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The key file is not a valid key file.
    #[error(
        "the API key file {} is corrupt: {reason}; the daemon does not start with it so that no \
         key is lost: restore it from a backup, or move it aside to start with no API keys (the \
         admin token creates new ones); the rest of the state directory is untouched",
        path.display()
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Writing the key file failed; nothing changed.
    #[error("cannot save the API keys, nothing changed: {0}")]
    Write(#[from] plugkit_durable::WriteError),
    /// The system's random source failed.
    #[error("cannot make a key secret: the system's random source failed: {0}")]
    Random(String),
    /// No key has this id.
    #[error("no API key `{0}`; GET /api/keys lists them")]
    NotFound(String),
    /// The request is not valid (name, scopes, expiry, grace).
    #[error("{0}")]
    Invalid(String),
}

/// A request for a new key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// What it is for (shown in the list), 1–100 characters.
    pub name: String,
    /// Its scopes, at least one.
    pub scopes: Vec<Scope>,
    /// Seconds until it expires; never when absent.
    #[serde(default)]
    pub expires_in_secs: Option<u64>,
}

/// A key as listed: never the secret.
#[derive(Debug, Clone, Serialize)]
pub struct KeyView {
    /// `key_…`.
    pub id: String,
    /// What it is for.
    pub name: String,
    /// The current secret's prefix and last 4 characters.
    pub hint: String,
    /// Its scopes.
    pub scopes: Vec<Scope>,
    /// RFC 3339.
    pub created: String,
    /// RFC 3339, if it expires.
    pub expires: Option<String>,
    /// RFC 3339, if revoked.
    pub revoked: Option<String>,
    /// RFC 3339, if used since the daemon last wrote the file or started.
    pub last_used: Option<String>,
    /// `active`, `expired` or `revoked`.
    pub state: &'static str,
    /// Rotated-out secrets still working: hint and when each stops.
    pub previous_secrets: Vec<PreviousSecret>,
    /// Whether the admin page made it (`POST /api/session`); such keys are
    /// forgotten once expired or revoked.
    pub page_session: bool,
}

/// A rotated-out secret in its grace period.
#[derive(Debug, Clone, Serialize)]
pub struct PreviousSecret {
    /// Prefix and last 4 characters.
    pub hint: String,
    /// RFC 3339.
    pub works_until: String,
}

/// The answer to a create or a rotation: the only time the secret is shown.
#[derive(Debug, Clone, Serialize)]
pub struct RotatedKey {
    /// The key.
    pub key: KeyView,
    /// The new secret.
    pub secret: String,
}

/// The key store of one state directory.
pub struct KeyStore {
    path: PathBuf,
    inner: RwLock<Inner>,
    /// Serializes changes (read, write the file, swap the index).
    changing: Mutex<()>,
    /// The admin page's live session, handed out again while it lasts.
    session: Mutex<Option<session::CurrentSession>>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl KeyStore {
    /// Opens `state_dir/api-keys.json`; no file means no keys yet.
    ///
    /// # Errors
    /// [`KeyStoreError::Read`] or [`KeyStoreError::Corrupt`], naming the file.
    pub fn open(state_dir: &Path) -> Result<Self, KeyStoreError> {
        let path = state_dir.join(KEYS_FILE);
        let file = match std::fs::read(&path) {
            Ok(bytes) => {
                let file: KeyFile =
                    serde_json::from_slice(&bytes).map_err(|e| KeyStoreError::Corrupt {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                if file.format != FORMAT {
                    return Err(KeyStoreError::Corrupt {
                        path,
                        reason: format!(
                            "format {} is not {FORMAT}, the one this daemon reads",
                            file.format
                        ),
                    });
                }
                file
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => KeyFile {
                format: FORMAT,
                keys: Vec::new(),
            },
            Err(source) => return Err(KeyStoreError::Read { path, source }),
        };
        let inner = Inner::index(file, None).map_err(|reason| KeyStoreError::Corrupt {
            path: path.clone(),
            reason,
        })?;
        Ok(Self {
            path,
            inner: RwLock::new(inner),
            changing: Mutex::new(()),
            session: Mutex::new(None),
        })
    }

    /// The key file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks a presented secret at `now`: its shape and checksum, then its
    /// digest; a found key must be neither revoked nor expired, and a
    /// rotated-out secret must be in its grace period. Records the use.
    ///
    /// The lookup is by the SHA-256 of the presented text, so its timing
    /// depends on that digest, not on how much of a real secret matched.
    ///
    /// # Errors
    /// The [`Refusal`] that says why.
    pub fn authenticate(&self, presented: &str, now: u64) -> Result<Caller, Refusal> {
        format::check_shape(presented).map_err(Refusal::Malformed)?;
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        let live = inner.by_digest.get(&digest).ok_or(Refusal::Unknown)?;
        if let Some(at) = live.revoked {
            return Err(Refusal::Revoked {
                id: live.id.to_string(),
                at: rfc3339(at),
            });
        }
        if let Some(at) = live.expires.filter(|at| *at <= now) {
            return Err(Refusal::Expired {
                id: live.id.to_string(),
                at: rfc3339(at),
            });
        }
        if let Some(at) = live.retires.filter(|at| *at <= now) {
            return Err(Refusal::Retired {
                id: live.id.to_string(),
                at: rfc3339(at),
            });
        }
        live.last_used.store(now, Ordering::Relaxed);
        Ok(Caller {
            id: Arc::clone(&live.id),
            scopes: live.scopes,
        })
    }

    /// Every key, oldest first, masked.
    pub fn list(&self, now: u64) -> Vec<KeyView> {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        inner
            .file
            .keys
            .iter()
            .map(|k| view(k, &inner, now))
            .collect()
    }

    /// Creates a key; the answer holds its secret, shown this once.
    ///
    /// # Errors
    /// [`KeyStoreError::Invalid`] for a bad request; a write or random failure.
    pub fn create(&self, new: NewKey, now: u64) -> Result<RotatedKey, KeyStoreError> {
        let name = new.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(KeyStoreError::Invalid(
                "`name` must be 1 to 100 characters saying what the key is for, without \
                 control characters (line breaks, NUL)"
                    .to_owned(),
            ));
        }
        if new.scopes.is_empty() {
            return Err(KeyStoreError::Invalid(format!(
                "`scopes` must list at least one of {}",
                Scope::ALL.map(Scope::as_str).join(", ")
            )));
        }
        match new.expires_in_secs {
            Some(0) => return Err(KeyStoreError::Invalid(
                "`expires_in_secs` must be above 0; leave it out for a key that does not expire"
                    .to_owned(),
            )),
            Some(secs) if secs > MAX_EXPIRY_SECS => {
                return Err(KeyStoreError::Invalid(format!(
                    "`expires_in_secs` is at most {MAX_EXPIRY_SECS} (10 years), not {secs}; \
                     leave it out for a key that does not expire"
                )))
            }
            _ => {}
        }
        let mut scopes = new.scopes;
        scopes.sort();
        scopes.dedup();
        let secret = new_secret()?;
        let id = format!("key_{}", &random_base62()?[..12]);
        let record = KeyRecord {
            id: id.clone(),
            name,
            scopes,
            created: now,
            expires: new.expires_in_secs.map(|secs| now.saturating_add(secs)),
            revoked: None,
            last_used: None,
            secrets: vec![secret_record(&secret, now, None)],
            session: false,
        };
        let key = self.change(now, &id, |file| {
            file.keys.push(record);
            Ok(())
        })?;
        Ok(RotatedKey { key, secret })
    }

    /// Revokes key `id` at `now`, all its secrets at once. Revoking twice
    /// keeps the first time.
    ///
    /// # Errors
    /// [`KeyStoreError::NotFound`]; a write failure.
    pub fn revoke(&self, id: &str, now: u64) -> Result<KeyView, KeyStoreError> {
        self.change(now, id, |file| {
            let key = find(file, id)?;
            key.revoked.get_or_insert(now);
            Ok(())
        })
    }

    /// Gives key `id` a new secret; the current one keeps working for
    /// `grace_secs` (1 hour when `None`, at most [`MAX_GRACE_SECS`]; 0 ends
    /// it at once). Secrets whose grace is over are forgotten.
    ///
    /// # Errors
    /// [`KeyStoreError::NotFound`]; [`KeyStoreError::Invalid`] for a revoked
    /// or expired key or a grace over the maximum; a write failure.
    pub fn rotate(
        &self,
        id: &str,
        grace_secs: Option<u64>,
        now: u64,
    ) -> Result<RotatedKey, KeyStoreError> {
        let grace = grace_secs.unwrap_or(DEFAULT_GRACE_SECS);
        if grace > MAX_GRACE_SECS {
            return Err(KeyStoreError::Invalid(format!(
                "`grace_secs` is at most {MAX_GRACE_SECS} (30 days), not {grace}"
            )));
        }
        let secret = new_secret()?;
        let key = self.change(now, id, |file| {
            let key = find(file, id)?;
            if key.revoked.is_some() {
                return Err(KeyStoreError::Invalid(format!(
                    "API key {id} is revoked; create a new key instead of rotating it"
                )));
            }
            if key.expires.is_some_and(|at| at <= now) {
                return Err(KeyStoreError::Invalid(format!(
                    "API key {id} has expired; create a new key instead of rotating it"
                )));
            }
            key.secrets.retain(|s| s.retires.is_none_or(|at| at > now));
            for old in &mut key.secrets {
                let until = now.saturating_add(grace);
                old.retires = Some(old.retires.map_or(until, |at| at.min(until)));
            }
            key.secrets.insert(0, secret_record(&secret, now, None));
            Ok(())
        })?;
        Ok(RotatedKey { key, secret })
    }

    /// Writes each key's last use to the file (at shutdown); nothing
    /// else changes. No keys and no file: nothing is written.
    ///
    /// # Errors
    /// A write failure.
    pub fn save_usage(&self) -> Result<(), KeyStoreError> {
        let _changing = self.changing.lock().unwrap_or_else(PoisonError::into_inner);
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        if inner.file.keys.is_empty() && !self.path.exists() {
            return Ok(());
        }
        write_file(&self.path, &inner.file_with_usage())
    }

    /// Applies `edit` to a copy of the file, writes it, then swaps the
    /// index; answers the view of key `id` afterwards.
    fn change(
        &self,
        now: u64,
        id: &str,
        edit: impl FnOnce(&mut KeyFile) -> Result<(), KeyStoreError>,
    ) -> Result<KeyView, KeyStoreError> {
        let _changing = self.changing.lock().unwrap_or_else(PoisonError::into_inner);
        let mut file = self
            .inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .file_with_usage();
        edit(&mut file)?;
        let next = {
            let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
            Inner::index(file, Some(&inner)).map_err(KeyStoreError::Invalid)?
        };
        write_file(&self.path, &next.file)?;
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        *inner = next;
        let key = inner
            .file
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| KeyStoreError::NotFound(id.to_owned()))?;
        Ok(view(key, &inner, now))
    }
}

fn write_file(path: &Path, file: &KeyFile) -> Result<(), KeyStoreError> {
    // Plain data always serializes.
    let mut bytes = serde_json::to_vec_pretty(file).unwrap_or_default();
    bytes.push(b'\n');
    plugkit_durable::write_atomic(path, &bytes, 0o600)?;
    Ok(())
}

fn find<'a>(file: &'a mut KeyFile, id: &str) -> Result<&'a mut KeyRecord, KeyStoreError> {
    file.keys
        .iter_mut()
        .find(|k| k.id == id)
        .ok_or_else(|| KeyStoreError::NotFound(id.to_owned()))
}

fn view(key: &KeyRecord, inner: &Inner, now: u64) -> KeyView {
    let used = inner
        .last_used
        .get(&key.id)
        .map_or(0, |u| u.load(Ordering::Relaxed));
    let state = if key.revoked.is_some() {
        "revoked"
    } else if key.expires.is_some_and(|at| at <= now) {
        "expired"
    } else {
        "active"
    };
    KeyView {
        id: key.id.clone(),
        name: key.name.clone(),
        hint: key
            .secrets
            .iter()
            .find(|s| s.retires.is_none())
            .map(|s| s.hint.clone())
            .unwrap_or_default(),
        scopes: key.scopes.clone(),
        created: rfc3339(key.created),
        expires: key.expires.map(rfc3339),
        revoked: key.revoked.map(rfc3339),
        last_used: (used > 0).then(|| rfc3339(used)),
        state,
        previous_secrets: key
            .secrets
            .iter()
            .filter_map(|s| {
                let at = s.retires.filter(|at| *at > now)?;
                Some(PreviousSecret {
                    hint: s.hint.clone(),
                    works_until: rfc3339(at),
                })
            })
            .collect(),
        page_session: key.session,
    }
}

fn secret_record(secret: &str, now: u64, retires: Option<u64>) -> SecretRecord {
    SecretRecord {
        sha256: hex(&Sha256::digest(secret.as_bytes())),
        hint: format::hint(secret),
        created: now,
        retires,
    }
}

/// 30 unbiased base62 characters from the system's random source.
fn random_base62() -> Result<String, KeyStoreError> {
    // 64 bytes give 30 usable ones except with negligible probability; retry then.
    for _ in 0..8 {
        let mut bytes = [0u8; 64];
        getrandom::fill(&mut bytes).map_err(|e| KeyStoreError::Random(e.to_string()))?;
        if let Some(part) = format::random_part(&bytes) {
            return Ok(part);
        }
    }
    Err(KeyStoreError::Random(
        "it returned too many bytes of 248 and above".to_owned(),
    ))
}

fn new_secret() -> Result<String, KeyStoreError> {
    Ok(format::secret(&random_base62()?))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if text.len() != 64 {
        return None;
    }
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Seconds since the epoch as RFC 3339 in UTC.
/// Total: a time past the year 9999 (a key stored before expiries were
/// limited) shows as 9999-12-31T23:59:59Z, so listing never fails.
pub(crate) fn rfc3339(secs: u64) -> String {
    let last = crate::webhook_state::clock::LAST_RFC3339_MILLIS / 1000;
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs.min(last))).to_string()
}

mod session;
pub use session::{Session, MAX_SESSIONS, SESSION_SECS};

#[cfg(test)]
mod tests;
