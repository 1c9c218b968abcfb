//! Hot reload with real libraries: swaps, rollbacks for every failing step,
//! the watcher (settling, dripping writers, added and removed plugins),
//! callers hammering through 200 reloads, and old versions really unloaded.
//! Tests wait on events with generous limits; none sleeps to wait.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use plugin_host::hot_reload::{LiveEvent, LiveOptions, ReloadOutcome, ReloadStep};
use plugin_host::{Host, LoadOptions};
use plugkit_tests::{artifacts, with_log_capture};

use crate::foundation::new_host;
use crate::resolution::install;

const LIMIT: Duration = Duration::from_secs(60);

fn v1() -> &'static Path {
    artifacts().library("fixture-reload-v1")
}

fn v2() -> &'static Path {
    artifacts().library("fixture-reload-v2")
}

fn config(value: serde_json::Value) -> LoadOptions {
    LoadOptions {
        config_json: Some(value.to_string()),
        ..LoadOptions::default()
    }
}

fn call(host: &Host, method: &str) -> String {
    let reply = host
        .plugin("reloadable")
        .and_then(|p| p.invoke("acme", method, b""))
        .expect("call reloadable");
    String::from_utf8(reply).expect("utf-8")
}

fn started_v1() -> (Host, tempfile::TempDir) {
    let (host, dir) = new_host();
    host.load(v1(), LoadOptions::default()).expect("load v1");
    host.initialize("reloadable").expect("init");
    host.activate("reloadable", "acme", "{}").expect("activate");
    (host, dir)
}

#[test]
fn reload_swaps_in_the_new_version_and_hands_state_over() {
    let (host, _dir) = started_v1();
    assert_eq!(call(&host, "version"), "1.0.0");
    assert_eq!(call(&host, "count"), "1");
    assert_eq!(call(&host, "count"), "2");

    let report = host
        .reload("reloadable", v2(), LoadOptions::default())
        .expect("reload");
    assert!(report.swapped(), "{report:?}");
    assert_eq!(report.from_version, "1.0.0");
    assert_eq!(report.to_version.as_deref(), Some("2.0.0"));
    assert_eq!(call(&host, "version"), "2.0.0");
    assert_eq!(call(&host, "count"), "3", "the counter survived the reload");
    assert_eq!(host.status("reloadable").expect("status").tenants, ["acme"]);
    assert_eq!(host.metrics("reloadable").expect("metrics").reloads, 1);

    let again = host
        .reload("reloadable", v2(), LoadOptions::default())
        .expect("reload");
    assert_eq!(again.outcome, ReloadOutcome::Unchanged);
}

fn truncated_v2(dir: &Path) -> PathBuf {
    let mut bytes = std::fs::read(v2()).expect("read v2");
    bytes.truncate(bytes.len() / 3);
    let path = dir.join("libfixture_reload_v2.so");
    std::fs::write(&path, bytes).expect("write");
    path
}

