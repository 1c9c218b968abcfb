//! Unit tests of the resolver, its explanations, queries and exports, driven
//! by one-line manifest specs.

use semver::{Version, VersionReq};

use super::bench::{synthetic_manifests, Shape};
use super::*;
use crate::manifest::{Dependency, Manifest};

const HOST_API: Version = Version::new(0, 1, 0);

/// Builds manifests from one line each: `id version clause…`, where a clause is
/// `dep:^1` (dependency), `dep?:^1` (optional dependency), `!other:*` (conflict),
/// `provides=sms`, `requires=sms` or `api=^0.2` (default `^0.1`).
fn manifests(spec: &str) -> Vec<Manifest> {
    spec.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| {
            let mut words = line.split_whitespace();
            let id = words.next().unwrap();
            let version = Version::parse(words.next().unwrap()).unwrap();
            let mut manifest = Manifest::synthetic(id, version);
            manifest.api = VersionReq::parse("^0.1").unwrap();
            for clause in words {
                let req = |text: &str| VersionReq::parse(text).unwrap();
                if let Some(service) = clause.strip_prefix("provides=") {
                    manifest.provides.push(service.into());
                } else if let Some(service) = clause.strip_prefix("requires=") {
                    manifest.requires.push(service.into());
                } else if let Some(range) = clause.strip_prefix("api=") {
                    manifest.api = req(range);
                } else if let Some(conflict) = clause.strip_prefix('!') {
                    let (other, range) = conflict.split_once(':').unwrap();
                    manifest.conflicts.insert(other.into(), req(range));
                } else {
                    let (dep, range) = clause.split_once(':').unwrap();
                    let (dep, optional) = match dep.strip_suffix('?') {
                        Some(dep) => (dep, true),
                        None => (dep, false),
                    };
                    manifest
                        .dependencies
                        .insert(dep.into(), Dependency::new(req(range), optional));
                }
            }
            manifest
        })
        .collect()
}

fn render(resolution: &Resolution) -> String {
    let mut out = String::from("start:");
    for id in &resolution.start_order {
        out.push(' ');
        out.push_str(id);
    }
    for blocked in &resolution.blocked {
        out.push_str(&format!("\nblocked: {blocked}"));
    }
    for problem in &resolution.problems {
        out.push_str(&format!("\nproblem: {problem}"));
    }
    out
}

/// Resolves `spec` (see [`manifests`]) and compares the start order, the
/// blocked plugins and the problems with `expected`. Also checks that the
/// outcome does not depend on the order the manifests are given in and
/// that the stop order is the exact reverse of the start order.
fn check(spec: &str, expected: &str) {
    let mut manifests = manifests(spec);
    let resolution = DependencyGraph::resolve(&manifests, &HOST_API);
    let actual = render(&resolution);
    assert_eq!(actual, expected.trim(), "\n--- spec ---\n{spec}");
    manifests.reverse();
    let reversed = DependencyGraph::resolve(&manifests, &HOST_API);
    assert_eq!(render(&reversed), actual, "depends on input order");
    let mut stop = resolution.stop_order();
    stop.reverse();
    assert_eq!(stop, resolution.start_order);
}

#[test]
fn no_plugins_resolve_to_nothing() {
    check("", "start:");
}

#[test]
fn independent_plugins_start_in_id_order() {
    check("c 1.0.0\na 1.0.0\nb 1.0.0", "start: a b c");
}

#[test]
fn dependencies_start_first_and_ready_plugins_break_ties_by_id() {
    check("aa 1.0.0 zz:^1\nbb 1.0.0\nzz 1.0.0", "start: bb zz aa");
}

#[test]
fn deep_chain_starts_from_the_bottom() {
    check(
        "aa 1.0.0 bb:^1\nbb 1.0.0 cc:^1\ncc 1.0.0 dd:^1\ndd 1.0.0 ee:^1\nee 1.0.0",
        "start: ee dd cc bb aa",
    );
}

#[test]
fn diamond_starts_the_shared_base_once_and_first() {
    check(
        "top 1.0.0 left:^1 right:^1\nleft 1.0.0 base:^1\nright 1.0.0 base:^1\nbase 1.0.0",
        "start: base left right top",
    );
}

