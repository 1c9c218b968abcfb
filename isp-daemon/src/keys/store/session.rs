//! The admin page's session keys: what the page trades the admin token for
//! (`POST /api/session`). One live session key is reused by every visit
//! while it has more than [`RENEW_BEFORE_SECS`] left; a new one is made only
//! then (or after a restart, which forgets the secret), and making one
//! forgets expired or revoked session keys and keeps at most
//! [`MAX_SESSIONS`] live ones, so repeated visits never grow the key file.
//!
//! The current session's secret is held in memory only (the key file keeps
//! its digest, as for every key): the admin token can make a key with every
//! scope anyway, so holding it adds nothing the token does not already give.

use std::sync::PoisonError;

use super::{
    new_secret, random_base62, secret_record, view, KeyRecord, KeyStore, KeyStoreError, RotatedKey,
};
use crate::keys::Scope;

/// How long a session key lives (12 hours).
pub const SESSION_SECS: u64 = 12 * 3600;
/// A session with less than this left (1 hour) is not handed out again: a
/// new one is made, so a page never gets a key that expires under it.
pub(super) const RENEW_BEFORE_SECS: u64 = 3600;
/// The most session keys alive at once; making one more forgets the oldest.
pub const MAX_SESSIONS: usize = 4;
/// The name session keys are listed under.
pub(super) const SESSION_NAME: &str = "admin page session";

/// The session the page is handed while it is live.
pub(super) struct CurrentSession {
    id: String,
    secret: String,
    expires: u64,
}

/// A session key as the page gets it: the key, its secret, and whether an
/// earlier visit already made it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Session {
    /// The key (masked) and its secret.
    #[serde(flatten)]
    pub key: RotatedKey,
    /// `true` when the live session key was handed out again.
    pub reused: bool,
}

impl KeyStore {
    /// The admin page's session key at `now`: the live one when it has more
    /// than `RENEW_BEFORE_SECS` left and was not revoked, else a new one
    /// (every scope, [`SESSION_SECS`]). A new one forgets every expired or
    /// revoked session key and the oldest live ones beyond [`MAX_SESSIONS`].
    ///
    /// # Errors
    /// A write or random failure.
    pub fn page_session(&self, now: u64) -> Result<Session, KeyStoreError> {
        let mut current = self.session.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(live) = current.as_ref() {
            let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
            let record = inner
                .file
                .keys
                .iter()
                .find(|k| k.id == live.id && k.revoked.is_none());
            if let (Some(record), true) = (record, live.expires > now + RENEW_BEFORE_SECS) {
                return Ok(Session {
                    key: RotatedKey {
                        key: view(record, &inner, now),
                        secret: live.secret.clone(),
                    },
                    reused: true,
                });
            }
        }
        let secret = new_secret()?;
        let id = format!("key_{}", &random_base62()?[..12]);
        let expires = now.saturating_add(SESSION_SECS);
        let record = KeyRecord {
            id: id.clone(),
            name: SESSION_NAME.to_owned(),
            scopes: Scope::ALL.to_vec(),
            created: now,
            expires: Some(expires),
            revoked: None,
            last_used: None,
            secrets: vec![secret_record(&secret, now, None)],
            session: true,
        };
        let key = self.change(now, &id, |file| {
            file.keys.push(record);
            file.keys.retain(|k| {
                !k.session || (k.revoked.is_none() && k.expires.is_none_or(|at| at > now))
            });
            let live = file.keys.iter().filter(|k| k.session).count();
            let mut surplus = live.saturating_sub(MAX_SESSIONS);
            // Oldest first: the file keeps creation order.
            file.keys.retain(|k| {
                if k.session && surplus > 0 {
                    surplus -= 1;
                    return false;
                }
                true
            });
            Ok(())
        })?;
        *current = Some(CurrentSession {
            id,
            secret: secret.clone(),
            expires,
        });
        Ok(Session {
            key: RotatedKey { key, secret },
            reused: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_800_000_000;

    fn sessions(keys: &KeyStore, now: u64) -> Vec<String> {
        keys.list(now)
            .into_iter()
            .filter(|k| k.page_session)
            .map(|k| k.id)
            .collect()
    }

    /// New-user trial: each page visit with `?token=` made a new 12 h key.
    #[test]
    fn repeated_visits_reuse_the_live_session_key() {
        let dir = tempfile::tempdir().expect("temp dir");
        let keys = KeyStore::open(dir.path()).expect("open");
        let first = keys.page_session(T0).expect("session");
        assert!(!first.reused);
        for visit in 1..50 {
            let again = keys.page_session(T0 + visit).expect("session");
            assert!(again.reused);
            assert_eq!(again.key.secret, first.key.secret);
        }
        assert_eq!(sessions(&keys, T0 + 60), vec![first.key.key.id]);
        let caller = keys
            .authenticate(&first.key.secret, T0 + 60)
            .expect("valid");
        assert_eq!(
            Scope::ALL
                .iter()
                .filter(|s| caller.scopes.contains(**s))
                .count(),
            Scope::ALL.len()
        );
    }

    #[test]
    fn a_session_near_its_end_is_replaced_and_expired_ones_are_forgotten() {
        let dir = tempfile::tempdir().expect("temp dir");
        let keys = KeyStore::open(dir.path()).expect("open");
        let first = keys.page_session(T0).expect("session");
        let near_end = T0 + SESSION_SECS - RENEW_BEFORE_SECS;
        let second = keys.page_session(near_end).expect("session");
        assert!(!second.reused);
        assert_ne!(second.key.secret, first.key.secret);
        // The first still works until it expires, then is forgotten at the next new session.
        keys.authenticate(&first.key.secret, near_end + 1)
            .expect("still valid");
        let third_at = near_end + SESSION_SECS;
        let third = keys.page_session(third_at).expect("session");
        assert_eq!(sessions(&keys, third_at), vec![third.key.key.id]);
    }

    #[test]
    fn restarts_and_revocations_keep_at_most_four_live_session_keys() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut newest = Vec::new();
        for restart in 0..10 {
            // A restart forgets the secret in memory: every visit after it makes a new key.
            let keys = KeyStore::open(dir.path()).expect("open");
            let made = keys.page_session(T0 + restart).expect("session");
            assert!(!made.reused);
            newest.push(made.key.key.id);
        }
        let keys = KeyStore::open(dir.path()).expect("open");
        assert_eq!(
            sessions(&keys, T0 + 20),
            newest[newest.len() - MAX_SESSIONS..]
        );
        // A revoked session is not handed out again.
        let live = keys.page_session(T0 + 30).expect("session");
        keys.revoke(&live.key.key.id, T0 + 31).expect("revoke");
        let after = keys.page_session(T0 + 32).expect("session");
        assert!(!after.reused);
        assert!(!sessions(&keys, T0 + 33).contains(&live.key.key.id));
        assert_eq!(sessions(&keys, T0 + 33).len(), MAX_SESSIONS);
    }
}
