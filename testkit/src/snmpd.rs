//! A real Net-SNMP `snmpd` on a free 127.0.0.1 UDP port, with a v2c
//! community and a v3 authPriv (SHA/AES) user, stopped when dropped.

use std::fs;
use std::net::{Ipv4Addr, UdpSocket};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use tempfile::TempDir;

use crate::process::{find_program, free_udp_port, wait_until, ChildGuard};

/// The read-only v2c community the agent accepts from 127.0.0.1.
pub const COMMUNITY: &str = "public";
/// The v3 user (authPriv, SHA + AES-128).
pub const V3_USER: &str = "testuser";
/// The v3 user's authentication pass phrase.
pub const V3_AUTH_PASSWORD: &str = "authpass123";
/// The v3 user's privacy pass phrase.
pub const V3_PRIV_PASSWORD: &str = "privpass123";
/// `sysName.0` as configured.
pub const SYS_NAME: &str = "plugkit-snmpd";
/// `sysLocation.0` as configured.
pub const SYS_LOCATION: &str = "plugkit test rack";
/// An OCTET STRING whose value is not UTF-8, as devices report MAC
/// addresses, binary serials or Latin-1 text: [`BINARY_VALUE`].
pub const BINARY_OID: &str = "1.3.6.1.4.1.8072.9999.9999.1.0";
/// The value at [`BINARY_OID`].
pub const BINARY_VALUE: &[u8] = b"\xff\xfeplugkit caf\xe9\x00\xc0";

/// A running `snmpd`; killed and its files removed on drop.
pub struct Snmpd {
    port: u16,
    // Field order matters: the process dies before its directory goes.
    _child: ChildGuard,
    dir: TempDir,
}

impl Snmpd {
    /// One agent for the whole test binary, started at first use.
    ///
    /// Statics are never dropped, so the agent is started from a thread
    /// that lives until the process exits and is asked (through
    /// `setpriv --pdeathsig`) to die with it.
    pub fn shared() -> Result<&'static Snmpd> {
        static SHARED: OnceLock<std::result::Result<Snmpd, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| start_on_keeper_thread("snmpd-keeper", Snmpd::start))
            .as_ref()
            .map_err(|e| anyhow!("starting the shared snmpd: {e}"))
    }

    /// Writes a config, starts `snmpd -f` and waits until it answers a real
    /// SNMP GET for `sysName.0`.
    pub fn start() -> Result<Self> {
        let snmpd = find_program("snmpd", &[]).context(
            "snmpd is not installed: run `bash tests/peers/install-network.sh` (Debian package `snmpd`)",
        )?;
        let dir = peer_dir("snmpd")?;
        let port = free_udp_port()?;
        let conf = dir.path().join("snmpd.conf");
        fs::write(
            &conf,
            format!(
                "agentAddress udp:127.0.0.1:{port}\n\
                 rocommunity {COMMUNITY} 127.0.0.1\n\
                 createUser {V3_USER} SHA \"{V3_AUTH_PASSWORD}\" AES \"{V3_PRIV_PASSWORD}\"\n\
                 rouser {V3_USER} priv\n\
                 sysName {SYS_NAME}\n\
                 sysLocation {SYS_LOCATION}\n\
                 sysContact plugkit tests\n\
                 sysServices 72\n\
                 override .{BINARY_OID} octet_str 0x{binary}\n",
                binary = BINARY_VALUE
                    .iter()
                    .map(|b| format!("{b:02X}"))
                    .collect::<String>()
            ),
        )?;
        let persistent = dir.path().join("persistent");
        fs::create_dir(&persistent)?;
        let log = fs::File::create(dir.path().join("snmpd.log"))?;
        let mut child = ChildGuard::spawn(
            "snmpd",
            dies_with_spawning_thread(&snmpd)
                .args(["-f", "-Lo", "-C", "-c"])
                .arg(&conf)
                .arg("-p")
                .arg(dir.path().join("snmpd.pid"))
                // Keeps engine boots and v3 keys away from /var/lib/snmp.
                .env("SNMP_PERSISTENT_DIR", &persistent)
                .env("MIBS", "")
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log),
        )?;
        let ready = wait_until(
            "snmpd answering GET sysName.0",
            Duration::from_secs(30),
            Some(&mut child),
            || answers_get(port),
        );
        let snmpd = Self {
            port,
            _child: child,
            dir,
        };
        ready.with_context(|| format!("snmpd log:\n{}", snmpd.log()))?;
        Ok(snmpd)
    }

    /// The UDP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// What the agent logged so far, for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("snmpd.log")
    }
}

