//! Tenants and their requests: adding a tenant, requesting and deactivating
//! a plugin, tier changes and restoring what the state says after a restart;
//! each persisted first, then acted on, else undone.

use super::*;

impl Platform {
    /// Adds a tenant holding `tier`.
    pub fn add_tenant(&self, tenant: &str, tier: &str) -> Result<(), PlatformError> {
        if !valid_tenant_id(tenant) {
            return Err(PlatformError::InvalidTenantId {
                tenant: tenant.to_owned(),
            });
        }
        self.inner.tiers.rank(tier)?;
        let mut state = self.inner.state.lock();
        if let Some(existing) = state.tenants.get(tenant) {
            return Err(PlatformError::TenantExists {
                tenant: tenant.to_owned(),
                tier: existing.tier.clone(),
            });
        }
        state.tenants.insert(
            tenant.to_owned(),
            TenantRecord {
                tier: tier.to_owned(),
                plugins: BTreeMap::new(),
            },
        );
        if let Err(e) = self.save_tenants(&state) {
            state.tenants.remove(tenant);
            return Err(e.into());
        }
        self.record(
            self.entry(AuditAction::AddTenant, AuditOutcome::Ok)
                .tenant(tenant)
                .detail(format!("tier `{tier}`")),
        )
    }

    /// Asks for `plugin` for `tenant` with `overrides` (a JSON object, or
    /// null): checks the tier, builds and checks the configuration, resolves
    /// its secrets, stores the request and activates the plugin for this
    /// tenant only. When the plugin is already active for the tenant, this
    /// is a configuration change: it is re-activated with the new
    /// configuration, and rolled back to the old one if that fails.
    ///
    /// A refused request (tier, configuration, secret) changes nothing; in
    /// particular a running configuration stays as it is. Every outcome is
    /// audited.
    pub fn request(
        &self,
        tenant: &str,
        plugin: &str,
        overrides: Value,
    ) -> Result<(), PlatformError> {
        let mut state = self.inner.state.lock();
        let action = if self.is_active(plugin, tenant) {
            AuditAction::ConfigChange
        } else {
            AuditAction::Activate
        };
        let outcome = self.request_locked(&mut state, tenant, plugin, overrides);
        if let Err(error) = &outcome {
            let result = match error {
                PlatformError::TierTooLow { .. }
                | PlatformError::Config(_)
                | PlatformError::OverridesNotAnObject { .. } => AuditOutcome::Refused,
                // Nothing to attribute the entry to.
                PlatformError::UnknownTenant { .. } | PlatformError::UnknownPlugin { .. } => {
                    return outcome;
                }
                _ => AuditOutcome::Failed,
            };
            let version = state.plugins.get(plugin).map(|p| p.version.clone());
            self.record(
                self.entry(action, result)
                    .tenant(tenant)
                    .plugin(plugin)
                    .versions(None, version)
                    .detail(error.to_string()),
            )?;
        }
        outcome
    }

