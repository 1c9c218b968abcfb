//! SSH commands against a real OpenSSH `sshd`: output and exit status,
//! public-key login (file and inline key), and host-key pinning.

use plugin_api::network_automation::{NetworkAutomation, SshCommand};
use plugkit_network_automation::NetworkPlugin;
use plugkit_testkit::sshd::{generate_ed25519, Sshd};
use serde_json::json;

use crate::{plugin_with, provider_error};

fn sshd() -> &'static Sshd {
    Sshd::shared().expect("sshd starts")
}

fn command(line: &str) -> SshCommand {
    SshCommand {
        host: "127.0.0.1".into(),
        port: sshd().port(),
        user: sshd().user().into(),
        command: line.into(),
        timeout_ms: 20_000,
    }
}

/// A tenant that trusts the test server's host key and logs in with its user key.
fn pinned_plugin() -> NetworkPlugin {
    plugin_with(
        "isp",
        json!({
            "ssh_private_key_path": sshd().client_key_path(),
            "ssh_known_hosts": [sshd().host_key_pin()],
        }),
    )
}

#[test]
fn exec_returns_stdout_stderr_and_exit_status() {
    let output = pinned_plugin()
        .ssh_exec("isp", command("echo hi; echo err >&2; exit 3"))
        .unwrap_or_else(|e| panic!("{e}\nsshd log:\n{}", sshd().log()));
    assert_eq!(output.stdout.as_str(), "hi\n");
    assert_eq!(output.stderr.as_str(), "err\n");
    assert_eq!(output.exit_status.into_option(), Some(3));
}

#[test]
fn exec_uses_the_tenant_user_and_an_inline_key() {
    let key = std::fs::read_to_string(sshd().client_key_path()).expect("key readable");
    let plugin = plugin_with(
        "isp",
        json!({
            "ssh_user": sshd().user(),
            "ssh_private_key": key,
            "ssh_known_hosts": ["# the test server", sshd().host_key_pin()],
        }),
    );
    let mut cmd = command("id -un");
    cmd.user = "".into();
    let output = plugin.ssh_exec("isp", cmd).expect("command runs");
    assert_eq!(output.stdout.as_str().trim(), sshd().user());
    assert_eq!(output.exit_status.into_option(), Some(0));
}

#[test]
fn unknown_host_key_is_refused_naming_host_and_fingerprint() {
    let plugin = plugin_with(
        "isp",
        json!({ "ssh_private_key_path": sshd().client_key_path() }),
    );
    let (code, message) = provider_error(plugin.ssh_exec("isp", command("true")));
    assert_eq!(code, "ssh_host_key_unknown");
    assert!(
        message.contains(&format!("127.0.0.1:{}", sshd().port())),
        "{message}"
    );
    let fingerprint = sshd().host_key_fingerprint().expect("fingerprint");
    assert!(
        message.contains(&fingerprint),
        "{message} lacks {fingerprint}"
    );
}

#[test]
fn changed_host_key_is_refused_naming_host_and_fingerprint() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_, other_key) = generate_ed25519(dir.path(), "impostor").expect("ssh-keygen");
    let plugin = plugin_with(
        "isp",
        json!({
            "ssh_private_key_path": sshd().client_key_path(),
            "ssh_known_hosts": [format!("127.0.0.1:{} {other_key}", sshd().port())],
        }),
    );
    let (code, message) = provider_error(plugin.ssh_exec("isp", command("true")));
    assert_eq!(code, "ssh_host_key_changed");
    assert!(
        message.contains(&format!("127.0.0.1:{}", sshd().port())),
        "{message}"
    );
    let fingerprint = sshd().host_key_fingerprint().expect("fingerprint");
    assert!(
        message.contains(&fingerprint),
        "{message} lacks {fingerprint}"
    );
}

#[test]
fn a_pin_for_another_port_does_not_vouch_for_this_one() {
    let plugin = plugin_with(
        "isp",
        json!({
            "ssh_private_key_path": sshd().client_key_path(),
            "ssh_known_hosts": [format!("127.0.0.1:1 {}", sshd().host_public_key())],
        }),
    );
    let (code, _) = provider_error(plugin.ssh_exec("isp", command("true")));
    assert_eq!(code, "ssh_host_key_unknown");
}

#[test]
fn key_missing_from_authorized_keys_is_an_auth_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (stranger, _) = generate_ed25519(dir.path(), "stranger").expect("ssh-keygen");
    let plugin = plugin_with(
        "isp",
        json!({
            "ssh_private_key_path": stranger,
            "ssh_known_hosts": [sshd().host_key_pin()],
        }),
    );
    let (code, message) = provider_error(plugin.ssh_exec("isp", command("true")));
    assert_eq!(code, "ssh_auth_failed", "{message}");
    assert!(message.contains("SHA256:"), "{message}");
}

#[test]
fn command_outliving_its_timeout_is_a_timeout_error() {
    // The plugin asks the server to kill the command (an RFC 4254 "signal"
    // request), but OpenSSH refuses signals for this root session
    // ("session signalling requires privilege separation"), so only the
    // error is checked; the sleep ends by itself.
    let mut cmd = command("sleep 5");
    cmd.timeout_ms = 1_000;
    let (code, message) = provider_error(pinned_plugin().ssh_exec("isp", cmd));
    assert_eq!(code, "ssh_timeout");
    assert!(message.contains("running"), "{message}");
}
