//! The resolver: builds the graph from the manifests, checks ids, requirements,
//! conflicts, services and cycles, blocks what cannot start and ranks the rest.

use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet, VecDeque};

use petgraph::algo::kosaraju_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use petgraph::Direction::{Incoming, Outgoing};
use semver::Version;

use super::{BlockReason, Blocked, DependencyGraph, EdgeKind, Node, Resolution, ResolutionProblem};
use crate::manifest::Manifest;

impl DependencyGraph {
    /// Checks `manifests` against each other and against the host's
    /// `plugin-api` version `host_api`, and orders the healthy ones.
    ///
    /// The result does not depend on the order of `manifests`.
    pub fn resolve(manifests: &[Manifest], host_api: &Version) -> Resolution {
        Resolver::new(manifests).run(host_api)
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
