//! The demo's customer devices: a real Net-SNMP `snmpd` and a real OpenSSH
//! `sshd` on free 127.0.0.1 ports when the binaries are installed, and the
//! network-automation settings that reach them. When one is missing, the
//! demo says what it skipped and why instead of failing.

use std::path::PathBuf;

use plugin_host::tenancy::env_var_name;
use plugkit_testkit::process::find_program;
use plugkit_testkit::snmpd::{self, Snmpd};
use plugkit_testkit::sshd::Sshd;

const NETWORK: &str = "network-automation";

/// An SSH endpoint of a device, with what logging in to it takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshDevice {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Login user.
    pub user: String,
    /// The user's private key (OpenSSH format, no pass phrase).
    pub key_path: PathBuf,
    /// The pinned host key line: `host:port keytype base64`.
    pub host_key_pin: String,
}

/// The devices the demo's `demo:snmpd` and `demo:sshd` stand for; each is
/// either there or the reason it is not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Devices {
    /// `host:port` of an SNMP v2c agent answering community `public`.
    pub snmp: Result<String, String>,
    /// An SSH server.
    pub ssh: Result<SshDevice, String>,
}

impl Devices {
    /// No devices, for `reason`.
    pub fn none(reason: &str) -> Self {
        Self {
            snmp: Err(reason.to_owned()),
            ssh: Err(reason.to_owned()),
        }
    }

    /// The devices of running peers.
    pub fn of(snmpd: Option<&Snmpd>, sshd: Option<&Sshd>) -> Self {
        Self {
            snmp: snmpd
                .map(Snmpd::address)
                .ok_or_else(|| "no snmpd was started".to_owned()),
            ssh: sshd
                .map(|s| SshDevice {
                    host: "127.0.0.1".to_owned(),
                    port: s.port(),
                    user: s.user().to_owned(),
                    key_path: s.client_key_path().to_owned(),
                    host_key_pin: s.host_key_pin(),
                })
                .ok_or_else(|| "no sshd was started".to_owned()),
        }
    }

    /// Network-automation settings that reach the devices, as
    /// `PLUGKIT_NETWORK_AUTOMATION_*` variables (they apply to every tenant).
    pub fn env_overrides(&self) -> Vec<(String, String)> {
        let mut vars = Vec::new();
        if self.snmp.is_ok() {
            vars.push((
                env_var_name(NETWORK, "snmp_community"),
                snmpd::COMMUNITY.to_owned(),
            ));
        }
        if let Ok(ssh) = &self.ssh {
            vars.push((env_var_name(NETWORK, "ssh_user"), ssh.user.clone()));
            vars.push((
                env_var_name(NETWORK, "ssh_private_key_path"),
                ssh.key_path.display().to_string(),
            ));
            vars.push((
                env_var_name(NETWORK, "ssh_known_hosts"),
                serde_json::json!([ssh.host_key_pin]).to_string(),
            ));
        }
        vars
    }

    /// What `demo:snmpd` stands for; other text is an address as it is.
    pub(crate) fn snmp_address(&self, text: &str) -> Result<String, String> {
        match text {
            "demo:snmpd" => self.snmp.clone(),
            other => Ok(other.to_owned()),
        }
    }

    /// What `demo:sshd` stands for; other text is `host:port` (port 22 when absent).
    pub(crate) fn ssh_endpoint(&self, text: &str) -> Result<(String, u16), String> {
        if text == "demo:sshd" {
            return self
                .ssh
                .as_ref()
                .map(|s| (s.host.clone(), s.port))
                .map_err(Clone::clone);
        }
        match text.rsplit_once(':') {
            Some((host, port)) => port
                .parse()
                .map(|port| (host.to_owned(), port))
                .map_err(|_| format!("`{text}` is not host:port")),
            None => Ok((text.to_owned(), 22)),
        }
    }
}

/// Running demo peers; they stop when this is dropped.
///
/// Start them on a thread that outlives them (the main thread): each peer is
/// bound to the thread that spawned it and dies with it.
pub struct Peers {
    snmpd: Option<Snmpd>,
    sshd: Option<Sshd>,
    devices: Devices,
    /// What was started or skipped, one line each.
    pub notes: Vec<String>,
}

impl Peers {
    /// No peers.
    pub fn none(reason: &str) -> Self {
        Self {
            snmpd: None,
            sshd: None,
            devices: Devices::none(reason),
            notes: Vec::new(),
        }
    }

