//! Builds plugin cdylibs and finds them through cargo's JSON messages, never
//! by guessing paths.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// `$CARGO`, as cargo sets it for xtask; plain `cargo` otherwise.
pub(crate) fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// The workspace root.
pub(crate) fn workspace_root() -> PathBuf {
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    dir.pop();
    dir
}

/// `cargo metadata --no-deps` of the workspace, or of the crate at `manifest_path`.
fn metadata(manifest_path: Option<&Path>) -> Result<serde_json::Value> {
    let mut cmd = cargo();
    cmd.args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(workspace_root());
    if let Some(path) = manifest_path {
        cmd.arg("--manifest-path").arg(path);
    }
    let output = cmd.output().context("running cargo metadata")?;
    if !output.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    serde_json::from_slice(&output.stdout).context("reading cargo metadata's answer")
}

/// The cargo target directory, as cargo resolves it (`CARGO_TARGET_DIR`,
/// `build.target-dir` in a config file, else `<workspace>/target`): never guessed.
pub(crate) fn target_dir() -> Result<PathBuf> {
    let meta = metadata(None)?;
    target_dir_of(&meta)
}

/// `target_directory` from a `cargo metadata` answer.
fn target_dir_of(meta: &serde_json::Value) -> Result<PathBuf> {
    meta["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .context("cargo metadata did not say where the target directory is")
}

/// Every workspace package that builds a cdylib: reference plugins and test fixtures.
pub(crate) fn plugin_packages() -> Result<Vec<String>> {
    let meta = metadata(None)?;
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
        if is_cdylib {
            if let Some(name) = package["name"].as_str() {
                names.push(name.to_owned());
            }
        }
    }
    names.sort();
    Ok(names)
}

/// Builds the given packages and returns package → cdylib path.
pub(crate) fn build(packages: &[String], release: bool) -> Result<BTreeMap<String, PathBuf>> {
    let mut cmd = cargo();
    cmd.current_dir(workspace_root())
        .args(["build", "--message-format=json-render-diagnostics"])
        .stderr(Stdio::inherit());
    if release {
        cmd.arg("--release");
    }
    for p in packages {
        cmd.args(["-p", p]);
    }
    // Plugins in process isolation run inside the runner: built with them.
    cmd.args(["-p", RUNNER]);
    let output = cmd.output().context("running cargo build")?;
    if !output.status.success() {
        bail!("cargo build failed (see the compiler output above)");
    }
    Ok(cdylibs_from_messages(&output.stdout))
}

/// The runner executable's package (and key in the artifact list).
pub(crate) const RUNNER: &str = "plugkit-runner";

/// Builds every plugin package, and the fixture workspaces that keep older
/// plugin interfaces (see [`FIXTURE_WORKSPACES`]).
pub(crate) fn build_plugins(release: bool) -> Result<BTreeMap<String, PathBuf>> {
    let mut built = build(&plugin_packages()?, release)?;
    for dir in FIXTURE_WORKSPACES {
        built.extend(build_fixture_workspace(dir, release)?);
    }
    Ok(built)
}

/// Workspaces of their own under the main one, each holding an older
/// plugin-api and a plugin built against it (abi_stable compares package
/// names, so the two plugin-api copies cannot share a workspace).
pub(crate) const FIXTURE_WORKSPACES: &[&str] = &["tests/fixtures/interface-0.2.0"];

