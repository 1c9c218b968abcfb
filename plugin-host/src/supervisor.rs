//! Starting an installed set of plugins: discover their folders, resolve the
//! dependency graph, then load and initialize each healthy plugin in
//! dependency order; and stopping them in exactly the reverse order.
//!
//! A plugin that fails to load or initialize blocks its dependents, which
//! are reported and not started; everything else starts.

use std::path::PathBuf;

use serde::Serialize;

use crate::discovery::{self, Discovery, DiscoveryProblem};
use crate::error::HostError;
use crate::hooks::Subscription;
use crate::host::{Host, LoadOptions};
use plugin_package::graph::{DependencyGraph, Resolution};
use plugin_package::manifest::Manifest;

/// What [`Host::start_installed`] did.
#[derive(Debug)]
pub struct StartReport {
    /// Problems found while scanning the plugin directories.
    pub discovery_problems: Vec<DiscoveryProblem>,
    /// The resolved graph: order, blocked plugins, problems.
    pub resolution: Resolution,
    /// Plugins loaded and initialized, in start order.
    pub started: Vec<String>,
    /// Plugins whose load or initialize failed.
    pub failed: Vec<(String, HostError)>,
    /// Plugins not started because a dependency failed to start.
    pub skipped: Vec<SkippedPlugin>,
}

/// A plugin not started because something it depends on failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedPlugin {
    /// The plugin.
    pub plugin: String,
    /// The dependency that failed.
    pub waiting_on: String,
}

impl StartReport {
    /// Every problem as one readable paragraph each.
    pub fn problems(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .discovery_problems
            .iter()
            .map(ToString::to_string)
            .collect();
        out.extend(self.resolution.problems.iter().map(ToString::to_string));
        out.extend(self.failed.iter().map(|(_, e)| e.to_string()));
        out.extend(self.skipped.iter().map(|s| {
            format!(
                "plugin `{}` was not started because its dependency `{}` failed to start",
                s.plugin, s.waiting_on
            )
        }));
        out
    }
}

/// The load options a manifest implies.
pub(crate) fn load_options(manifest: &Manifest) -> LoadOptions {
    LoadOptions::from_manifest(manifest)
}

impl LoadOptions {
    /// What an installed plugin's manifest implies: its id, version,
    /// permissions, hooks, provided services, dependencies and configuration
    /// defaults, and that its signature must bind this `plugin.toml`.
    pub fn from_manifest(manifest: &Manifest) -> LoadOptions {
        manifest_options(manifest)
    }
}

fn manifest_options(manifest: &Manifest) -> LoadOptions {
    let mut defaults = serde_json::Map::new();
    for (key, spec) in manifest.config.iter() {
        if let Some(value) = &spec.default {
            if let Ok(json) = serde_json::to_value(value) {
                defaults.insert(key.to_owned(), json);
            }
        }
    }
    LoadOptions {
        expected_id: Some(manifest.id.clone()),
        expected_version: Some(manifest.version.to_string()),
        signature: None,
        provides: manifest.provides.clone(),
        manifest_path: Some(manifest.path.clone()),
        dependencies: manifest.dependencies.keys().cloned().collect(),
        permissions: manifest.permissions.clone(),
        config_json: Some(serde_json::Value::Object(defaults).to_string()),
        hooks: manifest
            .hooks
            .iter()
            .map(|h| Subscription {
                plugin: manifest.id.clone(),
                hook: h.name.clone(),
                priority: h.priority,
                kind: h.kind,
                before: h.before.clone(),
                after: h.after.clone(),
            })
            .collect(),
        // The author's minimum; the host's `IsolationPolicy` may raise it.
        isolation: manifest.isolation.unwrap_or_default(),
        process: Default::default(),
    }
}

impl Host {
    /// Discovers the plugins installed in `dirs`, resolves them, and loads
    /// and initializes every healthy one in dependency order.
    pub fn start_installed(&self, dirs: &[PathBuf]) -> StartReport {
        let Discovery { plugins, problems } = discovery::discover(dirs, &discovery::read_identity);
        let manifests: Vec<Manifest> = plugins.iter().map(|p| p.manifest.clone()).collect();
        let host_api = semver::Version::parse(plugin_api::API_VERSION)
            .unwrap_or_else(|_| semver::Version::new(0, 0, 0));
        let resolution = DependencyGraph::resolve(&manifests, &host_api);
        let mut started = Vec::new();
        let mut failed: Vec<(String, HostError)> = Vec::new();
        let mut skipped = Vec::new();
        for id in &resolution.start_order {
            let waiting_on = resolution
                .dependencies_of(id)
                .into_iter()
                .find(|dep| {
                    failed.iter().any(|(f, _)| f == dep)
                        || skipped.iter().any(|s: &SkippedPlugin| s.plugin == *dep)
                })
                .map(str::to_owned);
            if let Some(waiting_on) = waiting_on {
                tracing::warn!(plugin = %id, "not started: dependency `{waiting_on}` failed");
                skipped.push(SkippedPlugin {
                    plugin: id.clone(),
                    waiting_on,
                });
                continue;
            }
            let Some(found) = plugins.iter().find(|p| &p.manifest.id == id) else {
                continue;
            };
            let result = self
                .load(&found.library, load_options(&found.manifest))
                .and_then(|loaded| self.initialize(&loaded));
            match result {
                Ok(()) => started.push(id.clone()),
                Err(e) => {
                    tracing::error!(plugin = %id, "failed to start: {e}");
                    failed.push((id.clone(), e));
                }
            }
        }
        StartReport {
            discovery_problems: problems,
            resolution,
            started,
            failed,
            skipped,
        }
    }

    /// Cleans up and removes every plugin, in the reverse of the order they
    /// were started. Returns the errors; every plugin is stopped regardless.
    pub fn stop_all(&self) -> Vec<HostError> {
        let mut errors = Vec::new();
        for id in self.started_order().into_iter().rev() {
            if let Err(e) = self.remove(&id) {
                errors.push(e);
            }
        }
        errors
    }
}
