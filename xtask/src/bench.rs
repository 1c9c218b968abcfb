//! `cargo xtask bench`: runs the criterion benchmarks in `benches/`.

use anyhow::{bail, Result};

use crate::artifacts;

pub(crate) fn run(filter: Option<&str>) -> Result<()> {
    let mut cmd = artifacts::cargo();
    cmd.current_dir(artifacts::workspace_root())
        .args(["bench", "-p", "plugkit-bench"]);
    if let Some(f) = filter {
        cmd.args(["--", f]);
    }
    if !cmd.status()?.success() {
        bail!("benchmarks failed");
    }
    Ok(())
}
