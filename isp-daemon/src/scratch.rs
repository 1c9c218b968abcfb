//! The daemon's scratch directories (the host's runtime copies of plugin
//! libraries, a temporary state directory): temporary directories that
//! record their owner, so that the ones a killed daemon left behind are
//! removed by the next start instead of filling the disk.
//!
//! A directory is `<temp>/<prefix><random>` with an `owner` file holding the
//! owning process's pid and its start time (field 22 of `/proc/<pid>/stat`,
//! in clock ticks since boot; see proc(5)). A sibling with the same prefix
//! is removed only when its owner file names a process that no longer runs
//! (no such pid, or a pid reused by a process that started at another
//! time); a directory without a readable owner file is left alone.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

/// The file in a scratch directory that names its owner.
const OWNER_FILE: &str = "owner";

/// Creates a scratch directory named `<prefix><random>` in the system's
/// temporary directory, after removing the ones with the same prefix whose
/// owner has exited. Returns the directory (removed when dropped) and one
/// line per stale directory removed, for the startup report.
pub fn create(prefix: &str) -> Result<(tempfile::TempDir, Vec<String>)> {
    let parent = std::env::temp_dir();
    let notes = sweep(&parent, prefix);
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&parent)
        .with_context(|| format!("creating a scratch directory in {}", parent.display()))?;
    let me = std::process::id();
    let owner = match start_time(me) {
        Some(ticks) => format!("{me} {ticks}\n"),
        None => format!("{me}\n"),
    };
    fs::write(dir.path().join(OWNER_FILE), owner)
        .with_context(|| format!("writing the owner of {}", dir.path().display()))?;
    Ok((dir, notes))
}

/// Removes the directories in `parent` named `<prefix>…` whose recorded
/// owner no longer runs. Failures to remove are reported, never fatal: a
/// stale directory costs disk space, not correctness.
fn sweep(parent: &Path, prefix: &str) -> Vec<String> {
    let mut notes = Vec::new();
    let Ok(entries) = fs::read_dir(parent) else {
        return notes;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with(prefix) {
            continue;
        }
        let path = entry.path();
        let Ok(text) = fs::read_to_string(path.join(OWNER_FILE)) else {
            continue;
        };
        if owner_runs(&text) {
            continue;
        }
        match fs::remove_dir_all(&path) {
            Ok(()) => notes.push(format!(
                "removed {}, left by a daemon that no longer runs ({})",
                path.display(),
                text.trim()
            )),
            Err(e) => notes.push(format!(
                "could not remove {}, left by a daemon that no longer runs: {e}; remove it by hand",
                path.display()
            )),
        }
    }
    notes
}

/// Whether the owner recorded as `"<pid> [<start ticks>]"` still runs. An
/// owner file that cannot be parsed counts as running: only what is known
/// to be stale is removed.
fn owner_runs(text: &str) -> bool {
    let mut fields = text.split_whitespace();
    let Some(Ok(pid)) = fields.next().map(str::parse::<u32>) else {
        return true;
    };
    let recorded = fields.next().and_then(|t| t.parse::<u64>().ok());
    match (start_time(pid), recorded) {
        (None, _) => false,
        (Some(now), Some(then)) => now == then,
        (Some(_), None) => true,
    }
}

/// The start time of process `pid` in clock ticks since boot, or `None`
/// when no such process runs. The command name (field 2) is in parentheses
/// and may hold spaces, so fields are counted after the last `)`.
fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    // After the name come field 3 (state) onwards; start time is field 22.
    after_name.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_left_by_an_exited_process_is_removed_and_a_live_ones_kept() {
        let parent = tempfile::tempdir().unwrap();
        let prefix = "scratch-test-";
        // A child that has exited: its pid no longer runs (or runs as
        // another process with another start time).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        let dead_start = start_time(dead).unwrap_or(1);
        child.wait().unwrap();
        let stale = parent.path().join(format!("{prefix}stale"));
        fs::create_dir(&stale).unwrap();
        fs::write(stale.join(OWNER_FILE), format!("{dead} {dead_start}\n")).unwrap();
        fs::write(stale.join("twilio-1.so"), b"copy").unwrap();

        let me = std::process::id();
        let live = parent.path().join(format!("{prefix}live"));
        fs::create_dir(&live).unwrap();
        fs::write(
            live.join(OWNER_FILE),
            format!("{me} {}\n", start_time(me).unwrap()),
        )
        .unwrap();

        let unowned = parent.path().join(format!("{prefix}unowned"));
        fs::create_dir(&unowned).unwrap();
        let other = parent.path().join("other-prefix-dir");
        fs::create_dir(&other).unwrap();
        fs::write(other.join(OWNER_FILE), format!("{dead} {dead_start}\n")).unwrap();

        let notes = sweep(parent.path(), prefix);
        assert!(!stale.exists(), "{notes:?}");
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("no longer runs"), "{notes:?}");
        assert!(live.exists());
        assert!(
            unowned.exists(),
            "a directory without an owner file is kept"
        );
        assert!(other.exists(), "another prefix is not touched");
    }

    #[test]
    fn a_reused_pid_with_another_start_time_counts_as_exited() {
        let me = std::process::id();
        let now = start_time(me).unwrap();
        assert!(owner_runs(&format!("{me} {now}")));
        assert!(!owner_runs(&format!("{me} {}", now + 1)));
        assert!(owner_runs("not a pid"), "unparsable owners are kept");
    }

    #[test]
    fn create_records_this_process_as_the_owner() {
        let (dir, _) = create("isp-daemon-scratch-test-").unwrap();
        let text = fs::read_to_string(dir.path().join(OWNER_FILE)).unwrap();
        assert!(owner_runs(&text), "{text}");
        assert!(text.starts_with(&std::process::id().to_string()));
    }
}