#[test]
fn missing_dependency_blocks_the_plugin_and_its_dependents_transitively() {
    check(
        "aa 1.0.0 ghost:^1.2\ncc 1.0.0 aa:^1\ndd 1.0.0 cc:^1\nok 1.0.0",
        r"
start: ok
blocked: `aa` 1.0.0 is not started: needs `ghost` ^1.2, which is not installed
blocked: `cc` 1.0.0 is not started: it depends on `aa`, which is not started
blocked: `dd` 1.0.0 is not started: it depends on `cc`, which is not started
problem: `aa` 1.0.0 needs `ghost` ^1.2, but no version of `ghost` is installed (installed: none). Install `ghost` or remove it from the dependencies of `aa`; until then `aa` is not started.",
    );
}

#[test]
fn version_outside_the_range_names_required_and_found() {
    check(
        "app 1.0.0 http:^2\nhttp 1.4.0",
        r"
start: http
blocked: `app` 1.0.0 is not started: needs `http` ^2, found 1.4.0
problem: `app` 1.0.0 needs `http` ^2, but the installed version is 1.4.0. Install a version of `http` that matches ^2, or a release of `app` that accepts 1.4.0; until then `app` is not started.",
    );
}

#[test]
fn several_installed_versions_of_one_id_block_every_copy() {
    // The host runs one copy per id and will not pick one: every copy is
    // blocked, and a dependent is told so even when one copy would fit.
    check(
        "app 1.0.0 http:^2\nhttp 1.0.0\nhttp 2.0.0\nother 1.0.0",
        r"
start: other
blocked: `app` 1.0.0 is not started: it depends on `http`, which is not started
blocked: `http` 1.0.0 is not started: 2 installed manifests claim its id
blocked: `http` 2.0.0 is not started: 2 installed manifests claim its id
problem: 2 installed manifests claim the id `http` (1.0.0 at plugins/http/plugin.toml, 2.0.0 at plugins/http/plugin.toml); the host cannot tell which one to start, so none of them is started. Remove all but one.",
    );
}

#[test]
fn several_installed_versions_none_matching_lists_them_all() {
    check(
        "app 1.0.0 http:^3\nhttp 1.0.0\nhttp 2.0.0",
        r"
start:
blocked: `app` 1.0.0 is not started: needs `http` ^3, found 1.0.0, 2.0.0
blocked: `http` 1.0.0 is not started: 2 installed manifests claim its id
blocked: `http` 2.0.0 is not started: 2 installed manifests claim its id
problem: 2 installed manifests claim the id `http` (1.0.0 at plugins/http/plugin.toml, 2.0.0 at plugins/http/plugin.toml); the host cannot tell which one to start, so none of them is started. Remove all but one.
problem: `app` 1.0.0 needs `http` ^3, but the installed versions are 1.0.0, 2.0.0. Install a version of `http` that matches ^3, or a release of `app` that accepts 1.0.0, 2.0.0; until then `app` is not started.",
    );
}

#[test]
fn cycle_of_length_one_is_a_plugin_depending_on_itself() {
    check(
        "aa 1.0.0 aa:^1\nok 1.0.0",
        r"
start: ok
blocked: `aa` 1.0.0 is not started: part of the dependency cycle aa → aa
problem: dependency cycle: aa → aa. Plugins in a cycle cannot be started in any order, so none of them is started; remove one of these dependencies.",
    );
}

