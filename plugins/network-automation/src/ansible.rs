//! Runs a playbook through `ansible-runner` in a private data directory and
//! turns its job events into a per-task, per-host [`PlaybookReport`].
//!
//! Invariants: when a run times out, the runner and every process below it
//! are killed; the private data directory is removed after every run,
//! whatever happened.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use plugin_api::network_automation::{
    HostRecap, PlaybookReport, PlaybookRun, TaskResult, TaskStatus,
};
use plugin_api::{PluginError, Result};
use serde_json::Value;

/// What `ansible-runner` is told to call the run, and so the artifacts folder.
const IDENT: &str = "plugkit";
/// The longest message kept per task.
const MAX_MESSAGE: usize = 4096;

/// A tenant's Ansible settings.
#[derive(Debug)]
pub(crate) struct AnsibleSettings {
    /// `ansible-runner` to use instead of searching for it.
    pub(crate) runner: Option<PathBuf>,
    pub(crate) timeout: Duration,
}

/// Runs `run` and reports what every task did on every host.
pub(crate) fn run_playbook(
    settings: &AnsibleSettings,
    run: &PlaybookRun,
) -> Result<PlaybookReport> {
    let playbook = Path::new(run.playbook.as_str());
    if !playbook.is_file() {
        return Err(PluginError::invalid_request(format!(
            "playbook {} does not exist or is not a file",
            playbook.display()
        )));
    }
    let playbook = playbook.canonicalize().map_err(|e| {
        PluginError::invalid_request(format!("playbook {}: {e}", playbook.display()))
    })?;
    let extra_vars = match run.extra_vars_json.as_str().trim() {
        "" => Value::Object(serde_json::Map::new()),
        text => match serde_json::from_str::<Value>(text) {
            Ok(value @ Value::Object(_)) => value,
            _ => {
                return Err(PluginError::invalid_request(
                    "extra_vars_json must be a JSON object",
                ))
            }
        },
    };
    let timeout = match run.timeout_ms {
        0 => settings.timeout,
        ms => Duration::from_millis(u64::from(ms)),
    };
    let runner = match &settings.runner {
        Some(path) => path.clone(),
        None => find_runner().ok_or_else(|| {
            PluginError::unsupported(
                "ansible-runner was not found on PATH or in Python's script directories; \
                 install it (`python3 -m pip install ansible-core ansible-runner`) or set \
                 `ansible_runner`",
            )
        })?,
    };

    let dir = tempfile::Builder::new()
        .prefix("plugkit-ansible-")
        .tempdir()
        .map_err(|e| io_failure("creating the private data directory", e))?;
    write_private_data(dir.path(), run, &extra_vars)?;

    let mut command = Command::new(&runner);
    command
        .arg("run")
        .arg(dir.path())
        .arg("--playbook")
        .arg(&playbook)
        .args(["--ident", IDENT]);
    if let Some(limit) = run.limit.as_ref().into_option() {
        command.arg("--limit").arg(limit.as_str());
    }
    // The runner starts `ansible-playbook` by name: make sure the one next
    // to it (same venv or pyenv version) is found first.
    if let Some(bin) = runner.parent().filter(|p| !p.as_os_str().is_empty()) {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let joined = std::env::join_paths(
            std::iter::once(bin.to_path_buf()).chain(std::env::split_paths(&path)),
        )
        .map_err(|e| PluginError::failed(format!("building PATH for ansible-runner: {e}")))?;
        command.env("PATH", joined);
    }
    let output_log = dir.path().join("runner-output.log");
    let log =
        fs::File::create(&output_log).map_err(|e| io_failure("creating the runner log", e))?;
    let log_err = log
        .try_clone()
        .map_err(|e| io_failure("creating the runner log", e))?;
    command
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .process_group(0);
    let mut child = command.spawn().map_err(|e| {
        PluginError::unsupported(format!(
            "cannot start {}: {e}; install ansible-runner or fix `ansible_runner`",
            runner.display()
        ))
    })?;

    let status = match wait_with_timeout(&mut child, timeout)? {
        Some(status) => status,
        None => {
            stop(&mut child);
            return Err(PluginError::provider(
                "ansible_timeout",
                format!(
                    "playbook {} did not finish within {} ms; ansible-runner was stopped",
                    playbook.display(),
                    timeout.as_millis()
                ),
                true,
            ));
        }
    };

    let events = read_events(&dir.path().join("artifacts").join(IDENT).join("job_events"))?;
    match report_from_events(events) {
        Some(report) => Ok(report),
        None => {
            let output = fs::read(&output_log).unwrap_or_default();
            let output = peer_text(&String::from_utf8_lossy(&output));
            Err(PluginError::provider(
                "ansible_failed",
                format!(
                    "ansible-runner exited with {status} before the play recap: {}",
                    tail(output.trim(), MAX_MESSAGE)
                ),
                false,
            ))
        }
    }
}

