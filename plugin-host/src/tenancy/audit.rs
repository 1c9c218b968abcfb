//! The audit log: one JSON line per lifecycle change, appended and synced
//! before the call that made the change returns, readable back in order.
//!
//! Invariant: entries carry ids, versions, tiers and error messages, never a
//! configuration value (error messages of this crate never quote one).

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::tenancy::persist::PersistError;

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditAction {
    /// A plugin was installed (registered with its manifest), or replaced by another version.
    Install,
    /// A plugin was activated for a tenant.
    Activate,
    /// A plugin was deactivated for a tenant.
    Deactivate,
    /// A plugin was hot-reloaded.
    Reload,
    /// A reload or a configuration change was rolled back.
    Rollback,
    /// A plugin was removed.
    Remove,
    /// A tenant's configuration of a plugin changed.
    ConfigChange,
    /// A tenant's tier changed.
    TierChange,
    /// A tenant was added.
    AddTenant,
    /// An isolated plugin was released from quarantine by an operator.
    ReleaseQuarantine,
    /// An API key of an embedding service was created, rotated or revoked
    /// (the detail says which key and what; never its secret).
    ApiKey,
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Install => "install",
            Self::Activate => "activate",
            Self::Deactivate => "deactivate",
            Self::Reload => "reload",
            Self::Rollback => "rollback",
            Self::Remove => "remove",
            Self::ConfigChange => "config_change",
            Self::TierChange => "tier_change",
            Self::AddTenant => "add_tenant",
            Self::ReleaseQuarantine => "release_quarantine",
            Self::ApiKey => "api_key",
        })
    }
}

/// How it went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditOutcome {
    /// Done.
    Ok,
    /// Not allowed (tier, validation); nothing changed.
    Refused,
    /// Tried and failed.
    Failed,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuditEntry {
    /// When, RFC 3339 in UTC with milliseconds.
    pub time: String,
    /// Who asked for it.
    pub actor: String,
    /// The tenant concerned, if any.
    pub tenant: Option<String>,
    /// The plugin concerned, if any.
    pub plugin: Option<String>,
    /// The plugin version before, if any.
    pub from_version: Option<String>,
    /// The plugin version after, if any.
    pub to_version: Option<String>,
    /// What changed.
    pub action: AuditAction,
    /// How it went.
    pub outcome: AuditOutcome,
    /// Why, or what exactly; never a configuration value.
    pub detail: String,
}

impl AuditEntry {
    /// An entry stamped with the current time.
    pub fn new(actor: impl Into<String>, action: AuditAction, outcome: AuditOutcome) -> Self {
        Self {
            time: rfc3339_utc(SystemTime::now()),
            actor: actor.into(),
            tenant: None,
            plugin: None,
            from_version: None,
            to_version: None,
            action,
            outcome,
            detail: String::new(),
        }
    }

    /// Sets the tenant.
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// Sets the plugin.
    pub fn plugin(mut self, plugin: impl Into<String>) -> Self {
        self.plugin = Some(plugin.into());
        self
    }

    /// Sets the versions before and after.
    pub fn versions(mut self, from: Option<String>, to: Option<String>) -> Self {
        self.from_version = from;
        self.to_version = to;
        self
    }

    /// Sets the detail.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }
}

/// The append-only audit log file.
pub struct AuditLog {
    path: PathBuf,
    file: Mutex<File>,
}

impl fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.path)
            .finish()
    }
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> PersistError {
    let path = path.to_owned();
    move |source| PersistError::Io {
        action,
        path,
        source,
    }
}

