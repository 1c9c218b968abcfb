//! `cargo xtask validate <path>`: checks a package folder (manifest, library,
//! checksums, signature) or a plugin crate (manifest, and the library it
//! builds) without installing anything, and lists every problem found.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use plugin_package::manifest::Manifest;

use crate::artifacts;
use crate::keys;
use crate::package::{Package, MANIFEST};

pub(crate) fn run(path: &Path, trusted_keys: &[String], release: bool) -> Result<()> {
    let mut problems = Vec::new();
    let manifest_path = path.join(MANIFEST);
    if !manifest_path.is_file() {
        bail!(
            "{} has no {MANIFEST}: pass a package folder (an installed plugin, or one made by \
             install-plugin) or a plugin crate folder",
            path.display()
        );
    }
    let manifest = match Manifest::load(&manifest_path) {
        Ok(m) => Some(m),
        Err(e) => {
            problems.push(e.to_string());
            None
        }
    };
    if let Some(m) = &manifest {
        problems.extend(host_requirements(m, &manifest_path));
    }
    let is_crate = path.join("Cargo.toml").is_file();
    let libraries: Vec<PathBuf> = if is_crate && manifest.is_none() {
        // The manifest is the quick thing to fix: say so now rather than
        // after building the crate.
        problems.push(
            "the crate was not built: fix plugin.toml first, then run validate again to check \
             the library"
                .to_owned(),
        );
        Vec::new()
    } else if is_crate {
        validate_crate(path, manifest.as_ref(), release, &mut problems)
    } else {
        match &manifest {
            Some(m) => vec![path.join(&m.library)],
            // Without a manifest, still check whatever library is there.
            None => fs::read_dir(path)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "so"))
                .collect(),
        }
    };
    for library in &libraries {
        check_library(library, manifest.as_ref(), &mut problems);
    }
    if !is_crate {
        if let Some(manifest) = &manifest {
            if path.join(&manifest.library).is_file() {
                match Package::open(path) {
                    Ok(package) => {
                        problems.extend(package.checksum_problems());
                        match keys::trusted_keys(trusted_keys) {
                            Ok(trusted) => {
                                if let Err(e) = package.verify(&trusted) {
                                    problems.push(format!("{e:#}"));
                                }
                            }
                            Err(e) => problems.push(format!("{e:#}")),
                        }
                    }
                    Err(e) => problems.push(format!("{e:#}")),
                }
            }
        }
    }
    if problems.is_empty() {
        let what = manifest
            .map(|m| format!("{} {}", m.id, m.version))
            .unwrap_or_default();
        println!(
            "ok: {what} in {} passes every check{}",
            path.display(),
            if is_crate {
                " (a crate is not signed; install-plugin signs the package it makes)"
            } else {
                ""
            }
        );
        return Ok(());
    }
    eprintln!(
        "{} in {}:",
        crate::wording::counted(problems.len(), "problem", "problems"),
        path.display()
    );
    for problem in &problems {
        eprintln!("  - {}", problem.replace('\n', "\n    "));
    }
    bail!(
        "validation of {} failed with {}; fix them and run validate again",
        path.display(),
        crate::wording::counted(problems.len(), "problem", "problems")
    )
}

/// Builds the crate and returns its library; checks the library name agrees with the manifest.
fn validate_crate(
    dir: &Path,
    manifest: Option<&Manifest>,
    release: bool,
    problems: &mut Vec<String>,
) -> Vec<PathBuf> {
    let krate = match crate::install::resolve(&dir.display().to_string()) {
        Ok(k) => k,
        Err(e) => {
            problems.push(format!("{e:#}"));
            return Vec::new();
        }
    };
    eprintln!("xtask: building `{}` to check its library", krate.package);
    let library = match artifacts::build_crate(&krate.cargo_toml(), &krate.package, release) {
        Ok(l) => l,
        Err(e) => {
            problems.push(format!("{e:#}"));
            return Vec::new();
        }
    };
    if let Some(manifest) = manifest {
        let built = library
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if built != manifest.library {
            problems.push(format!(
                "{}: `library = \"{}\"` but the crate builds `{built}`; set `library = \"{built}\"`",
                manifest.path.display(),
                manifest.library
            ));
        }
    }
    vec![library]
}