#[test]
fn every_failing_step_rolls_back_and_v1_keeps_serving() {
    let (host, dir) = started_v1();
    assert_eq!(call(&host, "count"), "1");
    let cases: Vec<(&str, PathBuf, LoadOptions, ReloadStep, &str)> = vec![
        (
            "truncated file",
            truncated_v2(dir.path()),
            LoadOptions::default(),
            ReloadStep::Load,
            "truncated",
        ),
        (
            "ABI mismatch",
            artifacts().library("fixture-wrong-layout").to_owned(),
            LoadOptions::default(),
            ReloadStep::Load,
            "ABI",
        ),
        (
            "initialize error",
            v2().to_owned(),
            config(serde_json::json!({"fail_in": "initialize"})),
            ReloadStep::Initialize,
            "fails in initialize",
        ),
        (
            "initialize panic",
            v2().to_owned(),
            config(serde_json::json!({"panic_in": "initialize"})),
            ReloadStep::Initialize,
            "panics in initialize",
        ),
        (
            "activate error",
            v2().to_owned(),
            config(serde_json::json!({"fail_in": "activate"})),
            ReloadStep::Activate,
            "fails in activate",
        ),
        (
            "activate panic",
            v2().to_owned(),
            config(serde_json::json!({"panic_in": "activate"})),
            ReloadStep::Activate,
            "panics in activate",
        ),
        (
            "failing health probe",
            v2().to_owned(),
            config(serde_json::json!({"health": "unhealthy:database gone"})),
            ReloadStep::Health,
            "database gone",
        ),
        (
            "state restore error",
            v2().to_owned(),
            config(serde_json::json!({"refuse_state": true})),
            ReloadStep::RestoreState,
            "refusing the old state",
        ),
        (
            "missing dependency",
            v2().to_owned(),
            LoadOptions {
                dependencies: vec!["billing".to_owned()],
                ..LoadOptions::default()
            },
            ReloadStep::Dependencies,
            "billing",
        ),
    ];
    let mut expected_count = 1;
    for (what, path, options, step, needle) in cases {
        let report = host.reload("reloadable", &path, options).expect("reload");
        match &report.outcome {
            ReloadOutcome::RolledBack { step: got, error } => {
                assert_eq!(*got, step, "{what}: {error}");
                assert!(error.contains(needle), "{what}: {error}");
                assert!(
                    error.contains("reloadable"),
                    "{what} names the plugin: {error}"
                );
            }
            other => panic!("{what}: expected a rollback, got {other:?}"),
        }
        assert_eq!(call(&host, "version"), "1.0.0", "{what}: v1 still serves");
        expected_count += 1;
        assert_eq!(
            call(&host, "count"),
            expected_count.to_string(),
            "{what}: v1 state untouched"
        );
    }
    assert_eq!(host.metrics("reloadable").expect("metrics").rollbacks, 9);
    // A later good change is picked up.
    let report = host
        .reload("reloadable", v2(), LoadOptions::default())
        .expect("reload");
    assert!(report.swapped(), "{report:?}");
    assert_eq!(call(&host, "version"), "2.0.0");
}

#[test]
fn callers_hammering_from_four_threads_see_no_errors_through_200_reloads() {
    let (host, _dir) = started_v1();
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let (host, stop, ok, errors) = (host.clone(), stop.clone(), ok.clone(), errors.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match host
                        .plugin("reloadable")
                        .and_then(|p| p.invoke("acme", "count", b""))
                    {
                        Ok(_) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => errors.lock().push(e.to_string()),
                    }
                }
            })
        })
        .collect();
    for i in 0..200 {
        let next = if i % 2 == 0 { v2() } else { v1() };
        let report = host
            .reload("reloadable", next, LoadOptions::default())
            .expect("reload");
        assert!(report.swapped(), "reload {i}: {report:?}");
    }
    stop.store(true, Ordering::Relaxed);
    for caller in callers {
        caller.join().expect("caller thread");
    }
    let errors = errors.lock();
    assert!(
        errors.is_empty(),
        "{} errors, first: {:?}",
        errors.len(),
        errors.first()
    );
    let calls = ok.load(Ordering::Relaxed);
    assert!(calls > 0);
    // Every increment survived 200 state hand-overs.
    assert_eq!(call(&host, "count"), (calls + 1).to_string());
    assert_eq!(host.metrics("reloadable").expect("metrics").reloads, 200);
}

#[test]
fn old_versions_are_unloaded_from_the_process() {
    let (host, _dir) = started_v1();
    for i in 0..20 {
        let next = if i % 2 == 0 { v2() } else { v1() };
        assert!(host
            .reload("reloadable", next, LoadOptions::default())
            .expect("reload")
            .swapped());
    }
    let maps = std::fs::read_to_string("/proc/self/maps").expect("maps");
    let runtime = host.status("reloadable").expect("status").loaded_copy;
    let dir = runtime.parent().expect("runtime dir").display().to_string();
    let mapped: std::collections::BTreeSet<&str> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.starts_with(&dir) && p.contains("reloadable-"))
        .collect();
    assert_eq!(
        mapped.len(),
        1,
        "only the serving copy stays mapped: {mapped:?}"
    );
    let stats = host.unload_stats();
    assert!(stats.pinned.is_empty(), "{:?}", stats.pinned);
    assert!(stats.unloaded >= 20, "{stats:?}");
}