fn write_private_data(dir: &Path, run: &PlaybookRun, extra_vars: &Value) -> Result<()> {
    let write = |relative: &str, contents: &[u8]| -> Result<()> {
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| io_failure(relative, e))?;
        }
        fs::write(&path, contents).map_err(|e| io_failure(relative, e))
    };
    write("inventory/hosts", run.inventory.as_str().as_bytes())?;
    write("env/extravars", extra_vars.to_string().as_bytes())?;
    fs::create_dir_all(dir.join("project")).map_err(|e| io_failure("project", e))
}

fn io_failure(what: &str, e: std::io::Error) -> PluginError {
    PluginError::failed(format!("ansible private data ({what}): {e}"))
}

/// Waits for `child`, polling so no thread is needed; `None` on timeout.
fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Result<Option<ExitStatus>> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(10);
    loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| PluginError::failed(format!("waiting for ansible-runner: {e}")))?
        {
            return Ok(Some(status));
        }
        let elapsed = start.elapsed();
        if elapsed >= timeout {
            return Ok(None);
        }
        std::thread::sleep(pause.min(timeout - elapsed));
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// Stops ansible-runner and everything it started. `ansible-playbook` runs
/// in its own session and each of its workers in another, so neither a
/// signal to our process group nor the runner's own cancel (which kills
/// only `ansible-playbook`'s group) reaches them all. The tree is found
/// through /proc, frozen with SIGSTOP until it stops growing (nothing can
/// fork while frozen), then killed.
fn stop(child: &mut Child) {
    let root = i32::try_from(child.id()).unwrap_or(i32::MAX);
    let mut frozen = BTreeSet::new();
    for _ in 0..100 {
        let tree = descendants(root, &process_parents());
        let fresh: Vec<i32> = tree.difference(&frozen).copied().collect();
        if fresh.is_empty() {
            break;
        }
        for pid in fresh {
            let _ = kill(Pid::from_raw(pid), Signal::SIGSTOP);
            frozen.insert(pid);
        }
    }
    for pid in &frozen {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    let _ = killpg(Pid::from_raw(root), Signal::SIGKILL);
    let _ = child.wait();
}

/// `(pid, parent pid)` of every process, from /proc.
fn process_parents() -> Vec<(i32, i32)> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let pid: i32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            Some((pid, parent_in_stat(&stat)?))
        })
        .collect()
}

/// The parent pid in a `/proc/<pid>/stat` line: `pid (comm) state ppid ...`,
/// where `comm` may itself contain spaces and parentheses.
fn parent_in_stat(stat: &str) -> Option<i32> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().nth(1)?.parse().ok()
}

/// `root` and every process below it.
fn descendants(root: i32, parents: &[(i32, i32)]) -> BTreeSet<i32> {
    let mut tree = BTreeSet::from([root]);
    let mut queue = vec![root];
    while let Some(parent) = queue.pop() {
        for (pid, _) in parents.iter().filter(|(_, ppid)| *ppid == parent) {
            if tree.insert(*pid) {
                queue.push(*pid);
            }
        }
    }
    tree
}

/// Finds `ansible-runner` on PATH or where pip puts scripts.
fn find_runner() -> Option<PathBuf> {
    static SCRIPT_DIRS: OnceLock<Vec<PathBuf>> = OnceLock::new();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let script_dirs = SCRIPT_DIRS.get_or_init(python_script_dirs);
    std::env::split_paths(&path)
        .chain(script_dirs.iter().cloned())
        .map(|dir| dir.join("ansible-runner"))
        .find(|candidate| candidate.is_file())
}

fn python_script_dirs() -> Vec<PathBuf> {
    let output = Command::new("python3")
        .args([
            "-c",
            "import site, sys; print(site.getuserbase()); print(sys.prefix)",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    match output {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|line| PathBuf::from(line.trim()).join("bin"))
            .collect(),
        _ => Vec::new(),
    }
}

/// Reads `job_events/*.json` in event order.
fn read_events(dir: &Path) -> Result<Vec<Value>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_failure("reading job events", e)),
    };
    let mut events = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| io_failure("reading job events", e))?
            .path();
        if path.extension().is_some_and(|ext| ext == "json") {
            let text =
                fs::read_to_string(&path).map_err(|e| io_failure("reading job events", e))?;
            // A partial file (runner killed mid-write) is skipped, not fatal.
            if let Ok(event) = serde_json::from_str::<Value>(&text) {
                events.push(event);
            }
        }
    }
    events.sort_by_key(|e| e["counter"].as_u64().unwrap_or(u64::MAX));
    Ok(events)
}

