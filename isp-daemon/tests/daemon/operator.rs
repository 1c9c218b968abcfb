//! The daemon as a new operator first runs it (findings of a new-user
//! trial): relative paths in a configuration read from another folder, a
//! plugin directory that does not exist yet under `--watch`, and the
//! directory `[provisioning]` fills created at start.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::lifecycle::Running;
use crate::support::{install_signed, ADMIN_TOKEN};

const LIMIT: Duration = Duration::from_secs(60);

/// A configuration whose paths are all relative: plugins in `plugins`,
/// state in `state`, unsigned plugins allowed; `extra` is appended.
fn write_config(folder: &Path, extra: &str) -> PathBuf {
    std::fs::create_dir_all(folder).expect("config folder");
    let path = folder.join("isp.toml");
    std::fs::write(
        &path,
        format!(
            "[plugins]\ndirs = [\"plugins\"]\n\n[trust]\npolicy = \"allow-unsigned\"\n\n\
             [state]\ndir = \"state\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\n\
             token = \"${{env:ISP_TEST_ADMIN_TOKEN}}\"\n\n\
             [standins]\ntwilio = \"on\"\nstripe = \"on\"\n{extra}"
        ),
    )
    .expect("write config");
    path
}

/// The reference plugins installed complete in `root/staged`, to be
/// renamed into a watched directory in one step.
fn staged(root: &Path) -> PathBuf {
    let dir = root.join("staged");
    install_signed(&dir);
    dir
}

/// Starts `isp-daemon --config etc/isp.toml --watch --serve` in `cwd`.
fn start_watching(cwd: &Path) -> Running {
    Running::start_in(
        Some(cwd),
        &["--config", "etc/isp.toml", "--watch", "--serve"],
        &[("ISP_TEST_ADMIN_TOKEN", ADMIN_TOKEN)],
    )
}

/// Regression (new-user trial): with a relative `--config` and relative
/// `dirs`, the daemon said "watching" but started nothing dropped in until
/// a reload request (the watched path was relative, the OS's events absolute).
#[test]
fn a_relative_config_read_from_another_folder_watches_its_relative_plugin_dir() {
    let root = tempfile::tempdir().expect("temp dir");
    let etc = root.path().join("etc");
    write_config(&etc, "");
    std::fs::create_dir_all(etc.join("plugins")).expect("plugin dir");
    let stage = staged(root.path());
    let mut daemon = start_watching(root.path());

    let folder = std::fs::canonicalize(&etc).expect("canonical");
    let watching = daemon.wait_for_line("[reload] watching", LIMIT);
    assert!(
        watching.contains(&folder.join("plugins").display().to_string()),
        "{watching}"
    );
    daemon.wait_for_line("serving; stop with", LIMIT);
    std::fs::rename(stage.join("twilio"), etc.join("plugins/twilio")).expect("drop twilio in");
    daemon.wait_for_line("[reload] twilio 0.1.0 started", LIMIT);
    // The state directory follows the same rule: next to the configuration.
    assert!(
        etc.join("state/audit.jsonl").exists(),
        "{}",
        daemon.output()
    );
    assert!(!root.path().join("state").exists(), "{}", daemon.output());
}

/// Regression (new-user trial): `--watch` exited when a plugin directory
/// did not exist yet. Now it warns, naming the directory, and once the
/// directory is created starts what is in it and watches it.
#[test]
fn watch_waits_for_a_missing_plugin_dir_and_starts_its_plugins_once_created() {
    let root = tempfile::tempdir().expect("temp dir");
    let etc = root.path().join("etc");
    write_config(&etc, "");
    let stage = staged(root.path());
    let mut daemon = start_watching(root.path());

    let plugins = std::fs::canonicalize(&etc)
        .expect("canonical")
        .join("plugins");
    let warning = daemon.wait_for_line("does not exist (yet)", LIMIT);
    assert!(
        warning.contains(&plugins.display().to_string()) && warning.contains("[plugins] dirs"),
        "{warning}"
    );
    daemon.wait_for_line("serving; stop with", LIMIT);

    // The directory appears with one plugin in it (renamed in, as a deploy does).
    let first = root.path().join("first");
    std::fs::create_dir_all(&first).expect("folder");
    std::fs::rename(stage.join("twilio"), first.join("twilio")).expect("stage twilio");
    std::fs::rename(&first, &plugins).expect("create the plugin directory");
    daemon.wait_for_line("exists now: watching it", LIMIT);
    daemon.wait_for_line("[reload] twilio 0.1.0 started", LIMIT);
    // And the watch is on it: a plugin dropped in later starts too.
    std::fs::rename(stage.join("stripe"), plugins.join("stripe")).expect("drop stripe in");
    daemon.wait_for_line("[reload] stripe 0.1.0 started", LIMIT);
}

/// Regression (new-user trial): the directory `[provisioning]` fills was
/// created only by `--provision`; now the daemon creates it at start, so
/// `--watch` watches it from the first moment.
#[test]
fn the_plugin_dir_provisioning_fills_is_created_at_start_and_watched() {
    let root = tempfile::tempdir().expect("temp dir");
    let etc = root.path().join("etc");
    // Port 9 (discard) on loopback: nothing listens; the refresh fails in
    // the background and the daemon keeps serving.
    write_config(
        &etc,
        "\n[provisioning]\nregistry = \"http://127.0.0.1:9\"\ntier = \"pro\"\n",
    );
    let stage = staged(root.path());
    let mut daemon = start_watching(root.path());

    let plugins = std::fs::canonicalize(&etc)
        .expect("canonical")
        .join("plugins");
    let created = daemon.wait_for_line("created the plugin directory", LIMIT);
    assert!(
        created.contains(&plugins.display().to_string()),
        "{created}"
    );
    daemon.wait_for_line("[reload] watching", LIMIT);
    daemon.wait_for_line("serving; stop with", LIMIT);
    assert!(
        daemon.line_with("does not exist (yet)").is_none(),
        "{}",
        daemon.output()
    );
    std::fs::rename(stage.join("twilio"), plugins.join("twilio")).expect("drop twilio in");
    daemon.wait_for_line("[reload] twilio 0.1.0 started", LIMIT);
}
