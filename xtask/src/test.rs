//! `cargo xtask test`: makes sure the real peers are installed (before
//! building anything), builds every plugin library once, then runs the whole
//! workspace test suite with `PLUGKIT_ARTIFACTS` pointing at them, so no
//! test builds a plugin itself. Every test binary runs, even after one fails.

use anyhow::{bail, Context, Result};

use crate::{artifacts, peers};

pub(crate) fn run(extra: &[String]) -> Result<()> {
    let target = artifacts::target_dir()?;
    let peers_dir = target.join("peers");
    peers::ensure(peers::TEST_PEERS, "cargo xtask test", &peers_dir)?;
    eprintln!("xtask: building plugin libraries");
    let built = artifacts::build_plugins(false)?;
    std::fs::create_dir_all(&target)
        .with_context(|| format!("creating the target directory {}", target.display()))?;
    let list = target.join("plugkit-artifacts.json");
    std::fs::write(&list, serde_json::to_vec_pretty(&built)?)
        .with_context(|| format!("writing {}", list.display()))?;
    eprintln!(
        "xtask: {} plugin libraries built; running the tests",
        built.len()
    );
    let status = artifacts::cargo()
        .current_dir(artifacts::workspace_root())
        // One failing test binary must not keep the others from running;
        // cargo lists every failed one at the end.
        .args(["test", "--workspace", "--no-fail-fast"])
        .args(extra)
        .env("PLUGKIT_ARTIFACTS", &list)
        .env("PLUGKIT_PEERS_DIR", &peers_dir)
        .envs(
            built
                .get(artifacts::RUNNER)
                .map(|runner| ("PLUGKIT_RUNNER", runner)),
        )
        .status()
        .context("running cargo test")?;
    if !status.success() {
        bail!("tests failed; cargo listed every failing test binary above");
    }
    Ok(())
}