/// Builds the report from job events in order; `None` without a
/// `playbook_on_stats` event (the playbook never got to its recap).
fn report_from_events(events: impl IntoIterator<Item = Value>) -> Option<PlaybookReport> {
    let mut tasks = Vec::new();
    let mut recap = None;
    for event in events {
        let data = &event["event_data"];
        let status = match event["event"].as_str() {
            Some("runner_on_ok") if data["res"]["changed"].as_bool() == Some(true) => {
                TaskStatus::Changed
            }
            Some("runner_on_ok") => TaskStatus::Ok,
            Some("runner_on_failed") => TaskStatus::Failed,
            Some("runner_on_unreachable") => TaskStatus::Unreachable,
            Some("runner_on_skipped") => TaskStatus::Skipped,
            Some("playbook_on_stats") => {
                recap = Some(host_recaps(data));
                continue;
            }
            _ => continue,
        };
        tasks.push(TaskResult {
            host: text(&data["host"]).into(),
            task: text(&data["task"]).into(),
            status,
            message: task_message(&data["res"]).into(),
        });
    }
    let hosts = recap?;
    let success = hosts.iter().all(|h| h.failed == 0 && h.unreachable == 0);
    Some(PlaybookReport {
        success,
        tasks: tasks.into(),
        hosts: hosts.into(),
    })
}

/// `playbook_on_stats` counts, one recap per host. `ok` counts changed
/// tasks too, as Ansible's PLAY RECAP does.
fn host_recaps(stats: &Value) -> Vec<HostRecap> {
    let mut hosts: BTreeMap<String, HostRecap> = BTreeMap::new();
    for (field, set) in [
        ("ok", (|r, n| r.ok = n) as fn(&mut HostRecap, u32)),
        ("changed", |r, n| r.changed = n),
        ("failures", |r, n| r.failed = n),
        ("dark", |r, n| r.unreachable = n),
        ("skipped", |r, n| r.skipped = n),
        // A host with only ignored or rescued failures still appears.
        ("ignored", |_, _| {}),
        ("rescued", |_, _| {}),
        ("processed", |_, _| {}),
    ] {
        let Some(counts) = stats[field].as_object() else {
            continue;
        };
        for (host, count) in counts {
            let recap = hosts.entry(host.clone()).or_insert_with(|| HostRecap {
                host: host.as_str().into(),
                ok: 0,
                changed: 0,
                failed: 0,
                unreachable: 0,
                skipped: 0,
            });
            set(
                recap,
                count
                    .as_u64()
                    .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX)),
            );
        }
    }
    hosts.into_values().collect()
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The most useful line of a module result: `msg`, else stderr, else stdout,
/// without the colour codes and carriage returns a device or module put in.
fn task_message(res: &Value) -> String {
    let message = ["msg", "stderr", "stdout"]
        .iter()
        .map(|k| peer_text(&text(&res[*k])))
        .find(|m| !m.trim().is_empty())
        .unwrap_or_default();
    head(&message, MAX_MESSAGE).to_owned()
}

