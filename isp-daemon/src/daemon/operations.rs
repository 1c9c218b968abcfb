//! What the admin API changes: activation, configuration, reloads and
//! newly installed plugins, each recorded in the audit log.

use super::*;

impl Daemon {
    /// Why `tenant` (on `tier`) has no active provider of category `C`.
    pub(crate) fn missing_provider<C: Contract>(&self, tenant: &str, tier: &str) -> String {
        let extension = C::NAME;
        let installed = self.host.providers::<C>();
        if installed.is_empty() {
            return format!("no {extension} plugin is installed");
        }
        let entitled: Vec<String> = installed
            .into_iter()
            .filter(|id| {
                self.required_tier(id).is_some_and(|required| {
                    self.platform
                        .tiers()
                        .allows(tier, &required)
                        .unwrap_or(false)
                })
            })
            .collect();
        if entitled.is_empty() {
            format!("tier {tier} has no {extension} provider")
        } else {
            format!(
                "no {extension} provider is active for {tenant} ({} not active)",
                entitled.join(", ")
            )
        }
    }

    /// A setting of the tenant's plugin as an operator may see it (redacted).
    pub(crate) fn shown_setting(&self, tenant: &str, plugin: &str, key: &str) -> Option<Value> {
        let view = self.platform.tenant_view(tenant).ok()?;
        let requested = view.plugins.into_iter().find(|p| p.plugin == plugin)?;
        requested.config.get(key).cloned()
    }

    /// Activates `plugin` for `tenant`: with `overrides` when given, else
    /// with the tenant's configured settings.
    pub fn activate(
        &self,
        actor: &str,
        tenant: &str,
        plugin: &str,
        overrides: Option<Value>,
    ) -> Result<(), Problem> {
        self.tier_of(tenant)?;
        self.known_plugin(plugin)?;
        let result = match overrides {
            Some(overrides) => self
                .platform
                .as_actor(actor)
                .request(tenant, plugin, overrides)
                .map_err(Problem::from),
            None => self.request_configured(actor, tenant, plugin),
        };
        result.map_err(|e| e.tenant(tenant).plugin(plugin))?;
        self.stop_waiting(tenant, plugin)
    }

    /// Deactivates `plugin` for `tenant` and withdraws its request.
    pub fn deactivate(&self, actor: &str, tenant: &str, plugin: &str) -> Result<(), Problem> {
        self.tier_of(tenant)?;
        self.known_plugin(plugin)?;
        let was_waiting = lock(&self.waiting)
            .requests
            .get(tenant)
            .is_some_and(|p| p.contains_key(plugin));
        match self.platform.as_actor(actor).deactivate(tenant, plugin) {
            Ok(()) => {}
            Err(PlatformError::NotRequested { .. }) if was_waiting => {}
            Err(e) => return Err(Problem::from(e).tenant(tenant).plugin(plugin)),
        }
        self.stop_waiting(tenant, plugin)
    }

    pub(super) fn known_plugin(&self, plugin: &str) -> Result<(), Problem> {
        let known = self
            .manifests
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(plugin);
        if known {
            Ok(())
        } else {
            Err(Problem::not_found(format!(
                "no plugin `{plugin}` is installed; list the plugins with GET /api/plugins"
            ))
            .plugin(plugin))
        }
    }

    /// The tenant's configuration of `plugin`, sensitive values redacted.
    pub fn plugin_config(&self, tenant: &str, plugin: &str) -> Result<TenantPluginView, Problem> {
        self.known_plugin(plugin)?;
        let view = self
            .platform
            .tenant_view(tenant)
            .map_err(|e| Problem::from(e).tenant(tenant))?;
        view.plugins
            .into_iter()
            .find(|p| p.plugin == plugin)
            .map(|mut found| {
                found.problem = found.problem.map(crate::error::in_operator_words);
                found
            })
            .ok_or_else(|| {
                Problem::new(
                    ProblemKind::NotFound,
                    format!(
                        "tenant `{tenant}` has not requested plugin `{plugin}`, so it has no \
                         configuration of it; activate it first"
                    ),
                )
                .tenant(tenant)
                .plugin(plugin)
            })
    }

