//! Installing and removing plugins in the platform's registry
//! (`plugins.json`), deactivating a removed plugin for every tenant.

use super::*;

impl Platform {
    /// Installs a plugin on the platform: records its version, required tier
    /// and configuration schema in the registry. Registering another version
    /// of an installed plugin replaces the record. Loading the library into
    /// the host is the caller's job.
    pub fn register_plugin(&self, manifest: &Manifest) -> Result<(), PlatformError> {
        let plugin = manifest.id.clone();
        let result = (|| {
            if self.inner.tiers.rank(&manifest.required_tier).is_err() {
                return Err(PlatformError::ManifestTier {
                    plugin: plugin.clone(),
                    manifest: manifest.path.clone(),
                    tier: manifest.required_tier.clone(),
                    known: self.inner.tiers.clone(),
                });
            }
            let schema = Schema::from_manifest(&manifest.config).map_err(|message| {
                PlatformError::Schema {
                    plugin: plugin.clone(),
                    manifest: manifest.path.clone(),
                    message,
                }
            })?;
            Ok(Installed {
                version: manifest.version.to_string(),
                required_tier: manifest.required_tier.clone(),
                manifest: manifest.path.clone(),
                schema,
            })
        })();
        let mut state = self.inner.state.lock();
        let previous = state.plugins.get(&plugin).map(|p| p.version.clone());
        let to = Some(manifest.version.to_string());
        let installed = match result {
            Ok(installed) => installed,
            Err(e) => {
                self.record(
                    self.entry(AuditAction::Install, AuditOutcome::Refused)
                        .plugin(&plugin)
                        .versions(previous, to)
                        .detail(e.to_string()),
                )?;
                return Err(e);
            }
        };
        let detail = format!(
            "manifest {}, required tier `{}`",
            installed.manifest.display(),
            installed.required_tier
        );
        let replaced = state.plugins.insert(plugin.clone(), installed);
        if let Err(e) = self.save_registry(&state) {
            match replaced {
                Some(old) => state.plugins.insert(plugin.clone(), old),
                None => state.plugins.remove(&plugin),
            };
            return Err(e.into());
        }
        self.record(
            self.entry(AuditAction::Install, AuditOutcome::Ok)
                .plugin(&plugin)
                .versions(previous, to)
                .detail(detail),
        )
    }

    /// Removes a plugin from the platform: deactivates it for every tenant
    /// and drops it from the registry. Tenants' requests are kept, so a
    /// reinstall followed by [`Platform::restore`] brings them back.
    pub fn remove_plugin(&self, plugin: &str) -> Result<(), PlatformError> {
        let mut state = self.inner.state.lock();
        let Some(installed) = state.plugins.get(plugin).cloned() else {
            return Err(PlatformError::UnknownPlugin {
                plugin: plugin.to_owned(),
            });
        };
        let mut first_error = None;
        let tenants: Vec<String> = state.tenants.keys().cloned().collect();
        for tenant in tenants {
            if self.is_active(plugin, &tenant) {
                if let Err(e) =
                    self.deactivate_in_host(&installed, plugin, &tenant, "plugin removed")
                {
                    first_error.get_or_insert(e);
                }
            }
        }
        let removed = state.plugins.remove(plugin);
        if let Err(e) = self.save_registry(&state) {
            if let Some(old) = removed {
                state.plugins.insert(plugin.to_owned(), old);
            }
            return Err(e.into());
        }
        self.record(
            self.entry(AuditAction::Remove, AuditOutcome::Ok)
                .plugin(plugin)
                .versions(Some(installed.version), None),
        )?;
        first_error.map_or(Ok(()), Err)
    }
}
