//! Where things live: the plugin directory, the signing key, the daemon's
//! configuration directory. Each has an environment variable and a
//! documented default.
//!
//! | what | variable | default |
//! |---|---|---|
//! | installed plugins | `--plugin-dir`, then `PLUGKIT_PLUGIN_DIR` | `<workspace>/var/plugins` (gitignored) |
//! | signing key | `PLUGKIT_KEY_DIR` | `$XDG_CONFIG_HOME/plugkit`, else `~/.config/plugkit` |
//! | daemon configuration | `PLUGKIT_CONFIG_DIR` | `<workspace>/config` |
//! | build outputs, peers under `peers/` | `CARGO_TARGET_DIR` or cargo's config | asked of `cargo metadata` |

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Result};

use crate::artifacts::{self, workspace_root};

/// The plugin directory: the flag, then `PLUGKIT_PLUGIN_DIR`, then `<workspace>/var/plugins`.
pub(crate) fn plugin_dir(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| std::env::var_os("PLUGKIT_PLUGIN_DIR").map(PathBuf::from))
        .unwrap_or_else(|| workspace_root().join("var").join("plugins"))
}

/// The signing key's directory, outside the repository.
pub(crate) fn key_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("PLUGKIT_KEY_DIR") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(config) = std::env::var_os("XDG_CONFIG_HOME") {
        return Ok(PathBuf::from(config).join("plugkit"));
    }
    match std::env::var_os("HOME") {
        Some(home) => Ok(PathBuf::from(home).join(".config").join("plugkit")),
        None => bail!("neither PLUGKIT_KEY_DIR nor HOME is set; set PLUGKIT_KEY_DIR to a private directory for the signing key"),
    }
}

/// The daemon's configuration directory: `config/plugins/<id>.toml.example`
/// and `config/trusted-keys/*.pub` are written there.
pub(crate) fn config_dir() -> PathBuf {
    std::env::var_os("PLUGKIT_CONFIG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("config"))
}

/// Every location, by name, for `cargo xtask locations`.
pub(crate) fn all(plugin_dir_flag: Option<PathBuf>) -> Result<BTreeMap<&'static str, PathBuf>> {
    let target = artifacts::target_dir()?;
    let mut all = BTreeMap::new();
    all.insert("plugin_dir", plugin_dir(plugin_dir_flag));
    all.insert("key_dir", key_dir()?);
    all.insert("config_dir", config_dir());
    all.insert("workspace", workspace_root());
    all.insert("peers_dir", target.join("peers"));
    all.insert("test_artifacts", target.join("plugkit-artifacts.json"));
    all.insert("target_dir", target);
    Ok(all)
}
