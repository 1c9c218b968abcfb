//! `cargo xtask demo`: the main job. Installs the demo's network devices
//! when they are missing (snmpd and sshd, which the daemon starts on
//! 127.0.0.1; see `tests/peers/install-network.sh`), builds, signs and
//! installs the three reference plugins, then runs the ISP daemon on its embedded demo
//! configuration with signatures required; extra arguments go to the
//! daemon (`--serve`, `--watch`, ...). With `--from-registry` the plugins come
//! from a demo OCI registry through the daemon's provisioning instead
//! (`demo_registry`).

use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::install::{self, Options};
use crate::{artifacts, demo_registry};
use crate::{locations, peers};

pub(crate) fn run(
    plugin_dir: Option<PathBuf>,
    from_registry: Option<&str>,
    extra: &[String],
) -> Result<()> {
    // Before building: without its devices the network-automation plugin
    // would only be shown skipping its steps.
    let peers_dir = artifacts::target_dir()?.join("peers");
    peers::ensure(peers::DEMO_PEERS, "cargo xtask demo", &peers_dir)?;
    let demo_dir = artifacts::workspace_root().join("var").join("demo");
    let mut daemon_args: Vec<String> = Vec::new();
    // Lives until the daemon ends.
    let mut _registry = None;
    let plugin_dir = match from_registry {
        Some(tier) => {
            let registry = demo_registry::start(&demo_dir.join("registry"))?;
            demo_registry::publish_demo(&registry, &demo_dir.join("registry"))?;
            daemon_args.extend([
                "--provision".to_owned(),
                "--registry".to_owned(),
                registry.url.clone(),
                "--tier".to_owned(),
                tier.to_owned(),
            ]);
            _registry = Some(registry);
            let dir = plugin_dir.unwrap_or_else(|| demo_dir.join("provisioned"));
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            dir
        }
        None => {
            let plugin_dir = plugin_dir.unwrap_or_else(|| demo_dir.join("plugins"));
            eprintln!(
                "xtask: installing the reference plugins into {}",
                plugin_dir.display()
            );
            let names = install::COMMON_PLUGINS.map(String::from);
            install::run(
                &names,
                &Options {
                    release: false,
                    plugin_dir: plugin_dir.clone(),
                    allow_downgrade: true,
                    dry_run: false,
                    rebuild: true,
                },
            )?;
            plugin_dir
        }
    };

    // The runner too: the demo runs network-automation in a sandboxed child.
    eprintln!("xtask: building the ISP daemon and the isolation runner");
    let output = artifacts::cargo()
        .current_dir(artifacts::workspace_root())
        .args([
            "build",
            "-p",
            "isp-daemon",
            "-p",
            artifacts::RUNNER,
            "--message-format=json-render-diagnostics",
        ])
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo build -p isp-daemon")?;
    if !output.status.success() {
        bail!("building isp-daemon failed (see the compiler output above)");
    }
    let daemon = executable(&output.stdout, "isp-daemon")
        .context("cargo reported no isp-daemon executable")?;

    let keys = locations::config_dir().join("trusted-keys");
    eprintln!(
        "xtask: running {} --demo (signatures required, trusted keys in {})",
        daemon.display(),
        keys.display()
    );
    let runner = executable(&output.stdout, artifacts::RUNNER)
        .context("cargo reported no plugkit-runner executable")?;
    let status = Command::new(&daemon)
        .env("PLUGKIT_RUNNER", &runner)
        .arg("--demo")
        .arg("--plugin-dir")
        .arg(&plugin_dir)
        .arg("--trusted-key")
        .arg(&keys)
        .args(&daemon_args)
        .args(extra)
        .status()
        .with_context(|| format!("running {}", daemon.display()))?;
    if !status.success() {
        bail!("the ISP daemon exited with {status}");
    }
    Ok(())
}

/// The path of binary `name` from cargo's JSON messages.
pub(crate) fn executable(stdout: &[u8], name: &str) -> Option<PathBuf> {
    stdout
        .split(|b| *b == b'\n')
        .filter_map(|line| serde_json::from_slice::<serde_json::Value>(line).ok())
        .filter(|msg| msg["reason"] == "compiler-artifact" && msg["target"]["name"] == name)
        .find_map(|msg| msg["executable"].as_str().map(PathBuf::from))
}
