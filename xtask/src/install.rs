//! `cargo xtask install-plugin` and `install-common-plugins`: build, package,
//! sign, verify (with the host's own check), and install atomically into the
//! plugin directory (layout and crash safety: [`crate::store`]).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use plugin_package::manifest::Manifest;

use crate::artifacts::{self, PluginCrate};
use crate::files::{self, crash_point};
use crate::keys::{self, SigningKey};
use crate::locations;
use crate::package::Package;
use crate::store::{PluginDir, RegistryEntry};

/// The reference plugins `install-common-plugins` installs.
pub(crate) const COMMON_PLUGINS: [&str; 3] = ["twilio", "stripe", "network-automation"];

/// What `install-plugin` was asked to do.
pub(crate) struct Options {
    pub(crate) release: bool,
    pub(crate) plugin_dir: PathBuf,
    pub(crate) allow_downgrade: bool,
    pub(crate) dry_run: bool,
    /// `cargo xtask dev`: install a new build of the same version.
    pub(crate) rebuild: bool,
}

/// Installs each of `names` (a plugin id, a package name, or a crate folder).
pub(crate) fn run(names: &[String], options: &Options) -> Result<()> {
    let crates = names
        .iter()
        .map(|name| resolve(name))
        .collect::<Result<Vec<_>>>()?;
    install_crates(&crates, options)
}

/// Installs crates already resolved (`cargo xtask dev` resolves once, not
/// once per save: that is a `cargo metadata` run each).
pub(crate) fn install_crates(crates: &[PluginCrate], options: &Options) -> Result<()> {
    let started = std::time::Instant::now();
    if options.dry_run {
        for krate in crates {
            let manifest = load_manifest(krate)?;
            println!(
                "would build `{}` ({}) and install {} {} into {}",
                krate.package,
                krate.dir.display(),
                manifest.id,
                manifest.version,
                options.plugin_dir.display()
            );
        }
        return Ok(());
    }
    let key = keys::load_or_create()?;
    let trusted = keys::trusted_keys(&[])?;
    let dir = PluginDir::open(&options.plugin_dir)?;
    if options.rebuild {
        eprintln!(
            "xtask: time: keys and plugin dir {} ms",
            started.elapsed().as_millis()
        );
    }
    let mut failed = Vec::new();
    for krate in crates {
        if let Err(e) = install_one(&dir, krate, options, &key, &trusted) {
            eprintln!("xtask: error: {e:#}");
            failed.push(krate.package.clone());
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} plugins not installed: {}",
            failed.len(),
            crates.len(),
            failed.join(", ")
        );
    }
    Ok(())
}

/// Finds the crate `name` means: a folder with `Cargo.toml` and `plugin.toml`,
/// or a workspace plugin by id or package name.
pub(crate) fn resolve(name: &str) -> Result<PluginCrate> {
    let path = Path::new(name);
    if path.join("Cargo.toml").is_file() {
        let dir = path
            .canonicalize()
            .with_context(|| format!("resolving {}", path.display()))?;
        let crates = artifacts::plugin_crates(Some(&dir.join("Cargo.toml")))?;
        return crates.into_iter().find(|c| c.dir == dir).with_context(|| {
            format!(
                "{} is not a plugin crate: it needs a cdylib target and a plugin.toml beside Cargo.toml \
                 (`cargo xtask new-plugin` makes one)",
                dir.display()
            )
        });
    }
    let crates = artifacts::plugin_crates(None)?;
    for krate in &crates {
        let id = Manifest::load(&krate.plugin_toml()).ok().map(|m| m.id);
        if krate.package == name
            || id.as_deref() == Some(name)
            || krate.package == format!("plugkit-{name}")
        {
            return Ok(krate.clone());
        }
    }
    let known: Vec<String> = crates
        .iter()
        .filter_map(|c| Manifest::load(&c.plugin_toml()).ok().map(|m| m.id))
        .collect();
    bail!(
        "no plugin `{name}`: it is not a crate folder, and no workspace plugin has that id or package name \
         (known: {}); pass the folder of a plugin crate, or create one with `cargo xtask new-plugin`",
        known.join(", ")
    )
}

fn load_manifest(krate: &PluginCrate) -> Result<Manifest> {
    Manifest::load(&krate.plugin_toml()).map_err(|e| anyhow!("{e}"))
}

fn say(id: &str, what: &str) {
    eprintln!("xtask: [{id}] {what}");
}

