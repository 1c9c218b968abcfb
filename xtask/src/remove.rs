//! `cargo xtask remove-plugin`: uninstalls a plugin atomically, refusing
//! while installed plugins depend on it unless `--force`, which removes
//! those dependents first.

use std::path::Path;

use anyhow::{bail, Result};
use plugin_package::graph::DependencyGraph;
use plugin_package::manifest::Manifest;

use crate::locations;
use crate::package::Package;
use crate::store::PluginDir;

pub(crate) fn run(plugin_dir: &Path, id: &str, force: bool) -> Result<()> {
    let dir = PluginDir::open(plugin_dir)?;
    let installed = dir.installed()?;
    if !installed.iter().any(|i| i.id == id) {
        let ids: Vec<&str> = installed.iter().map(|i| i.id.as_str()).collect();
        bail!(
            "plugin `{id}` is not installed in {} (installed: {}); see `cargo xtask list-plugins`",
            dir.root.display(),
            if ids.is_empty() {
                "none".to_owned()
            } else {
                ids.join(", ")
            }
        );
    }
    let manifests: Vec<Manifest> = installed
        .iter()
        .filter_map(|i| Package::open(&i.target).ok().map(|p| p.manifest))
        .collect();
    let host_api = semver::Version::parse(plugin_api::API_VERSION)?;
    let resolution = DependencyGraph::resolve(&manifests, &host_api);
    // In topological order: each comes after what it needs.
    let dependents: Vec<String> = resolution
        .dependents_of(id)
        .into_iter()
        .map(str::to_owned)
        .collect();
    if !dependents.is_empty() && !force {
        bail!(
            "cannot remove `{id}`: installed plugins depend on it: {}; remove them first, or run \
             `cargo xtask remove-plugin {id} --force` to remove them too",
            quoted(&dependents)
        );
    }
    if !dependents.is_empty() {
        eprintln!(
            "xtask: --force: also removing the plugins that depend on `{id}`: {}",
            quoted(&dependents)
        );
    }
    for victim in dependents.iter().rev().map(String::as_str).chain([id]) {
        remove_one(&dir, victim)?;
    }
    Ok(())
}

fn remove_one(dir: &PluginDir, id: &str) -> Result<()> {
    eprintln!("xtask: [{id}] removing");
    dir.unlink(id)?;
    crate::files::crash_point("unlinked");
    let mut registry = dir.registry()?;
    let entry = registry.plugins.remove(id);
    dir.save_registry(&registry)?;
    dir.tidy()?;
    let example = locations::config_dir()
        .join("plugins")
        .join(format!("{id}.toml.example"));
    let _ = std::fs::remove_file(example);
    println!(
        "removed {id}{}",
        entry.map(|e| format!(" {}", e.version)).unwrap_or_default()
    );
    Ok(())
}

fn quoted(ids: &[String]) -> String {
    ids.iter()
        .map(|id| format!("`{id}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