impl AuditLog {
    /// Opens (or creates, private to the user) the log at `path`. A last
    /// line cut short by a crash is closed with a newline, so the next entry
    /// starts on its own line; the cut line stays and is reported by
    /// [`AuditLog::entries`].
    pub(crate) fn open(path: &Path) -> Result<Self, PersistError> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .map_err(io("open audit log", path))?;
        let len = file.metadata().map_err(io("inspect", path))?.len();
        if len > 0 {
            let mut last = [0u8; 1];
            file.seek(SeekFrom::Start(len - 1))
                .and_then(|_| file.read_exact(&mut last))
                .map_err(io("read", path))?;
            if last[0] != b'\n' {
                file.write_all(b"\n")
                    .and_then(|()| file.sync_data())
                    .map_err(io("repair the last line of", path))?;
            }
        }
        Ok(Self {
            path: path.to_owned(),
            file: Mutex::new(file),
        })
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one entry as one line and syncs it to disk.
    pub fn append(&self, entry: &AuditEntry) -> Result<(), PersistError> {
        let mut line = serde_json::to_vec(entry).map_err(|e| PersistError::Io {
            action: "serialize an entry for",
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        line.push(b'\n');
        let mut file = self.file.lock();
        // One write of a whole line: with O_APPEND, lines never interleave.
        file.write_all(&line)
            .and_then(|()| file.sync_data())
            .map_err(io("append to", &self.path))?;
        tracing::info!(
            actor = %entry.actor,
            tenant = entry.tenant.as_deref().unwrap_or("-"),
            plugin = entry.plugin.as_deref().unwrap_or("-"),
            outcome = ?entry.outcome,
            "audit {}",
            entry.action
        );
        Ok(())
    }

    /// Every entry, oldest first. A line that does not parse is an error
    /// naming the file and the line.
    ///
    /// Reads without the writer's lock, so readers neither wait for an
    /// append's `fsync` nor for each other. Every append writes one whole
    /// line ending in `\n` and opening the log closes a line a crash cut
    /// short, so bytes after the last `\n` can only be an append still in
    /// progress: they are left for the next read.
    pub fn entries(&self) -> Result<Vec<AuditEntry>, PersistError> {
        let mut text = std::fs::read_to_string(&self.path).map_err(io("read", &self.path))?;
        text.truncate(text.rfind('\n').map_or(0, |last| last + 1));
        text.lines()
            .enumerate()
            .filter(|(_, line)| !line.is_empty())
            .map(|(index, line)| {
                serde_json::from_str(line).map_err(|e| PersistError::Corrupt {
                    path: self.path.clone(),
                    line: index + 1,
                    column: e.column(),
                    message: crate::tenancy::persist::explain_corruption(line.as_bytes(), &e),
                })
            })
            .collect()
    }
}

/// `t` as RFC 3339 in UTC with milliseconds, e.g. `2024-05-01T12:00:00.000Z`.
pub(crate) fn rfc3339_utc(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        let cases = [
            (0, 0, "1970-01-01T00:00:00.000Z"),
            (951_782_400, 5, "2000-02-29T00:00:00.005Z"),
            (1_700_000_000, 999, "2023-11-14T22:13:20.999Z"),
            (4_102_444_799, 0, "2099-12-31T23:59:59.000Z"),
            (1_709_251_199, 0, "2024-02-29T23:59:59.000Z"),
        ];
        for (secs, millis, expected) in cases {
            let t = UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis);
            assert_eq!(rfc3339_utc(t), expected, "{secs}");
        }
    }

    #[test]
    fn entries_are_appended_as_json_lines_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path).unwrap();
        let first = AuditEntry::new("admin", AuditAction::Activate, AuditOutcome::Ok)
            .tenant("acme")
            .plugin("sms")
            .versions(None, Some("1.0.0".into()));
        let second = AuditEntry::new("system", AuditAction::TierChange, AuditOutcome::Ok)
            .tenant("acme")
            .detail("free -> pro");
        log.append(&first).unwrap();
        log.append(&second).unwrap();
        assert_eq!(log.entries().unwrap(), [first.clone(), second]);

        let text = std::fs::read_to_string(&path).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        let keys: Vec<&str> = line
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            [
                "action",
                "actor",
                "detail",
                "from_version",
                "outcome",
                "plugin",
                "tenant",
                "time",
                "to_version"
            ]
        );
        assert_eq!(line["action"], "activate");
        assert_eq!(line["outcome"], "ok");
        assert_eq!(line["from_version"], serde_json::Value::Null);

        // Reopening appends after what is there.
        drop(log);
        let log = AuditLog::open(&path).unwrap();
        log.append(&first).unwrap();
        assert_eq!(log.entries().unwrap().len(), 3);
    }

    #[test]
    fn a_read_during_an_append_sees_whole_lines_only() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path).unwrap();
        let entry = AuditEntry::new("admin", AuditAction::Install, AuditOutcome::Ok);
        log.append(&entry).unwrap();
        // An append caught half-way: the reader does not take the lock.
        let whole = serde_json::to_string(&entry).unwrap();
        let mut raw = OpenOptions::new().append(true).open(&path).unwrap();
        raw.write_all(&whole.as_bytes()[..20]).unwrap();
        assert_eq!(log.entries().unwrap(), std::slice::from_ref(&entry));
        raw.write_all(&whole.as_bytes()[20..]).unwrap();
        raw.write_all(b"\n").unwrap();
        assert_eq!(log.entries().unwrap(), [entry.clone(), entry.clone()]);

        // Readers and a writer at once: every read parses, none goes back.
        let log = std::sync::Arc::new(log);
        let writer = {
            let log = std::sync::Arc::clone(&log);
            let entry = entry.clone();
            std::thread::spawn(move || {
                for _ in 0..200 {
                    log.append(&entry).unwrap();
                }
            })
        };
        let mut seen = 0;
        while !writer.is_finished() {
            let now = log.entries().unwrap().len();
            assert!(now >= seen, "{now} after {seen}");
            seen = now;
        }
        writer.join().unwrap();
        assert_eq!(log.entries().unwrap().len(), 202);
    }

    #[test]
    fn a_line_cut_by_a_crash_is_reported_and_later_entries_stay_readable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let entry = AuditEntry::new("admin", AuditAction::Install, AuditOutcome::Ok);
        let whole = serde_json::to_string(&entry).unwrap();
        std::fs::write(&path, format!("{whole}\n{}", &whole[..20])).unwrap();
        let log = AuditLog::open(&path).unwrap();
        log.append(&entry).unwrap();
        let err = log.entries().unwrap_err();
        assert!(
            matches!(&err, PersistError::Corrupt { path: p, line: 2, .. } if *p == path),
            "{err:?}"
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().nth(2), Some(whole.as_str()));
    }
}
