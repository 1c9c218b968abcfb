//! Read-only views the operator's page browses by: a plugin's settings
//! schema, the catalog of available plugins by source, the tiers and
//! what each includes, and the install/reload/rollback history.

use super::*;

/// The audit actions that make up a plugin's version history.
const HISTORY: [AuditAction; 4] = [
    AuditAction::Install,
    AuditAction::Reload,
    AuditAction::Rollback,
    AuditAction::Remove,
];

impl Daemon {
    /// The settings form of `plugin`: each `[config.<key>]` with its type,
    /// whether it is required, its default, whether it is sensitive, and
    /// its description, in name order.
    ///
    /// # Errors
    /// 404 for a plugin that is not installed.
    pub fn plugin_schema(&self, plugin: &str) -> Result<Value, Problem> {
        self.known_plugin(plugin)?;
        let manifests = self
            .manifests
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(manifest) = manifests.get(plugin) else {
            return Err(Problem::not_found(format!(
                "no plugin `{plugin}` is installed"
            )));
        };
        let keys: Vec<Value> = manifest
            .config
            .iter()
            .map(|(key, spec)| {
                json!({
                    "key": key,
                    "type": spec.value_type.as_str(),
                    "required": spec.required,
                    "default": spec.default.as_ref().and_then(|d| serde_json::to_value(d).ok()),
                    "sensitive": spec.sensitive,
                    "description": spec.description,
                    "min": spec.min,
                    "max": spec.max,
                })
            })
            .collect();
        Ok(json!({
            "plugin": plugin,
            "name": manifest.name,
            "version": manifest.version.to_string(),
            "description": manifest.description,
            "required_tier": manifest.required_tier,
            "references": ["${env:VAR}", "${file:/path}", "${vault:path#key}"],
            "keys": keys,
        }))
    }

    /// What can be installed, by source. Today one source per plugin
    /// directory (`"kind": "plugin-directory"`); a registry catalog is
    /// another entry of `sources` with its own `kind`.
    pub fn catalog(&self) -> Value {
        let found = self.discovered.current(&self.dirs);
        let sources: Vec<Value> = self
            .dirs
            .iter()
            .map(|dir| {
                let plugins: Vec<Value> = found
                    .plugins
                    .iter()
                    .filter(|p| p.folder.starts_with(dir))
                    .map(|p| {
                        let m = &p.manifest;
                        json!({
                            "id": m.id,
                            "name": m.name,
                            "version": m.version.to_string(),
                            "description": m.description,
                            "category": m.category.as_str(),
                            "required_tier": m.required_tier,
                            "dependencies": m.dependencies.keys().collect::<Vec<_>>(),
                            "state": self.host.state(&m.id).map(|s| s.to_string()),
                        })
                    })
                    .collect();
                json!({
                    "kind": "plugin-directory",
                    "location": dir,
                    "installable": dir == &self.dirs[0],
                    "plugins": plugins,
                })
            })
            .collect();
        let problems: Vec<String> = found.problems.iter().map(ToString::to_string).collect();
        json!({ "sources": sources, "problems": problems })
    }

    /// The tiers, lowest first, each with the installed plugins it
    /// includes (a tier includes what every lower tier does).
    pub fn tiers_view(&self) -> Value {
        let tiers = self.platform.tiers();
        let manifests = self
            .manifests
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let rows: Vec<Value> = tiers
            .names()
            .iter()
            .map(|tier| {
                let includes: Vec<&str> = manifests
                    .values()
                    .filter(|m| tiers.allows(tier, &m.required_tier).unwrap_or(false))
                    .map(|m| m.id.as_str())
                    .collect();
                let tenants: Vec<String> = self
                    .platform
                    .tenants()
                    .into_iter()
                    .filter(|(_, t)| t == tier)
                    .map(|(name, _)| name)
                    .collect();
                json!({ "tier": tier, "includes": includes, "tenants": tenants })
            })
            .collect();
        json!({ "tiers": rows })
    }

    /// The last `limit` installs, reloads, rollbacks and removals, oldest first.
    pub fn history(&self, limit: usize) -> Result<Value, Problem> {
        let entries = self
            .platform
            .audit()
            .entries()
            .map_err(|e| Problem::internal(e.to_string()))?;
        let shown: Vec<&AuditEntry> = entries
            .iter()
            .filter(|e| HISTORY.contains(&e.action))
            .collect();
        let skip = shown.len().saturating_sub(limit);
        Ok(json!({ "entries": shown.into_iter().skip(skip).collect::<Vec<_>>() }))
    }
}
