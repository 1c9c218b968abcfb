//! Finds the PyPI-installed Ansible tools (`ansible-runner`,
//! `ansible-playbook`), wherever pip put them.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};

use crate::process::find_program;

/// The `ansible-runner` executable.
pub fn ansible_runner() -> Result<PathBuf> {
    find("ansible-runner")
}

/// The `ansible-playbook` executable.
pub fn ansible_playbook() -> Result<PathBuf> {
    find("ansible-playbook")
}

/// A Python interpreter for managed hosts: the system one, since a pyenv
/// shim found by Ansible's interpreter discovery may point at a version
/// that is not installed.
pub fn managed_python() -> PathBuf {
    ["/usr/bin/python3", "/usr/local/bin/python3"]
        .map(PathBuf::from)
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("python3"))
}

fn find(name: &str) -> Result<PathBuf> {
    find_program(name, &python_script_dirs()).with_context(|| {
        format!(
            "{name} is not installed: run `bash tests/peers/install-network.sh` \
             (PyPI `ansible-core` and `ansible-runner`)"
        )
    })
}

/// Where pip installs scripts: the user base (`pip install --user`) and the
/// interpreter's prefix (a venv or pyenv version).
fn python_script_dirs() -> Vec<PathBuf> {
    let output = Command::new("python3")
        .args([
            "-c",
            "import site, sys; print(site.getuserbase()); print(sys.prefix)",
        ])
        .output();
    match output {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|line| PathBuf::from(line.trim()).join("bin"))
            .collect(),
        _ => Vec::new(),
    }
}
