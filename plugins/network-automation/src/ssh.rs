//! Runs one command on a device over SSH (`russh`): public-key login,
//! host keys checked against the tenant's pins, stdout and stderr collected
//! as the bytes the device sent, and how the command ended (exit status,
//! signal, or no status from the server) reported as the server said it.
//!
//! Invariants: a host whose key is not pinned, or whose key differs from
//! its pins, is refused before authentication (so no signature made with
//! the tenant's key ever reaches it). Name resolution happens on the
//! calling thread with std, never through tokio (which would start
//! blocking-pool threads).

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use plugin_api::network_automation::{SshCommand, SshExitSignal, SshOutput};
use plugin_api::{PluginError, Result, Secret};
use russh::client::{self, AuthResult};
use russh::keys::PublicKeyOrCertificate;
use russh::keys::{decode_secret_key, HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey};
use russh::{ChannelMsg, Disconnect, Sig};
use tokio::time::timeout_at;

use crate::runtime::AsyncRuntime;

/// Where the tenant's private key comes from.
pub(crate) enum KeySource {
    /// An OpenSSH private key file on the host running the plugin.
    Path(PathBuf),
    /// The key itself (from a secret store).
    Inline(Secret),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Path(path) => f.debug_tuple("Path").field(path).finish(),
            Self::Inline(secret) => f.debug_tuple("Inline").field(secret).finish(),
        }
    }
}

/// One trusted host key: `host:port keytype base64`.
pub(crate) struct HostPin {
    host: String,
    port: u16,
    key: PublicKey,
}

impl std::fmt::Debug for HostPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "HostPin({}:{} {})",
            self.host,
            self.port,
            self.key.fingerprint(HashAlg::Sha256)
        )
    }
}

impl HostPin {
    /// Parses `host:port ssh-ed25519 AAAA... [comment]`; `[v6addr]:port`
    /// for IPv6, and port 22 when only a host is given.
    pub(crate) fn parse(line: &str) -> std::result::Result<Self, String> {
        let line = line.trim();
        let (spec, key) = line
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("`{line}` is not `host:port keytype base64`"))?;
        let (host, port) = parse_host_port(spec)?;
        let key = PublicKey::from_openssh(key.trim())
            .map_err(|e| format!("the key for {host}:{port} is not an OpenSSH public key ({e})"))?;
        Ok(Self { host, port, key })
    }

    fn matches(&self, host: &str, port: u16) -> bool {
        self.port == port && self.host.eq_ignore_ascii_case(host)
    }
}

fn parse_host_port(spec: &str) -> std::result::Result<(String, u16), String> {
    let port = |text: &str| {
        text.parse::<u16>()
            .map_err(|_| format!("`{text}` in `{spec}` is not a port number"))
    };
    if let Some(rest) = spec.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("`{spec}` has `[` without `]`"))?;
        return match after.strip_prefix(':') {
            Some(p) => Ok((host.to_owned(), port(p)?)),
            None if after.is_empty() => Ok((host.to_owned(), 22)),
            None => Err(format!("`{spec}` should be `[host]:port`")),
        };
    }
    match spec.matches(':').count() {
        0 => Ok((spec.to_owned(), 22)),
        1 => {
            let (host, p) = spec.split_once(':').unwrap_or((spec, "22"));
            if host.is_empty() {
                return Err(format!("`{spec}` has no host"));
            }
            Ok((host.to_owned(), port(p)?))
        }
        _ => Err(format!(
            "write the IPv6 address in `{spec}` as `[address]:port`"
        )),
    }
}

/// A tenant's SSH settings.
pub(crate) struct SshSettings {
    pub(crate) user: Option<String>,
    pub(crate) key: Option<KeySource>,
    pub(crate) passphrase: Option<Secret>,
    pub(crate) pins: Vec<HostPin>,
    pub(crate) timeout: Duration,
}

impl std::fmt::Debug for SshSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshSettings")
            .field("user", &self.user)
            .field("key", &self.key)
            .field("passphrase", &self.passphrase)
            .field("pins", &self.pins)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Decides whether `offered` may be trusted as the key of `host:port`.