    pub(super) fn request_locked(
        &self,
        state: &mut State,
        tenant: &str,
        plugin: &str,
        overrides: Value,
    ) -> Result<(), PlatformError> {
        let overrides = match overrides {
            Value::Null => Map::new(),
            Value::Object(map) => map,
            _ => {
                return Err(PlatformError::OverridesNotAnObject {
                    tenant: tenant.to_owned(),
                    plugin: plugin.to_owned(),
                })
            }
        };
        let record = state
            .tenants
            .get(tenant)
            .ok_or_else(|| PlatformError::UnknownTenant {
                tenant: tenant.to_owned(),
            })?;
        let installed =
            state
                .plugins
                .get(plugin)
                .cloned()
                .ok_or_else(|| PlatformError::UnknownPlugin {
                    plugin: plugin.to_owned(),
                })?;
        if !self
            .inner
            .tiers
            .allows(&record.tier, &installed.required_tier)?
        {
            return Err(PlatformError::TierTooLow {
                tenant: tenant.to_owned(),
                plugin: plugin.to_owned(),
                required: installed.required_tier.clone(),
                held: record.tier.clone(),
            });
        }
        let previous = record.plugins.get(plugin).cloned();
        let request = PluginRequest { overrides };
        let config = self.resolve(&installed, tenant, plugin, &request)?;

        let was_active = self.is_active(plugin, tenant);
        set_request(state, tenant, plugin, Some(request.clone()));
        if let Err(e) = self.save_tenants(state) {
            set_request(state, tenant, plugin, previous);
            return Err(e.into());
        }
        let host = &self.inner.host;
        let version = Some(installed.version.clone());
        if was_active {
            let switched = host
                .deactivate(plugin, tenant)
                .and_then(|()| host.activate(plugin, tenant, config.expose_secret()));
            if let Err(source) = switched {
                let error = PlatformError::Host {
                    tenant: tenant.to_owned(),
                    source,
                };
                self.undo_request(state, tenant, plugin, previous.clone());
                self.roll_back_config(&installed, tenant, plugin, previous.as_ref(), &error)?;
                return Err(error);
            }
            tracing::info!(tenant, plugin, "configuration changed");
            self.record(
                self.entry(AuditAction::ConfigChange, AuditOutcome::Ok)
                    .tenant(tenant)
                    .plugin(plugin)
                    .versions(version.clone(), version)
                    .detail(format!("overridden keys: {}", keys_of(&request.overrides))),
            )
        } else {
            if let Err(source) = host.activate(plugin, tenant, config.expose_secret()) {
                self.undo_request(state, tenant, plugin, previous);
                return Err(PlatformError::Host {
                    tenant: tenant.to_owned(),
                    source,
                });
            }
            tracing::info!(tenant, plugin, "activated");
            self.record(
                self.entry(AuditAction::Activate, AuditOutcome::Ok)
                    .tenant(tenant)
                    .plugin(plugin)
                    .versions(None, version)
                    .detail(format!("overridden keys: {}", keys_of(&request.overrides))),
            )
        }
    }

    /// Puts the stored request back as it was; a failure to write is logged,
    /// since the caller is already reporting the original error.
    pub(super) fn undo_request(
        &self,
        state: &mut State,
        tenant: &str,
        plugin: &str,
        previous: Option<PluginRequest>,
    ) {
        set_request(state, tenant, plugin, previous);
        if let Err(e) = self.save_tenants(state) {
            tracing::error!(tenant, plugin, "cannot restore the stored request: {e}");
        }
    }

    /// After a failed configuration change, re-activates the plugin with its
    /// previous configuration and records the rollback.
    pub(super) fn roll_back_config(
        &self,
        installed: &Installed,
        tenant: &str,
        plugin: &str,
        previous: Option<&PluginRequest>,
        cause: &PlatformError,
    ) -> Result<(), PlatformError> {
        let restored = previous
            .ok_or_else(|| "no previous request".to_owned())
            .and_then(|prev| {
                self.resolve(installed, tenant, plugin, prev)
                    .map_err(|e| e.to_string())
            })
            .and_then(|config| {
                self.inner
                    .host
                    .activate(plugin, tenant, config.expose_secret())
                    .map_err(|e| e.to_string())
            });
        let version = Some(installed.version.clone());
        let (outcome, detail) = match restored {
            Ok(()) => (
                AuditOutcome::Ok,
                format!("new configuration failed ({cause}); previous configuration restored"),
            ),
            Err(e) => (
                AuditOutcome::Failed,
                format!(
                    "new configuration failed ({cause}); restoring the previous one failed too \
                     ({e}); the plugin is inactive for this tenant"
                ),
            ),
        };
        self.record(
            self.entry(AuditAction::Rollback, outcome)
                .tenant(tenant)
                .plugin(plugin)
                .versions(version.clone(), version)
                .detail(detail),
        )
    }