fn check_library(library: &Path, manifest: Option<&Manifest>, problems: &mut Vec<String>) {
    let bytes = match fs::read(library) {
        Ok(b) => b,
        Err(e) => {
            problems.push(format!(
                "cannot read the library {}: {e}; rebuild and reinstall the plugin",
                library.display()
            ));
            return;
        }
    };
    match plugin_package::signature::embedded_identity(&bytes) {
        Err(reason) => problems.push(format!(
            "{} is not a loadable plugkit library: {reason}",
            library.display()
        )),
        Ok(embedded) => {
            if let Some(m) = manifest {
                if embedded.id != m.id || embedded.version != m.version {
                    problems.push(format!(
                        "{} was built as `{}` {}, but {} describes `{}` {}; make the plugin's ID and \
                         Cargo.toml version agree with the manifest",
                        library.display(),
                        embedded.id,
                        embedded.version,
                        m.path.display(),
                        m.id,
                        m.version
                    ));
                }
            }
        }
    }
}

/// What a host built from this workspace would refuse although the manifest
/// parses: an `api` range its plugin-api does not satisfy (the resolver's
/// check), and an isolation mode it does not implement.
fn host_requirements(manifest: &Manifest, path: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    if let Ok(host_api) = semver::Version::parse(plugin_api::API_VERSION) {
        if !manifest.api.matches(&host_api) {
            problems.push(format!(
                "{}: `api = \"{}\"` does not match this host's plugin-api {host_api}, so the \
                 host would refuse the plugin; build it against plugin-api {host_api} and write \
                 `api = \"^{}.{}\"`",
                path.display(),
                manifest.api,
                host_api.major,
                host_api.minor
            ));
        }
    }
    if manifest.isolation == Some(plugin_package::manifest::Isolation::ProcessPerTenant) {
        problems.push(format!(
            "{}: `isolation = \"process-per-tenant\"` is not implemented yet and the host \
             refuses it at load; use `isolation = \"process\"`",
            path.display()
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(extra: &str, api: &str) -> Manifest {
        let text = format!(
            "id = \"trial\"\nname = \"Trial\"\nversion = \"0.1.0\"\napi = \"{api}\"\n\
             library = \"libtrial.so\"\n{extra}"
        );
        Manifest::parse(&text, Path::new("trial/plugin.toml")).expect("parses")
    }

    #[test]
    fn an_api_range_this_host_does_not_meet_is_a_problem_before_any_load() {
        // Regression (fresh-user trial): `api = "^0.9"` passed every check.
        let problems = host_requirements(&manifest("", "^0.9"), Path::new("trial/plugin.toml"));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with(
                "trial/plugin.toml: `api = \"^0.9\"` does not match this host's plugin-api"
            ),
            "{problems:?}"
        );
        assert_eq!(
            host_requirements(&manifest("", "^0.2"), Path::new("trial/plugin.toml")),
            Vec::<String>::new()
        );
    }

    #[test]
    fn an_isolation_mode_the_host_refuses_is_a_problem() {
        let problems = host_requirements(
            &manifest("isolation = \"process-per-tenant\"\n", "^0.2"),
            Path::new("trial/plugin.toml"),
        );
        assert_eq!(
            problems,
            ["trial/plugin.toml: `isolation = \"process-per-tenant\"` is not implemented yet and \
              the host refuses it at load; use `isolation = \"process\"`"]
        );
        assert!(host_requirements(
            &manifest("isolation = \"process\"\n", "^0.2"),
            Path::new("trial/plugin.toml")
        )
        .is_empty());
    }
}
