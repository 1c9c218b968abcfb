//! `cargo xtask test`: builds every plugin library once, then runs the whole
//! workspace test suite with `PLUGKIT_ARTIFACTS` pointing at them, so no
//! test builds a plugin itself.

use anyhow::{bail, Context, Result};

use crate::artifacts;

pub(crate) fn run(extra: &[String]) -> Result<()> {
    eprintln!("xtask: building plugin libraries");
    let built = artifacts::build_plugins(false)?;
    let list = artifacts::workspace_root()
        .join("target")
        .join("plugkit-artifacts.json");
    std::fs::write(&list, serde_json::to_vec_pretty(&built)?)
        .with_context(|| format!("writing {}", list.display()))?;
    eprintln!(
        "xtask: {} plugin libraries built; running the tests",
        built.len()
    );
    let status = artifacts::cargo()
        .current_dir(artifacts::workspace_root())
        .args(["test", "--workspace"])
        .args(extra)
        .env("PLUGKIT_ARTIFACTS", &list)
        .envs(
            built
                .get(artifacts::RUNNER)
                .map(|runner| ("PLUGKIT_RUNNER", runner)),
        )
        .status()
        .context("running cargo test")?;
    if !status.success() {
        bail!("tests failed");
    }
    Ok(())
}
