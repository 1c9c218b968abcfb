//! Read-only views for the admin API and page: plugins, tenants, metrics,
//! the dependency graph, the audit log and the daemon's info.

use super::*;

impl Daemon {
    /// The installed plugins with their discovered manifests, and the
    /// problems found while scanning the plugin directories.
    pub fn plugins_overview(&self) -> Value {
        let found = self.discovered.current(&self.dirs);
        let statuses = self.host.statuses();
        let available: Vec<Value> = found
            .plugins
            .iter()
            .map(|p| {
                let m = &p.manifest;
                let config: Vec<Value> = m
                    .config
                    .iter()
                    .map(|(key, spec)| {
                        json!({
                            "key": key,
                            "type": spec.value_type.as_str(),
                            "required": spec.required,
                            "sensitive": spec.sensitive,
                            "description": spec.description,
                        })
                    })
                    .collect();
                json!({
                    "id": m.id,
                    "name": m.name,
                    "version": m.version.to_string(),
                    "description": m.description,
                    "category": m.category.as_str(),
                    "required_tier": m.required_tier,
                    "provides": m.provides,
                    "hooks": m.hooks.iter().map(|h| h.name.clone()).collect::<Vec<_>>(),
                    "folder": p.folder,
                    "library": p.library,
                    "loaded": self.host.state(&m.id).is_some(),
                    "config": config,
                })
            })
            .collect();
        let installed: Vec<Value> = statuses
            .iter()
            .map(|s| {
                let mut value = serde_json::to_value(s).unwrap_or(Value::Null);
                if let Value::Object(map) = &mut value {
                    map.insert("id".to_owned(), json!(s.identity.id));
                    map.insert(
                        "required_tier".to_owned(),
                        json!(self.required_tier(&s.identity.id)),
                    );
                    // Mode, pid, restarts, quarantine and sandbox layers;
                    // null for a plugin in-process.
                    map.insert(
                        "isolation".to_owned(),
                        json!(self.host.isolation_status(&s.identity.id)),
                    );
                }
                value
            })
            .collect();
        json!({ "available": available, "installed": installed, "problems": found.problems })
    }

    /// One tenant: tier, every installed plugin's state for it, its
    /// providers, and its requests with their (redacted) configuration.
    pub fn tenant_overview(&self, tenant: &str) -> Result<Value, Problem> {
        let tier = self.tier_of(tenant)?;
        let view = self
            .platform
            .tenant_view(tenant)
            .map_err(|e| Problem::from(e).tenant(tenant))?;
        let waiting: BTreeMap<String, String> = lock(&self.waiting)
            .requests
            .get(tenant)
            .cloned()
            .unwrap_or_default();
        // Read under the lock rather than cloned: a read path costs what
        // its answer costs.
        let manifests = self
            .manifests
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let mut plugins = Vec::new();
        for (id, manifest) in manifests.iter() {
            let loaded = self.host.state(id).is_some();
            let active = self.host.plugin(id).is_ok_and(|h| h.is_active_for(tenant));
            let requested = view.plugins.iter().any(|p| &p.plugin == id);
            let entitled = self
                .platform
                .tiers()
                .allows(&tier, &manifest.required_tier)
                .unwrap_or(false);
            let state = if active {
                "active"
            } else if waiting.contains_key(id) {
                "waiting"
            } else if !entitled {
                "not_entitled"
            } else {
                "inactive"
            };
            plugins.push(json!({
                "plugin": id,
                "version": manifest.version.to_string(),
                "required_tier": manifest.required_tier,
                "entitled": entitled,
                "requested": requested,
                "active": active,
                "loaded": loaded,
                "state": state,
                "waiting": waiting.get(id),
            }));
        }
        fn provider<C: Contract>(host: &Host, tenant: &str) -> Option<String> {
            host.provider_for_tenant::<C>(tenant)
                .map(|h| h.id().to_owned())
        }
        Ok(json!({
            "tenant": tenant,
            "tier": tier,
            "plugins": plugins,
            "providers": {
                "payment": provider::<payment::Contract>(&self.host, tenant),
                "communication": provider::<communication::Contract>(&self.host, tenant),
                "network-automation": provider::<network_automation::Contract>(&self.host, tenant),
            },
            "requests": view.plugins.into_iter().map(|mut request| {
                // The platform's text for a plugin that is gone names the
                // Rust function an embedder calls; the operator reinstalls.
                if request.version.is_none() {
                    request.problem = Some(format!(
                        "plugin `{}` is not installed; the tenant's request is kept, and the \
                         plugin is activated again once it is installed (POST /api/packages, \
                         the admin page's upload, or a package in a plugin directory)",
                        request.plugin
                    ));
                }
                request.problem = request.problem.map(crate::error::in_operator_words);
                request
            }).collect::<Vec<_>>(),
        }))
    }

