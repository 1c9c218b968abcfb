//! `isp-daemon --provision [--registry URL] [--tier T] [--json]` (issue 18):
//! the command-line face of provisioning. `--registry` and `--tier` replace
//! (or, without a `[provisioning]` section, make) the section's registry
//! and tier; `--provision` runs one refresh at start, before the daemon
//! serves, and a refresh that does not install the whole tier ends the
//! daemon with exit status 1 and the reason, the last verified set left
//! installed. Without `--serve` or `--demo` the daemon stops after it, so
//! a node's first boot or a cron job can provision with the daemon itself.
//! `--json` prints the refresh's answer (the body `POST
//! /api/provisioning/refresh` returns, or `{"ok": false, "error": …}`) as
//! one line on stdout, and everything else on stderr.

use anyhow::{bail, Context, Result};
use serde_json::json;

use crate::provisioning::ProvisioningConfig;
use crate::{Config, Daemon};

/// Who the audit log names for a refresh the command line asked for.
pub const ACTOR: &str = "isp-daemon --provision";

/// Applies `--registry` and `--tier` to `config`.
///
/// # Errors
/// Only one of the two without a `[provisioning]` section to complete it.
pub fn apply_overrides(
    config: &mut Config,
    registry: Option<&str>,
    tier: Option<&str>,
) -> Result<()> {
    match (config.provisioning.as_mut(), registry, tier) {
        (_, None, None) => {}
        (Some(section), registry, tier) => {
            if let Some(registry) = registry {
                registry.clone_into(&mut section.registry);
            }
            if let Some(tier) = tier {
                tier.clone_into(&mut section.tier);
            }
        }
        (None, Some(registry), Some(tier)) => {
            config.provisioning = Some(ProvisioningConfig {
                registry: registry.to_owned(),
                tier: tier.to_owned(),
                refresh_interval: None,
                username: None,
                password: None,
                plugin_dir: None,
            });
        }
        (None, Some(_), None) => bail!(
            "--registry needs --tier (the subscription tier whose plugins to install), or a \
             [provisioning] section in the configuration that names it"
        ),
        (None, None, Some(_)) => bail!(
            "--tier needs --registry (e.g. http://127.0.0.1:5000), or a [provisioning] section \
             in the configuration that names it"
        ),
    }
    Ok(())
}

/// Creates the directory provisioning fills (`[provisioning] plugin_dir`,
/// else the first plugin directory) when it does not exist, so a first
/// boot on an empty machine neither reports a missing plugin directory as
/// a problem (which fails `--demo`) nor leaves `--watch` waiting for it.
/// Returns the directory when it was created.
///
/// # Errors
/// The directory cannot be created (named, with the setting to change).
pub fn create_plugin_dir(config: &Config) -> Result<Option<std::path::PathBuf>> {
    if config.provisioning.is_none() {
        return Ok(None);
    }
    let dir = match config
        .provisioning
        .as_ref()
        .and_then(|p| p.plugin_dir.as_ref())
    {
        Some(dir) => config.resolve(dir),
        None => match config.plugin_dirs().into_iter().next() {
            Some(dir) => dir,
            None => return Ok(None),
        },
    };
    if dir.is_dir() {
        return Ok(None);
    }
    std::fs::create_dir_all(&dir).with_context(|| {
        format!(
            "creating the plugin directory {} that [provisioning] fills; create it yourself or \
             point [provisioning] plugin_dir (or [plugins] dirs) at a writable folder",
            dir.display()
        )
    })?;
    Ok(Some(dir))
}

/// One refresh at start. Progress lines go to `say` (to stderr with
/// `json`); with `json` the answer is printed to stdout as one line.
///
/// # Errors
/// Provisioning not configured, the refresh refused or failed (registry
/// down, catalog refused), or a plugin of the tier not installed (named,
/// with why); in every case what was installed before stays installed.
pub fn refresh_at_start(daemon: &Daemon, json: bool, say: &dyn Fn(&str)) -> Result<()> {
    let Some(section) = daemon.config().provisioning.clone() else {
        bail!(
            "--provision needs a registry and a tier: pass --registry URL --tier T, or add a \
             [provisioning] section to the configuration"
        );
    };
    let print = |value: &serde_json::Value| {
        if json {
            println!("{value}");
        }
    };
    let mut progress = |line: &str| say(&format!("[provisioning] {line}"));
    let answer = match daemon.refresh_provisioning_with(ACTOR, &mut progress) {
        Ok(answer) => answer,
        Err(problem) => {
            print(&json!({"ok": false, "error": problem.error}));
            bail!("{}", problem.error);
        }
    };
    print(&answer);
    let failures: Vec<String> = answer["failures"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|f| f["error"].as_str().unwrap_or("?").to_owned())
                .collect()
        })
        .unwrap_or_default();
    if !failures.is_empty() {
        bail!(
            "provisioning tier `{}` from {}: {} not installed, the last verified set \
             stays installed: {}",
            section.tier,
            section.registry,
            crate::wording::counted(failures.len(), "plugin", "plugins"),
            failures.join("; ")
        );
    }
    say(&format!(
        "[provisioning] tier `{}` from {} (catalog serial {}) provisioned in {:.0} ms; lock {}",
        section.tier,
        section.registry,
        answer["report"]["catalog_serial"],
        answer["total_ms"].as_f64().unwrap_or_default(),
        answer["lock"]["plugins"]
            .as_object()
            .map(|p| {
                p.iter()
                    .map(|(id, e)| format!("{id} {}", e["version"].as_str().unwrap_or("?")))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn check(section: Option<(&str, &str)>, flags: (Option<&str>, Option<&str>), expected: &str) {
        let mut config = Config::parse(crate::config::EMBEDDED, Path::new(".")).expect("parses");
        config.provisioning = section.map(|(registry, tier)| ProvisioningConfig {
            registry: registry.to_owned(),
            tier: tier.to_owned(),
            refresh_interval: Some("5m".to_owned()),
            username: None,
            password: None,
            plugin_dir: None,
        });
        let actual = match apply_overrides(&mut config, flags.0, flags.1) {
            Ok(()) => config
                .provisioning
                .map(|p| format!("{} {} {:?}", p.registry, p.tier, p.refresh_interval))
                .unwrap_or_else(|| "none".to_owned()),
            Err(e) => format!("error: {e}"),
        };
        assert!(actual.starts_with(expected), "{actual}");
    }

    #[test]
    fn registry_and_tier_flags_replace_or_make_the_section() {
        check(None, (None, None), "none");
        check(
            Some(("http://a", "pro")),
            (None, None),
            "http://a pro Some(\"5m\")",
        );
        check(
            Some(("http://a", "pro")),
            (Some("http://b"), None),
            "http://b pro Some(\"5m\")",
        );
        check(
            Some(("http://a", "pro")),
            (None, Some("free")),
            "http://a free",
        );
        check(None, (Some("http://b"), Some("free")), "http://b free None");
        check(
            None,
            (Some("http://b"), None),
            "error: --registry needs --tier",
        );
        check(None, (None, Some("free")), "error: --tier needs --registry");
    }
}
