//! The network-automation category: SNMP queries, commands over SSH, and
//! Ansible playbooks, each with structured results.

#![allow(
    non_local_definitions,
    reason = "abi_stable's sabi_trait expands impl blocks inside const items"
)]
#![allow(
    non_camel_case_types,
    reason = "abi_stable's sabi_trait generates `Abi_TO` and `Abi_CTO` names"
)]

use abi_stable::std_types::{ROption, RString, RVec};
use abi_stable::StableAbi;
use serde::{Deserialize, Serialize};


/// SNMP protocol version.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnmpVersion {
    /// Community-based v2c.
    V2c,
    /// User-based v3 (authPriv).
    V3,
}

/// v3 user-based security credentials.
#[repr(C)]
#[derive(StableAbi, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnmpUser {
    /// The user name.
    pub user: RString,
    /// Authentication protocol: `SHA`, `SHA-256`, `MD5`.
    pub auth_protocol: RString,
    /// Authentication pass phrase.
    pub auth_password: RString,
    /// Privacy protocol: `AES`, `DES`.
    pub priv_protocol: RString,
    /// Privacy pass phrase.
    pub priv_password: RString,
}

impl std::fmt::Debug for SnmpUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnmpUser")
            .field("user", &self.user)
            .field("auth_protocol", &self.auth_protocol)
            .field("priv_protocol", &self.priv_protocol)
            .finish_non_exhaustive()
    }
}

/// A device to query.
#[repr(C)]
#[derive(StableAbi, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnmpTarget {
    /// `host:port`, e.g. `127.0.0.1:161`.
    pub address: RString,
    /// Protocol version.
    pub version: SnmpVersion,
    /// v2c community; the tenant's configured one when absent.
    pub community: ROption<RString>,
    /// v3 credentials; the tenant's configured ones when absent.
    pub user: ROption<SnmpUser>,
    /// Per-request timeout in milliseconds (0: the plugin's default).
    pub timeout_ms: u32,
    /// Retries after a timeout.
    pub retries: u32,
}

impl std::fmt::Debug for SnmpTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnmpTarget")
            .field("address", &self.address)
            .field("version", &self.version)
            .field("user", &self.user)
            .field("timeout_ms", &self.timeout_ms)
            .field("retries", &self.retries)
            .finish_non_exhaustive()
    }
}

/// Which SNMP operation to run.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnmpOperation {
    /// GET each OID.
    Get,
    /// GETNEXT each OID.
    GetNext,
    /// GETBULK.
    GetBulk {
        /// Leading OIDs fetched once.
        non_repeaters: u32,
        /// Rows per repeating OID.
        max_repetitions: u32,
    },
    /// Everything under the first OID, built on GETBULK.
    Walk,
}

/// An SNMP request.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnmpRequest {
    /// The device.
    pub target: SnmpTarget,
    /// The operation.
    pub operation: SnmpOperation,
    /// Dotted OIDs, e.g. `1.3.6.1.2.1.1.1.0`.
    pub oids: RVec<RString>,
}

/// An SNMP value.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum SnmpValue {
    /// INTEGER.
    Integer(i64),
    /// OCTET STRING.
    OctetString(RVec<u8>),
    /// OBJECT IDENTIFIER.
    ObjectId(RString),
    /// IpAddress.
    IpAddress(RString),
    /// Counter32.
    Counter32(u32),
    /// Gauge32 / Unsigned32.
    Gauge32(u32),
    /// TimeTicks (hundredths of a second).
    TimeTicks(u32),
    /// Counter64.
    Counter64(u64),
    /// Opaque.
    Opaque(RVec<u8>),
    /// NULL.
    Null,
    /// noSuchObject.
    NoSuchObject,
    /// noSuchInstance.
    NoSuchInstance,
    /// endOfMibView.
    EndOfMibView,
}

/// One OID and its value.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VarBind {
    /// Dotted OID.
    pub oid: RString,
    /// The value.
    pub value: SnmpValue,
}

/// A command to run on a device over SSH.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshCommand {
    /// Host name or address.
    pub host: RString,
    /// Port (22 usually).
    pub port: u16,
    /// Login user.
    pub user: RString,
    /// The command line.
    pub command: RString,
    /// Timeout in milliseconds (0: the plugin's default).
    pub timeout_ms: u32,
}

/// What an SSH command produced. A command ends in one of three ways,
/// told apart by the last two fields: with an exit status, killed by a
/// signal (`exit_signal`), or with neither when the server sent no status.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshOutput {
    /// Standard output: the bytes the device sent, which need not be UTF-8.
    pub stdout: RVec<u8>,
    /// Standard error: the bytes the device sent.
    pub stderr: RVec<u8>,
    /// Exit status, when the remote side sent one.
    pub exit_status: ROption<u32>,
    /// The signal that ended the command, when the remote side sent one.
    pub exit_signal: ROption<SshExitSignal>,
}

/// A signal that ended a remote command (RFC 4254 §6.10 `exit-signal`).
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshExitSignal {
    /// The signal's name without `SIG`, as the server sent it: `KILL`, `SEGV`.
    pub name: RString,
    /// Whether the process dumped core.
    pub core_dumped: bool,
    /// The server's explanation, often empty.
    pub message: RString,
}

/// A playbook to run.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaybookRun {
    /// Path to the playbook file.
    pub playbook: RString,
    /// Inventory, as INI text.
    pub inventory: RString,
    /// Extra variables, a JSON object.
    pub extra_vars_json: RString,
    /// Limit to these hosts (Ansible pattern).
    pub limit: ROption<RString>,
    /// Timeout in milliseconds (0: the plugin's default).
    pub timeout_ms: u32,
}

/// How a task ended on one host.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Ran, nothing changed.
    Ok,
    /// Ran and changed something.
    Changed,
    /// Failed.
    Failed,
    /// Host unreachable.
    Unreachable,
    /// Skipped.
    Skipped,
}

/// One task on one host.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskResult {
    /// The host.
    pub host: RString,
    /// The task name.
    pub task: RString,
    /// How it ended.
    pub status: TaskStatus,
    /// The module's message or output, when any.
    pub message: RString,
}

/// The recap for one host.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRecap {
    /// The host.
    pub host: RString,
    /// Tasks ok.
    pub ok: u32,
    /// Tasks that changed something.
    pub changed: u32,
    /// Tasks failed.
    pub failed: u32,
    /// Unreachable count.
    pub unreachable: u32,
    /// Tasks skipped.
    pub skipped: u32,
}

/// What a playbook run did.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaybookReport {
    /// True when every host finished without failures or unreachability.
    pub success: bool,
    /// Per-task results in the order they ran.
    pub tasks: RVec<TaskResult>,
    /// Per-host recap.
    pub hosts: RVec<HostRecap>,
}

crate::category::declare_category! {
    /// What a network-automation plugin implements, in plain Rust.
    category "network-automation", trait NetworkAutomation, handle network_automation;
    /// Runs an SNMP operation; one variable binding per OID asked or walked.
    fn snmp(request: SnmpRequest) -> RVec<VarBind>;
    /// Runs a command over SSH.
    fn ssh_exec(command: SshCommand) -> SshOutput;
    /// Runs an Ansible playbook.
    fn run_playbook(run: PlaybookRun) -> PlaybookReport;
}
