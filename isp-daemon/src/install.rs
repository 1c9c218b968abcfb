//! `--plugins-from-build`: lays out a plugin directory from freshly built
//! libraries (the JSON map `cargo xtask test` writes to
//! `<target dir>/plugkit-artifacts.json`, package name to library path), with the
//! reference plugins' manifests beside them. The libraries are unsigned, so
//! this is for development under `allow-unsigned`; installed, signed
//! plugins come from `cargo xtask install-plugin`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use plugin_host::package::manifest::Manifest;

/// The reference plugins: package name and manifest.
const REFERENCE_PLUGINS: [(&str, &str); 3] = [
    (
        "plugkit-twilio",
        include_str!("../../plugins/twilio/plugin.toml"),
    ),
    (
        "plugkit-stripe",
        include_str!("../../plugins/stripe/plugin.toml"),
    ),
    (
        "plugkit-network-automation",
        include_str!("../../plugins/network-automation/plugin.toml"),
    ),
];

/// Reads the artifact map at `map` and installs the reference plugins it
/// names into `dir` (emptied first): `<dir>/<id>/plugin.toml` and a copy of
/// the library. Returns the installed ids and notes on what was left out.
pub fn from_build(map: &Path, dir: &Path) -> Result<(Vec<String>, Vec<String>)> {
    let text = fs::read_to_string(map)
        .with_context(|| format!("reading the artifact map {}", map.display()))?;
    let libraries: BTreeMap<String, PathBuf> = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a JSON object of package name → library path (as written by `cargo xtask test`)",
            map.display()
        )
    })?;
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("emptying {}", dir.display()))?;
    }
    let mut installed = Vec::new();
    let mut notes = Vec::new();
    for (package, manifest_text) in REFERENCE_PLUGINS {
        let Some(library) = libraries.get(package) else {
            notes.push(format!(
                "{} names no library for `{package}`; build it with `cargo xtask artifacts`",
                map.display()
            ));
            continue;
        };
        let manifest = Manifest::parse(manifest_text, Path::new("plugin.toml"))
            .map_err(|e| anyhow::anyhow!("the embedded manifest of {package}: {e}"))?;
        let folder = dir.join(&manifest.id);
        fs::create_dir_all(&folder).with_context(|| format!("creating {}", folder.display()))?;
        plugkit_durable::write_atomic(&folder.join("plugin.toml"), manifest_text.as_bytes(), 0o644)
            .with_context(|| format!("writing {}/plugin.toml", folder.display()))?;
        // A copy, not a link: a rebuild must not change a library under the host.
        fs::copy(library, folder.join(&manifest.library)).with_context(|| {
            format!(
                "copying {} (from {}); rebuild the plugins",
                library.display(),
                map.display()
            )
        })?;
        installed.push(manifest.id.clone());
    }
    if installed.is_empty() {
        bail!(
            "{} names none of the reference plugins ({}); build them with `cargo xtask artifacts`",
            map.display(),
            REFERENCE_PLUGINS.map(|(p, _)| p).join(", ")
        );
    }
    Ok((installed, notes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_reference_manifests_parse() {
        let ids: Vec<String> = REFERENCE_PLUGINS
            .iter()
            .map(|(_, text)| {
                Manifest::parse(text, Path::new("plugin.toml"))
                    .map(|m| m.id)
                    .unwrap_or_else(|e| e.to_string())
            })
            .collect();
        assert_eq!(ids, ["twilio", "stripe", "network-automation"]);
    }

    #[test]
    fn a_map_without_reference_plugins_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let map = dir.path().join("map.json");
        fs::write(&map, r#"{"fixture-good": "/nowhere/libfixture_good.so"}"#).expect("write");
        let error = from_build(&map, &dir.path().join("plugins")).expect_err("refused");
        assert!(
            error
                .to_string()
                .contains("names none of the reference plugins"),
            "{error}"
        );
        fs::write(&map, "[1, 2]").expect("write");
        let error = from_build(&map, &dir.path().join("plugins")).expect_err("refused");
        assert!(
            format!("{error:#}").contains("is not a JSON object"),
            "{error:#}"
        );
    }
}