fn install_one(
    dir: &PluginDir,
    krate: &PluginCrate,
    options: &Options,
    key: &SigningKey,
    trusted: &[String],
) -> Result<()> {
    let mut laps = Laps::start();
    let manifest = load_manifest(krate)?;
    let id = manifest.id.clone();
    let version = manifest.version.clone();
    if let Some(installed) = dir.get(&id)? {
        match Package::open(&installed.target) {
            Ok(current) => {
                let verified = current.verify(trusted);
                // The signed version is authoritative: the manifest beside it is not signed alone.
                let current_version = match &verified {
                    Ok(v) => semver::Version::parse(&v.claims.version).ok(),
                    Err(_) => current.signed_version(),
                }
                .unwrap_or_else(|| current.manifest.version.clone());
                match &verified {
                    Ok(_) if current_version == version && !options.rebuild => {
                        println!(
                            "{id} {version} is already installed ({}); nothing to do \
                             (bump the version to install a new build, or remove-plugin it first)",
                            installed.link.display()
                        );
                        return Ok(());
                    }
                    Err(e) => say(
                        &id,
                        &format!("the installed copy fails verification ({e:#}); replacing it"),
                    ),
                    Ok(_) => {}
                }
                if version < current_version && !options.allow_downgrade {
                    bail!(
                        "refusing to downgrade `{id}` from {current_version} (installed, signed) to {version} \
                         ({}); pass --allow-downgrade to install the older version anyway",
                        krate.plugin_toml().display()
                    );
                }
            }
            Err(e) => say(
                &id,
                &format!("the installed copy is unreadable ({e:#}); replacing it"),
            ),
        }
    }

    laps.lap("check installed");
    let mode = if options.release { "release" } else { "debug" };
    say(&id, &format!("building `{}` ({mode})", krate.package));
    let build_started = std::time::Instant::now();
    let library = artifacts::build_crate(&krate.cargo_toml(), &krate.package, options.release)?;
    let build_time = build_started.elapsed();
    laps.lap("build");
    say(&id, &format!("built in {} ms", build_time.as_millis()));
    crash_point("built");
    if options.rebuild {
        if let Some(installed) = dir.get(&id)? {
            if let Ok(current) = Package::open(&installed.target) {
                if files::sha256_hex(&current.library)
                    == files::sha256_hex(&std::fs::read(&library)?)
                {
                    println!(
                        "{id}: the new build is identical to the installed one; nothing to install"
                    );
                    return Ok(());
                }
            }
        }
    }

    laps.lap("compare");
    say(&id, "packaging: manifest, library, checksums, signature");
    let staged = dir.staging(&id)?;
    crate::package::assemble(&staged, &krate.plugin_toml(), &library, &manifest.library)?;
    let package = Package::open(&staged)?;
    package.check_identity()?;
    laps.lap("package");
    package.sign(key)?;
    laps.lap("sign");
    crash_point("packaged");

    say(&id, "verifying the package with the host's signature check");
    let verified = package.verify(trusted)?;
    laps.lap("verify");
    crash_point("verified");

    say(&id, &format!("installing into {}", dir.root.display()));
    let stored = dir.store(&staged, &package)?;
    crash_point("stored");
    dir.switch(&id, &stored)?;
    crash_point("linked");

    let mut registry = dir.registry()?;
    registry.plugins.insert(
        id.clone(),
        RegistryEntry {
            id: id.clone(),
            version: version.to_string(),
            sha256: files::sha256_hex(&package.library),
            key_id: Some(verified.key_id.clone()),
            installed_at: files::now_rfc3339(),
            path: stored.clone(),
        },
    );
    dir.save_registry(&registry)?;
    crash_point("registered");

    let example = locations::config_dir()
        .join("plugins")
        .join(format!("{id}.toml.example"));
    files::write_atomic(
        &example,
        plugin_package::manifest::example_toml(&manifest).as_bytes(),
    )?;
    dir.tidy()?;
    warn_missing_dependencies(dir, &manifest)?;
    laps.lap("install");
    if options.rebuild {
        say(&id, &laps.report());
    }
    println!(
        "installed {id} {version} (signed by key {}) at {} -> {}\n  configuration template: {}",
        verified.key_id,
        dir.link(&id).display(),
        stored.display(),
        example.display()
    );
    Ok(())
}

/// Says which required dependencies are not installed (the host would not start the plugin).
fn warn_missing_dependencies(dir: &PluginDir, manifest: &Manifest) -> Result<()> {
    let installed = dir.installed()?;
    for (dep, spec) in &manifest.dependencies {
        if !spec.optional && !installed.iter().any(|i| &i.id == dep) {
            say(
                &manifest.id,
                &format!(
                    "warning: it depends on `{dep}` {}, which is not installed; \
                     the host will not start it until `{dep}` is installed",
                    spec.version
                ),
            );
        }
    }
    Ok(())
}

/// Where the time of one install went, for `cargo xtask dev`.
struct Laps {
    last: std::time::Instant,
    laps: Vec<(&'static str, std::time::Duration)>,
}

impl Laps {
    fn start() -> Laps {
        Laps {
            last: std::time::Instant::now(),
            laps: Vec::new(),
        }
    }

    fn lap(&mut self, what: &'static str) {
        let now = std::time::Instant::now();
        self.laps.push((what, now - self.last));
        self.last = now;
    }

    fn report(&self) -> String {
        let steps: Vec<String> = self
            .laps
            .iter()
            .map(|(what, took)| format!("{what} {} ms", took.as_millis()))
            .collect();
        format!("time: {}", steps.join(", "))
    }
}
