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

use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::path::PathBuf;

use petgraph::algo::kosaraju_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use petgraph::Direction::{Incoming, Outgoing};
use semver::{Version, VersionReq};

use crate::manifest::Manifest;

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

/// A plugin that is not started.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Blocked {
    /// Its id.
    pub id: String,
    /// Its version.
    pub version: Version,
    /// Why it cannot start.
    pub reason: BlockReason,
}

/// Why a plugin is not started.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlockReason {
    /// Its own requirements fail: one short summary per problem that names it
    /// (each is explained in full in [`Resolution::problems`]).
    Unmet(Vec<String>),
    /// It depends on these plugins, which are not started.
    WaitingOn(Vec<String>),
    /// Every plugin providing a service it requires is not started.
    NoProvider {
        /// The service.
        service: String,
        /// Its providers, all blocked.
        providers: Vec<String>,
    },
}

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` {} is not started: ", self.id, self.version)?;
        match &self.reason {
            BlockReason::Unmet(summaries) => f.write_str(&summaries.join("; ")),
            BlockReason::WaitingOn(ids) => write!(
                f,
                "it depends on {}, which {} not started",
                quoted_list(ids),
                if ids.len() == 1 { "is" } else { "are" }
            ),
            BlockReason::NoProvider { service, providers } => write!(
                f,
                "it requires service `{service}`, and no provider of it is started ({})",
                quoted_list(providers)
            ),
        }
    }
}

/// One reason the installed set does not fit together, explained for an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResolutionProblem {
    /// More than one manifest has this id.
    DuplicateId {
        /// The shared id.
        id: String,
        /// Each copy's version and manifest path, in version order.
        copies: Vec<(Version, PathBuf)>,
    },
    /// A required dependency is not installed at all.
    MissingDependency {
        /// The plugin that needs it.
        plugin: String,
        /// That plugin's version.
        version: Version,
        /// The id it needs.
        dependency: String,
        /// The versions it accepts.
        required: VersionReq,
    },
    /// A dependency is installed, but no installed version is in the required range.
    VersionMismatch {
        /// The plugin that needs it.
        plugin: String,
        /// That plugin's version.
        version: Version,
        /// The id it needs.
        dependency: String,
        /// The versions it accepts.
        required: VersionReq,
        /// The versions installed.
        found: Vec<Version>,
        /// Whether the dependency is declared optional.
        optional: bool,
    },
    /// Plugins that (transitively) depend on each other.
    Cycle {
        /// The cycle, first id repeated at the end: `a → b → a` is `[a, b, a]`.
        path: Vec<String>,
        /// Other plugins caught in the same knot of cycles, in id order.
        also: Vec<String>,
    },
    /// A plugin declares a conflict with another that is installed.
    Conflict {
        /// The plugin declaring the conflict.
        plugin: String,
        /// Its version.
        version: Version,
        /// The conflicting plugin.
        other: String,
        /// Its installed version.
        other_version: Version,
        /// The range the conflict is declared for.
        range: VersionReq,
    },
    /// The host's `plugin-api` version is outside what the plugin was built for.
    ApiMismatch {
        /// The plugin.
        plugin: String,
        /// Its version.
        version: Version,
        /// The `api` requirement in its manifest.
        required: VersionReq,
        /// The host's `plugin-api` version.
        host: Version,
    },
    /// A required service is provided by no installed plugin.
    MissingService {
        /// The plugin that requires it.
        plugin: String,
        /// Its version.
        version: Version,
        /// The service name.
        service: String,
    },
}

impl fmt::Display for ResolutionProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolutionProblem::DuplicateId { id, copies } => {
                let listed: Vec<String> = copies
                    .iter()
                    .map(|(version, path)| format!("{version} at {}", path.display()))
                    .collect();
                write!(
                    f,
                    "{} installed manifests claim the id `{id}` ({}); the host cannot tell which \
                     one to start, so none of them is started. Remove all but one.",
                    copies.len(),
                    listed.join(", ")
                )
            }
            ResolutionProblem::MissingDependency {
                plugin,
                version,
                dependency,
                required,
            } => write!(
                f,
                "`{plugin}` {version} needs `{dependency}` {required}, but no version of \
                 `{dependency}` is installed (installed: none). Install `{dependency}` or remove \
                 it from the dependencies of `{plugin}`; until then `{plugin}` is not started."
            ),
            ResolutionProblem::VersionMismatch {
                plugin,
                version,
                dependency,
                required,
                found,
                optional,
            } => {
                let found_list = join(found);
                let installed = if found.len() == 1 {
                    format!("the installed version is {found_list}")
                } else {
                    format!("the installed versions are {found_list}")
                };
                let needs = if *optional {
                    "can use (optionally)"
                } else {
                    "needs"
                };
                write!(
                    f,
                    "`{plugin}` {version} {needs} `{dependency}` {required}, but {installed}. \
                     Install a version of `{dependency}` that matches {required}, or a release \
                     of `{plugin}` that accepts {found_list}; until then `{plugin}` is not started."
                )
            }
            ResolutionProblem::Cycle { path, also } => {
                write!(
                    f,
                    "dependency cycle: {}. Plugins in a cycle cannot be started in any order, \
                     so none of them is started; remove one of these dependencies.",
                    path.join(" → ")
                )?;
                if !also.is_empty() {
                    write!(
                        f,
                        " {} {} part of the same cycle through other dependencies.",
                        quoted_list(also),
                        if also.len() == 1 { "is" } else { "are" }
                    )?;
                }
                Ok(())
            }
            ResolutionProblem::Conflict {
                plugin,
                version,
                other,
                other_version,
                range,
            } => write!(
                f,
                "`{plugin}` {version} declares a conflict with `{other}` {range}, and `{other}` \
                 {other_version} is installed. They cannot run together and the host does not \
                 pick one, so neither is started; uninstall one of them."
            ),
            ResolutionProblem::ApiMismatch {
                plugin,
                version,
                required,
                host,
            } => write!(
                f,
                "`{plugin}` {version} was built for plugin-api {required}, but this host \
                 provides plugin-api {host}. Install a release of `{plugin}` built against \
                 plugin-api {host}; until then `{plugin}` is not started."
            ),
            ResolutionProblem::MissingService {
                plugin,
                version,
                service,
            } => write!(
                f,
                "`{plugin}` {version} requires the service `{service}`, but no installed plugin \
                 provides it. Install a plugin whose manifest has `provides = [\"{service}\"]`; \
                 until then `{plugin}` is not started."
            ),
        }
    }
}

