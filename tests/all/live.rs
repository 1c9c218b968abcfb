//! Live reload (issue 14): a watched folder goes through the checks start-up
//! makes, a change to `plugin.toml` alone is applied or refused with a
//! reason, and the watcher survives its directory being deleted, renamed
//! over or swapped through a symlink. Real fixture libraries throughout;
//! tests wait on events with generous limits and never sleep to wait.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use plugin_api::HealthStatus;
use plugin_host::hot_reload::{
    LiveEvent, LiveOptions, LiveReload, ReloadOutcome, ReloadReport, ReloadStep,
};
use plugin_host::Host;
use plugkit_tests::artifacts;

use crate::foundation::new_host;
use crate::resolution::install;

const LIMIT: Duration = Duration::from_secs(60);

fn v1() -> &'static Path {
    artifacts().library("fixture-reload-v1")
}

fn v2() -> &'static Path {
    artifacts().library("fixture-reload-v2")
}

/// Installs `lib` as plugin `reloadable` in `dir/reloadable`, its manifest
/// saying `version` and holding `extra` (top-level keys, then tables).
fn install_reloadable(dir: &Path, lib: &Path, version: &str, extra: &str) -> PathBuf {
    let folder = dir.join("reloadable");
    std::fs::create_dir_all(&folder).expect("mkdir");
    std::fs::copy(lib, folder.join("libreloadable.so")).expect("copy");
    write_manifest(&folder, version, extra);
    folder
}

fn write_manifest(folder: &Path, version: &str, extra: &str) {
    let manifest = format!(
        "id = \"reloadable\"\nname = \"reloadable\"\nversion = \"{version}\"\n\
         description = \"reload fixture\"\nauthors = [\"plugkit tests\"]\nlicense = \"MIT\"\n\
         category = \"custom\"\napi = \"^0.2\"\nlibrary = \"libreloadable.so\"\n{extra}\n"
    );
    std::fs::write(folder.join("plugin.toml"), manifest).expect("manifest");
}

fn call(host: &Host, method: &str) -> Result<String, String> {
    host.plugin("reloadable")
        .and_then(|p| p.invoke("acme", method, b""))
        .map(|reply| String::from_utf8_lossy(&reply).into_owned())
        .map_err(|e| e.to_string())
}

fn watch(host: &Host, dir: &Path) -> LiveReload {
    let mut options = LiveOptions::new(vec![dir.to_owned()]);
    options.on_started = Some(Arc::new(|host: &Host, id: &str| {
        let _ = host.activate(id, "acme", "{}");
    }));
    host.watch(options).expect("watch")
}

/// `reloadable` installed in `<temp>/plugins` from `lib`, started, active for `acme`, watched.
fn started(
    lib: &Path,
    version: &str,
    extra: &str,
) -> (Host, tempfile::TempDir, PathBuf, LiveReload) {
    let (host, dir) = new_host();
    let plugins = dir.path().join("plugins");
    install_reloadable(&plugins, lib, version, extra);
    let report = host.start_installed(std::slice::from_ref(&plugins));
    assert_eq!(report.started, ["reloadable"], "{:?}", report.problems());
    host.activate("reloadable", "acme", "{}").expect("activate");
    let live = watch(&host, &plugins);
    (host, dir, plugins, live)
}

fn next_reload(live: &LiveReload) -> ReloadReport {
    match live.wait_for(LIMIT, |e| matches!(e, LiveEvent::Reloaded(_))) {
        Some(LiveEvent::Reloaded(report)) => report,
        other => panic!("expected a reload event, got {other:?}"),
    }
}

fn wait_for(live: &LiveReload, what: &str, wanted: impl FnMut(&LiveEvent) -> bool) -> LiveEvent {
    live.wait_for(LIMIT, wanted)
        .unwrap_or_else(|| panic!("no {what} event within {LIMIT:?}"))
}

// ---- the same checks as start-up ----