    /// Deactivates `plugin` for `tenant` and forgets the request.
    pub fn deactivate(&self, tenant: &str, plugin: &str) -> Result<(), PlatformError> {
        let mut state = self.inner.state.lock();
        let record = state
            .tenants
            .get(tenant)
            .ok_or_else(|| PlatformError::UnknownTenant {
                tenant: tenant.to_owned(),
            })?;
        let requested = record.plugins.get(plugin).cloned();
        let active = self.is_active(plugin, tenant);
        if requested.is_none() && !active {
            return Err(PlatformError::NotRequested {
                tenant: tenant.to_owned(),
                plugin: plugin.to_owned(),
            });
        }
        set_request(&mut state, tenant, plugin, None);
        if let Err(e) = self.save_tenants(&state) {
            set_request(&mut state, tenant, plugin, requested);
            return Err(e.into());
        }
        match state.plugins.get(plugin).cloned() {
            Some(installed) if active => {
                self.deactivate_in_host(&installed, plugin, tenant, "requested")
            }
            _ => self.record(
                self.entry(AuditAction::Deactivate, AuditOutcome::Ok)
                    .tenant(tenant)
                    .plugin(plugin)
                    .detail("request withdrawn; it was not active"),
            ),
        }
    }

    pub(super) fn deactivate_in_host(
        &self,
        installed: &Installed,
        plugin: &str,
        tenant: &str,
        why: &str,
    ) -> Result<(), PlatformError> {
        let result = self.inner.host.deactivate(plugin, tenant);
        let version = Some(installed.version.clone());
        let entry = self
            .entry(AuditAction::Deactivate, AuditOutcome::Ok)
            .tenant(tenant)
            .plugin(plugin)
            .versions(version, None);
        match result {
            Ok(()) => {
                tracing::info!(tenant, plugin, "deactivated: {why}");
                self.record(entry.detail(why))
            }
            Err(source) => {
                let error = PlatformError::Host {
                    tenant: tenant.to_owned(),
                    source,
                };
                let mut entry = entry.detail(format!("{why}: {error}"));
                entry.outcome = AuditOutcome::Failed;
                self.record(entry)?;
                Err(error)
            }
        }
    }

    /// Moves `tenant` to `new_tier`: requested plugins the new tier entitles
    /// are activated, those it does not are deactivated (their requests and
    /// overrides kept, so a later upgrade brings them back), and
    /// `customer.tier_changed` fires for the tenant once the plugins have
    /// moved. One plugin failing to move does not stop the others; see
    /// [`TierChange::failed`].
    pub fn change_tier(&self, tenant: &str, new_tier: &str) -> Result<TierChange, PlatformError> {
        self.inner.tiers.rank(new_tier)?;
        let mut state = self.inner.state.lock();
        let record =
            state
                .tenants
                .get(tenant)
                .cloned()
                .ok_or_else(|| PlatformError::UnknownTenant {
                    tenant: tenant.to_owned(),
                })?;
        let old_tier = record.tier.clone();
        let mut report = TierChange {
            from: old_tier.clone(),
            to: new_tier.to_owned(),
            ..TierChange::default()
        };
        if old_tier == new_tier {
            return Ok(report);
        }
        let plan = plan_tier_change(
            &self.inner.tiers,
            &old_tier,
            new_tier,
            record.plugins.keys().map(String::as_str),
            |p| state.plugins.get(p).map(|i| i.required_tier.clone()),
        )?;
        if let Some(r) = state.tenants.get_mut(tenant) {
            r.tier = new_tier.to_owned();
        }
        if let Err(e) = self.save_tenants(&state) {
            if let Some(r) = state.tenants.get_mut(tenant) {
                r.tier = old_tier;
            }
            return Err(e.into());
        }
        self.record(
            self.entry(AuditAction::TierChange, AuditOutcome::Ok)
                .tenant(tenant)
                .detail(format!(
                    "`{old_tier}` -> `{new_tier}`; activate [{}]; deactivate [{}]",
                    plan.activate.join(", "),
                    plan.deactivate.join(", ")
                )),
        )?;

        for plugin in &plan.deactivate {
            let Some(installed) = state.plugins.get(plugin).cloned() else {
                continue;
            };
            if !self.is_active(plugin, tenant) {
                continue;
            }
            let why = format!("tier `{new_tier}` does not include it; request kept");
            match self.deactivate_in_host(&installed, plugin, tenant, &why) {
                Ok(()) => report.deactivated.push(plugin.clone()),
                Err(e) => report.failed.push((plugin.clone(), e.to_string())),
            }
        }
        for plugin in &plan.activate {
            let why = format!("entitled by tier `{new_tier}`");
            match self.activate_requested(&state, tenant, plugin, &why) {
                Ok(()) => report.activated.push(plugin.clone()),
                Err(e) => report.failed.push((plugin.clone(), e.to_string())),
            }
        }
        let payload = TierChanged {
            tenant: tenant.to_owned(),
            from: report.from.clone(),
            to: report.to.clone(),
        };
        match self
            .inner
            .host
            .fire_json(tenant, CUSTOMER_TIER_CHANGED, &payload)
        {
            Ok(delivered) => report.hook = delivered,
            Err(cycle) => report
                .failed
                .push((CUSTOMER_TIER_CHANGED.to_owned(), cycle.to_string())),
        }
        Ok(report)
    }