/// Builds one fixture workspace into its own folder of the target directory.
fn build_fixture_workspace(dir: &str, release: bool) -> Result<BTreeMap<String, PathBuf>> {
    let root = workspace_root();
    let name = Path::new(dir)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let target = target_dir()?.join("fixture-workspaces").join(name);
    let mut cmd = cargo();
    cmd.current_dir(&root)
        .args([
            "build",
            "--locked",
            "--message-format=json-render-diagnostics",
        ])
        .arg("--manifest-path")
        .arg(root.join(dir).join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .stderr(Stdio::inherit());
    if release {
        cmd.arg("--release");
    }
    let output = cmd.output().context("running cargo build")?;
    if !output.status.success() {
        bail!("cargo build of the fixture workspace {dir} failed (see the compiler output above)");
    }
    Ok(cdylibs_from_messages(&output.stdout))
}

/// Picks the cdylib outputs (and the runner executable) out of cargo's JSON
/// messages, keyed by package name.
pub(crate) fn cdylibs_from_messages(stdout: &[u8]) -> BTreeMap<String, PathBuf> {
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
        let is_cdylib = msg["target"]["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "cdylib"));
        if !is_cdylib {
            continue;
        }
        let Some(package) = package_name(&msg) else {
            continue;
        };
        for file in msg["filenames"].as_array().into_iter().flatten() {
            if let Some(f) = file.as_str().filter(|f| f.ends_with(".so")) {
                libraries.insert(package.clone(), PathBuf::from(f));
            }
        }
    }
    libraries
}

/// The package name from a message's `package_id` (`path+file:///...#name@0.1.0`
/// or `...#0.1.0` when the directory is the name).
fn package_name(msg: &serde_json::Value) -> Option<String> {
    let id = msg["package_id"].as_str()?;
    let (path, fragment) = id.rsplit_once('#')?;
    match fragment.split_once('@') {
        Some((name, _)) => Some(name.to_owned()),
        None => Path::new(path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned()),
    }
}

/// A crate that builds a plugin: a cdylib with a `plugin.toml` beside its `Cargo.toml`.
#[derive(Debug, Clone)]
pub(crate) struct PluginCrate {
    /// The cargo package name.
    pub(crate) package: String,
    /// The crate's folder.
    pub(crate) dir: PathBuf,
}

impl PluginCrate {
    /// Its `Cargo.toml`.
    pub(crate) fn cargo_toml(&self) -> PathBuf {
        self.dir.join("Cargo.toml")
    }

    /// Its `plugin.toml`.
    pub(crate) fn plugin_toml(&self) -> PathBuf {
        self.dir.join("plugin.toml")
    }
}

/// The cdylib packages of the workspace, or of the crate at `manifest_path`,
/// that have a `plugin.toml`, from `cargo metadata`.
pub(crate) fn plugin_crates(manifest_path: Option<&Path>) -> Result<Vec<PluginCrate>> {
    let meta = metadata(manifest_path)?;
    let mut crates = Vec::new();
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
        let (Some(name), Some(manifest)) =
            (package["name"].as_str(), package["manifest_path"].as_str())
        else {
            continue;
        };
        let Some(dir) = Path::new(manifest).parent() else {
            continue;
        };
        if is_cdylib && dir.join("plugin.toml").is_file() {
            crates.push(PluginCrate {
                package: name.to_owned(),
                dir: dir.to_owned(),
            });
        }
    }
    crates.sort_by(|a, b| a.package.cmp(&b.package));
    Ok(crates)
}

/// Builds the crate at `manifest_path` (in this workspace or not; cargo
/// honours `CARGO_TARGET_DIR`) and returns its cdylib.
pub(crate) fn build_crate(manifest_path: &Path, package: &str, release: bool) -> Result<PathBuf> {
    let mut cmd = cargo();
    cmd.current_dir(workspace_root())
        .args([
            "build",
            "--message-format=json-render-diagnostics",
            "--manifest-path",
        ])
        .arg(manifest_path)
        .args(["-p", package])
        .stderr(Stdio::inherit());
    if release {
        cmd.arg("--release");
    }
    let output = cmd.output().context("running cargo build")?;
    if !output.status.success() {
        bail!(
            "cargo build of `{package}` ({}) failed; fix the errors above and run the command again",
            manifest_path.display()
        );
    }
    cdylibs_from_messages(&output.stdout)
        .remove(package)
        .with_context(|| format!("cargo built no cdylib for `{package}`; add `crate-type = [\"cdylib\", \"rlib\"]` to its [lib]"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_dir_is_read_from_cargo_metadata() {
        let meta = serde_json::json!({"target_directory": "/shared/target", "packages": []});
        assert_eq!(
            target_dir_of(&meta).expect("dir"),
            PathBuf::from("/shared/target")
        );
        let err = target_dir_of(&serde_json::json!({})).expect_err("no dir");
        assert!(err.to_string().contains("target directory"), "{err}");
    }
}