#[test]
fn cycles_of_length_two_to_four_show_the_full_path_once() {
    check(
        "aa 1.0.0 bb:^1\nbb 1.0.0 aa:^1",
        r"
start:
blocked: `aa` 1.0.0 is not started: part of the dependency cycle aa → bb → aa
blocked: `bb` 1.0.0 is not started: part of the dependency cycle aa → bb → aa
problem: dependency cycle: aa → bb → aa. Plugins in a cycle cannot be started in any order, so none of them is started; remove one of these dependencies.",
    );
    check(
        "aa 1.0.0 bb:^1\nbb 1.0.0 cc:^1\ncc 1.0.0 aa:^1",
        r"
start:
blocked: `aa` 1.0.0 is not started: part of the dependency cycle aa → bb → cc → aa
blocked: `bb` 1.0.0 is not started: part of the dependency cycle aa → bb → cc → aa
blocked: `cc` 1.0.0 is not started: part of the dependency cycle aa → bb → cc → aa
problem: dependency cycle: aa → bb → cc → aa. Plugins in a cycle cannot be started in any order, so none of them is started; remove one of these dependencies.",
    );
    check(
        "dd 1.0.0 bb:^1\nbb 1.0.0 cc:^1\ncc 1.0.0 aa:^1\naa 1.0.0 dd:^1",
        r"
start:
blocked: `aa` 1.0.0 is not started: part of the dependency cycle aa → dd → bb → cc → aa
blocked: `bb` 1.0.0 is not started: part of the dependency cycle aa → dd → bb → cc → aa
blocked: `cc` 1.0.0 is not started: part of the dependency cycle aa → dd → bb → cc → aa
blocked: `dd` 1.0.0 is not started: part of the dependency cycle aa → dd → bb → cc → aa
problem: dependency cycle: aa → dd → bb → cc → aa. Plugins in a cycle cannot be started in any order, so none of them is started; remove one of these dependencies.",
    );
}

#[test]
fn separate_cycles_are_reported_separately_and_block_their_dependents() {
    check(
        "aa 1.0.0 bb:^1\nbb 1.0.0 aa:^1\nxx 1.0.0 yy:^1\nyy 1.0.0 xx:^1\nuser 1.0.0 yy:^1\nok 1.0.0",
        r"
start: ok
blocked: `aa` 1.0.0 is not started: part of the dependency cycle aa → bb → aa
blocked: `bb` 1.0.0 is not started: part of the dependency cycle aa → bb → aa
blocked: `user` 1.0.0 is not started: it depends on `yy`, which is not started
blocked: `xx` 1.0.0 is not started: part of the dependency cycle xx → yy → xx
blocked: `yy` 1.0.0 is not started: part of the dependency cycle xx → yy → xx
problem: dependency cycle: aa → bb → aa. Plugins in a cycle cannot be started in any order, so none of them is started; remove one of these dependencies.
problem: dependency cycle: xx → yy → xx. Plugins in a cycle cannot be started in any order, so none of them is started; remove one of these dependencies.",
    );
}

#[test]
fn services_required_both_ways_are_a_cycle() {
    check(
        "aa 1.0.0 provides=sms requires=payment\nbb 1.0.0 provides=payment requires=sms",
        r"
start:
blocked: `aa` 1.0.0 is not started: part of the dependency cycle aa → bb → aa
blocked: `bb` 1.0.0 is not started: part of the dependency cycle aa → bb → aa
problem: dependency cycle: aa → bb → aa. Plugins in a cycle cannot be started in any order, so none of them is started; remove one of these dependencies.",
    );
}

#[test]
fn tangled_cycles_are_one_problem_naming_every_member() {
    check(
        "aa 1.0.0 bb:^1 cc:^1\nbb 1.0.0 aa:^1\ncc 1.0.0 aa:^1",
        r"
start:
blocked: `aa` 1.0.0 is not started: part of the dependency cycle aa → bb → aa
blocked: `bb` 1.0.0 is not started: part of the dependency cycle aa → bb → aa
blocked: `cc` 1.0.0 is not started: part of the dependency cycle aa → bb → aa
problem: dependency cycle: aa → bb → aa. Plugins in a cycle cannot be started in any order, so none of them is started; remove one of these dependencies. `cc` is part of the same cycle through other dependencies.",
    );
}

#[test]
fn absent_optional_dependency_is_not_an_error() {
    check("app 1.0.0 metrics?:^1", "start: app");
}

#[test]
fn present_optional_dependency_starts_first() {
    check(
        "app 1.0.0 zmetrics?:^1\nzmetrics 1.2.0",
        "start: zmetrics app",
    );
}