    /// Activates a stored request (restore, upgrade), auditing the outcome.
    pub(super) fn activate_requested(
        &self,
        state: &State,
        tenant: &str,
        plugin: &str,
        why: &str,
    ) -> Result<(), PlatformError> {
        let result = (|| {
            let installed =
                state
                    .plugins
                    .get(plugin)
                    .ok_or_else(|| PlatformError::UnknownPlugin {
                        plugin: plugin.to_owned(),
                    })?;
            let request = state
                .tenants
                .get(tenant)
                .and_then(|r| r.plugins.get(plugin))
                .cloned()
                .unwrap_or_default();
            let config = self.resolve(installed, tenant, plugin, &request)?;
            self.inner
                .host
                .activate(plugin, tenant, config.expose_secret())
                .map_err(|source| PlatformError::Host {
                    tenant: tenant.to_owned(),
                    source,
                })?;
            Ok(installed.version.clone())
        })();
        let entry = self
            .entry(AuditAction::Activate, AuditOutcome::Ok)
            .tenant(tenant)
            .plugin(plugin);
        match result {
            Ok(version) => {
                tracing::info!(tenant, plugin, "activated: {why}");
                self.record(entry.versions(None, Some(version)).detail(why))
            }
            Err(error) => {
                let mut entry = entry.detail(format!("{why}: {error}"));
                entry.outcome = AuditOutcome::Failed;
                self.record(entry)?;
                Err(error)
            }
        }
    }

    /// After a restart, with the plugins loaded and initialized in the host:
    /// activates every requested plugin the tenant's tier entitles. A failure
    /// concerns one tenant and one plugin; the others go on.
    pub fn restore(&self) -> Result<RestoreReport, PlatformError> {
        let state = self.inner.state.lock();
        let mut report = RestoreReport::default();
        for (tenant, record) in &state.tenants {
            for plugin in record.plugins.keys() {
                let pair = (tenant.clone(), plugin.clone());
                let Some(installed) = state.plugins.get(plugin) else {
                    report
                        .skipped
                        .push((pair.0, pair.1, "not installed".to_owned()));
                    continue;
                };
                if !self
                    .inner
                    .tiers
                    .allows(&record.tier, &installed.required_tier)?
                {
                    report.skipped.push((
                        pair.0,
                        pair.1,
                        format!(
                            "tier `{}` does not include it (needs `{}`)",
                            record.tier, installed.required_tier
                        ),
                    ));
                    continue;
                }
                if self.is_active(plugin, tenant) {
                    report.already_active.push(pair);
                    continue;
                }
                match self.activate_requested(&state, tenant, plugin, "restored after a restart") {
                    Ok(()) => report.activated.push(pair),
                    Err(PlatformError::Persist(e)) => return Err(e.into()),
                    Err(e) => report.failed.push((pair.0, pair.1, e.to_string())),
                }
            }
        }
        Ok(report)
    }
}
