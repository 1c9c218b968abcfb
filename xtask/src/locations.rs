//! Where things live: the plugin directory, the signing key, the daemon's
//! configuration directory. Each has an environment variable and a
//! documented default.
//!
//! | what | variable | default |
//! |---|---|---|
//! | installed plugins | `--plugin-dir`, then `PLUGKIT_PLUGIN_DIR` | `<workspace>/var/plugins` (gitignored) |
//! | signing key | `PLUGKIT_KEY_DIR` | `$XDG_CONFIG_HOME/plugkit`, else `~/.config/plugkit` |
//! | daemon configuration | `PLUGKIT_CONFIG_DIR` | `<workspace>/config` |

use std::path::PathBuf;

use anyhow::{bail, Result};

use crate::artifacts::workspace_root;

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