    /// Starts `snmpd` and `sshd` where they are installed.
    pub fn start() -> Self {
        let mut notes = Vec::new();
        let snmpd = match find_program("snmpd", &[]) {
            None => Err("snmpd is not installed (Debian package `snmpd`; \
                         `bash tests/peers/install-network.sh` installs it)"
                .to_owned()),
            Some(_) => Snmpd::start().map_err(|e| format!("snmpd did not start: {e:#}")),
        };
        let sshd = match (find_program("sshd", &[]), find_program("ssh-keygen", &[])) {
            (Some(_), Some(_)) => Sshd::start().map_err(|e| format!("sshd did not start: {e:#}")),
            _ => Err("sshd or ssh-keygen is not installed (Debian packages \
                      `openssh-server` and `openssh-client`)"
                .to_owned()),
        };
        let mut devices = Devices::of(snmpd.as_ref().ok(), sshd.as_ref().ok());
        match &snmpd {
            Ok(agent) => notes.push(format!(
                "[device] demo:snmpd is a real snmpd at {} (sysName {})",
                agent.address(),
                snmpd::SYS_NAME
            )),
            Err(reason) => {
                notes.push(format!(
                    "[device] no SNMP device: {reason}; SNMP steps are skipped"
                ));
                devices.snmp = Err(reason.clone());
            }
        }
        match &sshd {
            Ok(server) => notes.push(format!(
                "[device] demo:sshd is a real sshd at 127.0.0.1:{} (login {}, pinned host key)",
                server.port(),
                server.user()
            )),
            Err(reason) => {
                notes.push(format!(
                    "[device] no SSH device: {reason}; SSH steps are skipped"
                ));
                devices.ssh = Err(reason.clone());
            }
        }
        Self {
            snmpd: snmpd.ok(),
            sshd: sshd.ok(),
            devices,
            notes,
        }
    }

    /// The devices they stand for.
    pub fn devices(&self) -> Devices {
        self.devices.clone()
    }

    /// Stops them.
    pub fn stop(self) {
        drop(self.snmpd);
        drop(self.sshd);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_placeholders_resolve_to_the_peers_or_say_why_not() {
        let devices = Devices {
            snmp: Ok("127.0.0.1:1161".to_owned()),
            ssh: Err("sshd is not installed".to_owned()),
        };
        assert_eq!(
            devices.snmp_address("demo:snmpd"),
            Ok("127.0.0.1:1161".to_owned())
        );
        assert_eq!(
            devices.snmp_address("10.0.0.1:161"),
            Ok("10.0.0.1:161".to_owned())
        );
        assert_eq!(
            devices.ssh_endpoint("demo:sshd"),
            Err("sshd is not installed".to_owned())
        );
        assert_eq!(
            devices.ssh_endpoint("cpe-1:2222"),
            Ok(("cpe-1".to_owned(), 2222))
        );
        assert_eq!(devices.ssh_endpoint("cpe-1"), Ok(("cpe-1".to_owned(), 22)));
        assert!(devices.ssh_endpoint("cpe-1:x").is_err());
    }

    #[test]
    fn settings_reach_only_the_devices_that_exist() {
        let devices = Devices {
            snmp: Ok("127.0.0.1:1161".to_owned()),
            ssh: Ok(SshDevice {
                host: "127.0.0.1".to_owned(),
                port: 2222,
                user: "root".to_owned(),
                key_path: PathBuf::from("/k/client_key"),
                host_key_pin: "127.0.0.1:2222 ssh-ed25519 AAAA".to_owned(),
            }),
        };
        let vars: Vec<String> = devices
            .env_overrides()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        assert_eq!(
            vars,
            [
                "PLUGKIT_NETWORK_AUTOMATION_SNMP_COMMUNITY=public",
                "PLUGKIT_NETWORK_AUTOMATION_SSH_USER=root",
                "PLUGKIT_NETWORK_AUTOMATION_SSH_PRIVATE_KEY_PATH=/k/client_key",
                "PLUGKIT_NETWORK_AUTOMATION_SSH_KNOWN_HOSTS=[\"127.0.0.1:2222 ssh-ed25519 AAAA\"]",
            ]
        );
        assert!(Devices::none("no peers").env_overrides().is_empty());
    }
}