#[test]
fn dependents_are_cycled_in_order_around_a_reload() {
    with_log_capture(|log| {
        let (host, _dir) = started_v1();
        for (package, id, deps) in [
            ("fixture-dep-a", "dep-a", vec!["reloadable"]),
            ("fixture-dep-b", "dep-b", vec!["dep-a"]),
        ] {
            let options = LoadOptions {
                dependencies: deps.into_iter().map(str::to_owned).collect(),
                ..LoadOptions::default()
            };
            host.load(artifacts().library(package), options)
                .expect("load");
            host.initialize(id).expect("init");
            host.activate(id, "acme", "{}").expect("activate");
        }
        let report = host
            .reload("reloadable", v2(), LoadOptions::default())
            .expect("reload");
        assert!(report.swapped(), "{report:?}");
        assert_eq!(report.dependents_cycled, ["dep-a", "dep-b"]);
        let steps: Vec<String> = log
            .lines()
            .iter()
            .filter_map(|l| {
                let at = l.find("lifecycle ")?;
                let words: Vec<&str> = l[at..].split_whitespace().take(3).collect();
                (words.len() == 3 && words[1] != "step" && words[2] != "initialize")
                    .then(|| format!("{} {}", words[2], words[1]))
            })
            .collect();
        let after_setup = steps
            .iter()
            .position(|s| s == "deactivate dep-b")
            .unwrap_or_else(|| panic!("dep-b deactivated: {steps:?}"));
        assert_eq!(
            &steps[after_setup..],
            [
                "deactivate dep-b",
                "deactivate dep-a",
                "activate reloadable",
                "deactivate reloadable",
                "cleanup reloadable",
                "activate dep-a",
                "activate dep-b",
            ]
        );
        assert_eq!(host.status("dep-b").expect("status").tenants, ["acme"]);
    });
}

fn manifest_lines(version: &str) -> String {
    format!("# reloadable {version}\n")
}

/// Installs the reloadable plugin's library `lib` in `dir/reloadable`.
fn install_reloadable(dir: &Path, lib: &Path, version: &str) -> PathBuf {
    let folder = dir.join("reloadable");
    std::fs::create_dir_all(&folder).expect("mkdir");
    std::fs::copy(lib, folder.join("libreloadable.so")).expect("copy");
    let manifest = format!(
        "id = \"reloadable\"\nname = \"reloadable\"\nversion = \"{version}\"\ndescription = \"reload fixture\"\n\
         authors = [\"plugkit tests\"]\nlicense = \"MIT\"\ncategory = \"custom\"\napi = \"^0.2\"\n\
         library = \"libreloadable.so\"\n{}",
        manifest_lines(version)
    );
    std::fs::write(folder.join("plugin.toml"), manifest).expect("manifest");
    folder
}

fn watched(host: &Host, dir: &Path) -> plugin_host::hot_reload::LiveReload {
    let mut options = LiveOptions::new(vec![dir.to_owned()]);
    options.on_started = Some(Arc::new(|host: &Host, id: &str| {
        let _ = host.activate(id, "acme", "{}");
    }));
    host.watch(options).expect("watch")
}

#[test]
fn the_watcher_picks_up_a_new_version() {
    let (host, dir) = new_host();
    let plugins = dir.path().join("plugins");
    install_reloadable(&plugins, v1(), "1.0.0");
    let report = host.start_installed(std::slice::from_ref(&plugins));
    assert_eq!(report.started, ["reloadable"]);
    host.activate("reloadable", "acme", "{}").expect("activate");
    let live = watched(&host, &plugins);

    install_reloadable(&plugins, v2(), "2.0.0");
    let event = live
        .wait_for(LIMIT, |e| matches!(e, LiveEvent::Reloaded(_)))
        .expect("a reload event");
    let LiveEvent::Reloaded(report) = event else {
        unreachable!("filtered above")
    };
    assert!(report.swapped(), "{report:?}");
    assert_eq!(call(&host, "version"), "2.0.0");
}