fn check_host_key(
    host: &str,
    port: u16,
    pins: &[PublicKey],
    offered: &PublicKeyOrCertificate,
) -> Result<()> {
    let key = match offered {
        PublicKeyOrCertificate::PublicKey { key, .. } => key,
        PublicKeyOrCertificate::Certificate(cert) => {
            return Err(PluginError::provider(
                "ssh_host_key_unknown",
                format!(
                    "{host}:{port} presented a host certificate ({}); certificates are not \
                     trusted, pin the server's plain host key in `ssh_known_hosts`",
                    cert.public_key().fingerprint(HashAlg::Sha256)
                ),
                false,
            ))
        }
    };
    let fingerprint = key.fingerprint(HashAlg::Sha256);
    if pins.is_empty() {
        let line = key
            .to_openssh()
            .map(|k| format!("`{host}:{port} {k}`"))
            .unwrap_or_else(|_| "its key".to_owned());
        return Err(PluginError::provider(
            "ssh_host_key_unknown",
            format!(
                "host key of {host}:{port} is unknown ({} {fingerprint}); refusing to connect. \
                 Verify the fingerprint out of band, then add {line} to `ssh_known_hosts`",
                key.algorithm()
            ),
            false,
        ));
    }
    if pins.iter().any(|pin| pin.key_data() == key.key_data()) {
        return Ok(());
    }
    let pinned = pins
        .iter()
        .map(|p| format!("{} {}", p.algorithm(), p.fingerprint(HashAlg::Sha256)))
        .collect::<Vec<_>>()
        .join(", ");
    Err(PluginError::provider(
        "ssh_host_key_changed",
        format!(
            "host key of {host}:{port} has CHANGED: it offered {} {fingerprint} but \
             `ssh_known_hosts` pins {pinned}; refusing to connect (someone may be \
             intercepting). Update the pin only if the device was really re-keyed",
            key.algorithm()
        ),
        false,
    ))
}

/// russh's callbacks: checks the host key against the pins and keeps the
/// reason for a refusal, which russh itself reports only as "unknown key".
struct PinnedHostKey {
    host: String,
    port: u16,
    pins: Vec<PublicKey>,
    rejection: Arc<Mutex<Option<PluginError>>>,
}

impl client::Handler for PinnedHostKey {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> std::result::Result<bool, Self::Error> {
        match check_host_key(&self.host, self.port, &self.pins, server_public_key) {
            Ok(()) => Ok(true),
            Err(refusal) => {
                *self
                    .rejection
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(refusal);
                Ok(false)
            }
        }
    }
}

/// Runs `command` and waits for it to finish (or the timeout).
pub(crate) fn exec(
    runtime: &AsyncRuntime,
    settings: &SshSettings,
    command: &SshCommand,
) -> Result<SshOutput> {
    let host = command.host.as_str().trim();
    if host.is_empty() {
        return Err(PluginError::invalid_request("SSH command without a host"));
    }
    if command.command.is_empty() {
        return Err(PluginError::invalid_request("SSH command line is empty"));
    }
    let port = match command.port {
        0 => 22,
        p => p,
    };
    let user = match command.user.as_str().trim() {
        "" => settings.user.clone().ok_or_else(|| {
            PluginError::invalid_request(
                "SSH command without a user, and the tenant has no `ssh_user`",
            )
        })?,
        u => u.to_owned(),
    };
    let timeout = match command.timeout_ms {
        0 => settings.timeout,
        ms => Duration::from_millis(u64::from(ms)),
    };
    let key = load_key(settings)?;
    let address = resolve(host, port)?;
    let rejection = Arc::new(Mutex::new(None));
    let handler = PinnedHostKey {
        host: host.to_owned(),
        port,
        pins: settings
            .pins
            .iter()
            .filter(|p| p.matches(host, port))
            .map(|p| p.key.clone())
            .collect(),
        rejection: Arc::clone(&rejection),
    };
    let target = format!("{user}@{host}:{port}");
    let outcome = runtime.block_on(run_session(
        address,
        handler,
        Session {
            target: &target,
            user,
            key,
            command: command.command.as_str(),
            timeout,
        },
    ))?;
    // A refused host key surfaces from russh as a generic error; the
    // handler kept the real reason.
    let refused = rejection
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    match refused {
        Some(refusal) => Err(refusal),
        None => outcome,
    }
}

/// What one session needs besides the connection.
struct Session<'a> {
    target: &'a str,
    user: String,
    key: PrivateKey,
    command: &'a str,
    timeout: Duration,
}

/// How long closing the connection may take after the result is known.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

