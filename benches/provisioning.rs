//! Provisioning: time from a refresh to the new version serving, split
//! into pull (catalog and blobs from a real docker-registry on loopback),
//! verify (digests, the host's signature check), install (package folder,
//! symlink, lock) and swap (the host's hot reload, or load + initialize for
//! a first install). Two cases: one plugin (`reloadable` 1.0.0 ⇄ 2.0.0, a
//! real library swap each time) and the three reference plugins installed
//! fresh. Baseline: reading the same bytes from the local disk, so the pull
//! column says how much HTTP costs above a file read. Timed by hand (each
//! iteration maps libraries); p50 and p99 over the iterations.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use plugin_host::package::signature::TrustPolicy;
use plugin_host::{Host, HostConfig, LoadOptions};
use plugkit_bench::library;
use plugkit_registry::lockfile::Lock;
use plugkit_registry::provision::{fetch, lock_path, Action, Options, Report};
use plugkit_registry::{RegistryConfig, Remote};
use plugkit_testkit::process::workspace_root;
use plugkit_testkit::registry::Registry;
use plugkit_tests::oci::{catalog, reloadable_manifest, Operator};

const REFERENCE: [(&str, &str, &str); 3] = [
    ("twilio", "plugkit-twilio", "plugins/twilio"),
    ("stripe", "plugkit-stripe", "plugins/stripe"),
    (
        "network-automation",
        "plugkit-network-automation",
        "plugins/network-automation",
    ),
];

#[derive(Default)]
struct Phases {
    pull: Vec<f64>,
    verify: Vec<f64>,
    install: Vec<f64>,
    swap: Vec<f64>,
    total: Vec<f64>,
    disk: Vec<f64>,
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

impl Phases {
    fn print(&mut self, title: &str) {
        println!("{title} ({} refreshes)", self.total.len());
        println!("  {:<34} {:>9} {:>9}", "phase", "p50 ms", "p99 ms");
        for (name, v) in [
            ("pull (catalog + blobs, loopback)", &mut self.pull),
            ("verify (digest + signature)", &mut self.verify),
            ("install (folder, link, lock)", &mut self.install),
            ("swap (hot reload / load + init)", &mut self.swap),
            ("total: refresh -> serving", &mut self.total),
            ("baseline: same bytes from disk", &mut self.disk),
        ] {
            println!("  {name:<34} {:>9.2} {:>9.2}", pct(v, 0.5), pct(v, 0.99));
        }
        let pull = pct(&mut self.pull, 0.5);
        let total = pct(&mut self.total, 0.5);
        let disk = pct(&mut self.disk, 0.5);
        println!(
            "  pull is {:.0}% of the total, {:.1}x a disk read of the same bytes\n",
            100.0 * pull / total,
            pull / disk.max(1e-6)
        );
    }

