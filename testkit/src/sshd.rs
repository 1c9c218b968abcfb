//! A real OpenSSH `sshd` on a free 127.0.0.1 port with generated host and
//! user keys (public-key login only), stopped when dropped.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tempfile::TempDir;

use crate::process::{find_program, free_tcp_port, wait_for_tcp, ChildGuard};
use crate::snmpd::{dies_with_spawning_thread, peer_dir, start_on_keeper_thread};

/// A running `sshd`; killed and its keys removed on drop.
pub struct Sshd {
    port: u16,
    user: String,
    client_key: PathBuf,
    host_public_key: String,
    // Field order matters: the process dies before its directory goes.
    _child: ChildGuard,
    dir: TempDir,
}

impl Sshd {
    /// One server for the whole test binary, started at first use; like
    /// [`crate::snmpd::Snmpd::shared`], it dies with the test process.
    pub fn shared() -> Result<&'static Sshd> {
        static SHARED: OnceLock<std::result::Result<Sshd, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| start_on_keeper_thread("sshd-keeper", Sshd::start))
            .as_ref()
            .map_err(|e| anyhow!("starting the shared sshd: {e}"))
    }

    /// Generates keys and a config, starts `sshd -D -e` and waits for its port.
    pub fn start() -> Result<Self> {
        let sshd = find_program("sshd", &[]).context(
            "sshd is not installed: run `bash tests/peers/install-network.sh` (Debian package `openssh-server`)",
        )?;
        let dir = peer_dir("sshd")?;
        let (host_key, host_public_key) = generate_ed25519(dir.path(), "host_key")?;
        let (client_key, client_public_key) = generate_ed25519(dir.path(), "client_key")?;
        let authorized_keys = dir.path().join("authorized_keys");
        fs::write(&authorized_keys, format!("{client_public_key}\n"))?;

        // sshd's privilege-separation directory; the package's service
        // normally creates it.
        fs::create_dir_all("/run/sshd").context("creating /run/sshd (run the tests as root)")?;

        let port = free_tcp_port()?;
        let config = dir.path().join("sshd_config");
        fs::write(
            &config,
            format!(
                "Port {port}\n\
                 ListenAddress 127.0.0.1\n\
                 HostKey {host_key}\n\
                 AuthorizedKeysFile {authorized_keys}\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\n\
                 PermitRootLogin prohibit-password\n\
                 UsePAM no\n\
                 StrictModes no\n\
                 PidFile {pid}\n\
                 Subsystem sftp internal-sftp\n",
                host_key = host_key.display(),
                authorized_keys = authorized_keys.display(),
                pid = dir.path().join("sshd.pid").display(),
            ),
        )?;
        let log = fs::File::create(dir.path().join("sshd.log"))?;
        let mut child = ChildGuard::spawn(
            "sshd",
            dies_with_spawning_thread(&sshd)
                .args(["-D", "-e", "-f"])
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log),
        )?;
        let ready = wait_for_tcp("sshd", port, Duration::from_secs(30), Some(&mut child));
        let sshd = Self {
            port,
            user: current_user()?,
            client_key,
            host_public_key,
            _child: child,
            dir,
        };
        ready.with_context(|| format!("sshd log:\n{}", sshd.log()))?;
        Ok(sshd)
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The login user: whoever runs the tests (root on CI).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The user's private key (OpenSSH format, no pass phrase).
    pub fn client_key_path(&self) -> &Path {
        &self.client_key
    }

    /// The host's public key, `ssh-ed25519 AAAA... comment`.
    pub fn host_public_key(&self) -> &str {
        &self.host_public_key
    }

    /// The host key's SHA-256 fingerprint as OpenSSH prints it, `SHA256:...`.
    pub fn host_key_fingerprint(&self) -> Result<String> {
        fingerprint(&self.dir.path().join("host_key.pub"))
    }

    /// A pin line for this server: `127.0.0.1:<port> ssh-ed25519 AAAA...`.
    pub fn host_key_pin(&self) -> String {
        format!("127.0.0.1:{} {}", self.port, self.host_public_key)
    }

    /// What sshd logged so far, for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}

/// Generates an ed25519 key pair `dir/name` (+ `.pub`) without a pass
/// phrase and returns the private key path and the public key line.
pub fn generate_ed25519(dir: &Path, name: &str) -> Result<(PathBuf, String)> {
    let keygen = find_program("ssh-keygen", &[]).context(
        "ssh-keygen is not installed: run `bash tests/peers/install-network.sh` (Debian package `openssh-client`)",
    )?;
    let path = dir.join(name);
    let output = Command::new(keygen)
        .args(["-q", "-t", "ed25519", "-N", "", "-C"])
        .arg(format!("plugkit-{name}"))
        .arg("-f")
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .context("running ssh-keygen")?;
    if !output.status.success() {
        bail!(
            "ssh-keygen failed with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let public = fs::read_to_string(path.with_extension("pub"))?;
    Ok((path, public.trim().to_owned()))
}

/// `ssh-keygen -l`'s SHA-256 fingerprint of a public key file.
pub fn fingerprint(public_key: &Path) -> Result<String> {
    let keygen = find_program("ssh-keygen", &[]).context("ssh-keygen is not installed")?;
    let output = Command::new(keygen)
        .args(["-l", "-E", "sha256", "-f"])
        .arg(public_key)
        .output()
        .context("running ssh-keygen -l")?;
    let text = String::from_utf8(output.stdout)?;
    text.split_whitespace()
        .find(|word| word.starts_with("SHA256:"))
        .map(str::to_owned)
        .with_context(|| format!("no fingerprint in `ssh-keygen -l` output: {text}"))
}

fn current_user() -> Result<String> {
    let output = Command::new("id")
        .arg("-un")
        .output()
        .context("running `id -un`")?;
    let user = String::from_utf8(output.stdout)?.trim().to_owned();
    if user.is_empty() {
        bail!("`id -un` printed no user name");
    }
    Ok(user)
}