#[test]
fn present_optional_dependency_with_a_wrong_version_is_an_error() {
    check(
        "app 1.0.0 metrics?:^2\nmetrics 1.2.0",
        r"
start: metrics
blocked: `app` 1.0.0 is not started: needs `metrics` ^2, found 1.2.0
problem: `app` 1.0.0 can use (optionally) `metrics` ^2, but the installed version is 1.2.0. Install a version of `metrics` that matches ^2, or a release of `app` that accepts 1.2.0; until then `app` is not started.",
    );
}

#[test]
fn present_optional_dependency_that_is_blocked_blocks_the_dependent() {
    check(
        "app 1.0.0 metrics?:^1\nmetrics 1.2.0 api=^0.2",
        r"
start:
blocked: `app` 1.0.0 is not started: it depends on `metrics`, which is not started
blocked: `metrics` 1.2.0 is not started: needs plugin-api ^0.2, the host has 0.1.0
problem: `metrics` 1.2.0 was built for plugin-api ^0.2, but this host provides plugin-api 0.1.0. Install a release of `metrics` built against plugin-api 0.1.0; until then `metrics` is not started.",
    );
}

#[test]
fn conflict_blocks_both_plugins_and_is_reported_once() {
    check(
        "new-sms 2.0.0 !old-sms:*\nold-sms 1.0.0 !new-sms:*\nuser 1.0.0 old-sms:^1",
        r"
start:
blocked: `new-sms` 2.0.0 is not started: conflicts with `old-sms` 1.0.0
blocked: `old-sms` 1.0.0 is not started: conflicts with `new-sms` 2.0.0
blocked: `user` 1.0.0 is not started: it depends on `old-sms`, which is not started
problem: `new-sms` 2.0.0 declares a conflict with `old-sms` *, and `old-sms` 1.0.0 is installed. They cannot run together and the host does not pick one, so neither is started; uninstall one of them.",
    );
}

#[test]
fn conflict_outside_its_version_range_is_ignored() {
    check(
        "new-sms 2.0.0 !old-sms:<1\nold-sms 1.0.0",
        "start: new-sms old-sms",
    );
}

#[test]
fn unmet_api_requirement_blocks_the_plugin() {
    check(
        "future 1.0.0 api=^0.3\nnow 1.0.0 api=>=0.1",
        r"
start: now
blocked: `future` 1.0.0 is not started: needs plugin-api ^0.3, the host has 0.1.0
problem: `future` 1.0.0 was built for plugin-api ^0.3, but this host provides plugin-api 0.1.0. Install a release of `future` built against plugin-api 0.1.0; until then `future` is not started.",
    );
}

#[test]
fn service_providers_start_before_their_consumers() {
    check(
        "aa-shop 1.0.0 requires=payment\nzz-stripe 1.0.0 provides=payment\nmm-paypal 1.0.0 provides=payment",
        "start: mm-paypal zz-stripe aa-shop",
    );
}

#[test]
fn required_service_that_nobody_provides_is_an_error() {
    check(
        "shop 1.0.0 requires=payment",
        r#"
start:
blocked: `shop` 1.0.0 is not started: requires service `payment`, which no plugin provides
problem: `shop` 1.0.0 requires the service `payment`, but no installed plugin provides it. Install a plugin whose manifest has `provides = ["payment"]`; until then `shop` is not started."#,
    );
}

#[test]
fn service_is_met_while_one_provider_is_healthy() {
    check(
        "shop 1.0.0 requires=payment\nstripe 1.0.0 provides=payment\npaypal 1.0.0 provides=payment api=^9",
        r"
start: stripe shop
blocked: `paypal` 1.0.0 is not started: needs plugin-api ^9, the host has 0.1.0
problem: `paypal` 1.0.0 was built for plugin-api ^9, but this host provides plugin-api 0.1.0. Install a release of `paypal` built against plugin-api 0.1.0; until then `paypal` is not started.",
    );
    check(
        "shop 1.0.0 requires=payment\npaypal 1.0.0 provides=payment api=^9",
        r"
start:
blocked: `paypal` 1.0.0 is not started: needs plugin-api ^9, the host has 0.1.0
blocked: `shop` 1.0.0 is not started: it requires service `payment`, and no provider of it is started (`paypal`)
problem: `paypal` 1.0.0 was built for plugin-api ^9, but this host provides plugin-api 0.1.0. Install a release of `paypal` built against plugin-api 0.1.0; until then `paypal` is not started.",
    );
}