impl ResolutionProblem {
    /// One line for the [`BlockReason::Unmet`] of `plugin`, which this problem names.
    fn summary_for(&self, plugin: &str) -> String {
        match self {
            ResolutionProblem::DuplicateId { copies, .. } => {
                format!("{} installed manifests claim its id", copies.len())
            }
            ResolutionProblem::MissingDependency {
                dependency,
                required,
                ..
            } => format!("needs `{dependency}` {required}, which is not installed"),
            ResolutionProblem::VersionMismatch {
                dependency,
                required,
                found,
                ..
            } => format!("needs `{dependency}` {required}, found {}", join(found)),
            ResolutionProblem::Cycle { path, .. } => {
                format!("part of the dependency cycle {}", path.join(" → "))
            }
            ResolutionProblem::Conflict {
                plugin: declarer,
                version,
                other,
                other_version,
                ..
            } => {
                if declarer == plugin {
                    format!("conflicts with `{other}` {other_version}")
                } else {
                    format!("conflicts with `{declarer}` {version}")
                }
            }
            ResolutionProblem::ApiMismatch { required, host, .. } => {
                format!("needs plugin-api {required}, the host has {host}")
            }
            ResolutionProblem::MissingService { service, .. } => {
                format!("requires service `{service}`, which no plugin provides")
            }
        }
    }
}

