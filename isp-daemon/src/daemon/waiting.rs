//! Configured plugins waiting for a tier or an installation: kept in
//! `isp-daemon.json` (through the one atomic writer) and activated when allowed.

use super::*;

impl Daemon {
    pub(super) fn wait_reason(&self, tenant: &str, plugin: &str) -> String {
        let tier = self.tier_of(tenant).unwrap_or_default();
        match self.required_tier(plugin) {
            Some(required) => format!(
                "tier {tier} does not include it (needs {required}); it is activated when the tier allows"
            ),
            None => "it is not installed; it is activated when it is".to_owned(),
        }
    }

    pub(super) fn save_waiting(&self, waiting: &Waiting) -> Result<(), Problem> {
        let path = self.state_dir.join(DAEMON_STATE_FILE);
        let text =
            serde_json::to_vec_pretty(waiting).map_err(|e| Problem::internal(e.to_string()))?;
        // The same atomic, fsynced writer as the platform's state files.
        plugkit_durable::write_atomic(&path, &text, 0o600)
            .map_err(|e| Problem::internal(format!("writing {}: {e}", path.display())))
    }

    pub(super) fn wait(&self, tenant: &str, plugin: &str, why: &str) -> Result<(), Problem> {
        let mut waiting = lock(&self.waiting);
        waiting
            .requests
            .entry(tenant.to_owned())
            .or_default()
            .insert(plugin.to_owned(), why.to_owned());
        self.save_waiting(&waiting)
    }

    pub(super) fn stop_waiting(&self, tenant: &str, plugin: &str) -> Result<(), Problem> {
        let mut waiting = lock(&self.waiting);
        let removed = waiting
            .requests
            .get_mut(tenant)
            .and_then(|plugins| plugins.remove(plugin))
            .is_some();
        waiting.requests.retain(|_, plugins| !plugins.is_empty());
        if removed {
            self.save_waiting(&waiting)?;
        }
        Ok(())
    }

    /// Asks the platform for `plugin` for `tenant` with its configured settings.
    pub(super) fn request_configured(
        &self,
        actor: &str,
        tenant: &str,
        plugin: &str,
    ) -> Result<(), Problem> {
        let settings = self.config.settings(tenant, plugin).unwrap_or(Value::Null);
        self.platform
            .as_actor(actor)
            .request(tenant, plugin, settings)
            .map_err(Problem::from)
    }

    /// Activates the tenant's waiting plugins that its tier now allows.
    pub(crate) fn activate_waiting(
        &self,
        actor: &str,
        tenant: &str,
    ) -> Vec<(String, Result<(), Problem>)> {
        let candidates: Vec<String> = lock(&self.waiting)
            .requests
            .get(tenant)
            .map(|plugins| plugins.keys().cloned().collect())
            .unwrap_or_default();
        let tier = self.tier_of(tenant).unwrap_or_default();
        let mut out = Vec::new();
        for plugin in candidates {
            let allowed = self.required_tier(&plugin).is_some_and(|required| {
                self.platform
                    .tiers()
                    .allows(&tier, &required)
                    .unwrap_or(false)
            });
            if !allowed {
                continue;
            }
            let outcome = self
                .request_configured(actor, tenant, &plugin)
                .and_then(|()| self.stop_waiting(tenant, &plugin));
            out.push((plugin, outcome));
        }
        out
    }
}
