//! Installed plugin folders → discovery → dependency resolution → start in
//! dependency order and stop in reverse, checked against the plugins' own
//! lifecycle log lines; and one report listing every problem once.

use std::path::{Path, PathBuf};

use plugin_host::discovery::DiscoveryProblem;
use plugin_host::package::graph::ResolutionProblem;
use plugkit_tests::{artifacts, with_log_capture};

use crate::foundation::new_host;

/// Installs `package`'s library as plugin `id` in `dir/<folder>` with extra manifest lines.
pub(crate) fn install(dir: &Path, folder: &str, id: &str, package: &str, extra: &str) -> PathBuf {
    let target = dir.join(folder);
    std::fs::create_dir_all(&target).expect("mkdir");
    let source = artifacts().library(package);
    let file = source.file_name().expect("file name").to_owned();
    std::fs::copy(source, target.join(&file)).expect("copy library");
    let manifest = format!(
        r#"id = "{id}"
name = "{id}"
version = "0.1.0"
description = "test plugin"
authors = ["plugkit tests"]
license = "MIT"
category = "custom"
api = "^0.2"
library = "{}"
{extra}
"#,
        file.to_string_lossy()
    );
    std::fs::write(target.join("plugin.toml"), manifest).expect("write manifest");
    target
}

fn lifecycle_lines(lines: &[String], step: &str) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| {
            let at = l.find("lifecycle ")?;
            let words: Vec<&str> = l[at..].split_whitespace().collect();
            (words.get(2) == Some(&step)).then(|| words[1].to_owned())
        })
        .collect()
}

#[test]
fn plugins_start_in_dependency_order_and_stop_in_reverse() {
    with_log_capture(|log| {
        let (host, dir) = new_host();
        let plugins = dir.path().join("plugins");
        // Folder names sort against the dependency order on purpose.
        install(
            &plugins,
            "a-top",
            "fixture-good",
            "fixture-good",
            "[dependencies]\ndep-b = \"^0.1\"\nghost = { version = \"^1\", optional = true }",
        );
        install(
            &plugins,
            "b-middle",
            "dep-b",
            "fixture-dep-b",
            "[dependencies]\ndep-a = \"^0.1\"",
        );
        install(&plugins, "c-bottom", "dep-a", "fixture-dep-a", "");

        let report = host.start_installed(&[plugins]);
        assert!(report.problems().is_empty(), "{:#?}", report.problems());
        assert_eq!(report.started, ["dep-a", "dep-b", "fixture-good"]);
        assert_eq!(
            lifecycle_lines(&log.lines(), "initialize"),
            ["dep-a", "dep-b", "fixture-good"]
        );

        let errors = host.stop_all();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            lifecycle_lines(&log.lines(), "cleanup"),
            ["fixture-good", "dep-b", "dep-a"]
        );
        assert!(host.plugin_ids().is_empty());
    });
}