fn join<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn quoted_list(ids: &[String]) -> String {
    ids.iter()
        .map(|id| format!("`{id}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl DependencyGraph {
    /// Checks `manifests` against each other and against the host's
    /// `plugin-api` version `host_api`, and orders the healthy ones.
    ///
    /// The result does not depend on the order of `manifests`.
    pub fn resolve(manifests: &[Manifest], host_api: &Version) -> Resolution {
        Resolver::new(manifests).run(host_api)
    }

    fn node(&self, index: NodeIndex) -> &Node {
        &self.graph[index]
    }

    /// Backs [`Resolution::dependencies_of`].
    pub fn dependencies_of(&self, id: &str) -> Vec<&str> {
        self.reachable(id, Incoming)
    }

    /// Backs [`Resolution::dependents_of`].
    pub fn dependents_of(&self, id: &str) -> Vec<&str> {
        self.reachable(id, Outgoing)
    }

    fn reachable(&self, id: &str, direction: petgraph::Direction) -> Vec<&str> {
        let Some(starts) = self.by_id.get(id) else {
            return Vec::new();
        };
        let mut seen: HashSet<NodeIndex> = starts.iter().copied().collect();
        let mut stack: Vec<NodeIndex> = starts.clone();
        let mut found = Vec::new();
        while let Some(node) = stack.pop() {
            for next in self.graph.neighbors_directed(node, direction) {
                if seen.insert(next) {
                    found.push(next);
                    stack.push(next);
                }
            }
        }
        found.sort_by_key(|node| self.rank[node.index()]);
        let mut ids: Vec<&str> = Vec::with_capacity(found.len());
        let mut listed = HashSet::new();
        for node in found {
            let node_id = self.node(node).id.as_str();
            if node_id != id && listed.insert(node_id) {
                ids.push(node_id);
            }
        }
        ids
    }

    /// Nodes in topological order of the whole graph, for stable exports.
    fn nodes_by_rank(&self) -> Vec<NodeIndex> {
        let mut nodes: Vec<NodeIndex> = self.graph.node_indices().collect();
        nodes.sort_by_key(|node| self.rank[node.index()]);
        nodes
    }

    /// Edges as (dependent, dependency, kind), sorted by the dependent's and then the dependency's rank.
    fn sorted_edges(&self) -> Vec<(NodeIndex, NodeIndex, &EdgeKind)> {
        let mut edges: Vec<_> = self
            .graph
            .edge_references()
            .map(|edge| (edge.target(), edge.source(), edge.weight()))
            .collect();
        edges.sort_by(|a, b| {
            (self.rank[a.0.index()], self.rank[a.1.index()], a.2).cmp(&(
                self.rank[b.0.index()],
                self.rank[b.1.index()],
                b.2,
            ))
        });
        edges
    }

    /// Backs [`Resolution::to_dot`].
    pub fn to_dot(&self) -> String {
        let mut out = String::from("digraph plugins {\n    node [shape=box];\n");
        for node in self.nodes_by_rank() {
            let data = self.node(node);
            let style = if data.blocked {
                ", color=red, style=dashed"
            } else {
                ""
            };
            out.push_str(&format!(
                "    n{} [label=\"{} {}\"{style}];\n",
                node.index(),
                dot_escape(&data.id),
                data.version
            ));
        }
        for (from, to, kind) in self.sorted_edges() {
            let attributes = match kind {
                EdgeKind::Dependency => String::new(),
                EdgeKind::Optional => " [style=dashed, label=\"optional\"]".to_owned(),
                EdgeKind::Service(service) => {
                    format!(" [label=\"service: {}\"]", dot_escape(service))
                }
            };
            out.push_str(&format!(
                "    n{} -> n{}{attributes};\n",
                from.index(),
                to.index()
            ));
        }
        out.push_str("}\n");
        out
    }

    /// Backs [`Resolution::to_json`].
    pub fn to_json(&self) -> serde_json::Value {
        let nodes: Vec<serde_json::Value> = self
            .nodes_by_rank()
            .into_iter()
            .map(|node| {
                let data = self.node(node);
                serde_json::json!({
                    "id": data.id,
                    "version": data.version.to_string(),
                    "state": if data.blocked { "blocked" } else { "healthy" },
                })
            })
            .collect();
        let edges: Vec<serde_json::Value> = self
            .sorted_edges()
            .into_iter()
            .map(|(from, to, kind)| {
                let mut edge = serde_json::json!({
                    "from": self.node(from).id,
                    "to": self.node(to).id,
                    "kind": kind.as_str(),
                });
                if let (EdgeKind::Service(service), Some(object)) = (kind, edge.as_object_mut()) {
                    object.insert("service".to_owned(), service.clone().into());
                }
                edge
            })
            .collect();
        serde_json::json!({ "nodes": nodes, "edges": edges })
    }
}

fn dot_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
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

/// Working state of one [`DependencyGraph::resolve`] call.
struct Resolver<'m> {
    /// Manifests in node order: `manifests[i]` is node `i`.
    manifests: Vec<&'m Manifest>,
    graph: DiGraph<Node, EdgeKind>,
    by_id: HashMap<String, Vec<NodeIndex>>,
    problems: Vec<ResolutionProblem>,
    /// Indices into `problems` naming each node as a culprit.
    own_problems: Vec<Vec<usize>>,
}

impl<'m> Resolver<'m> {
    fn new(manifests: &'m [Manifest]) -> Self {
        let mut sorted: Vec<&Manifest> = manifests.iter().collect();
        // Sorting makes the whole result independent of input order.
        sorted.sort_by(|a, b| (&a.id, &a.version, &a.path).cmp(&(&b.id, &b.version, &b.path)));
        let mut graph = DiGraph::with_capacity(sorted.len(), sorted.len() * 2);
        let mut by_id: HashMap<String, Vec<NodeIndex>> = HashMap::with_capacity(sorted.len());
        for manifest in &sorted {
            let index = graph.add_node(Node {
                id: manifest.id.clone(),
                version: manifest.version.clone(),
                blocked: false,
            });
            by_id.entry(manifest.id.clone()).or_default().push(index);
        }
        Resolver {
            own_problems: vec![Vec::new(); sorted.len()],
            manifests: sorted,
            graph,
            by_id,
            problems: Vec::new(),
        }
    }

    fn report(&mut self, problem: ResolutionProblem, culprits: &[NodeIndex]) {
        let index = self.problems.len();
        self.problems.push(problem);
        for culprit in culprits {
            self.own_problems[culprit.index()].push(index);
        }
    }

    fn run(mut self, host_api: &Version) -> Resolution {
        self.check_duplicates();
        self.check_requirements(host_api);
        let scc_of = self.check_cycles();
        self.propagate_blocking(&scc_of);
        let rank = self.rank(&scc_of);
        self.finish(rank)
    }

    fn check_duplicates(&mut self) {
        let mut start = 0;
        while start < self.manifests.len() {
            let id = &self.manifests[start].id;
            let end = start
                + self.manifests[start..]
                    .iter()
                    .take_while(|m| &m.id == id)
                    .count();
            if end - start > 1 {
                let copies = self.manifests[start..end]
                    .iter()
                    .map(|m| (m.version.clone(), m.path.clone()))
                    .collect();
                let culprits: Vec<NodeIndex> = (start..end).map(NodeIndex::new).collect();
                let id = id.clone();
                self.report(ResolutionProblem::DuplicateId { id, copies }, &culprits);
            }
            start = end;
        }
    }

    fn check_requirements(&mut self, host_api: &Version) {
        let mut providers: HashMap<&str, Vec<NodeIndex>> = HashMap::new();
        for (index, manifest) in self.manifests.iter().enumerate() {
            for service in &manifest.provides {
                providers
                    .entry(service.as_str())
                    .or_default()
                    .push(NodeIndex::new(index));
            }
        }
        let mut reported_conflicts: HashSet<(NodeIndex, NodeIndex)> = HashSet::new();
        let manifests = self.manifests.clone();
        for (index, manifest) in manifests.iter().enumerate() {
            let node = NodeIndex::new(index);
            let plugin = || (manifest.id.clone(), manifest.version.clone());

            if !manifest.api.matches(host_api) {
                let (plugin, version) = plugin();
                let required = manifest.api.clone();
                let host = host_api.clone();
                self.report(
                    ResolutionProblem::ApiMismatch {
                        plugin,
                        version,
                        required,
                        host,
                    },
                    &[node],
                );
            }

            for (dependency, spec) in &manifest.dependencies {
                let Some(targets) = self.by_id.get(dependency).cloned() else {
                    if !spec.optional {
                        let (plugin, version) = plugin();
                        let problem = ResolutionProblem::MissingDependency {
                            plugin,
                            version,
                            dependency: dependency.clone(),
                            required: spec.version.clone(),
                        };
                        self.report(problem, &[node]);
                    }
                    continue;
                };
                let kind = if spec.optional {
                    EdgeKind::Optional
                } else {
                    EdgeKind::Dependency
                };
                for &target in &targets {
                    self.graph.add_edge(target, node, kind.clone());
                }
                let found: Vec<Version> = targets
                    .iter()
                    .map(|t| self.graph[*t].version.clone())
                    .collect();
                if !found.iter().any(|v| spec.version.matches(v)) {
                    let (plugin, version) = plugin();
                    let problem = ResolutionProblem::VersionMismatch {
                        plugin,
                        version,
                        dependency: dependency.clone(),
                        required: spec.version.clone(),
                        found,
                        optional: spec.optional,
                    };
                    self.report(problem, &[node]);
                }
            }

            for (other, range) in &manifest.conflicts {
                if *other == manifest.id {
                    continue;
                }
                let targets = self.by_id.get(other).cloned().unwrap_or_default();
                for target in targets {
                    let other_version = self.graph[target].version.clone();
                    let pair = (node.min(target), node.max(target));
                    if range.matches(&other_version) && reported_conflicts.insert(pair) {
                        let (plugin, version) = plugin();
                        let problem = ResolutionProblem::Conflict {
                            plugin,
                            version,
                            other: other.clone(),
                            other_version,
                            range: range.clone(),
                        };
                        self.report(problem, &[node, target]);
                    }
                }
            }

            for service in &manifest.requires {
                let mut found = false;
                for &provider in providers.get(service.as_str()).into_iter().flatten() {
                    if provider != node {
                        found = true;
                        self.graph
                            .add_edge(provider, node, EdgeKind::Service(service.clone()));
                    }
                }
                if !found {
                    let (plugin, version) = plugin();
                    let problem = ResolutionProblem::MissingService {
                        plugin,
                        version,
                        service: service.clone(),
                    };
                    self.report(problem, &[node]);
                }
            }
        }
    }

    /// Reports each strongly connected component that holds a cycle, once.
    /// Returns the component index of every node, components numbered in topological order.
    fn check_cycles(&mut self) -> Vec<usize> {
        // kosaraju_scc is iterative (tarjan_scc recurses, which overflows on
        // long chains) and returns components sinks first.
        let mut components = kosaraju_scc(&self.graph);
        components.reverse();
        let mut scc_of = vec![0; self.graph.node_count()];
        for (number, component) in components.iter().enumerate() {
            for node in component {
                scc_of[node.index()] = number;
            }
        }
        let mut cycles = Vec::new();
        for (number, component) in components.iter().enumerate() {
            let is_cycle =
                component.len() > 1 || self.graph.contains_edge(component[0], component[0]);
            if is_cycle {
                let path = self.shortest_cycle(component, number, &scc_of);
                cycles.push((path, component.clone()));
            }
        }
        cycles.sort_by(|a, b| a.0.cmp(&b.0));
        for (path, mut members) in cycles {
            members.sort();
            let on_path: HashSet<NodeIndex> = path.iter().copied().collect();
            let also = members
                .iter()
                .filter(|m| !on_path.contains(m))
                .map(|m| self.graph[*m].id.clone())
                .collect();
            let path_ids = path.iter().map(|n| self.graph[*n].id.clone()).collect();
            let problem = ResolutionProblem::Cycle {
                path: path_ids,
                also,
            };
            self.report(problem, &members);
        }
        scc_of
    }

    /// The shortest cycle through the component's smallest node, following
    /// "depends on" edges, as a path that starts and ends on that node.
    fn shortest_cycle(
        &self,
        component: &[NodeIndex],
        number: usize,
        scc_of: &[usize],
    ) -> Vec<NodeIndex> {
        let Some(&start) = component.iter().min() else {
            return Vec::new();
        };
        let mut parent: HashMap<NodeIndex, NodeIndex> = HashMap::new();
        let mut queue = VecDeque::from([start]);
        while let Some(node) = queue.pop_front() {
            let mut needs: Vec<NodeIndex> = self
                .graph
                .neighbors_directed(node, Incoming)
                .filter(|n| scc_of[n.index()] == number)
                .collect();
            needs.sort();
            needs.dedup();
            for next in needs {
                if next == start {
                    // Walk back from `node` to `start`, then read it forwards.
                    let mut back = Vec::new();
                    let mut at = node;
                    while at != start {
                        back.push(at);
                        match parent.get(&at) {
                            Some(&previous) => at = previous,
                            None => break,
                        }
                    }
                    let mut path = vec![start];
                    path.extend(back.into_iter().rev());
                    path.push(start);
                    return path;
                }
                if let Entry::Vacant(slot) = parent.entry(next) {
                    slot.insert(node);
                    queue.push_back(next);
                }
            }
        }
        vec![start, start]
    }

    fn propagate_blocking(&mut self, scc_of: &[usize]) {
        let mut by_component: Vec<Vec<NodeIndex>> =
            vec![Vec::new(); scc_of.iter().max().map_or(0, |m| m + 1)];
        for node in self.graph.node_indices() {
            by_component[scc_of[node.index()]].push(node);
        }
        // Components are numbered in topological order, so every dependency
        // outside a node's own component is decided before the node.
        for component in by_component {
            for node in component {
                let blocked =
                    !self.own_problems[node.index()].is_empty() || self.waiting_on(node).is_some();
                self.graph[node].blocked = blocked;
            }
        }
    }

    /// Why a node without problems of its own still cannot start, if it cannot.
    fn waiting_on(&self, node: NodeIndex) -> Option<BlockReason> {
        let mut blocked_dependencies = BTreeSet::new();
        for edge in self.graph.edges_directed(node, Incoming) {
            let source = &self.graph[edge.source()];
            if source.blocked && !matches!(edge.weight(), EdgeKind::Service(_)) {
                blocked_dependencies.insert(source.id.clone());
            }
        }
        if !blocked_dependencies.is_empty() {
            return Some(BlockReason::WaitingOn(
                blocked_dependencies.into_iter().collect(),
            ));
        }
        for service in &self.manifests[node.index()].requires {
            let providers: Vec<&Node> = self
                .graph
                .edges_directed(node, Incoming)
                .filter(|edge| matches!(edge.weight(), EdgeKind::Service(s) if s == service))
                .map(|edge| &self.graph[edge.source()])
                .collect();
            if !providers.is_empty() && providers.iter().all(|p| p.blocked) {
                let providers: BTreeSet<String> = providers.iter().map(|p| p.id.clone()).collect();
                return Some(BlockReason::NoProvider {
                    service: service.clone(),
                    providers: providers.into_iter().collect(),
                });
            }
        }
        None
    }

    /// Kahn's algorithm over the components with a min-heap, so the ready
    /// plugin with the smallest id goes first. Service edges from blocked
    /// providers are ignored: they do not delay a healthy consumer, which makes
    /// the healthy plugins' relative order the same as if only they were installed.
    fn rank(&self, scc_of: &[usize]) -> Vec<usize> {
        let components = scc_of.iter().max().map_or(0, |m| m + 1);
        let mut members: Vec<Vec<NodeIndex>> = vec![Vec::new(); components];
        for node in self.graph.node_indices() {
            members[scc_of[node.index()]].push(node);
        }
        let mut in_degree = vec![0usize; components];
        let counts = |edge: &petgraph::graph::EdgeReference<'_, EdgeKind>| {
            scc_of[edge.source().index()] != scc_of[edge.target().index()]
                && !(self.graph[edge.source()].blocked
                    && matches!(edge.weight(), EdgeKind::Service(_)))
        };
        for edge in self.graph.edge_references() {
            if counts(&edge) {
                in_degree[scc_of[edge.target().index()]] += 1;
            }
        }
        // Node indices follow id order, so a component's smallest index is its key.
        let key = |component: usize| members[component][0];
        let mut ready: BinaryHeap<Reverse<(NodeIndex, usize)>> = BinaryHeap::new();
        for (component, degree) in in_degree.iter().enumerate() {
            if *degree == 0 {
                ready.push(Reverse((key(component), component)));
            }
        }
        let mut rank = vec![0; self.graph.node_count()];
        let mut next_rank = 0;
        while let Some(Reverse((_, component))) = ready.pop() {
            for &node in &members[component] {
                rank[node.index()] = next_rank;
                next_rank += 1;
                for edge in self.graph.edges_directed(node, Outgoing) {
                    if counts(&edge) {
                        let target = scc_of[edge.target().index()];
                        in_degree[target] -= 1;
                        if in_degree[target] == 0 {
                            ready.push(Reverse((key(target), target)));
                        }
                    }
                }
            }
        }
        rank
    }

    fn finish(self, rank: Vec<usize>) -> Resolution {
        let mut order: Vec<NodeIndex> = self.graph.node_indices().collect();
        order.sort_by_key(|node| rank[node.index()]);
        let start_order = order
            .iter()
            .filter(|node| !self.graph[**node].blocked)
            .map(|node| self.graph[*node].id.clone())
            .collect();
        let mut blocked = Vec::new();
        for node in self.graph.node_indices() {
            let data = &self.graph[node];
            if !data.blocked {
                continue;
            }
            let own = &self.own_problems[node.index()];
            let reason = if own.is_empty() {
                self.waiting_on(node)
                    .unwrap_or_else(|| BlockReason::WaitingOn(Vec::new()))
            } else {
                BlockReason::Unmet(
                    own.iter()
                        .map(|&p| self.problems[p].summary_for(&data.id))
                        .collect(),
                )
            };
            blocked.push(Blocked {
                id: data.id.clone(),
                version: data.version.clone(),
                reason,
            });
        }
        Resolution {
            start_order,
            blocked,
            problems: self.problems,
            graph: DependencyGraph {
                graph: self.graph,
                by_id: self.by_id,
                rank,
            },
        }
    }
}

