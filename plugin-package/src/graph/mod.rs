//! Dependency resolution: checks that installed manifests fit together and orders their start and stop.
//!
//! Pure: takes manifests and the host's `plugin-api` version, does no IO.
//! Every problem is collected and explained once; a plugin with a failed
//! requirement is blocked together with everything that (transitively) needs
//! it, and all other plugins still start.
//!
//! Decisions worth knowing:
//! - Edges point from a dependency to its dependent, the direction of start
//!   order. Required dependencies, *present* optional dependencies and
//!   providers of a required service are all ordering edges.
//! - A present optional dependency is treated like a required one: a wrong
//!   version or a blocked optional dependency blocks the dependent, because the
//!   operator installed it to be used.
//! - Several manifests with one id (which discovery never hands over, but a
//!   caller might): reported once, and every copy is blocked, since the host
//!   cannot pick one for the operator. A dependent's version requirement is
//!   still checked against all copies so the report is complete.
//! - A conflict blocks both plugins: the resolver does not guess which one the
//!   operator meant to keep.
//! - A service requirement is met while at least one provider is healthy; all
//!   providers start before the consumer.
//! - Cycles are reported once per strongly connected component, with the
//!   shortest cycle through its first plugin by id, plus any other members.
//! - Start order is Kahn's algorithm with a min-heap, so among plugins that are
//!   ready the smallest id starts first. petgraph's `Topo` walker is avoided on
//!   purpose: it is quadratic on very wide graphs (petgraph issue 665).
//!
//! Split by job: `resolve` builds the graph from the manifests, finds the
//! problems and ranks the start order; `problem` is what the resolver says
//! (blocked plugins, problems, their summaries); `export` answers questions
//! about the result and renders it as DOT or JSON.

#[doc(hidden)]
pub mod bench;
mod export;
mod problem;
mod resolve;

use std::collections::HashMap;

use petgraph::graph::{DiGraph, NodeIndex};
use semver::Version;

pub use problem::{BlockReason, Blocked, ResolutionProblem};

/// Why one plugin must start before another.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EdgeKind {
    /// A required `[dependencies]` entry.
    Dependency,
    /// An optional `[dependencies]` entry whose plugin is installed.
    Optional,
    /// The dependency provides a service the dependent `requires`.
    Service(String),
}

impl EdgeKind {
    fn as_str(&self) -> &'static str {
        match self {
            EdgeKind::Dependency => "dependency",
            EdgeKind::Optional => "optional",
            EdgeKind::Service(_) => "service",
        }
    }
}

#[derive(Debug, Clone)]
struct Node {
    id: String,
    version: Version,
    blocked: bool,
}

/// The plugins and the edges between them, as declared, with each plugin's
/// health. Build one with [`DependencyGraph::resolve`]; query it through the
/// [`Resolution`].
#[derive(Debug, Clone)]
pub struct DependencyGraph {
    /// Nodes are added in (id, version) order, so comparing indices compares ids.
    graph: DiGraph<Node, EdgeKind>,
    by_id: HashMap<String, Vec<NodeIndex>>,
    /// Position of each node (by index) in a topological order of the whole graph.
    rank: Vec<usize>,
}

/// The outcome of resolving a set of manifests.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Resolution {
    /// Healthy plugins, each after everything it depends on.
    pub start_order: Vec<String>,
    /// Plugins that must not start, in id order, with why.
    pub blocked: Vec<Blocked>,
    /// Every problem found, each once, in a stable order: shared ids, then
    /// each plugin's own problems in id order, then cycles.
    pub problems: Vec<ResolutionProblem>,
    graph: DependencyGraph,
}

impl Resolution {
    /// Healthy plugins in the order to stop them: exactly the reverse of [`Resolution::start_order`].
    pub fn stop_order(&self) -> Vec<String> {
        self.start_order.iter().rev().cloned().collect()
    }

    /// Every plugin `id` needs before it can start (transitively): dependencies,
    /// present optional dependencies and service providers, each once, in a
    /// topological order (a plugin comes after what it needs). Empty for an unknown id.
    pub fn dependencies_of(&self, id: &str) -> Vec<&str> {
        self.graph.dependencies_of(id)
    }

    /// Every plugin that needs `id` (transitively), each once, in a topological
    /// order: stop them in reverse before stopping `id`. Empty for an unknown id.
    pub fn dependents_of(&self, id: &str) -> Vec<&str> {
        self.graph.dependents_of(id)
    }

    /// Graphviz DOT: an arrow points from a plugin to what it needs; blocked
    /// plugins are red and dashed; optional and service edges are labelled.
    pub fn to_dot(&self) -> String {
        self.graph.to_dot()
    }

    /// JSON for tooling and the admin API:
    /// `{"nodes": [{"id", "version", "state": "healthy"|"blocked"}],
    ///   "edges": [{"from", "to", "kind": "dependency"|"optional"|"service", "service"?}]}`,
    /// where an edge goes from a plugin to what it needs. Both lists have a stable order.
    pub fn to_json(&self) -> serde_json::Value {
        self.graph.to_json()
    }
}

#[cfg(test)]
mod tests;