/// Text a peer wrote, fit for a message: terminal escape sequences removed
/// (`anstream`'s parser), `\r\n` and lone `\r` turned into `\n`, other
/// control characters but tabs dropped.
fn peer_text(text: &str) -> String {
    let stripped = anstream::adapter::strip_str(text).to_string();
    let mut out = String::with_capacity(stripped.len());
    let mut chars = stripped.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' if chars.peek() == Some(&'\n') => {}
            '\r' => out.push('\n'),
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

fn head(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn tail(s: &str, max: usize) -> &str {
    let mut start = s.len().saturating_sub(max);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn colour_codes_and_carriage_returns_do_not_reach_a_task_message() {
        let check = |res: Value, expected: &str| assert_eq!(task_message(&res), expected);
        check(
            json!({"msg": "\u{1b}[0;31mfailed\u{1b}[0m\r\n"}),
            "failed\n",
        );
        check(
            json!({"msg": "", "stderr": "% Invalid input\r\nrouter#\u{7}"}),
            "% Invalid input\nrouter#",
        );
        check(json!({"stdout": "10%\r100%"}), "10%\n100%");
    }

    fn event(counter: u64, name: &str, data: Value) -> Value {
        json!({"counter": counter, "event": name, "event_data": data})
    }

    fn stats(failures: Value, dark: Value) -> Value {
        event(
            99,
            "playbook_on_stats",
            json!({
                "ok": {"r1": 2, "r2": 1},
                "changed": {"r1": 1},
                "failures": failures,
                "dark": dark,
                "skipped": {"r2": 1},
                "ignored": {},
                "rescued": {},
                "processed": {"r1": 1, "r2": 1}
            }),
        )
    }

    fn check(events: Vec<Value>, expected_tasks: &[(&str, &str, TaskStatus, &str)], success: bool) {
        let report = report_from_events(events).expect("has a recap");
        let tasks: Vec<_> = report
            .tasks
            .iter()
            .map(|t| {
                (
                    t.host.as_str(),
                    t.task.as_str(),
                    t.status,
                    t.message.as_str(),
                )
            })
            .collect();
        assert_eq!(tasks, expected_tasks);
        assert_eq!(report.success, success);
    }

    #[test]
    fn maps_each_runner_event_to_a_task_status() {
        check(
            vec![
                event(1, "playbook_on_start", json!({})),
                event(
                    2,
                    "runner_on_ok",
                    json!({"host": "r1", "task": "a", "res": {"changed": false}}),
                ),
                event(
                    3,
                    "runner_on_ok",
                    json!({"host": "r1", "task": "b", "res": {"changed": true, "stdout": "done"}}),
                ),
                event(
                    4,
                    "runner_on_skipped",
                    json!({"host": "r2", "task": "b", "res": {}}),
                ),
                event(
                    5,
                    "runner_on_failed",
                    json!({"host": "r1", "task": "c", "res": {"msg": "non-zero return code", "stderr": "boom"}}),
                ),
                event(
                    6,
                    "runner_on_unreachable",
                    json!({"host": "r3", "task": "a", "res": {"msg": "Connection refused"}}),
                ),
                stats(json!({"r1": 1}), json!({"r3": 1})),
            ],
            &[
                ("r1", "a", TaskStatus::Ok, ""),
                ("r1", "b", TaskStatus::Changed, "done"),
                ("r2", "b", TaskStatus::Skipped, ""),
                ("r1", "c", TaskStatus::Failed, "non-zero return code"),
                ("r3", "a", TaskStatus::Unreachable, "Connection refused"),
            ],
            false,
        );
    }

    #[test]
    fn succeeds_without_failures_or_unreachable_hosts() {
        check(
            vec![
                event(
                    1,
                    "runner_on_ok",
                    json!({"host": "r1", "task": "a", "res": {}}),
                ),
                stats(json!({}), json!({})),
            ],
            &[("r1", "a", TaskStatus::Ok, "")],
            true,
        );
    }

    #[test]
    fn recaps_every_host_in_the_stats() {
        let report = report_from_events(vec![stats(json!({"r1": 1}), json!({"r3": 1}))])
            .expect("has a recap");
        let recap: Vec<_> = report
            .hosts
            .iter()
            .map(|h| {
                (
                    h.host.as_str(),
                    h.ok,
                    h.changed,
                    h.failed,
                    h.unreachable,
                    h.skipped,
                )
            })
            .collect();
        assert_eq!(
            recap,
            [
                ("r1", 2, 1, 1, 0, 0),
                ("r2", 1, 0, 0, 0, 1),
                ("r3", 0, 0, 0, 1, 0)
            ]
        );
    }

    #[test]
    fn no_recap_means_no_report() {
        assert!(report_from_events(vec![event(1, "playbook_on_start", json!({}))]).is_none());
    }

    #[test]
    fn reads_the_parent_from_proc_stat() {
        assert_eq!(parent_in_stat("42 (bash) S 7 42 42 0"), Some(7));
        assert_eq!(parent_in_stat("43 (a b) (c)) R 8 1 1"), Some(8));
        assert_eq!(parent_in_stat("garbage"), None);
    }

    #[test]
    fn finds_every_descendant_and_nothing_else() {
        let parents = [
            (1, 0),
            (10, 1),
            (11, 10),
            (12, 11),
            (13, 10),
            (20, 1),
            (21, 20),
        ];
        assert_eq!(descendants(10, &parents), BTreeSet::from([10, 11, 12, 13]));
        assert_eq!(descendants(21, &parents), BTreeSet::from([21]));
    }

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(head("héllo", 2), "h");
        assert_eq!(tail("héllo", 4), "llo");
        assert_eq!(head("abc", 10), "abc");
    }
}