/// Synthetic manifests for benchmarks; not part of the supported API.
#[doc(hidden)]
pub mod bench {
    use semver::{Version, VersionReq};

    use crate::manifest::{Dependency, Manifest};

    /// The shape of a synthetic plugin set.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Shape {
        /// Four roots; every other plugin depends on one or two of them, and
        /// every tenth requires a service the first root provides.
        Wide,
        /// One long chain, each plugin depending on the previous one, with an
        /// optional shortcut to the plugin three back every fifth link.
        Deep,
    }

    /// `n` manifests of `shape` that resolve without problems, in id order.
    pub fn synthetic_manifests(n: usize, shape: Shape) -> Vec<Manifest> {
        const ROOTS: usize = 4;
        (0..n)
            .map(|i| {
                let mut manifest = Manifest::synthetic(&id(i), Version::new(1, (i % 7) as u64, 0));
                let mut depend = |on: usize, optional: bool| {
                    manifest
                        .dependencies
                        .insert(id(on), Dependency::new(VersionReq::STAR, optional));
                };
                match shape {
                    Shape::Wide if i >= ROOTS => {
                        depend(i % ROOTS, false);
                        depend((i / ROOTS) % ROOTS, false);
                    }
                    Shape::Wide => {}
                    Shape::Deep => {
                        if i >= 1 {
                            depend(i - 1, false);
                        }
                        if i >= 3 && i % 5 == 0 {
                            depend(i - 3, true);
                        }
                    }
                }
                if shape == Shape::Wide {
                    if i == 0 {
                        manifest.provides.push("sms".to_owned());
                    } else if i % 10 == 0 {
                        manifest.requires.push("sms".to_owned());
                    }
                }
                manifest
            })
            .collect()
    }

    fn id(i: usize) -> String {
        format!("p{i:06}")
    }
}

#[cfg(test)]
mod tests {
    use super::bench::{synthetic_manifests, Shape};
    use super::*;
    use crate::manifest::Dependency;

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
                "p000000", "p000001", "p000002", "p000003", "p000004", "p000005", "p000006",
                "p000007", "p000008", "p000009", "p000010", "p000011"
            ]
        );
    }
}