/// Regression (issue 14): the watcher swapped in a 2.0.0 library copied into
/// a folder whose `plugin.toml` still said 1.0.0, which start-up refuses.
#[test]
fn the_watcher_refuses_a_library_whose_version_is_not_the_manifests_as_startup_does() {
    let (host, dir, plugins, live) = started(v1(), "1.0.0", "");
    std::fs::copy(v2(), plugins.join("reloadable/libreloadable.so")).expect("copy v2 over v1");

    let report = next_reload(&live);
    let ReloadOutcome::RolledBack { step, error } = &report.outcome else {
        panic!("the mismatched folder was not refused: {report:?}");
    };
    assert_eq!(*step, ReloadStep::Validate);
    assert_eq!(
        call(&host, "version").as_deref(),
        Ok("1.0.0"),
        "1.0.0 keeps serving"
    );

    // Start-up, on the very same folder, refuses it with the same words.
    let (fresh, _fresh_dir) = new_host();
    let startup = fresh.start_installed(std::slice::from_ref(&plugins));
    assert!(startup.started.is_empty());
    let startup_problem = startup.problems().join("\n");
    assert!(
        startup_problem.contains("was built as `reloadable` 2.0.0, but its manifest"),
        "{startup_problem}"
    );
    let reason = startup_problem
        .trim_end_matches(" It is not started.")
        .to_owned();
    assert_eq!(*error, reason, "the watcher and start-up give one reason");

    // The admin path (`reload_installed`) gives the same refusal too.
    let admin = host
        .reload_installed("reloadable", &plugins.join("reloadable"))
        .expect("loaded");
    assert_eq!(admin.outcome, report.outcome);
    assert_eq!(host.metrics("reloadable").expect("metrics").rollbacks, 2);

    // Its neighbour: the manifest updated to 2.0.0 too is a valid folder.
    write_manifest(&plugins.join("reloadable"), "2.0.0", "");
    let report = next_reload(&live);
    assert!(report.swapped(), "{report:?}");
    assert_eq!(call(&host, "version").as_deref(), Ok("2.0.0"));
    drop(dir);
}

