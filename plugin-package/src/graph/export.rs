//! Questions about a resolved graph (what a plugin needs, what needs it)
//! and its DOT and JSON exports.

use std::collections::HashSet;

use petgraph::graph::NodeIndex;
use petgraph::visit::EdgeRef;
use petgraph::Direction::{Incoming, Outgoing};

use super::{DependencyGraph, EdgeKind, Node};

impl DependencyGraph {
    fn node(&self, index: NodeIndex) -> &Node {
        &self.graph[index]
    }

    /// Backs [`Resolution::dependencies_of`](super::Resolution::dependencies_of).
    pub fn dependencies_of(&self, id: &str) -> Vec<&str> {
        self.reachable(id, Incoming)
    }

    /// Backs [`Resolution::dependents_of`](super::Resolution::dependents_of).
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

    /// Backs [`Resolution::to_dot`](super::Resolution::to_dot).
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

    /// Backs [`Resolution::to_json`](super::Resolution::to_json).
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
