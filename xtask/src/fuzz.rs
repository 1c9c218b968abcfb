//! `cargo xtask fuzz`: the robustness run. Builds `plugkit-robustness` in
//! release mode, runs each target in its own process, one after another (a
//! crash ends only that target's run), and reports executions and findings.
//! Not part of the test suite: a million inputs per target take minutes.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::artifacts;

/// Every target and the program that runs it, in the order they run.
pub(crate) const TARGETS: [(&str, &str); 6] = [
    ("manifest", "plugkit-robustness"),
    ("config", "plugkit-robustness"),
    ("signature", "plugkit-robustness"),
    ("twilio", "robustness-twilio"),
    ("stripe", "robustness-stripe"),
    ("api", "plugkit-robustness"),
];

/// How to run.
pub(crate) struct Options {
    pub(crate) targets: Vec<String>,
    pub(crate) runs: u64,
    pub(crate) seed: u64,
    pub(crate) budget_ms: u64,
    pub(crate) findings: Option<PathBuf>,
    pub(crate) with_plugins: bool,
}

pub(crate) fn run(options: &Options) -> Result<()> {
    let selected: Vec<(&str, &str)> = if options.targets.is_empty() {
        TARGETS.to_vec()
    } else {
        options
            .targets
            .iter()
            .map(|name| {
                TARGETS
                    .iter()
                    .find(|(t, _)| t == name)
                    .copied()
                    .with_context(|| {
                        let names: Vec<_> = TARGETS.iter().map(|(t, _)| *t).collect();
                        format!(
                            "no fuzz target `{name}`; the targets are {}",
                            names.join(", ")
                        )
                    })
            })
            .collect::<Result<_>>()?
    };
    let findings_dir = match &options.findings {
        Some(dir) => dir.clone(),
        None => target_directory()?.join("robustness").join("findings"),
    };
    let runs_api = selected.iter().any(|(t, _)| *t == "api");
    let plugins: Vec<String> = if options.with_plugins && runs_api {
        crate::install::COMMON_PLUGINS
            .iter()
            .map(|id| format!("plugkit-{id}"))
            .collect()
    } else {
        Vec::new()
    };
    eprintln!(
        "xtask: building the robustness run{} (release)",
        if plugins.is_empty() {
            ""
        } else {
            " and the reference plugins"
        }
    );
    let (programs, built) = build_programs(&plugins)?;
    let artifacts_map = if !plugins.is_empty() {
        let map = findings_dir.with_file_name("plugkit-artifacts.json");
        std::fs::create_dir_all(&findings_dir)?;
        std::fs::write(&map, serde_json::to_vec_pretty(&built)?)
            .with_context(|| format!("writing {}", map.display()))?;
        Some(map)
    } else {
        None
    };

    let mut reports = Vec::new();
    for (target, program) in selected {
        let path = programs
            .get(program)
            .with_context(|| format!("cargo built no `{program}` program"))?;
        eprintln!(
            "xtask: fuzzing `{target}` with {} inputs (seed {})",
            options.runs, options.seed
        );
        let mut cmd = Command::new(path);
        cmd.arg(target)
            .args(["--runs", &options.runs.to_string()])
            .args(["--seed", &options.seed.to_string()])
            .args(["--budget-ms", &options.budget_ms.to_string()])
            .arg("--findings")
            .arg(&findings_dir)
            .arg("--workspace")
            .arg(artifacts::workspace_root())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(map) = &artifacts_map {
            cmd.env("PLUGKIT_ARTIFACTS", map);
        }
        let output = cmd
            .output()
            .with_context(|| format!("running {}", path.display()))?;
        reports.push(report(target, &output, &findings_dir.join(target))?);
    }
    print_reports(&reports);
    let report_file = findings_dir.with_file_name("report.json");
    std::fs::write(&report_file, serde_json::to_vec_pretty(&reports)?)
        .with_context(|| format!("writing {}", report_file.display()))?;
    println!("report: {}", report_file.display());
    let findings: usize = reports
        .iter()
        .map(|r| r["findings"].as_array().map_or(0, Vec::len))
        .sum();
    if findings > 0 {
        bail!(
            "{findings} finding{} (inputs under {}); fix each and keep its input as a test",
            if findings == 1 { "" } else { "s" },
            findings_dir.display()
        );
    }
    Ok(())
}