    /// Every tenant's overview.
    pub fn tenants_overview(&self) -> Result<Value, Problem> {
        let tenants = self
            .platform
            .tenants()
            .into_iter()
            .map(|(tenant, _)| self.tenant_overview(&tenant))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(json!({ "tenants": tenants }))
    }

    /// Each plugin's metrics, with its counts per tenant under `tenants`.
    pub fn metrics(&self) -> Value {
        let mut out = serde_json::Map::new();
        for id in self.host.plugin_ids() {
            if let Ok(snapshot) = self.host.metrics(&id) {
                let mut value = serde_json::to_value(snapshot).unwrap_or(Value::Null);
                if let (Value::Object(map), Ok(tenants)) =
                    (&mut value, self.host.tenant_metrics(&id))
                {
                    map.insert("tenants".to_owned(), json!(tenants));
                }
                out.insert(id, value);
            }
        }
        json!({ "plugins": out })
    }

    /// The dependency graph of the installed plugins, resolved now.
    pub fn graph(&self) -> (Value, String) {
        let found = self.discovered.current(&self.dirs);
        let manifests: Vec<Manifest> = found.plugins.iter().map(|p| p.manifest.clone()).collect();
        let api = semver_of(plugin_api::API_VERSION);
        let resolution = DependencyGraph::resolve(&manifests, &api);
        let mut graph = resolution.to_json();
        if let Value::Object(map) = &mut graph {
            map.insert("start_order".to_owned(), json!(resolution.start_order));
            map.insert("stop_order".to_owned(), json!(resolution.stop_order()));
            map.insert(
                "blocked".to_owned(),
                json!(resolution
                    .blocked
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()),
            );
            map.insert(
                "problems".to_owned(),
                json!(resolution
                    .problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()),
            );
        }
        (graph, resolution.to_dot())
    }

    /// The order to stop the loaded plugins in: the reverse of the
    /// dependency order, then any others (newest first).
    pub fn stop_order(&self) -> Vec<String> {
        let found = self.discovered.current(&self.dirs);
        let manifests: Vec<Manifest> = found.plugins.iter().map(|p| p.manifest.clone()).collect();
        let resolution = DependencyGraph::resolve(&manifests, &semver_of(plugin_api::API_VERSION));
        let loaded = self.host.plugin_ids();
        let mut order: Vec<String> = resolution
            .stop_order()
            .into_iter()
            .filter(|id| loaded.contains(id))
            .collect();
        for id in loaded.into_iter().rev() {
            if !order.contains(&id) {
                order.push(id);
            }
        }
        order
    }

    /// The last `limit` audit entries (all when `None`), oldest first.
    pub fn audit(&self, limit: Option<usize>) -> Result<Value, Problem> {
        let entries = self
            .platform
            .audit()
            .entries()
            .map_err(|e| Problem::internal(e.to_string()))?;
        let skip = limit.map_or(0, |n| entries.len().saturating_sub(n));
        let shown: Vec<_> = entries.into_iter().skip(skip).collect();
        Ok(json!({ "path": self.platform.audit().path(), "entries": shown }))
    }

    /// A JSON summary of the daemon for the admin page.
    pub fn info(&self) -> Value {
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "plugin_dirs": self.dirs,
            "state_dir": self.state_dir,
            "trust": match &self.trust {
                TrustPolicy::AllowUnsigned => "allow-unsigned".to_owned(),
                TrustPolicy::Require { trusted_keys } => format!(
                    "require ({})",
                    crate::wording::counted(trusted_keys.len(), "key", "keys")
                ),
            },
            "tiers": self.platform.tiers().names(),
            "standins": {
                "twilio": self.standins.twilio().map(|s| s.base_url()),
                "stripe": self.standins.stripe().map(|s| s.base_url().to_owned()),
            },
            "watching": self.watching.load(Ordering::Relaxed),
            "stopping": self.stopping.load(Ordering::Relaxed),
        })
    }
}