/// A manifest naming another plugin in a loaded plugin's folder is refused, not loaded.
#[test]
fn the_admin_reload_refuses_a_folder_that_now_holds_another_plugin() {
    let (host, _dir, plugins, _live) = started(v1(), "1.0.0", "");
    let other = install(&plugins, "other", "dep-a", "fixture-dep-a", "");
    let report = host.reload_installed("reloadable", &other).expect("loaded");
    match &report.outcome {
        ReloadOutcome::RolledBack { step, error } => {
            assert_eq!(*step, ReloadStep::Validate);
            assert!(
                error.contains("now describes plugin `dep-a`, not `reloadable`"),
                "{error}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(call(&host, "version").as_deref(), Ok("1.0.0"));
}

// ---- a change to plugin.toml alone ----

/// Regression (issue 14): a permission added to `plugin.toml` alone was
/// answered "the library did not change; nothing to do".
#[test]
fn a_permission_added_to_the_manifest_alone_takes_effect() {
    let (host, _dir, plugins, live) = started(v1(), "1.0.0", "");
    assert_eq!(call(&host, "count").as_deref(), Ok("1"));
    let refused = call(&host, "metric").expect_err("metrics:write is not granted");
    assert!(refused.contains("metrics:write"), "{refused}");

    write_manifest(
        &plugins.join("reloadable"),
        "1.0.0",
        "permissions = [\"metrics:write\"]",
    );
    let report = next_reload(&live);
    assert!(report.swapped(), "{report:?}");
    assert!(!report.library_changed);
    assert_eq!(
        report.manifest_changes,
        ["permissions: none → metrics:write"],
        "{report:?}"
    );
    assert_eq!(
        call(&host, "metric").as_deref(),
        Ok(""),
        "the permission is in effect"
    );
    assert_eq!(call(&host, "count").as_deref(), Ok("2"), "state survived");
    assert_eq!(host.status("reloadable").expect("status").tenants, ["acme"]);

    // And taken away again.
    write_manifest(&plugins.join("reloadable"), "1.0.0", "");
    let report = next_reload(&live);
    assert_eq!(
        report.manifest_changes,
        ["permissions: metrics:write → none"]
    );
    assert!(call(&host, "metric").is_err());
}

fn hook(priority: i32) -> String {
    format!("[[hooks]]\nname = \"order.created\"\npriority = {priority}\n")
}

#[test]
fn a_hook_priority_changed_in_the_manifest_alone_reorders_the_subscribers() {
    let (host, _dir, plugins, live) = started(v1(), "1.0.0", &hook(10));
    install(&plugins, "dep-a", "dep-a", "fixture-dep-a", &hook(5));
    wait_for(&live, "start", |e| matches!(e, LiveEvent::Started { .. }));
    let order = |host: &Host| {
        host.fire_json("acme", "order.created", &Vec::<String>::new())
            .expect("no cycle")
            .delivered
    };
    assert_eq!(order(&host), ["dep-a", "reloadable"]);

    write_manifest(&plugins.join("reloadable"), "1.0.0", &hook(1));
    let report = next_reload(&live);
    assert!(report.swapped() && !report.library_changed, "{report:?}");
    assert_eq!(
        report.manifest_changes,
        ["hooks (names, kinds, priorities or order)"]
    );
    assert_eq!(order(&host), ["reloadable", "dep-a"]);
}

#[test]
fn a_schema_change_that_the_running_tenants_do_not_satisfy_is_refused_with_the_reason() {
    let (host, _dir, plugins, live) = started(v1(), "1.0.0", "");
    write_manifest(
        &plugins.join("reloadable"),
        "1.0.0",
        "[config.region]\ntype = \"string\"\nrequired = true\n",
    );
    let report = next_reload(&live);
    match &report.outcome {
        ReloadOutcome::RolledBack { step, error } => {
            assert_eq!(*step, ReloadStep::Configuration);
            assert!(
                error.contains(
                    "tenant `acme` has no value for `region`, which the manifest now requires"
                ),
                "{error}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(call(&host, "version").as_deref(), Ok("1.0.0"));

    // A schema the tenants satisfy (a default) is applied.
    write_manifest(
        &plugins.join("reloadable"),
        "1.0.0",
        "[config.region]\ntype = \"string\"\ndefault = \"eu\"\n",
    );
    let report = next_reload(&live);
    assert!(report.swapped(), "{report:?}");
    assert_eq!(report.manifest_changes, ["configuration defaults"]);
}

#[test]
fn an_unchanged_folder_is_still_unchanged() {
    let (host, _dir, plugins, _live) = started(v1(), "1.0.0", "permissions = [\"metrics:write\"]");
    let report = host
        .reload_installed("reloadable", &plugins.join("reloadable"))
        .expect("loaded");
    assert_eq!(report.outcome, ReloadOutcome::Unchanged, "{report:?}");
    assert!(!report.library_changed && report.manifest_changes.is_empty());
}

// ---- the watcher survives its directory ----

fn live_reload_status(host: &Host) -> (HealthStatus, String) {
    let health = host.health();
    let live = health.live_reload.expect("a watcher runs");
    assert!(health.status >= live.status);
    (live.status, live.message)
}

/// Regression (issue 14): `rm -rf P && mkdir P` stopped every plugin and
/// then the watcher never noticed anything again.
#[test]
fn the_watcher_rearms_when_its_directory_is_deleted_and_created_again() {
    let (host, _dir, plugins, live) = started(v1(), "1.0.0", "");
    assert_eq!(live_reload_status(&host).0, HealthStatus::Healthy);

    std::fs::remove_dir_all(&plugins).expect("rm -rf");
    std::fs::create_dir(&plugins).expect("mkdir");
    wait_for(&live, "stop", |e| matches!(e, LiveEvent::Stopped { .. }));
    install_reloadable(&plugins, v2(), "2.0.0", "");
    match wait_for(&live, "start", |e| matches!(e, LiveEvent::Started { .. })) {
        LiveEvent::Started { plugin, version } => {
            assert_eq!((plugin.as_str(), version.as_str()), ("reloadable", "2.0.0"));
        }
        other => unreachable!("{other:?}"),
    }
    assert_eq!(call(&host, "version").as_deref(), Ok("2.0.0"));

    // The watch is live, not just the one rescan: a later change is seen.
    install_reloadable(&plugins, v1(), "1.0.0", "");
    assert!(next_reload(&live).swapped());
    assert_eq!(call(&host, "version").as_deref(), Ok("1.0.0"));
    assert_eq!(live_reload_status(&host).0, HealthStatus::Healthy);
}

#[test]
fn health_says_live_reload_is_degraded_while_the_directory_is_gone() {
    let (host, _dir, plugins, live) = started(v1(), "1.0.0", "");
    std::fs::remove_dir_all(&plugins).expect("rm -rf");
    let (mut gone, mut stopped) = (None, None);
    while gone.is_none() || stopped.is_none() {
        match wait_for(&live, "directory gone and stop", |e| {
            matches!(
                e,
                LiveEvent::DirectoryGone { .. } | LiveEvent::Stopped { .. }
            )
        }) {
            LiveEvent::DirectoryGone { dir } => gone = Some(dir),
            LiveEvent::Stopped { plugin, .. } => stopped = Some(plugin),
            other => unreachable!("{other:?}"),
        }
    }
    assert_eq!(gone.as_ref(), Some(&plugins));
    assert_eq!(stopped.as_deref(), Some("reloadable"));
    let (status, message) = live_reload_status(&host);
    assert_eq!(status, HealthStatus::Degraded);
    assert!(
        message.contains(&format!("plugin directory {} is gone", plugins.display())),
        "{message}"
    );
    assert_eq!(host.health().status, HealthStatus::Degraded);
    assert!(host.plugin_ids().is_empty(), "its plugins were stopped");

    install_reloadable(&plugins, v1(), "1.0.0", "");
    wait_for(&live, "directory back", |e| {
        matches!(e, LiveEvent::DirectoryBack { .. })
    });
    wait_for(&live, "start", |e| matches!(e, LiveEvent::Started { .. }));
    assert_eq!(
        live_reload_status(&host),
        (HealthStatus::Healthy, String::new())
    );
    assert_eq!(call(&host, "version").as_deref(), Ok("1.0.0"));
}

#[test]
fn the_watcher_follows_a_directory_replaced_by_a_rename() {
    let (host, dir, plugins, live) = started(v1(), "1.0.0", "");
    let staged = dir.path().join("plugins.new");
    install_reloadable(&staged, v2(), "2.0.0", "");
    std::fs::rename(&plugins, dir.path().join("plugins.old")).expect("move away");
    std::fs::rename(&staged, &plugins).expect("rename in");

    assert!(next_reload(&live).swapped());
    assert_eq!(call(&host, "version").as_deref(), Ok("2.0.0"));
    // Changes in the new directory are seen.
    install_reloadable(&plugins, v1(), "1.0.0", "");
    assert!(next_reload(&live).swapped());
    assert_eq!(call(&host, "version").as_deref(), Ok("1.0.0"));
}

#[test]
fn the_watcher_follows_a_symlink_swapped_to_another_directory() {
    let (host, dir) = new_host();
    let (a, b) = (dir.path().join("release-a"), dir.path().join("release-b"));
    install_reloadable(&a, v1(), "1.0.0", "");
    install_reloadable(&b, v2(), "2.0.0", "");
    let plugins = dir.path().join("plugins");
    std::os::unix::fs::symlink(&a, &plugins).expect("symlink");
    host.start_installed(std::slice::from_ref(&plugins));
    host.activate("reloadable", "acme", "{}").expect("activate");
    let live = watch(&host, &plugins);

    // `ln -sfn release-b plugins`, atomically: a new link renamed over the old.
    let next = dir.path().join("plugins.next");
    std::os::unix::fs::symlink(&b, &next).expect("symlink");
    std::fs::rename(&next, &plugins).expect("swap the link");

    assert!(next_reload(&live).swapped());
    assert_eq!(call(&host, "version").as_deref(), Ok("2.0.0"));
    // The watch is on release-b now: a change there is seen.
    write_manifest(
        &b.join("reloadable"),
        "2.0.0",
        "permissions = [\"metrics:write\"]",
    );
    let report = next_reload(&live);
    assert!(report.swapped() && !report.library_changed, "{report:?}");
    assert_eq!(call(&host, "metric").as_deref(), Ok(""));
}