#[test]
fn a_library_dripping_in_four_kib_chunks_is_never_loaded_partially() {
    let (host, dir) = new_host();
    let plugins = dir.path().join("plugins");
    let folder = install_reloadable(&plugins, v1(), "1.0.0");
    host.start_installed(std::slice::from_ref(&plugins));
    host.activate("reloadable", "acme", "{}").expect("activate");
    let live = watched(&host, &plugins);

    let bytes = std::fs::read(v2()).expect("read v2");
    let target = folder.join("libreloadable.so");
    let mut file = std::fs::File::create(&target).expect("truncate in place");
    let (_never_tx, never) = std::sync::mpsc::channel::<()>();
    for (i, chunk) in bytes.chunks(4096).enumerate() {
        use std::io::Write;
        file.write_all(chunk).expect("write chunk");
        file.sync_data().expect("sync");
        // Now and then stay quiet longer than the debounce window, so the
        // watcher sees a partial file that is not changing.
        if i % 256 == 255 {
            let _ = never.recv_timeout(Duration::from_millis(400));
        }
    }
    drop(file);
    // The complete 2.0.0 library under the 1.0.0 manifest may be seen (and
    // refused: start-up refuses such a folder) before the manifest follows.
    let manifest = folder.join("plugin.toml");
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    std::fs::write(&manifest, text.replace("1.0.0", "2.0.0")).expect("manifest 2.0.0");
    let mut refused = 0;
    loop {
        let event = live
            .wait_for(LIMIT, |e| matches!(e, LiveEvent::Reloaded(_)))
            .expect("a reload event");
        let LiveEvent::Reloaded(report) = event else {
            unreachable!("filtered above")
        };
        if report.swapped() {
            break;
        }
        // Only the complete file, and only for its version, may be refused.
        match &report.outcome {
            ReloadOutcome::RolledBack {
                step: ReloadStep::Validate,
                error,
            } if error.contains("was built as `reloadable` 2.0.0") => {
                refused += 1;
            }
            _ => panic!("the first load is of the complete file: {report:?}"),
        }
    }
    assert_eq!(call(&host, "version"), "2.0.0");
    assert_eq!(
        host.metrics("reloadable").expect("metrics").rollbacks,
        refused
    );
}

#[test]
fn plugins_start_when_their_dependency_appears_and_stop_when_it_goes() {
    let (host, dir) = new_host();
    let plugins = dir.path().join("plugins");
    install(
        &plugins,
        "dep-b",
        "dep-b",
        "fixture-dep-b",
        "[dependencies]\ndep-a = \"^0.1\"",
    );
    let report = host.start_installed(std::slice::from_ref(&plugins));
    assert!(report.started.is_empty(), "dep-b waits for dep-a");
    let live = watched(&host, &plugins);

    install(&plugins, "dep-a", "dep-a", "fixture-dep-a", "");
    let mut started = Vec::new();
    while started.len() < 2 {
        match live.wait_for(LIMIT, |e| matches!(e, LiveEvent::Started { .. })) {
            Some(LiveEvent::Started { plugin, .. }) => started.push(plugin),
            other => panic!("expected two starts, got {other:?} after {started:?}"),
        }
    }
    assert_eq!(started, ["dep-a", "dep-b"]);
    assert_eq!(host.status("dep-b").expect("status").tenants, ["acme"]);

    std::fs::remove_dir_all(plugins.join("dep-a")).expect("remove dep-a");
    match live.wait_for(LIMIT, |e| matches!(e, LiveEvent::Stopped { .. })) {
        Some(LiveEvent::Stopped { plugin, dependents }) => {
            assert_eq!(plugin, "dep-a");
            assert_eq!(dependents, ["dep-b"]);
        }
        other => panic!("expected a stop, got {other:?}"),
    }
    assert!(host.plugin_ids().is_empty());
}
