//! Playbooks through a real `ansible-runner`: against localhost
//! (`ansible_connection=local`) and against the test sshd, parsed per task
//! and per host; a run past its timeout is stopped.

use std::path::{Path, PathBuf};
use std::time::Duration;

use plugin_api::network_automation::{NetworkAutomation, PlaybookReport, PlaybookRun, TaskStatus};
use plugkit_testkit::ansible::{ansible_runner, managed_python};
use plugkit_testkit::process::{free_tcp_port, wait_until};
use plugkit_testkit::sshd::Sshd;
use serde_json::json;

use crate::{plugin_with, provider_error};

/// An ok task (using an extra var), a changed one, a skipped one and a
/// failing one, then one that never runs because the host failed.
const PLAYBOOK: &str = r#"
- hosts: all
  gather_facts: false
  tasks:
    - name: greet
      ansible.builtin.debug:
        msg: "{{ greeting }}"
    - name: change something
      ansible.builtin.command: echo changed
    - name: skip me
      ansible.builtin.command: echo never
      when: false
    - name: fail
      ansible.builtin.command: /bin/false
    - name: after failure
      ansible.builtin.debug:
        msg: unreachable code
"#;

fn write_playbook(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("playbook written");
    path
}

fn run(playbook: &Path, inventory: String) -> PlaybookRun {
    PlaybookRun {
        playbook: playbook.to_string_lossy().into_owned().into(),
        inventory: inventory.into(),
        extra_vars_json: json!({"greeting": "hello from plugkit"}).to_string().into(),
        limit: None.into(),
        timeout_ms: 300_000,
    }
}

fn tasks_of<'a>(report: &'a PlaybookReport, host: &str) -> Vec<(&'a str, TaskStatus)> {
    report
        .tasks
        .iter()
        .filter(|t| t.host.as_str() == host)
        .map(|t| (t.task.as_str(), t.status))
        .collect()
}

fn assert_ran_on(report: &PlaybookReport, host: &str) {
    assert_eq!(
        tasks_of(report, host),
        [
            ("greet", TaskStatus::Ok),
            ("change something", TaskStatus::Changed),
            ("skip me", TaskStatus::Skipped),
            ("fail", TaskStatus::Failed),
        ],
        "{report:#?}"
    );
    let greet = report
        .tasks
        .iter()
        .find(|t| t.host.as_str() == host && t.task.as_str() == "greet")
        .expect("greet ran");
    assert_eq!(greet.message.as_str(), "hello from plugkit");
    let recap = report
        .hosts
        .iter()
        .find(|h| h.host.as_str() == host)
        .expect("host in recap");
    // Ansible counts changed tasks as ok too.
    assert_eq!(
        (
            recap.ok,
            recap.changed,
            recap.failed,
            recap.skipped,
            recap.unreachable
        ),
        (2, 1, 1, 1, 0),
        "{recap:?}"
    );
}

#[test]
fn playbook_against_localhost_reports_each_task() {
    let dir = tempfile::tempdir().expect("temp dir");
    let playbook = write_playbook(dir.path(), "site.yml", PLAYBOOK);
    // No `ansible_runner` configured: the plugin finds it itself.
    let plugin = plugin_with("isp", json!({}));
    let inventory = format!(
        "localhost ansible_connection=local ansible_python_interpreter={}\n",
        managed_python().display()
    );
    let report = plugin
        .run_playbook("isp", run(&playbook, inventory))
        .expect("playbook runs");
    assert!(!report.success);
    assert_ran_on(&report, "localhost");
    assert_eq!(report.hosts.len(), 1);
}

// Issue 14, item 5: colour codes and carriage returns a module or device
// sends do not reach the report's messages.
#[test]
fn task_messages_arrive_without_colour_codes_or_carriage_returns() {
    let dir = tempfile::tempdir().expect("temp dir");
    let playbook = write_playbook(
        dir.path(),
        "colour.yml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: coloured failure\n      \
         ansible.builtin.fail:\n        msg: \"\\e[0;31m% Invalid input\\e[0m\\r\\nrouter#\"\n",
    );
    let plugin = plugin_with("isp", json!({}));
    let inventory = format!(
        "localhost ansible_connection=local ansible_python_interpreter={}\n",
        managed_python().display()
    );
    let report = plugin
        .run_playbook("isp", run(&playbook, inventory))
        .expect("playbook runs");
    let task = report
        .tasks
        .iter()
        .find(|t| t.task.as_str() == "coloured failure")
        .unwrap_or_else(|| panic!("{report:#?}"));
    assert_eq!(task.status, TaskStatus::Failed);
    assert_eq!(task.message.as_str(), "% Invalid input\nrouter#");
}

