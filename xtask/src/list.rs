//! `cargo xtask list-plugins`: the plugins buildable from `plugins/` and
//! those installed in the plugin directory, one row per id.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use plugin_package::manifest::Manifest;
use serde::Serialize;

use crate::artifacts::{self, workspace_root};
use crate::keys;
use crate::package::Package;
use crate::store::PluginDir;

/// One row of the listing.
#[derive(Debug, Serialize)]
struct Row {
    id: String,
    /// The installed version, else the available one.
    version: String,
    /// The version buildable from `plugins/`, when there is one.
    available: Option<String>,
    category: String,
    required_tier: String,
    /// `available`, `installed`, `update-available` or `broken`.
    state: &'static str,
    /// `verified <key id>`, `invalid: ...` or `-` when not installed.
    signature: String,
    /// The installed link, or the crate folder.
    path: PathBuf,
}

pub(crate) fn run(plugin_dir: &std::path::Path, json: bool) -> Result<()> {
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    let plugins_root = workspace_root().join("plugins");
    for krate in artifacts::plugin_crates(None)? {
        if !krate.dir.starts_with(&plugins_root) {
            continue;
        }
        let Ok(manifest) = Manifest::load(&krate.plugin_toml()) else {
            continue;
        };
        rows.insert(
            manifest.id.clone(),
            Row {
                id: manifest.id.clone(),
                version: manifest.version.to_string(),
                available: Some(manifest.version.to_string()),
                category: manifest.category.to_string(),
                required_tier: manifest.required_tier.clone(),
                state: "available",
                signature: "-".to_owned(),
                path: krate.dir.clone(),
            },
        );
    }
    let dir = PluginDir::open(plugin_dir)?;
    let trusted = keys::trusted_keys(&[]).unwrap_or_default();
    for installed in dir.installed()? {
        let available = rows.get(&installed.id).and_then(|r| r.available.clone());
        let row = match Package::open(&installed.target) {
            Ok(package) => {
                let verified = package.verify(&trusted);
                let newer = available.as_deref().is_some_and(|a| {
                    semver::Version::parse(a).is_ok_and(|a| a > package.manifest.version)
                });
                let (state, signature) = match verified {
                    Ok(v) if newer => ("update-available", format!("verified {}", v.key_id)),
                    Ok(v) => ("installed", format!("verified {}", v.key_id)),
                    Err(e) => ("broken", format!("invalid: {}", short(&format!("{e:#}")))),
                };
                Row {
                    id: installed.id.clone(),
                    version: package.manifest.version.to_string(),
                    available,
                    category: package.manifest.category.to_string(),
                    required_tier: package.manifest.required_tier.clone(),
                    state,
                    signature,
                    path: installed.link.clone(),
                }
            }
            Err(e) => Row {
                id: installed.id.clone(),
                version: "?".to_owned(),
                available,
                category: "?".to_owned(),
                required_tier: "?".to_owned(),
                state: "broken",
                signature: format!("invalid: {}", short(&format!("{e:#}"))),
                path: installed.link.clone(),
            },
        };
        rows.insert(installed.id.clone(), row);
    }
    let rows: Vec<Row> = rows.into_values().collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    let table: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            [
                r.id.clone(),
                r.version.clone(),
                r.category.clone(),
                r.required_tier.clone(),
                r.state.to_owned(),
                r.signature.clone(),
                r.path.display().to_string(),
            ]
        })
        .collect();
    let header = [
        "ID",
        "VERSION",
        "CATEGORY",
        "TIER",
        "STATE",
        "SIGNATURE",
        "PATH",
    ]
    .map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in &table {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&table) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
    println!("plugin directory: {}", dir.root.display());
    Ok(())
}

/// The first line of an error, cut to fit a table cell.
fn short(message: &str) -> String {
    let line = message.lines().next().unwrap_or_default();
    let tail = line.rsplit(": ").next().unwrap_or(line);
    tail.chars().take(60).collect()
}
