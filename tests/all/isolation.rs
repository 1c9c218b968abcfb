//! Process isolation end to end: the hostile fixture, in a sandboxed child
//! process, crashes, hangs, escapes and scribbles; each case gets its own
//! error while an in-process plugin and another isolated plugin in the same
//! host keep serving. Issue 13.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use plugin_host::{
    Host, HostConfig, HostError, Isolation, LoadOptions, Permission, PluginState, ProcessOptions,
};
use plugkit_tests::{artifacts, with_log_capture};
use tempfile::TempDir;

const TENANT: &str = "acme";

struct World {
    _dir: TempDir,
    host: Host,
}

fn host() -> World {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = HostConfig::with_runtime_dir(dir.path().join("run"));
    config.runner = Some(artifacts().runner().to_owned());
    let host = Host::new(config).expect("host");
    World { _dir: dir, host }
}

fn process_options() -> ProcessOptions {
    ProcessOptions {
        call_deadline: Duration::from_secs(2),
        lifecycle_deadline: Duration::from_secs(10),
        ..ProcessOptions::default()
    }
}

fn start(
    host: &Host,
    package: &str,
    isolation: Isolation,
    permissions: &[Permission],
    process: ProcessOptions,
    config_json: &str,
) -> String {
    let options = LoadOptions {
        isolation,
        process,
        permissions: permissions.iter().copied().collect::<BTreeSet<_>>(),
        config_json: Some(config_json.to_owned()),
        ..LoadOptions::default()
    };
    let id = host
        .load(artifacts().library(package), options)
        .unwrap_or_else(|e| panic!("loading {package}: {e}"));
    host.initialize(&id).expect("initialize");
    host.activate(&id, TENANT, "{}").expect("activate");
    id
}

/// A host with the hostile plugin isolated, tenant-echo in-process and a
/// second isolated tenant-echo... (the same library cannot load twice, so
/// the bystander in a child is the recording fixture `good`).
struct Bystanders {
    world: World,
    hostile: String,
}

fn with_bystanders(process: ProcessOptions, hostile_config: &str) -> Bystanders {
    let world = host();
    start(
        &world.host,
        "fixture-tenant-echo",
        Isolation::InProcess,
        &[],
        ProcessOptions::default(),
        "{}",
    );
    start(
        &world.host,
        "fixture-misbehaving",
        Isolation::Process,
        &[],
        process_options(),
        "{}",
    );
    let hostile = start(
        &world.host,
        "fixture-hostile",
        Isolation::Process,
        &[],
        process,
        hostile_config,
    );
    Bystanders { world, hostile }
}

impl Bystanders {
    fn call(&self, method: &str, payload: &[u8]) -> Result<Vec<u8>, HostError> {
        self.world
            .host
            .plugin(&self.hostile)
            .expect("handle")
            .invoke(TENANT, method, payload)
    }

    /// The other two plugins still answer, and the hostile one serves again.
    fn assert_everyone_serves(&self) {
        let host = &self.world.host;
        let echo = host.plugin("tenant-echo").expect("tenant-echo");
        echo.invoke(TENANT, "tenants", b"")
            .expect("in-process plugin serves");
        let other = host.plugin("misbehaving").expect("misbehaving");
        assert!(other.health().status == plugin_api::HealthStatus::Healthy);
        let back = self
            .call("echo", b"again")
            .expect("hostile serves again after restart");
        assert_eq!(back, b"again");
    }
}

#[test]
fn isolated_plugin_serves_calls_and_host_services() {
    let b = with_bystanders(process_options(), "{}");
    assert_eq!(b.call("echo", b"hello").unwrap(), b"hello");
    // `store` goes back to the host's state store: refused without the permission.
    let err = b.call("store", b"x").unwrap_err();
    assert!(err.to_string().contains("storage:write"), "{err}");
    let status = b.world.host.isolation_status("hostile").expect("isolated");
    assert!(status.pid.is_some() && status.serving, "{status:?}");
    assert!(
        status
            .sandbox
            .iter()
            .any(|l| l.starts_with("seccomp: denies")),
        "{:?}",
        status.sandbox
    );
    assert!(b.world.host.isolation_status("tenant-echo").is_none());
}

#[test]
fn null_pointer_write_is_a_crash_of_the_plugin_only() {
    let b = with_bystanders(process_options(), "{}");
    let err = b.call("segv", b"").unwrap_err();
    match &err {
        HostError::ChildCrashed {
            plugin,
            tenant,
            signal_name,
            last_log,
            ..
        } => {
            assert_eq!(plugin, "hostile");
            assert_eq!(tenant, TENANT);
            assert_eq!(signal_name, "SIGSEGV");
            assert!(last_log.contains("hostile: about to segv"), "{last_log}");
        }
        other => panic!("expected ChildCrashed, got {other}"),
    }
    b.assert_everyone_serves();
}
