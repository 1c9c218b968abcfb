//! Resolution and ordering of 1,000 and 10,000 synthetic manifests (wide and
//! deep graphs), against a bare petgraph toposort of the same edges.

use std::hint::black_box;

use criterion::{criterion_group, Criterion};
use petgraph::graph::DiGraph;
use plugin_host::package::graph::bench::{synthetic_manifests, Shape};
use plugin_host::package::graph::DependencyGraph;
use plugin_host::package::manifest::Manifest;
use plugkit_bench::{format_ns, mean_ns, print_ratios};

const SIZES: [usize; 2] = [1_000, 10_000];

fn toposort_only(manifests: &[Manifest]) -> usize {
    let mut graph = DiGraph::<(), ()>::with_capacity(manifests.len(), manifests.len() * 2);
    let nodes: Vec<_> = manifests.iter().map(|_| graph.add_node(())).collect();
    let index: std::collections::HashMap<&str, usize> = manifests
        .iter()
        .enumerate()
        .map(|(i, m)| (m.id.as_str(), i))
        .collect();
    for (i, m) in manifests.iter().enumerate() {
        for dep in m.dependencies.keys() {
            if let Some(&j) = index.get(dep.as_str()) {
                graph.add_edge(nodes[j], nodes[i], ());
            }
        }
    }
    petgraph::algo::toposort(&graph, None).map_or(0, |v| v.len())
}

fn resolve(c: &mut Criterion) {
    let api = semver::Version::parse(plugin_api::API_VERSION).expect("api version");
    for shape in [Shape::Wide, Shape::Deep] {
        for n in SIZES {
            let manifests = synthetic_manifests(n, shape);
            let mut group = c.benchmark_group(format!("resolve/{shape:?}/{n}"));
            group.sample_size(20);
            group.bench_function("plugkit_resolve", |b| {
                b.iter(|| DependencyGraph::resolve(black_box(&manifests), &api))
            });
            group.bench_function("petgraph_toposort_only", |b| {
                b.iter(|| toposort_only(black_box(&manifests)))
            });
            group.finish();
        }
    }
}

criterion_group!(benches, resolve);

fn main() {
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
    for shape in ["Wide", "Deep"] {
        for n in SIZES {
            let g = format!("resolve/{shape}/{n}");
            print_ratios(
                &format!("{shape} graph, {n} manifests (goal: 10,000 in <= 15 ms)"),
                &format!("{g}/petgraph_toposort_only"),
                &[
                    &format!("{g}/petgraph_toposort_only"),
                    &format!("{g}/plugkit_resolve"),
                ],
            );
            if let Some(ns) = mean_ns(&format!("{g}/plugkit_resolve")) {
                println!("  per manifest: {}", format_ns(ns / n as f64));
            }
        }
    }
}