    /// Reloads `plugin` from its folder in the plugin directories (or starts
    /// it, when it is installed but not running) and records it in the audit log.
    pub fn reload(&self, actor: &str, plugin: &str) -> Result<Value, Problem> {
        let found = self.discovered.scan(&self.dirs);
        // A running plugin whose folder fails start-up's checks (a library of
        // another version than its manifest, say) is reloaded through the
        // same checks, so it is refused with start-up's words.
        let failing_folder = found
            .problems
            .iter()
            .find_map(|p| p.plugin().filter(|(id, _)| *id == plugin).map(|(_, f)| f));
        let Some(installed) = found.plugins.into_iter().find(|p| p.manifest.id == plugin) else {
            if let (Some(folder), Some(_)) = (&failing_folder, self.host.state(plugin)) {
                return self.reload_running(actor, plugin, folder);
            }
            let problem = if self.host.state(plugin).is_some() {
                Problem::new(
                    ProblemKind::Conflict,
                    format!(
                        "plugin `{plugin}` is running, but its folder is no longer in the plugin \
                         directories; reinstall it to reload it"
                    ),
                )
            } else {
                Problem::not_found(format!(
                    "no plugin `{plugin}` is installed in {}; list the plugins with GET /api/plugins",
                    self.dirs
                        .iter()
                        .map(|d| d.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            };
            return Err(problem.plugin(plugin));
        };
        if self.host.state(plugin).is_none() {
            return self.start_new(actor, &installed.manifest, &installed.library);
        }
        self.reload_running(actor, plugin, &installed.folder)
    }

    /// Reloads a running plugin from `folder` through the host's checks.
    fn reload_running(&self, actor: &str, plugin: &str, folder: &Path) -> Result<Value, Problem> {
        let report = self
            .host
            .reload_installed(plugin, folder)
            .map_err(Problem::from)?;
        let (outcome, detail) = match &report.outcome {
            plugin_host::hot_reload::ReloadOutcome::Swapped if !report.library_changed => (
                AuditOutcome::Ok,
                format!("manifest applied: {}", report.manifest_changes.join("; ")),
            ),
            plugin_host::hot_reload::ReloadOutcome::Swapped => {
                (AuditOutcome::Ok, "swapped".to_owned())
            }
            plugin_host::hot_reload::ReloadOutcome::Unchanged => (
                AuditOutcome::Ok,
                "unchanged: the library's bytes and its manifest are the ones loaded".to_owned(),
            ),
            plugin_host::hot_reload::ReloadOutcome::RolledBack { step, error } => (
                AuditOutcome::Failed,
                format!("rolled back at the {step}: {error}"),
            ),
        };
        if report.swapped() {
            if let Ok(installed) = plugin_host::discovery::check_installed(folder) {
                self.adopt_manifest(&installed.manifest);
            }
        }
        self.audit_entry(
            AuditEntry::new(actor, AuditAction::Reload, outcome)
                .plugin(plugin)
                .versions(Some(report.from_version.clone()), report.to_version.clone())
                .detail(detail),
        );
        Ok(serde_json::to_value(&report).unwrap_or(Value::Null))
    }

    /// Releases an isolated plugin from quarantine (the operator's explicit
    /// action after fixing what made it crash): a fresh child process,
    /// initialized and re-activated for its tenants. Audited either way.
    ///
    /// # Errors
    /// 404 for a plugin that is not loaded, 409 for one that runs in-process
    /// (there is nothing to release), 500 when the new child fails.
    pub fn release_quarantine(&self, actor: &str, plugin: &str) -> Result<Value, Problem> {
        if self.host.state(plugin).is_none() {
            return Err(Problem::not_found(format!(
                "no plugin `{plugin}` is loaded; see GET /api/plugins"
            ))
            .plugin(plugin));
        }
        let Some(before) = self.host.isolation_status(plugin) else {
            return Err(Problem::new(
                ProblemKind::Conflict,
                format!(
                    "plugin `{plugin}` runs in-process, so it is never quarantined; isolation \
                     applies to plugins under [plugins.isolation.{plugin}]"
                ),
            )
            .plugin(plugin));
        };
        let result = self.host.release_quarantine(plugin);
        let (outcome, detail) = match &result {
            Ok(()) => (
                AuditOutcome::Ok,
                match &before.quarantined {
                    Some(reason) => format!("released from quarantine ({reason})"),
                    None => "released (it was not quarantined)".to_owned(),
                },
            ),
            Err(e) => (AuditOutcome::Failed, e.to_string()),
        };
        self.audit_entry(
            AuditEntry::new(actor, AuditAction::ReleaseQuarantine, outcome)
                .plugin(plugin)
                .detail(detail),
        );
        result.map_err(|e| Problem::from(e).plugin(plugin))?;
        Ok(serde_json::json!({
            "plugin": plugin,
            "was_quarantined": before.quarantined,
            "isolation": self.host.isolation_status(plugin),
        }))
    }

    /// Starts a plugin that was installed after the daemon started.
    pub(super) fn start_new(
        &self,
        actor: &str,
        manifest: &Manifest,
        library: &Path,
    ) -> Result<Value, Problem> {
        let id = self
            .host
            .load(library, load_options(manifest))
            .and_then(|id| self.host.initialize(&id).map(|()| id));
        match id {
            Ok(id) => {
                let activated = self.adopt_new_plugin(actor, &id);
                Ok(json!({
                    "plugin": id,
                    "outcome": "started",
                    "to_version": manifest.version.to_string(),
                    "activated_for": activated,
                }))
            }
            Err(e) => {
                let _ = self.host.remove(&manifest.id);
                Err(Problem::from(e).plugin(&manifest.id))
            }
        }
    }

    /// Starts every installed plugin that is not running, dependencies
    /// first (one whose required dependency is not running waits); one
    /// `[reload]` line per start or failure. For a plugin directory that
    /// appeared after the watch started.
    pub(crate) fn start_installed_now(&self, actor: &str) -> Vec<String> {
        let mut lines = Vec::new();
        let mut failed = std::collections::BTreeSet::new();
        loop {
            let ready: Vec<_> = self
                .discovered
                .scan(&self.dirs)
                .plugins
                .into_iter()
                .filter(|p| {
                    let id = &p.manifest.id;
                    self.host.state(id).is_none()
                        && !failed.contains(id)
                        && p.manifest
                            .dependencies
                            .iter()
                            .all(|(dep, spec)| spec.optional || self.host.state(dep).is_some())
                })
                .collect();
            if ready.is_empty() {
                return lines;
            }
            for plugin in ready {
                let (id, version) = (&plugin.manifest.id, &plugin.manifest.version);
                match self.start_new(actor, &plugin.manifest, &plugin.library) {
                    Ok(_) => lines.push(format!("[reload] {id} {version} started")),
                    Err(problem) => {
                        lines.push(format!("[reload] {id} could not start: {}", problem.error));
                        failed.insert(id.clone());
                    }
                }
            }
        }
    }

    pub(super) fn adopt_manifest(&self, manifest: &Manifest) {
        if let Err(e) = self.platform.register_plugin(manifest) {
            tracing::error!(plugin = %manifest.id, "cannot register the new manifest: {e}");
            return;
        }
        self.manifests
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(manifest.id.clone(), manifest.clone());
    }

    /// After a plugin started while the daemon runs: registers it, and
    /// activates it for the tenants that had asked for it and for those
    /// whose configured settings were waiting for it.
    pub(crate) fn adopt_new_plugin(&self, actor: &str, plugin: &str) -> Vec<String> {
        let found = self.discovered.scan(&self.dirs);
        if let Some(p) = found.plugins.into_iter().find(|p| p.manifest.id == plugin) {
            self.adopt_manifest(&p.manifest);
        }
        let mut activated = Vec::new();
        // Tenants that asked for it before it went away get it back.
        match self.platform.as_actor(actor).restore() {
            Ok(restored) => {
                for (tenant, id) in restored.activated {
                    if id == plugin {
                        activated.push(tenant);
                    }
                }
                for (tenant, id, error) in restored.failed {
                    tracing::warn!(plugin = %id, tenant = %tenant, "not restored: {error}");
                }
            }
            Err(e) => tracing::error!(plugin, "restoring the tenants' requests: {e}"),
        }
        let tenants: Vec<String> = lock(&self.waiting)
            .requests
            .iter()
            .filter(|(_, plugins)| plugins.contains_key(plugin))
            .map(|(tenant, _)| tenant.clone())
            .collect();
        for tenant in tenants {
            let outcome = self.activate_waiting(actor, &tenant);
            for (id, result) in outcome {
                match result {
                    Ok(()) => activated.push(tenant.clone()),
                    Err(e) => tracing::warn!(plugin = %id, tenant = %tenant, "{e}"),
                }
            }
        }
        activated
    }

    /// Records a reload the live loop did.
    pub(crate) fn record_live_reload(&self, report: &plugin_host::hot_reload::ReloadReport) {
        let (outcome, detail) = match &report.outcome {
            plugin_host::hot_reload::ReloadOutcome::RolledBack { step, error } => (
                AuditOutcome::Failed,
                format!("hot reload rolled back at the {step}: {error}"),
            ),
            plugin_host::hot_reload::ReloadOutcome::Swapped if !report.library_changed => (
                AuditOutcome::Ok,
                format!(
                    "hot reload from the plugin directory: manifest applied: {}",
                    report.manifest_changes.join("; ")
                ),
            ),
            _ => (
                AuditOutcome::Ok,
                "hot reload from the plugin directory".to_owned(),
            ),
        };
        if report.swapped() {
            let found = self.discovered.scan(&self.dirs);
            if let Some(p) = found
                .plugins
                .into_iter()
                .find(|p| p.manifest.id == report.plugin)
            {
                self.adopt_manifest(&p.manifest);
            }
        }
        self.audit_entry(
            AuditEntry::new("isp-daemon", AuditAction::Reload, outcome)
                .plugin(&report.plugin)
                .versions(Some(report.from_version.clone()), report.to_version.clone())
                .detail(detail),
        );
    }
}