async fn run_session(
    address: SocketAddr,
    handler: PinnedHostKey,
    session: Session<'_>,
) -> Result<SshOutput> {
    let Session {
        target,
        user,
        key,
        command,
        timeout,
    } = session;
    let deadline = tokio::time::Instant::now() + timeout;
    let timed_out = |phase: &str| {
        PluginError::provider(
            "ssh_timeout",
            format!(
                // Not the command line itself: device commands can carry
                // passwords.
                "the command on {target} did not finish within {} ms ({phase})",
                timeout.as_millis()
            ),
            true,
        )
    };
    let failed = |what: &str, e: russh::Error| {
        PluginError::provider(
            "ssh_session_failed",
            format!("{what} on {target}: {e}"),
            true,
        )
    };

    let config = Arc::new(client::Config::default());
    let mut handle = timeout_at(deadline, client::connect(config, address, handler))
        .await
        .map_err(|_| timed_out("connecting"))?
        .map_err(|e| {
            PluginError::provider(
                "ssh_connect_failed",
                format!("cannot open an SSH session to {target} ({address}): {e}"),
                true,
            )
        })?;

    let key = Arc::new(key);
    let fingerprint = key.public_key().fingerprint(HashAlg::Sha256);
    let auth = timeout_at(
        deadline,
        handle.authenticate_publickey(user, PrivateKeyWithHashAlg::new(key, None)),
    )
    .await
    .map_err(|_| timed_out("logging in"))?
    .map_err(|e| failed("public-key authentication", e))?;
    if let AuthResult::Failure { .. } = auth {
        close(handle).await;
        return Err(PluginError::provider(
            "ssh_auth_failed",
            format!(
                "{target} refused public-key authentication with key {fingerprint}; \
                 is it in the user's authorized_keys?"
            ),
            false,
        ));
    }

    let mut channel = timeout_at(deadline, handle.channel_open_session())
        .await
        .map_err(|_| timed_out("opening a channel"))?
        .map_err(|e| failed("opening a session channel", e))?;
    channel
        .exec(true, command)
        .await
        .map_err(|e| failed("starting the command", e))?;
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let mut exit_status = None;
    let mut exit_signal = None;
    loop {
        match timeout_at(deadline, channel.wait()).await {
            Ok(Some(ChannelMsg::Data { data })) => stdout.extend_from_slice(&data),
            // Extended data type 1 is SSH_EXTENDED_DATA_STDERR (RFC 4254 §5.2).
            Ok(Some(ChannelMsg::ExtendedData { data, ext: 1 })) => stderr.extend_from_slice(&data),
            Ok(Some(ChannelMsg::ExitStatus { exit_status: code })) => exit_status = Some(code),
            Ok(Some(ChannelMsg::ExitSignal {
                signal_name,
                core_dumped,
                error_message,
                ..
            })) => {
                exit_signal = Some(SshExitSignal {
                    name: signal_name_of(&signal_name).into(),
                    core_dumped,
                    message: error_message.into(),
                });
            }
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => {
                // Do not leave the command running on the device: ask the
                // server to kill it, and give it a moment to report that the
                // channel ended (so the request is sent before we hang up).
                let _ = channel.signal(Sig::KILL).await;
                let _ = tokio::time::timeout(CLOSE_GRACE, async {
                    while channel.wait().await.is_some() {}
                })
                .await;
                close(handle).await;
                return Err(timed_out("running"));
            }
        }
    }
    close(handle).await;
    Ok(SshOutput {
        stdout: stdout.into(),
        stderr: stderr.into(),
        exit_status: exit_status.into(),
        exit_signal: exit_signal.into(),
    })
}

/// The name RFC 4254 §6.10 puts on the wire (`KILL`, no `SIG`); russh keeps
/// its own spelling private.
fn signal_name_of(signal: &Sig) -> &str {
    match signal {
        Sig::ABRT => "ABRT",
        Sig::ALRM => "ALRM",
        Sig::FPE => "FPE",
        Sig::HUP => "HUP",
        Sig::ILL => "ILL",
        Sig::INT => "INT",
        Sig::KILL => "KILL",
        Sig::PIPE => "PIPE",
        Sig::QUIT => "QUIT",
        Sig::SEGV => "SEGV",
        Sig::TERM => "TERM",
        Sig::USR1 => "USR1",
        Sig::Custom(name) => name,
    }
}

/// Says goodbye and lets the connection task send what it still holds and
/// end, so the socket closes now rather than when the runtime next runs.
/// Best effort: the result is already known.
async fn close(handle: client::Handle<PinnedHostKey>) {
    let _ = handle.disconnect(Disconnect::ByApplication, "", "en").await;
    let _ = tokio::time::timeout(CLOSE_GRACE, handle).await;
}

fn resolve(host: &str, port: u16) -> Result<SocketAddr> {
    (host, port)
        .to_socket_addrs()
        .map_err(|e| {
            PluginError::provider(
                "ssh_connect_failed",
                format!("cannot resolve {host}: {e}"),
                true,
            )
        })?
        .next()
        .ok_or_else(|| {
            PluginError::provider("ssh_connect_failed", format!("{host} has no address"), true)
        })
}

