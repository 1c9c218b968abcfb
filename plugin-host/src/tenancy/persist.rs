//! State files that survive a restart: written atomically (temp file in the
//! same directory, fsync, rename, fsync of the directory) and read strictly
//! (a corrupt file is an error naming its path, never silently reset).
//!
//! A crash at any point leaves the previous or the new file, never a mix:
//! the target is only ever replaced by `rename`, which is atomic on POSIX
//! file systems. Leftover temp files of a killed writer are ignored.

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The format version written into every state file.
pub(crate) const FORMAT: u32 = 1;

/// A state file that cannot be read, written or understood.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PersistError {
    /// A file operation failed.
    #[error("cannot {action} {}: {source}; check the disk and the permissions of the state directory", path.display())]
    Io {
        /// What was being done, e.g. `write`.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The file exists but does not parse. It is left untouched.
    #[error(
        "state file {} is corrupt at line {line}, column {column}: {message}; it was left as \
         it is: repair it or restore it from a backup, then start again",
        path.display()
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// The file was written by another version of the platform.
    #[error(
        "state file {} has format {found}, this build reads format {expected}; run the \
         version of plugkit that wrote it, or migrate the file",
        path.display()
    )]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
        /// The format in the file.
        found: u32,
        /// The format this build reads.
        expected: u32,
    },
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> PersistError {
    let path = path.to_owned();
    move |source| PersistError::Io {
        action,
        path,
        source,
    }
}

/// Creates `dir` (and its parents) private to the daemon's user.
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), PersistError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_error("create directory", dir))
}

/// Replaces `path` with `bytes` atomically, private to the daemon's user
/// (through the one writer, `plugkit_durable`).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PersistError> {
    plugkit_durable::write_atomic(path, bytes, 0o600).map_err(PersistError::from)
}

impl From<plugkit_durable::WriteError> for PersistError {
    fn from(e: plugkit_durable::WriteError) -> Self {
        PersistError::Io {
            action: e.action,
            path: e.path,
            source: e.source,
        }
    }
}

/// Serializes `value` as pretty JSON and writes it atomically.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), PersistError> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| PersistError::Io {
        action: "serialize",
        path: path.to_owned(),
        source: io::Error::other(e),
    })?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// Reads a JSON state file; `None` when it does not exist. An empty or
/// unparsable file is [`PersistError::Corrupt`].
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, PersistError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("read", path)(e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| PersistError::Corrupt {
            path: path.to_owned(),
            line: e.line(),
            column: e.column(),
            message: explain_corruption(&bytes, &e),
        })
}

/// The parser's message with what the damage suggests happened: a file cut
/// short, never written (zero bytes), edited into invalid JSON, or valid
/// JSON of another shape. Pure.
pub(crate) fn explain_corruption(bytes: &[u8], error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let why = if bytes.iter().all(u8::is_ascii_whitespace) {
        "the file is empty: it was cut short (a full disk, or a crash or copy that stopped \
         before its contents were written)"
    } else if bytes.iter().all(|b| *b == 0) {
        "the file holds only zero bytes: the system stopped before its contents reached \
         the disk"
    } else {
        match error.classify() {
            Category::Eof => {
                "the file ends early: it was cut short (a full disk or an interrupted copy)"
            }
            Category::Data => {
                "it is valid JSON but not the shape of this state file: another file was \
                 copied here, or another program wrote it"
            }
            Category::Syntax | Category::Io => "it is not valid JSON there: was it edited by hand?",
        }
    };
    format!("{error}; {why}")
}

