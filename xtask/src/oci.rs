//! `cargo xtask publish`, `publish-catalog` and `provision`: plugins and
//! entitlement catalogs to and from an OCI registry (`plugkit-registry`;
//! layout in `plugin_package::oci`). Publish builds, packages, signs and
//! verifies with the install path's own steps before pushing.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use plugin_package::catalog::Catalog;
use plugin_package::oci as layout;
use plugkit_registry::lockfile::Lock;
use plugkit_registry::provision::{self, Options};
use plugkit_registry::publish::{self, SignedPackage};
use plugkit_registry::{RegistryConfig, Remote};

use crate::{artifacts, install, keys, package::Package};

/// The registry: `--registry`, else `PLUGKIT_REGISTRY`; credentials from
/// `PLUGKIT_REGISTRY_USER` and `PLUGKIT_REGISTRY_PASSWORD` (environment
/// only, never a flag or a file in the repository).
pub(crate) fn registry(flag: Option<String>) -> Result<RegistryConfig> {
    let url = flag
        .or_else(|| std::env::var("PLUGKIT_REGISTRY").ok())
        .context(
            "no registry: pass --registry http://127.0.0.1:5000 (or https://HOST) or set PLUGKIT_REGISTRY",
        )?;
    let credentials = match (
        std::env::var("PLUGKIT_REGISTRY_USER"),
        std::env::var("PLUGKIT_REGISTRY_PASSWORD"),
    ) {
        (Ok(user), Ok(password)) => Some((user, password)),
        _ => None,
    };
    Ok(RegistryConfig { url, credentials })
}

/// `cargo xtask publish <plugin>`: builds, packages, signs, verifies and
/// pushes one OCI artifact tagged by version; prints its digest.
pub(crate) fn publish(
    name: &str,
    registry: RegistryConfig,
    repository: Option<&str>,
    release: bool,
) -> Result<()> {
    let krate = install::resolve(name)?;
    let key = keys::load_or_create()?;
    let trusted = keys::trusted_keys(&[])?;
    eprintln!("xtask: building `{}`", krate.package);
    let library = artifacts::build_crate(&krate.cargo_toml(), &krate.package, release)?;
    let staged = tempfile::tempdir().context("a temp dir for the package")?;
    let manifest = plugin_package::manifest::Manifest::load(&krate.plugin_toml())
        .map_err(|e| anyhow!("{e}"))?;
    crate::package::assemble(
        staged.path(),
        &krate.plugin_toml(),
        &library,
        &manifest.library,
    )?;
    let package = Package::open(staged.path())?;
    package.check_identity()?;
    package.sign(&key)?;
    let verified = package.verify(&trusted)?;
    let signature = std::fs::read_to_string(package.signature_path())
        .with_context(|| format!("reading {}", package.signature_path().display()))?;
    let remote = Remote::new(&registry)?;
    let repository = repository
        .map(str::to_owned)
        .unwrap_or_else(|| layout::plugin_repository(&package.manifest.id));
    eprintln!(
        "xtask: pushing {} {} ({} KiB, signed by {}) to {}/{repository}",
        package.manifest.id,
        package.manifest.version,
        package.library.len() / 1024,
        verified.key_id,
        registry.url
    );
    let digest = publish::publish_plugin(
        &remote,
        &SignedPackage {
            manifest: &package.manifest,
            manifest_bytes: &package.manifest_bytes,
            library: &package.library,
            signature: &signature,
        },
        Some(&repository),
    )?;
    println!(
        "published {} {} as {}/{repository}:{} ({digest})\n{digest}",
        package.manifest.id, package.manifest.version, registry.url, package.manifest.version
    );
    Ok(())
}