#[test]
fn every_kind_of_problem_is_reported_exactly_once_and_healthy_plugins_still_start() {
    check(
        r"
            core 1.0.0
            sms 1.0.0 core:^1 provides=sms
            shop 1.0.0 core:^1 requires=payment
            crm 1.0.0 sms:^1 ghost:^1
            report 1.0.0 crm:^1
            audit 1.0.0 core:^2
            loop-a 1.0.0 loop-b:^1
            loop-b 1.0.0 loop-a:^1
            old-sms 1.0.0
            new-sms 1.0.0 !old-sms:*
            future 1.0.0 api=^0.2
            twin 1.0.0
            twin 1.1.0
            ",
        r#"
start: core sms
blocked: `audit` 1.0.0 is not started: needs `core` ^2, found 1.0.0
blocked: `crm` 1.0.0 is not started: needs `ghost` ^1, which is not installed
blocked: `future` 1.0.0 is not started: needs plugin-api ^0.2, the host has 0.1.0
blocked: `loop-a` 1.0.0 is not started: part of the dependency cycle loop-a → loop-b → loop-a
blocked: `loop-b` 1.0.0 is not started: part of the dependency cycle loop-a → loop-b → loop-a
blocked: `new-sms` 1.0.0 is not started: conflicts with `old-sms` 1.0.0
blocked: `old-sms` 1.0.0 is not started: conflicts with `new-sms` 1.0.0
blocked: `report` 1.0.0 is not started: it depends on `crm`, which is not started
blocked: `shop` 1.0.0 is not started: requires service `payment`, which no plugin provides
blocked: `twin` 1.0.0 is not started: 2 installed manifests claim its id
blocked: `twin` 1.1.0 is not started: 2 installed manifests claim its id
problem: 2 installed manifests claim the id `twin` (1.0.0 at plugins/twin/plugin.toml, 1.1.0 at plugins/twin/plugin.toml); the host cannot tell which one to start, so none of them is started. Remove all but one.
problem: `audit` 1.0.0 needs `core` ^2, but the installed version is 1.0.0. Install a version of `core` that matches ^2, or a release of `audit` that accepts 1.0.0; until then `audit` is not started.
problem: `crm` 1.0.0 needs `ghost` ^1, but no version of `ghost` is installed (installed: none). Install `ghost` or remove it from the dependencies of `crm`; until then `crm` is not started.
problem: `future` 1.0.0 was built for plugin-api ^0.2, but this host provides plugin-api 0.1.0. Install a release of `future` built against plugin-api 0.1.0; until then `future` is not started.
problem: `new-sms` 1.0.0 declares a conflict with `old-sms` *, and `old-sms` 1.0.0 is installed. They cannot run together and the host does not pick one, so neither is started; uninstall one of them.
problem: `shop` 1.0.0 requires the service `payment`, but no installed plugin provides it. Install a plugin whose manifest has `provides = ["payment"]`; until then `shop` is not started.
problem: dependency cycle: loop-a → loop-b → loop-a. Plugins in a cycle cannot be started in any order, so none of them is started; remove one of these dependencies."#,
    );
}

/// Resolves `spec` and compares what `id` depends on and what depends on it (transitively).
fn check_queries(spec: &str, id: &str, dependencies: &[&str], dependents: &[&str]) {
    let resolution = DependencyGraph::resolve(&manifests(spec), &HOST_API);
    assert_eq!(
        resolution.dependencies_of(id),
        dependencies,
        "dependencies of {id}"
    );
    assert_eq!(
        resolution.dependents_of(id),
        dependents,
        "dependents of {id}"
    );
}

const DIAMOND: &str = "top 1.0.0 left:^1 right:^1\nleft 1.0.0 base:^1\nright 1.0.0 base:^1\nbase 1.0.0\napp 1.0.0 top:^1";

#[test]
fn queries_follow_edges_transitively_in_start_order() {
    check_queries(DIAMOND, "top", &["base", "left", "right"], &["app"]);
    check_queries(DIAMOND, "base", &[], &["left", "right", "top", "app"]);
    check_queries(DIAMOND, "left", &["base"], &["top", "app"]);
    check_queries(DIAMOND, "nobody", &[], &[]);
}