/// The run's summary line, or what the process's end says about it.
fn report(target: &str, output: &std::process::Output, dir: &Path) -> Result<Value> {
    let summary = String::from_utf8_lossy(&output.stdout)
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l).ok());
    if let Some(signal) = output.status.signal() {
        // Killed by a signal: the handler left the input in crash-pending.bin.
        let pending = dir.join("crash-pending.bin");
        let input = std::fs::read(&pending).unwrap_or_default();
        let hash = hex::encode(&Sha256::digest(&input)[..8]);
        let file = dir.join(format!("crash-signal{signal}-{hash}.bin"));
        let _ = std::fs::rename(&pending, &file);
        let mut report = summary.unwrap_or_else(|| serde_json::json!({"target": target}));
        report["stopped_by"] = Value::from(format!("signal {signal}"));
        let crash = serde_json::json!({
            "kind": "crash",
            "key": format!("signal {signal}"),
            "message": "the process died; run the input again to see where",
            "count": 1,
            "file": file,
        });
        match report["findings"].as_array_mut() {
            Some(list) => list.push(crash),
            None => report["findings"] = Value::from(vec![crash]),
        }
        return Ok(report);
    }
    match summary {
        Some(summary) => Ok(summary),
        None => bail!(
            "the `{target}` run printed no summary (exit status {})",
            output.status
        ),
    }
}

fn print_reports(reports: &[Value]) {
    println!(
        "\n{:<10} {:>12} {:>9} {:>10} {:>12} {:>9}",
        "target", "executions", "seconds", "inputs/s", "slowest ms", "findings"
    );
    for r in reports {
        let executions = r["executions"].as_u64().unwrap_or(0);
        let seconds = r["seconds"].as_f64().unwrap_or(0.0);
        let findings = r["findings"].as_array().map_or(0, Vec::len);
        println!(
            "{:<10} {:>12} {:>9.1} {:>10.0} {:>12.1} {:>9}{}",
            r["target"].as_str().unwrap_or("?"),
            executions,
            seconds,
            if seconds > 0.0 {
                executions as f64 / seconds
            } else {
                0.0
            },
            r["slowest_ms"].as_f64().unwrap_or(0.0),
            findings,
            r["stopped_by"]
                .as_str()
                .map(|s| format!("  (stopped by {s})"))
                .unwrap_or_default(),
        );
    }
    for r in reports {
        if let Some(classes) = r["classes"].as_object() {
            let counts: Vec<String> = classes.iter().map(|(k, v)| format!("{k} {v}")).collect();
            println!(
                "  {}: {}",
                r["target"].as_str().unwrap_or("?"),
                counts.join(", ")
            );
        }
    }
    for r in reports {
        for f in r["findings"].as_array().into_iter().flatten() {
            println!(
                "  {} {}: {} x{} -> {}",
                r["target"].as_str().unwrap_or("?"),
                f["kind"].as_str().unwrap_or("?"),
                f["key"].as_str().unwrap_or("?"),
                f["count"],
                f["file"].as_str().unwrap_or("?"),
            );
        }
    }
}

/// Cargo's target directory, as cargo reports it (it may be shared).
fn target_directory() -> Result<PathBuf> {
    let output = artifacts::cargo()
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(artifacts::workspace_root())
        .output()
        .context("running cargo metadata")?;
    if !output.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let meta: Value = serde_json::from_slice(&output.stdout)?;
    meta["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .context("cargo metadata names no target directory")
}

/// Program name → executable, and plugin package → library.
type Built = (BTreeMap<String, PathBuf>, BTreeMap<String, PathBuf>);

/// Builds the robustness programs and the `plugins` packages in one cargo
/// run (two runs would resolve features differently and rebuild the
/// shared crates each time).
fn build_programs(plugins: &[String]) -> Result<Built> {
    let mut cmd = artifacts::cargo();
    cmd.current_dir(artifacts::workspace_root())
        .args([
            "build",
            "--release",
            "--lib",
            "--bins",
            "-p",
            "plugkit-robustness",
            "--message-format=json-render-diagnostics",
        ])
        .stderr(Stdio::inherit());
    for package in plugins {
        cmd.args(["-p", package]);
    }
    let output = cmd.output().context("running cargo build")?;
    if !output.status.success() {
        bail!("building plugkit-robustness failed (see the compiler output above)");
    }
    let mut programs = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if let (Some(name), Some(exe)) = (
            message["target"]["name"].as_str(),
            message["executable"].as_str(),
        ) {
            programs.insert(name.to_owned(), PathBuf::from(exe));
        }
    }
    Ok((programs, artifacts::cdylibs_from_messages(&output.stdout)))
}