/// `cargo xtask publish-catalog <catalog.toml>`: pins each plugin's digest
/// (resolving `<repository>:<version>` when the file names none), signs the
/// document with the operator key and pushes it as `latest` and `serial-N`.
/// An expired catalog, or one whose serial is not above the registry's
/// `latest`, is refused unless `force` (daemons would refuse it).
pub(crate) fn publish_catalog(path: &Path, registry: RegistryConfig, force: bool) -> Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut catalog = Catalog::parse(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let remote = Remote::new(&registry)?;
    let latest = publish::latest_catalog(&remote).with_context(|| {
        format!(
            "reading the registry's `latest` catalog to compare {} with it",
            path.display()
        )
    })?;
    let stale = publish::stale_reason(
        &catalog,
        latest.as_ref().map(|(c, _)| c),
        std::time::SystemTime::now(),
    )
    .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    if let Some(why) = stale {
        let at = format!(
            "{}/{}:{}{}",
            registry.url,
            layout::CATALOG_REPOSITORY,
            layout::CATALOG_LATEST_TAG,
            latest
                .as_ref()
                .map(|(_, digest)| format!(" ({digest})"))
                .unwrap_or_default()
        );
        if !force {
            bail!(
                "{} (serial {}, expires {}) is not published to {at}: {why} in {}, or pass --force \
                 to publish it anyway",
                path.display(),
                catalog.serial,
                catalog.expires,
                path.display()
            );
        }
        eprintln!(
            "xtask: warning: publishing {} with --force although {why}",
            path.display()
        );
    }
    let mut pinned = 0;
    for (tier, plugins) in &mut catalog.tiers {
        for plugin in plugins {
            let repository = layout::plugin_repository(&plugin.id);
            let digest = remote.resolve(&repository, &plugin.version).with_context(|| {
                format!(
                    "tier `{tier}`: `{}` {} is not in {}; publish it first with `cargo xtask publish {}`",
                    plugin.id, plugin.version, registry.url, plugin.id
                )
            })?;
            match &plugin.digest {
                Some(named) if *named != digest => bail!(
                    "tier `{tier}`: `{}` {}: {} names {named}, but {repository}:{} is {digest}; \
                     fix the catalog or publish the version it names",
                    plugin.id,
                    plugin.version,
                    path.display(),
                    plugin.version
                ),
                Some(_) => {}
                None => {
                    plugin.digest = Some(digest);
                    pinned += 1;
                }
            }
        }
    }
    let document = if pinned == 0 {
        text
    } else {
        toml::to_string(&catalog).context("writing the pinned catalog")?
    };
    let key = keys::load_or_create()?;
    let signature = key.sign_text(
        document.as_bytes(),
        &Catalog::trusted_comment(catalog.serial, document.as_bytes()),
    )?;
    let digest = publish::publish_catalog(&remote, document.as_bytes(), Some(&signature))?;
    println!(
        "published catalog serial {} (expires {}, signed by {}, {} pinned) to {}/{}:{} ({digest})",
        catalog.serial,
        catalog.expires,
        key.key_id,
        crate::wording::counted(pinned, "digest", "digests"),
        registry.url,
        layout::CATALOG_REPOSITORY,
        layout::CATALOG_LATEST_TAG
    );
    Ok(())
}

/// `cargo xtask provision --tier T`.
pub(crate) fn provision(
    tier: &str,
    registry: RegistryConfig,
    plugin_dir: PathBuf,
    trusted_key: &[String],
    json: bool,
) -> Result<()> {
    let options = Options {
        registry,
        tier: tier.to_owned(),
        accepted_file: plugin_dir
            .join(plugkit_registry::store::OCI_STORE)
            .join("accepted-catalog.json"),
        plugin_dir,
        trusted_keys: keys::trusted_keys(trusted_key)?,
    };
    let lock_path = provision::lock_path(&options.plugin_dir);
    let previous = Lock::read(&lock_path)?;
    let (report, lock) = provision::fetch(&options, &previous, &mut |line| {
        eprintln!("xtask: {line}");
    })?;
    lock.write(&lock_path)?;
    let failures: Vec<String> = report.failures().filter_map(|f| f.error.clone()).collect();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "report": report,
                "lock": lock,
                "lock_file": lock_path,
            }))?
        );
    } else {
        println!(
            "provisioned tier `{tier}` from catalog serial {} into {} ({}); lock: {}",
            report.catalog_serial,
            options.plugin_dir.display(),
            crate::wording::counted(lock.plugins.len(), "plugin", "plugins"),
            lock_path.display()
        );
    }
    if !failures.is_empty() {
        bail!(
            "{} not provisioned (the previous verified versions stay): {}",
            crate::wording::counted(failures.len(), "plugin", "plugins"),
            failures.join("; ")
        );
    }
    Ok(())
}