#[test]
fn every_problem_is_reported_once_and_healthy_plugins_still_start() {
    let (host, dir) = new_host();
    let one = dir.path().join("one");
    let two = dir.path().join("two");
    install(&one, "dep-a", "dep-a", "fixture-dep-a", "");
    // A dependency whose installed version is outside the range.
    install(
        &one,
        "dep-b",
        "dep-b",
        "fixture-dep-b",
        "[dependencies]\ndep-a = \"^2\"",
    );
    // Depends on a blocked plugin: blocked too, waiting on dep-b.
    install(
        &one,
        "good",
        "fixture-good",
        "fixture-good",
        "[dependencies]\ndep-b = \"^0.1\"",
    );
    // A dependency nobody installed.
    install(
        &one,
        "misbehaving",
        "misbehaving",
        "fixture-misbehaving",
        "[dependencies]\nbilling = \"^1.2\"",
    );
    // The same id in a second directory.
    install(&two, "dep-a-again", "dep-a", "fixture-dep-a", "");
    // A manifest whose library is missing.
    let missing = install(&two, "gone", "gone", "fixture-dep-a", "");
    std::fs::remove_file(missing.join("libfixture_dep_a.so")).expect("rm");
    // A library that is not what its manifest says.
    install(&two, "liar", "liar", "fixture-dep-b", "");

    let report = host.start_installed(&[one, two]);
    assert_eq!(report.started, ["dep-a"]);

    let dup = report
        .discovery_problems
        .iter()
        .filter(|p| matches!(p, DiscoveryProblem::DuplicateId { .. }))
        .count();
    let missing_lib = report
        .discovery_problems
        .iter()
        .filter(|p| matches!(p, DiscoveryProblem::MissingLibrary { .. }))
        .count();
    let liar = report
        .discovery_problems
        .iter()
        .filter(|p| matches!(p, DiscoveryProblem::IdentityMismatch { .. }))
        .count();
    assert_eq!(
        (dup, missing_lib, liar),
        (1, 1, 1),
        "{:#?}",
        report.discovery_problems
    );

    let text = report.problems().join("\n");
    let version = report
        .resolution
        .problems
        .iter()
        .filter(|p| matches!(p, ResolutionProblem::VersionMismatch { .. }))
        .count();
    let absent = report
        .resolution
        .problems
        .iter()
        .filter(|p| matches!(p, ResolutionProblem::MissingDependency { .. }))
        .count();
    assert_eq!((version, absent), (1, 1), "{text}");
    assert!(text.contains("billing"), "{text}");
    assert!(text.contains("^2"), "{text}");
    let blocked: Vec<&str> = report
        .resolution
        .blocked
        .iter()
        .map(|b| b.id.as_str())
        .collect();
    assert_eq!(blocked, ["dep-b", "fixture-good", "misbehaving"]);
    assert_eq!(host.plugin_ids(), ["dep-a"]);
}

#[test]
fn a_plugin_failing_to_initialize_blocks_its_dependents_only() {
    let (host, dir) = new_host();
    let plugins = dir.path().join("plugins");
    install(&plugins, "dep-a", "dep-a", "fixture-dep-a", "");
    install(
        &plugins,
        "misbehaving",
        "misbehaving",
        "fixture-misbehaving",
        "[config.fail_in]\ntype = \"string\"\ndefault = \"initialize\"\ndescription = \"test knob\"",
    );
    install(
        &plugins,
        "dep-b",
        "dep-b",
        "fixture-dep-b",
        "[dependencies]\nmisbehaving = \"^0.1\"",
    );
    install(
        &plugins,
        "good",
        "fixture-good",
        "fixture-good",
        "[dependencies]\ndep-b = \"^0.1\"",
    );

    let report = host.start_installed(&[plugins]);
    assert_eq!(report.started, ["dep-a"]);
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].0, "misbehaving");
    let skipped: Vec<(&str, &str)> = report
        .skipped
        .iter()
        .map(|s| (s.plugin.as_str(), s.waiting_on.as_str()))
        .collect();
    assert_eq!(
        skipped,
        [("dep-b", "misbehaving"), ("fixture-good", "misbehaving")]
    );
    let text = report.problems().join("\n");
    assert!(text.contains("misbehaving fails in initialize"), "{text}");
}

#[test]
fn graph_exports_name_every_plugin_and_edge() {
    let (host, dir) = new_host();
    let plugins = dir.path().join("plugins");
    install(&plugins, "dep-a", "dep-a", "fixture-dep-a", "");
    install(
        &plugins,
        "dep-b",
        "dep-b",
        "fixture-dep-b",
        "[dependencies]\ndep-a = \"^0.1\"",
    );
    let report = host.start_installed(&[plugins]);
    let dot = report.resolution.to_dot();
    assert!(dot.contains("n0 [label=\"dep-a 0.1.0\"]"), "{dot}");
    assert!(dot.contains("n1 [label=\"dep-b 0.1.0\"]"), "{dot}");
    assert!(dot.contains("n1 -> n0"), "{dot}");
    let json = report.resolution.to_json();
    assert_eq!(json["nodes"].as_array().map(Vec::len), Some(2), "{json}");
    assert_eq!(report.resolution.dependents_of("dep-a"), ["dep-b"]);
    assert_eq!(report.resolution.dependencies_of("dep-b"), ["dep-a"]);
}
