//! The plugin's async runtime starts no thread and leaves none after
//! `cleanup`: counted in /proc/self/task around real SSH commands.
//!
//! A binary of its own, with one test: tests running in parallel threads
//! would change the count.

use plugin_api::network_automation::{NetworkAutomation, SshCommand};
use plugin_api::{Plugin, TenantConfig};
use plugkit_network_automation::NetworkPlugin;
use plugkit_testkit::sshd::Sshd;
use serde_json::json;

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| tasks.count())
        .unwrap_or(0)
}

#[test]
fn ssh_runtime_starts_no_thread_and_leaves_none_after_cleanup() {
    // The shared sshd's keeper thread exists before the first count.
    let sshd = Sshd::shared().expect("sshd starts");
    let before = threads();

    let plugin = NetworkPlugin::new().expect("plugin builds");
    plugin
        .activate(&TenantConfig::new(
            "isp",
            json!({
                "ssh_private_key_path": sshd.client_key_path(),
                "ssh_known_hosts": [sshd.host_key_pin()],
            }),
        ))
        .expect("valid config");
    let command = SshCommand {
        host: "127.0.0.1".into(),
        port: sshd.port(),
        user: sshd.user().into(),
        command: "echo ok".into(),
        timeout_ms: 20_000,
    };
    for _ in 0..3 {
        let output = plugin
            .ssh_exec("isp", command.clone())
            .expect("command runs");
        assert_eq!(output.stdout.as_slice(), b"ok\n");
    }
    let while_active = threads();

    plugin.cleanup().expect("cleanup succeeds");
    let after = threads();
    eprintln!(
        "threads: before {before}, after 3 SSH commands {while_active}, after cleanup {after}"
    );
    assert_eq!(while_active, before, "the runtime started threads");
    assert_eq!(after, before, "threads left after cleanup");

    // Cleaned up means cleaned up: even for a tenant activated again, no
    // runtime is started.
    plugin
        .activate(&TenantConfig::new(
            "isp",
            json!({
                "ssh_private_key_path": sshd.client_key_path(),
                "ssh_known_hosts": [sshd.host_key_pin()],
            }),
        ))
        .expect("valid config");
    let refused = plugin
        .ssh_exec("isp", command)
        .expect_err("refused after cleanup");
    assert!(refused.to_string().contains("cleaned up"), "{refused}");
    assert_eq!(threads(), before);
}