#[test]
fn queries_include_service_providers_and_present_optional_dependencies() {
    let spec = "shop 1.0.0 requires=payment metrics?:^1 ghost?:^1\nstripe 1.0.0 provides=payment\nmetrics 1.0.0";
    check_queries(spec, "shop", &["metrics", "stripe"], &[]);
    check_queries(spec, "stripe", &[], &["shop"]);
}

#[test]
fn queries_work_on_blocked_plugins_and_cycles() {
    let spec = "aa 1.0.0 bb:^1\nbb 1.0.0 aa:^1\nuser 1.0.0 aa:^1";
    check_queries(spec, "aa", &["bb"], &["bb", "user"]);
}

#[test]
fn dot_export_shows_states_and_edge_kinds() {
    let spec = "shop 1.0.0 requires=payment metrics?:^1 core:^1\nstripe 2.0.0 provides=payment\nmetrics 1.0.0\ncore 1.0.0\nold 0.1.0 api=^9";
    let resolution = DependencyGraph::resolve(&manifests(spec), &HOST_API);
    assert_eq!(
        resolution.to_dot(),
        r#"digraph plugins {
    node [shape=box];
    n0 [label="core 1.0.0"];
    n1 [label="metrics 1.0.0"];
    n2 [label="old 0.1.0", color=red, style=dashed];
    n4 [label="stripe 2.0.0"];
    n3 [label="shop 1.0.0"];
    n3 -> n0;
    n3 -> n1 [style=dashed, label="optional"];
    n3 -> n4 [label="service: payment"];
}
"#
    );
}

#[test]
fn json_export_lists_nodes_with_state_and_edges_with_kind() {
    let spec = "shop 1.0.0 requires=payment metrics?:^1 core:^1\nstripe 2.0.0 provides=payment\nmetrics 1.0.0\ncore 1.0.0 api=^9";
    let resolution = DependencyGraph::resolve(&manifests(spec), &HOST_API);
    assert_eq!(
        resolution.to_json(),
        serde_json::json!({
            "nodes": [
                {"id": "core", "version": "1.0.0", "state": "blocked"},
                {"id": "metrics", "version": "1.0.0", "state": "healthy"},
                {"id": "stripe", "version": "2.0.0", "state": "healthy"},
                {"id": "shop", "version": "1.0.0", "state": "blocked"},
            ],
            "edges": [
                {"from": "shop", "to": "core", "kind": "dependency"},
                {"from": "shop", "to": "metrics", "kind": "optional"},
                {"from": "shop", "to": "stripe", "kind": "service", "service": "payment"},
            ],
        })
    );
}

#[test]
fn synthetic_sets_of_ten_thousand_resolve_cleanly_without_deep_recursion() {
    for shape in [Shape::Wide, Shape::Deep] {
        let manifests = synthetic_manifests(10_000, shape);
        let resolution = DependencyGraph::resolve(&manifests, &HOST_API);
        assert!(resolution.problems.is_empty(), "{shape:?}");
        assert!(resolution.blocked.is_empty(), "{shape:?}");
        assert_eq!(resolution.start_order.len(), 10_000, "{shape:?}");
    }
    let deep = DependencyGraph::resolve(&synthetic_manifests(10_000, Shape::Deep), &HOST_API);
    assert_eq!(
        deep.start_order.first().map(String::as_str),
        Some("p000000")
    );
    assert_eq!(deep.start_order.last().map(String::as_str), Some("p009999"));
    assert_eq!(deep.dependencies_of("p009999").len(), 9_999);
}

#[test]
fn wide_synthetic_set_starts_roots_first_then_the_rest_in_id_order() {
    let resolution = DependencyGraph::resolve(&synthetic_manifests(12, Shape::Wide), &HOST_API);
    assert_eq!(
        resolution.start_order,
        [
            "p000000", "p000001", "p000002", "p000003", "p000004", "p000005", "p000006", "p000007",
            "p000008", "p000009", "p000010", "p000011"
        ]
    );
}
