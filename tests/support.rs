//! Support for the end-to-end tests: the plugin libraries built once per
//! test run, and a log capture that records what plugins wrote through the
//! host.

pub mod oci;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use anyhow::{bail, Context, Result};
use parking_lot::Mutex;

/// Built plugin libraries by package name.
#[derive(Debug, Clone)]
pub struct Artifacts {
    libraries: BTreeMap<String, PathBuf>,
}

/// The isolation runner's package and key in the artifact list.
const RUNNER: &str = "plugkit-runner";

impl Artifacts {
    /// The `plugkit-runner` executable built with the plugins.
    pub fn runner(&self) -> &Path {
        match self.libraries.get(RUNNER) {
            Some(path) => path,
            None => panic!("the artifact list has no `{RUNNER}`: rebuild with `cargo xtask test`"),
        }
    }

    /// The cdylib built from `package`.
    pub fn library(&self, package: &str) -> &Path {
        match self.libraries.get(package) {
            Some(path) => path,
            None => {
                panic!("no cdylib was built for package `{package}`; add it to PLUGIN_PACKAGES")
            }
        }
    }
}

/// The plugin libraries, built once per test run. `cargo xtask test` builds
/// them beforehand and passes `PLUGKIT_ARTIFACTS`; a plain `cargo test`
/// builds them here, in `test-plugins/` under the target directory cargo
/// reports (a separate directory: cargo may still hold the main one's lock).
pub fn artifacts() -> &'static Artifacts {
    static ARTIFACTS: OnceLock<Artifacts> = OnceLock::new();
    ARTIFACTS.get_or_init(|| match load_or_build() {
        Ok(a) => a,
        Err(e) => panic!("building the test plugins failed: {e:#}"),
    })
}

fn load_or_build() -> Result<Artifacts> {
    if let Some(file) = std::env::var_os("PLUGKIT_ARTIFACTS") {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", PathBuf::from(&file).display()))?;
        let libraries: BTreeMap<String, PathBuf> = serde_json::from_str(&text)?;
        return Ok(Artifacts { libraries });
    }
    let root = plugkit_testkit::process::workspace_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args([
            "build",
            "--message-format=json-render-diagnostics",
            "--target-dir",
        ])
        .arg(plugkit_testkit::process::target_dir().join("test-plugins"));
    for p in cdylib_packages(&root)? {
        cmd.args(["-p", &p]);
    }
    cmd.args(["-p", RUNNER]);
    let output = cmd
        .output()
        .context("running cargo build for the test plugins")?;
    if !output.status.success() {
        bail!(
            "cargo build of the test plugins failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(Artifacts {
        libraries: cdylibs_from_messages(&output.stdout)?,
    })
}

/// Every workspace package with a cdylib target.
fn cdylib_packages(root: &Path) -> Result<Vec<String>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(root)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .context("running cargo metadata")?;
    let meta: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let mut names = Vec::new();
    for package in meta["packages"].as_array().into_iter().flatten() {
        let is_cdylib = package["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| {
                t["crate_types"]
                    .as_array()
                    .is_some_and(|k| k.iter().any(|k| k == "cdylib"))
            });
        if let (true, Some(name)) = (is_cdylib, package["name"].as_str()) {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

/// Picks the cdylib outputs out of cargo's JSON messages.
pub fn cdylibs_from_messages(stdout: &[u8]) -> Result<BTreeMap<String, PathBuf>> {
    let mut libraries = BTreeMap::new();
    for line in stdout.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let Ok(msg) = serde_json::from_slice::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        if let Some(exe) = msg["executable"].as_str() {
            if msg["target"]["name"] == RUNNER {
                libraries.insert(RUNNER.to_owned(), PathBuf::from(exe));
            }
            continue;
        }
        let kinds = msg["target"]["kind"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !kinds.iter().any(|k| k == "cdylib") {
            continue;
        }
        let package = msg["target"]["name"]
            .as_str()
            .unwrap_or_default()
            .replace('_', "-");
        for file in msg["filenames"].as_array().into_iter().flatten() {
            if let Some(f) = file.as_str().filter(|f| f.ends_with(".so")) {
                libraries.insert(package.clone(), PathBuf::from(f));
            }
        }
    }
    Ok(libraries)
}

/// Log lines captured from the host and its plugins.
#[derive(Clone, Default)]
pub struct LogCapture {
    lines: Arc<Mutex<Vec<String>>>,
}

impl LogCapture {
    /// Everything captured so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().clone()
    }

    /// Captured lines containing `needle`, in order.
    pub fn matching(&self, needle: &str) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|l| l.contains(needle))
            .collect()
    }
}

thread_local! {
    /// The capture the current thread writes into, if any.
    static CURRENT: std::cell::RefCell<Option<Arc<Mutex<Vec<String>>>>> =
        const { std::cell::RefCell::new(None) };
}

/// Writes formatted events into the current thread's capture.
struct ThreadWriter;

impl std::io::Write for ThreadWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CURRENT.with(|current| {
            if let Some(sink) = current.borrow().as_ref() {
                let text = String::from_utf8_lossy(buf);
                let mut lines = sink.lock();
                for line in text.lines() {
                    lines.push(line.to_owned());
                }
            }
        });
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One global subscriber for the whole test binary. Scoped subscribers
/// (`with_default`) race with tracing's per-callsite interest cache when
/// tests run in parallel and silently drop events.
fn install_global_subscriber() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(|| ThreadWriter)
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
}

/// Runs `f` capturing every log line written on the current thread (host
/// and plugin calls run on the caller's thread).
pub fn with_log_capture<T>(f: impl FnOnce(&LogCapture) -> T) -> T {
    install_global_subscriber();
    let capture = LogCapture::default();
    let previous = CURRENT.with(|c| c.replace(Some(capture.lines.clone())));
    struct Restore(Option<Arc<Mutex<Vec<String>>>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            CURRENT.with(|c| *c.borrow_mut() = previous);
        }
    }
    let _restore = Restore(previous);
    f(&capture)
}