fn load_key(settings: &SshSettings) -> Result<PrivateKey> {
    let passphrase = settings.passphrase.as_ref().map(Secret::expose);
    let (key_name, text) = match &settings.key {
        None => {
            return Err(PluginError::invalid_config(
                "ssh_private_key_path",
                "no SSH key configured: set `ssh_private_key_path` or `ssh_private_key`",
            ))
        }
        Some(KeySource::Path(path)) => (
            "ssh_private_key_path",
            Secret::new(std::fs::read_to_string(path).map_err(|e| {
                PluginError::invalid_config(
                    "ssh_private_key_path",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?),
        ),
        Some(KeySource::Inline(secret)) => ("ssh_private_key", secret.clone()),
    };
    // The decoder's errors describe the format, never the key's bytes.
    decode_secret_key(text.expose(), passphrase).map_err(|e| {
        PluginError::invalid_config(
            key_name,
            format!(
                "not a usable OpenSSH private key (ed25519 or ECDSA), or the pass phrase \
                 is wrong: {e}"
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINZWXOsuGpvOZkuzLvEXPMAW85fVnO/NQwzImQvHqWKz a";
    const KEY_A_FINGERPRINT: &str = "SHA256:hsw49wOsPXGvqubniza06SoBALxZBEk5FgPlZT2WUQI";
    const KEY_B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAMnkYHmJKo4VKVk+3jDgPjNjPx2R6ySQAvRlOLwR08M b";

    fn check_pin(line: &str, expected: std::result::Result<(&str, u16), &str>) {
        match (HostPin::parse(line), expected) {
            (Ok(pin), Ok((host, port))) => {
                assert_eq!((pin.host.as_str(), pin.port), (host, port), "{line}")
            }
            (Err(message), Err(needle)) => {
                assert!(message.contains(needle), "`{message}` lacks `{needle}`")
            }
            (Ok(pin), Err(needle)) => panic!("{line}: parsed {pin:?}, wanted error `{needle}`"),
            (Err(message), Ok(_)) => panic!("{line}: {message}"),
        }
    }

    #[test]
    fn parses_pins() {
        check_pin(&format!("10.0.0.1:2222 {KEY_A}"), Ok(("10.0.0.1", 2222)));
        check_pin(&format!("router1 {KEY_A}"), Ok(("router1", 22)));
        check_pin(
            &format!("[2001:db8::1]:830 {KEY_A}"),
            Ok(("2001:db8::1", 830)),
        );
        check_pin(&format!("[::1] {KEY_A}"), Ok(("::1", 22)));
        check_pin(&format!("2001:db8::1 {KEY_A}"), Err("[address]:port"));
        check_pin(&format!("host:ssh {KEY_A}"), Err("not a port"));
        check_pin("host:22", Err("not `host:port keytype base64`"));
        check_pin("host:22 ssh-ed25519 AAAA", Err("not an OpenSSH public key"));
    }

    fn offered(line: &str) -> PublicKeyOrCertificate {
        PublicKeyOrCertificate::PublicKey {
            key: PublicKey::from_openssh(line).expect("valid key"),
            hash_alg: None,
        }
    }

    fn pins(lines: &[&str]) -> Vec<PublicKey> {
        lines
            .iter()
            .map(|l| PublicKey::from_openssh(l).expect("valid key"))
            .collect()
    }

    fn refusal(result: Result<()>) -> (String, String) {
        match result {
            Err(PluginError::Provider { code, message, .. }) => (code.into(), message.into()),
            other => panic!("expected a provider error, got {other:?}"),
        }
    }

    #[test]
    fn accepts_a_pinned_key_among_several() {
        assert!(check_host_key("h", 22, &pins(&[KEY_B, KEY_A]), &offered(KEY_A)).is_ok());
    }

    #[test]
    fn refuses_an_unknown_host_naming_host_and_fingerprint() {
        let (code, message) = refusal(check_host_key("r1", 2222, &[], &offered(KEY_A)));
        assert_eq!(code, "ssh_host_key_unknown");
        assert!(message.contains("r1:2222"), "{message}");
        assert!(message.contains(KEY_A_FINGERPRINT), "{message}");
    }

    #[test]
    fn refuses_a_changed_key_naming_both_fingerprints() {
        let (code, message) = refusal(check_host_key("r1", 22, &pins(&[KEY_B]), &offered(KEY_A)));
        assert_eq!(code, "ssh_host_key_changed");
        assert!(message.contains("r1:22"), "{message}");
        assert!(message.contains(KEY_A_FINGERPRINT), "{message}");
        let pinned = PublicKey::from_openssh(KEY_B)
            .expect("valid key")
            .fingerprint(HashAlg::Sha256)
            .to_string();
        assert!(message.contains(&pinned), "{message}");
    }

    #[test]
    fn pins_match_host_case_insensitively_and_port_exactly() {
        let pin = HostPin::parse(&format!("Router1:22 {KEY_A}")).expect("valid pin");
        assert!(pin.matches("router1", 22));
        assert!(!pin.matches("router1", 2222));
        assert!(!pin.matches("router2", 22));
    }
}