#[test]
fn playbook_against_sshd_reports_each_task_and_unreachable_hosts() {
    let sshd = Sshd::shared().expect("sshd starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let playbook = write_playbook(dir.path(), "site.yml", PLAYBOOK);
    let runner = ansible_runner().expect("ansible-runner installed");
    let plugin = plugin_with("isp", json!({ "ansible_runner": runner }));
    let closed_port = free_tcp_port().expect("free port");
    // `ansible_ssh_args` drops Ansible's default ControlPersist, whose
    // multiplexing master would outlive the test.
    let common = format!(
        "ansible_host=127.0.0.1 ansible_user={user} ansible_ssh_private_key_file={key} \
         ansible_python_interpreter={python} \
         ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null' \
         ansible_ssh_args='-o ControlMaster=no'",
        user = sshd.user(),
        key = sshd.client_key_path().display(),
        python = managed_python().display(),
    );
    let inventory = format!(
        "device ansible_port={} {common}\ndead ansible_port={closed_port} {common}\n",
        sshd.port()
    );
    let report = plugin
        .run_playbook("isp", run(&playbook, inventory))
        .unwrap_or_else(|e| panic!("{e}\nsshd log:\n{}", sshd.log()));
    assert!(!report.success);
    assert_ran_on(&report, "device");
    // `debug` runs on the controller, so the dead host fails at the first
    // task that needs a connection, and then leaves the play.
    assert_eq!(
        tasks_of(&report, "dead"),
        [
            ("greet", TaskStatus::Ok),
            ("change something", TaskStatus::Unreachable)
        ]
    );
    let dead = report
        .hosts
        .iter()
        .find(|h| h.host.as_str() == "dead")
        .expect("dead host in recap");
    assert_eq!(dead.unreachable, 1);
}

#[test]
fn playbook_past_its_timeout_is_stopped() {
    let dir = tempfile::tempdir().expect("temp dir");
    let marker = format!("plugkit-timeout-{}", std::process::id());
    let playbook = write_playbook(
        dir.path(),
        "slow.yml",
        &format!(
            "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: hang\n      \
             ansible.builtin.shell: sleep 600; echo {marker}\n"
        ),
    );
    let plugin = plugin_with("isp", json!({}));
    let mut slow = run(
        &playbook,
        format!(
            "localhost ansible_connection=local ansible_python_interpreter={}\n",
            managed_python().display()
        ),
    );
    slow.timeout_ms = 5_000;
    let (code, _) = provider_error(plugin.run_playbook("isp", slow));
    assert_eq!(code, "ansible_timeout");
    // ansible-runner, ansible-playbook and its workers (which name the
    // playbook) and the task's shell (which names the marker) all go.
    let playbook_path = playbook.to_string_lossy().into_owned();
    let leftovers = || {
        let mut pids = processes_mentioning(&marker);
        pids.extend(processes_mentioning(&playbook_path));
        pids
    };
    wait_until(
        "the timed-out playbook's processes to exit",
        Duration::from_secs(30),
        None,
        || leftovers().is_empty(),
    )
    .unwrap_or_else(|e| panic!("{e}: {:?}", leftovers()));
}

#[test]
fn missing_playbook_is_an_invalid_request() {
    let plugin = plugin_with("isp", json!({}));
    let result = plugin.run_playbook(
        "isp",
        run(Path::new("/nonexistent/site.yml"), "localhost\n".to_owned()),
    );
    assert!(
        matches!(result, Err(plugin_api::PluginError::InvalidRequest { .. })),
        "{result:?}"
    );
}

/// Pids whose command line contains `needle` (excluding zombies' empty ones).
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(needle))
                .unwrap_or(false)
        })
        .collect()
}