/// A fresh temp dir `plugkit-<kind>-<pid>-XXXX`. Shared peers are never
/// dropped, so their dirs outlive the test process; those of processes
/// that are gone are removed here first.
pub(crate) fn peer_dir(kind: &str) -> Result<TempDir> {
    let prefix = format!("plugkit-{kind}-");
    if let Ok(entries) = fs::read_dir(std::env::temp_dir()) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let owner = name
                .to_str()
                .and_then(|n| n.strip_prefix(&prefix))
                .and_then(|rest| rest.split('-').next())
                .and_then(|pid| pid.parse::<u32>().ok());
            if let Some(pid) = owner {
                if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                    let _ = fs::remove_dir_all(entry.path());
                }
            }
        }
    }
    Ok(tempfile::Builder::new()
        .prefix(&format!("{prefix}{}-", std::process::id()))
        .tempdir()?)
}

/// `program` under `setpriv --pdeathsig KILL` (util-linux, always on
/// Debian): the kernel kills it when the thread that spawned it exits, so a
/// crashed or `process::exit`ed test binary leaves no agent behind. The
/// process keeps its pid, so [`ChildGuard`] still stops it.
pub(crate) fn dies_with_spawning_thread(program: &std::path::Path) -> Command {
    match find_program("setpriv", &[]) {
        Some(setpriv) => {
            let mut command = Command::new(setpriv);
            command.args(["--pdeathsig", "KILL", "--"]).arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// Runs `start` on a thread that parks until the process exits, so a peer
/// spawned by it is bound to the process's lifetime, not a test's.
pub(crate) fn start_on_keeper_thread<T: Send + 'static>(
    name: &str,
    start: fn() -> Result<T>,
) -> std::result::Result<T, String> {
    let (started, result) = mpsc::channel();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let _ = started.send(start().map_err(|e| format!("{e:#}")));
            loop {
                std::thread::park();
            }
        })
        .map_err(|e| format!("spawning {name}: {e}"))?;
    result
        .recv()
        .map_err(|_| format!("{name} ended before starting its peer"))?
}

/// `GetRequest` (v2c, community `public`, request id 1) for sysName.0
/// (1.3.6.1.2.1.1.5.0), BER-encoded by hand so readiness needs no client.
const GET_SYS_NAME: [u8; 40] = [
    0x30, 0x26, // SEQUENCE, 38 bytes
    0x02, 0x01, 0x01, // version: v2c
    0x04, 0x06, b'p', b'u', b'b', b'l', b'i', b'c', // community
    0xa0, 0x19, // GetRequest-PDU, 25 bytes
    0x02, 0x01, 0x01, // request-id 1
    0x02, 0x01, 0x00, // error-status
    0x02, 0x01, 0x00, // error-index
    0x30, 0x0e, // variable-bindings
    0x30, 0x0c, // VarBind
    0x06, 0x08, 0x2b, 0x06, 0x01, 0x02, 0x01, 0x01, 0x05, 0x00, // sysName.0
    0x05, 0x00, // NULL
];

fn answers_get(port: u16) -> bool {
    let attempt = || -> std::io::Result<bool> {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        socket.set_read_timeout(Some(Duration::from_millis(200)))?;
        socket.connect((Ipv4Addr::LOCALHOST, port))?;
        socket.send(&GET_SYS_NAME)?;
        let mut buf = [0u8; 1500];
        let len = socket.recv(&mut buf)?;
        let answer = &buf[..len];
        Ok(answer
            .windows(SYS_NAME.len())
            .any(|w| w == SYS_NAME.as_bytes()))
    };
    attempt().unwrap_or(false)
}