    fn add(&mut self, report: &Report, lock_ms: f64, swap_ms: f64, total_ms: f64, disk_ms: f64) {
        let sum = |f: fn(&plugkit_registry::provision::PluginOutcome) -> f64| -> f64 {
            report.plugins.iter().map(f).sum()
        };
        // The plugins are pulled at once: their wall time, not the sum of each.
        self.pull.push(report.catalog_ms + report.pulls_ms);
        self.verify.push(sum(|p| p.verify_ms));
        self.install.push(sum(|p| p.install_ms) + lock_ms);
        self.swap.push(swap_ms);
        self.total.push(total_ms);
        self.disk.push(disk_ms);
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Reads the files of `folders` (the bytes a pull carries) from disk.
fn disk_read(dir: &Path, folders: &[String]) -> f64 {
    let started = Instant::now();
    let mut bytes = 0;
    for folder in folders {
        for entry in std::fs::read_dir(dir.join(folder))
            .expect("folder")
            .flatten()
        {
            bytes += std::fs::read(entry.path()).expect("read").len();
        }
    }
    std::hint::black_box(bytes);
    ms(started.elapsed())
}

fn options(registry: &Registry, dir: &Path, operator: &Operator) -> Options {
    Options {
        registry: RegistryConfig {
            url: registry.url(),
            credentials: None,
        },
        tier: "pro".to_owned(),
        plugin_dir: dir.join("plugins"),
        accepted_file: dir.join("accepted.json"),
        trusted_keys: vec![operator.public_line()],
    }
}

fn host(dir: &Path, operator: &Operator) -> Host {
    let config = HostConfig::with_runtime_dir(dir).trust(TrustPolicy::Require {
        trusted_keys: vec![operator.public_line()],
    });
    Host::new(config).expect("host")
}

/// One refresh with `fetch`, then the lock write; returns (report, lock ms, fetch+lock ms).
fn refresh(options: &Options) -> (Report, Lock, f64, f64) {
    let started = Instant::now();
    let path = lock_path(&options.plugin_dir);
    let previous = Lock::read(&path).expect("lock");
    let (report, lock) = fetch(options, &previous, &mut |_| {}).expect("fetch");
    let lock_started = Instant::now();
    lock.write(&path).expect("write lock");
    let lock_ms = ms(lock_started.elapsed());
    (report, lock, lock_ms, ms(started.elapsed()))
}

fn one_plugin(registry: &Registry, remote: &Remote, operator: &Operator, rounds: usize) -> Phases {
    let dir = tempfile::tempdir().expect("dir");
    let bytes = |p: &str| std::fs::read(library(p)).expect("library");
    let v1 = operator.publish(
        remote,
        &reloadable_manifest("1.0.0"),
        &bytes("fixture-reload-v1"),
    );
    let v2 = operator.publish(
        remote,
        &reloadable_manifest("2.0.0"),
        &bytes("fixture-reload-v2"),
    );
    let options = options(registry, dir.path(), operator);
    let host = host(&dir.path().join("rt"), operator);
    operator.publish_catalog(
        remote,
        &catalog(1, &[("pro", &[("reloadable", "1.0.0", &v1)])]),
    );
    refresh(&options);
    let link: PathBuf = options.plugin_dir.join("reloadable");
    host.load(&link.join("libreloadable.so"), LoadOptions::default())
        .expect("load");
    host.initialize("reloadable").expect("init");
    host.activate("reloadable", "acme", "{}").expect("activate");
    let mut phases = Phases::default();
    for round in 0..rounds {
        let (version, digest) = if round % 2 == 0 {
            ("2.0.0", &v2)
        } else {
            ("1.0.0", &v1)
        };
        operator.publish_catalog(
            remote,
            &catalog(
                2 + round as u64,
                &[("pro", &[("reloadable", version, digest)])],
            ),
        );
        // Each round pulls: the kept package folders are removed first.
        let _ = std::fs::remove_dir_all(options.plugin_dir.join(".oci"));
        let started = Instant::now();
        let (report, lock, lock_ms, _) = refresh(&options);
        let swap = Instant::now();
        let reload = host.reload_installed("reloadable", &link).expect("reload");
        let swap_ms = ms(swap.elapsed());
        let total_ms = ms(started.elapsed());
        assert!(reload.swapped(), "{reload:?}");
        assert_eq!(report.plugins[0].action, Action::Installed);
        let folders: Vec<String> = lock.plugins.values().map(|e| e.folder.clone()).collect();
        let disk_ms = disk_read(&options.plugin_dir, &folders);
        phases.add(&report, lock_ms, swap_ms, total_ms, disk_ms);
    }
    host.stop_all();
    phases
}

fn reference(registry: &Registry, remote: &Remote, operator: &Operator, rounds: usize) -> Phases {
    let mut entries = Vec::new();
    for (id, package, folder) in REFERENCE {
        let manifest = std::fs::read_to_string(workspace_root().join(folder).join("plugin.toml"))
            .expect("manifest");
        let digest = operator.publish(
            remote,
            &manifest,
            &std::fs::read(library(package)).expect("lib"),
        );
        let version = manifest
            .lines()
            .find_map(|l| l.strip_prefix("version = \""))
            .map(|v| v.trim_end_matches('"').to_owned())
            .expect("version");
        entries.push((id, version, digest));
    }
    let listed: Vec<(&str, &str, &str)> = entries
        .iter()
        .map(|(i, v, d)| (*i, v.as_str(), d.as_str()))
        .collect();
    let mut phases = Phases::default();
    for round in 0..rounds {
        operator.publish_catalog(remote, &catalog(100 + round as u64, &[("pro", &listed)]));
        let dir = tempfile::tempdir().expect("dir");
        let options = options(registry, dir.path(), operator);
        let host = host(&dir.path().join("rt"), operator);
        let started = Instant::now();
        let (report, lock, lock_ms, _) = refresh(&options);
        let swap = Instant::now();
        let started_report = host.start_installed(std::slice::from_ref(&options.plugin_dir));
        let swap_ms = ms(swap.elapsed());
        let total_ms = ms(started.elapsed());
        assert_eq!(
            started_report.started.len(),
            3,
            "{:?}",
            started_report.problems()
        );
        let folders: Vec<String> = lock.plugins.values().map(|e| e.folder.clone()).collect();
        let disk_ms = disk_read(&options.plugin_dir, &folders);
        phases.add(&report, lock_ms, swap_ms, total_ms, disk_ms);
        host.stop_all();
    }
    phases
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let registry =
        Registry::start().expect("docker-registry (tests/peers/install-docker-registry.sh)");
    let remote = Remote::new(&RegistryConfig {
        url: registry.url(),
        credentials: None,
    })
    .expect("remote");
    let operator = Operator::new();
    one_plugin(&registry, &remote, &operator, 40)
        .print("provisioning, one plugin: refresh -> reloadable 1.0.0 <-> 2.0.0 serving");
    reference(&registry, &remote, &operator, 10).print(
        "provisioning, three reference plugins: refresh -> all three serving (fresh install)",
    );
}
