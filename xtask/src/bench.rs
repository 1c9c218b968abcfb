//! `cargo xtask bench`: builds the plugins in release mode, runs the
//! criterion benchmarks in `benches/` against them, and lets each benchmark
//! print its ratios to the baseline it measured in the same run.

use anyhow::{bail, Context, Result};

use crate::artifacts;

pub(crate) fn run(filter: Option<&str>) -> Result<()> {
    eprintln!("xtask: building plugin libraries (release)");
    let built = artifacts::build_plugins(true)?;
    let list = artifacts::target_dir()?.join("plugkit-artifacts-release.json");
    std::fs::write(&list, serde_json::to_vec_pretty(&built)?)
        .with_context(|| format!("writing {}", list.display()))?;
    let mut cmd = artifacts::cargo();
    cmd.current_dir(artifacts::workspace_root())
        .args(["bench", "-p", "plugkit-bench"])
        // The report reads criterion's estimates from here (see benches/report.rs).
        .env("CRITERION_HOME", list.with_file_name("criterion"))
        .env("PLUGKIT_ARTIFACTS", &list);
    if let Some(f) = filter {
        cmd.args(["--bench", f]);
    }
    if !cmd.status()?.success() {
        bail!("benchmarks failed");
    }
    Ok(())
}
