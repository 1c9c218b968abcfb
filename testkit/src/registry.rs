//! A real OCI registry: Debian's `docker-registry` (the CNCF distribution
//! registry v2) serving on a free 127.0.0.1 port with its own
//! `config.yml` and filesystem storage in a temp dir, stopped when dropped.
//! Installed by `tests/peers/install-docker-registry.sh`; the packaged
//! service and its configuration are never used.
//!
//! The registry can be stopped and started again on the same port and
//! storage ([`Registry::stop`], [`Registry::restart`]) to test a daemon
//! that keeps serving while its registry is down, and its blob files can be
//! reached ([`Registry::blob_path`]) to tamper with them.
//! Its access log is on, so a test can count the requests a pull makes
//! ([`Registry::requests`]). [`Registry::start_with_login`] adds distribution's `htpasswd` basic
//! authentication (bcrypt, the only hash it takes) with one user.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use tempfile::TempDir;

use crate::process::{find_program, free_tcp_port, wait_until, ChildGuard};

/// A running registry; killed and its storage removed on drop.
pub struct Registry {
    port: u16,
    login: bool,
    child: Option<ChildGuard>,
    dir: TempDir,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("port", &self.port)
            .field("running", &self.child.is_some())
            .finish()
    }
}

/// The registry binary: `$PLUGKIT_DOCKER_REGISTRY`, then `/usr/bin/docker-registry`.
pub fn registry_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("PLUGKIT_DOCKER_REGISTRY") {
        return Ok(PathBuf::from(path));
    }
    find_program("docker-registry", &[PathBuf::from("/usr/bin")]).context(
        "the OCI registry `docker-registry` is not installed: run \
         `bash tests/peers/install-docker-registry.sh` (Debian package docker-registry)",
    )
}

impl Registry {
    /// Starts a registry on a free port with storage in a new temp dir.
    pub fn start() -> Result<Self> {
        Self::start_configured(None)
    }

    /// [`Registry::start`], with every request needing HTTP basic
    /// credentials `user`:`password` (an `htpasswd` file of its own).
    pub fn start_with_login(user: &str, password: &str) -> Result<Self> {
        Self::start_configured(Some((user, password)))
    }

    fn start_configured(login: Option<(&str, &str)>) -> Result<Self> {
        let dir = tempfile::tempdir().context("registry temp dir")?;
        let port = free_tcp_port()?;
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage)?;
        let mut config = format!(
            "version: 0.1\n\
             log:\n  level: warn\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  \
             cache:\n    blobdescriptor: inmemory\n\
             http:\n  addr: 127.0.0.1:{port}\n  secret: plugkit-test-{port}\n",
            storage.display()
        );
        if let Some((user, password)) = login {
            // The lowest bcrypt cost: the registry checks the hash on every request.
            let hash = bcrypt::hash(password, 4).context("hashing the registry password")?;
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(&htpasswd, format!("{user}:{hash}\n"))?;
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: plugkit-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        std::fs::write(dir.path().join("config.yml"), config)?;
        let mut registry = Self {
            port,
            login: login.is_some(),
            child: None,
            dir,
        };
        registry.restart()?;
        Ok(registry)
    }

    /// Starts the registry again (same port and storage) after [`Registry::stop`].
    pub fn restart(&mut self) -> Result<()> {
        let binary = registry_binary()?;
        let log = std::fs::File::create(self.dir.path().join("registry.log"))?;
        let mut child = ChildGuard::spawn(
            "docker-registry",
            Command::new(binary)
                .arg("serve")
                .arg(self.dir.path().join("config.yml"))
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log),
        )?;
        let (port, login) = (self.port, self.login);
        wait_until(
            "docker-registry",
            Duration::from_secs(20),
            Some(&mut child),
            || v2_answers(port, login),
        )
        .with_context(|| format!("docker-registry log: {}", self.log()))?;
        self.child = Some(child);
        Ok(())
    }

    /// Stops the registry (kills it); its storage stays for [`Registry::restart`].
    pub fn stop(&mut self) {
        self.child = None;
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:<port>`, as OCI references name a registry.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The file holding the blob `digest` (`sha256:<hex>`) in the storage dir
    /// (distribution's filesystem layout: `blobs/sha256/<2 hex>/<hex>/data`).
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.storage()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2.min(hex.len())])
            .join(hex)
            .join("data")
    }

    /// The storage root.
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// The requests served so far, from its access log, in order: method
    /// and path, e.g. `GET /v2/plugkit/plugins/x/blobs/sha256:…`.
    pub fn requests(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter_map(|line| line.split('"').nth(1))
            .filter_map(|request| request.rsplit_once(' ').map(|(r, _)| r.to_owned()))
            .collect()
    }

    /// What the registry logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// The temp dir (config, storage, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Whether `GET /v2/` answers 200 on 127.0.0.1:`port` (401 with a `login`).
fn v2_answers(port: u16, login: bool) -> bool {
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
    answer.starts_with("HTTP/1.1 200") || (login && answer.starts_with("HTTP/1.1 401"))
}