/// Checks the `format` field of a state file.
pub(crate) fn check_format(path: &Path, found: u32) -> Result<(), PersistError> {
    if found == FORMAT {
        Ok(())
    } else {
        Err(PersistError::UnsupportedFormat {
            path: path.to_owned(),
            found,
            expected: FORMAT,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::process::{Command, Stdio};
    use std::time::Duration;

    use plugkit_durable::{write_atomic_observed, WriteStep};
    use plugkit_testkit::process::{wait_until, ChildGuard};

    use super::*;

    const OLD: &str = "{\"format\": 1, \"tenants\": {\"acme\": \"free\"}}\n";
    const NEW: &str =
        "{\"format\": 1, \"tenants\": {\"acme\": \"pro\", \"globex\": \"enterprise\"}}\n";

    fn check_corruption(bytes: &[u8], says: &str) {
        let error = serde_json::from_slice::<serde_json::Value>(bytes)
            .and_then(serde_json::from_value::<std::collections::BTreeMap<String, u32>>)
            .expect_err("corrupt");
        let message = explain_corruption(bytes, &error);
        assert!(message.contains(says), "{bytes:?}: {message}");
    }

    // Issue 14, item 5: each kind of damage to a state file says what it
    // suggests happened.
    #[test]
    fn each_kind_of_damage_to_a_state_file_has_its_own_explanation() {
        check_corruption(b"", "the file is empty");
        check_corruption(b"\n  \n", "the file is empty");
        check_corruption(&[0; 64], "only zero bytes");
        check_corruption(b"{\"format\": 1, \"tenants\": {", "ends early");
        check_corruption(b"{\"format\": 1,, }", "edited by hand");
        check_corruption(b"[1, 2, 3]", "not the shape of this state file");
    }

    /// Set in the child: `<target>\n<marker>\n<step index>`.
    const CHILD_ENV: &str = "PLUGKIT_PERSIST_CRASH_WRITER";

    /// Not a test of its own: when the crash test re-runs this binary with
    /// `CHILD_ENV` set, this writes `NEW` over the target and, at the
    /// requested step, creates the marker and waits to be killed. In a normal
    /// run it does nothing.
    #[test]
    fn crash_writer_child() {
        let Ok(spec) = std::env::var(CHILD_ENV) else {
            return;
        };
        let mut parts = spec.lines();
        let (Some(target), Some(marker), Some(step)) = (parts.next(), parts.next(), parts.next())
        else {
            panic!("bad {CHILD_ENV}: {spec:?}");
        };
        let stop_at = WriteStep::ALL[step.parse::<usize>().unwrap()];
        let _ = write_atomic_observed(Path::new(target), NEW.as_bytes(), 0o600, &mut |step| {
            if step == stop_at {
                fs::write(marker, format!("{step:?}")).unwrap();
                loop {
                    std::thread::park();
                }
            }
        });
        panic!("the writer passed {stop_at:?} without stopping");
    }

    #[test]
    fn killed_writer_leaves_the_old_or_the_new_state_never_a_mix() {
        let exe = std::env::current_exe().unwrap();
        for (index, step) in WriteStep::ALL.iter().enumerate() {
            let dir = tempfile::tempdir().unwrap();
            let target = dir.path().join("tenants.json");
            write_atomic(&target, OLD.as_bytes()).unwrap();
            let marker = dir.path().join("reached");
            let mut child = ChildGuard::spawn(
                "crash writer",
                Command::new(&exe)
                    .args([
                        "--exact",
                        "tenancy::persist::tests::crash_writer_child",
                        "--test-threads=1",
                    ])
                    .env(
                        CHILD_ENV,
                        format!("{}\n{}\n{index}", target.display(), marker.display()),
                    )
                    .stdout(Stdio::null())
                    .stderr(Stdio::null()),
            )
            .unwrap();
            wait_until(
                &format!("writer reaching {step:?}"),
                Duration::from_secs(60),
                Some(&mut child),
                || marker.exists(),
            )
            .unwrap();
            // SIGKILL, then reap.
            drop(child);

            let after = fs::read_to_string(&target).unwrap();
            let expected = if *step == WriteStep::Renamed {
                NEW
            } else {
                OLD
            };
            assert_eq!(after, expected, "killed after {step:?}");
            let parsed: serde_json::Value = read_json(&target).unwrap().unwrap();
            assert_eq!(parsed["format"], 1);

            // The next writer succeeds beside the dead one's temp file.
            write_atomic(&target, NEW.as_bytes()).unwrap();
            assert_eq!(fs::read_to_string(&target).unwrap(), NEW);
        }
    }

    #[test]
    fn corrupt_files_are_reported_with_path_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let cases: &[(&str, usize, usize)] = &[
            ("", 1, 0),
            ("{\"format\": 1, \"tenants\": {\"acme\"", 1, 32),
            ("{\n  \"format\": 1,\n  oops\n}", 3, 3),
        ];
        for (text, line, column) in cases {
            let path = dir.path().join("tenants.json");
            fs::write(&path, text).unwrap();
            let err = read_json::<serde_json::Value>(&path).unwrap_err();
            match &err {
                PersistError::Corrupt {
                    path: p,
                    line: l,
                    column: c,
                    ..
                } => assert_eq!((p, *l, *c), (&path, *line, *column), "{text:?}"),
                other => panic!("{other:?}"),
            }
            assert!(err.to_string().starts_with(&format!(
                "state file {} is corrupt at line {line}, column {column}: ",
                path.display()
            )));
            assert_eq!(fs::read_to_string(&path).unwrap(), *text, "never reset");
        }
        assert!(
            read_json::<serde_json::Value>(&dir.path().join("absent.json"))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn unknown_formats_are_refused() {
        let err = check_format(Path::new("/state/tenants.json"), 7).unwrap_err();
        assert_eq!(
            err.to_string(),
            "state file /state/tenants.json has format 7, this build reads format 1; run the \
             version of plugkit that wrote it, or migrate the file"
        );
    }
}
