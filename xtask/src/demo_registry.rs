//! `cargo xtask demo --from-registry [TIER]`: the demo with its plugins delivered by
//! OCI provisioning instead of `install-plugin`. Starts Debian's
//! `docker-registry` on a free 127.0.0.1 port with its own configuration
//! and storage under `var/demo/registry` (never the packaged service, whose
//! default configuration listens on every interface), publishes the three
//! reference plugins and a catalog signed with the development key (tier
//! `enterprise` includes all three, `pro` twilio and stripe, `free`
//! twilio), and hands the daemon `--provision --registry URL --tier T`.
//! The registry stops when the demo ends.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};

use crate::{install, oci};

/// A running demo registry; killed on drop.
pub(crate) struct DemoRegistry {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub(crate) url: String,
}

impl Drop for DemoRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the registry with storage under `dir`.
pub(crate) fn start(dir: &Path) -> Result<DemoRegistry> {
    let binary = std::env::var_os("PLUGKIT_DOCKER_REGISTRY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/docker-registry"));
    if !binary.is_file() {
        bail!(
            "the OCI registry {} is not installed: run `sudo bash tests/peers/install-docker-registry.sh` \
             (Debian package docker-registry), or run the demo without --from-registry",
            binary.display()
        );
    }
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .context("finding a free port for the demo registry")?
        .port();
    let storage = dir.join("storage");
    std::fs::create_dir_all(&storage).with_context(|| format!("creating {}", storage.display()))?;
    let config = dir.join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: 127.0.0.1:{port}\n  secret: plugkit-demo-{port}\n",
            storage.display()
        ),
    )
    .with_context(|| format!("writing {}", config.display()))?;
    let log_path = dir.join("registry.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let child = Command::new(&binary)
        .arg("serve")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let mut registry = DemoRegistry {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !answers(port) {
        if let Ok(Some(status)) = registry.child.try_wait() {
            bail!(
                "the demo registry exited ({status}); its log {}:\n{}",
                log_path.display(),
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        if Instant::now() > deadline {
            bail!(
                "the demo registry did not answer on {} within 20 s; see {}",
                registry.url,
                log_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "xtask: demo registry serving on {} (storage {})",
        registry.url,
        storage.display()
    );
    Ok(registry)
}

/// Whether `GET /v2/` answers 200.
fn answers(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request =
        format!("GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}

/// Publishes the reference plugins and the demo catalog to `registry`.
pub(crate) fn publish_demo(registry: &DemoRegistry, dir: &Path) -> Result<()> {
    for name in install::COMMON_PLUGINS {
        oci::publish(
            name,
            oci::registry(Some(registry.url.clone()))?,
            None,
            false,
        )?;
    }
    // A serial above any earlier run's, so a kept daemon state never sees a rollback.
    let serial = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(1);
    let expires =
        humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(30 * 86_400));
    let mut catalog = format!("serial = {serial}\nexpires = \"{expires}\"\n");
    for (tier, plugins) in [
        ("enterprise", &install::COMMON_PLUGINS[..]),
        ("pro", &install::COMMON_PLUGINS[..2]),
        ("free", &install::COMMON_PLUGINS[..1]),
    ] {
        for id in plugins {
            let version = reference_version(id)?;
            catalog.push_str(&format!(
                "\n[[tiers.{tier}]]\nid = \"{id}\"\nversion = \"{version}\"\n"
            ));
        }
    }
    let path = dir.join("catalog.toml");
    std::fs::write(&path, catalog).with_context(|| format!("writing {}", path.display()))?;
    oci::publish_catalog(&path, oci::registry(Some(registry.url.clone()))?, false)
}

/// The version in a reference plugin's `plugin.toml`.
fn reference_version(id: &str) -> Result<String> {
    let krate = install::resolve(id)?;
    let manifest = plugin_package::manifest::Manifest::load(&krate.plugin_toml())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(manifest.version.to_string())
}
