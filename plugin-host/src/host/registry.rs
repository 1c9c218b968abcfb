//! The registry: loading a library into a `Slot` (read, verify, stage,
//! load in-process or isolated, register), finding plugins by id, service
//! or category, and the bookkeeping reloads and the supervisor read
//! (start order, dependents, subscriptions, tenant configurations).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use plugin_api::category::Contract;

use super::{Host, LoadOptions, PluginHandle, Prepared, ServicesTemplate, Slot};
use crate::error::HostError;
use crate::hooks::Subscription;
use crate::lifecycle::Lifecycle;
use crate::loader::{self, UnloadStats};
use crate::metrics::{ActiveTenants, PluginMetrics};
use crate::services::{PluginServices, ServiceBackend, StateStore};
use crate::signature::{self, SignatureCheck};

impl Host {
    /// Loads a plugin library: stages a private copy, checks it, loads it
    /// and instantiates the plugin. Returns the plugin's id.
    pub fn load(&self, path: &Path, options: LoadOptions) -> Result<String, HostError> {
        // Refused before dlopen: a second copy would share nothing with the first.
        let not_loaded = |id: &str| match self.inner.plugins.read().get(id) {
            Some(existing) => Err(HostError::AlreadyLoaded {
                plugin: id.to_owned(),
                existing: existing.source.read().clone(),
                path: path.to_owned(),
            }),
            None => Ok(()),
        };
        let Prepared {
            loaded,
            signature: signature_status,
            manifest_sha256,
        } = self.prepare(path, &options, not_loaded)?;
        let id = loaded.identity.id.clone();
        let slot = Arc::new(Slot {
            id: id.clone(),
            source: RwLock::new(path.to_owned()),
            lifecycle: Mutex::new(Lifecycle::new()),
            active_tenants: RwLock::new(Arc::new(ActiveTenants::default())),
            epoch: std::sync::atomic::AtomicU64::new(0),
            tenant_configs: Mutex::new(BTreeMap::new()),
            current: RwLock::new(Arc::new(loaded)),
            metrics: PluginMetrics::default(),
            signature: RwLock::new(signature_status),
            manifest_sha256: RwLock::new(manifest_sha256),
            services: RwLock::new(ServicesTemplate::from_options(
                &options,
                Arc::new(StateStore::default()),
            )),
            dependencies: RwLock::new(options.dependencies.clone()),
            reload_lock: Mutex::new(()),
        });
        attach_quarantine(&slot);
        {
            let mut plugins = self.inner.plugins.write();
            if let Some(existing) = plugins.get(&id) {
                return Err(HostError::AlreadyLoaded {
                    plugin: id,
                    existing: existing.source.read().clone(),
                    path: path.to_owned(),
                });
            }
            plugins.insert(id.clone(), slot);
        }
        let mut subs = options.hooks;
        for s in &mut subs {
            s.plugin = id.clone();
        }
        self.inner.subscriptions.write().extend(subs);
        self.inner.rebuild_hook_order();
        self.record_started(&id);
        tracing::info!(plugin = %id, path = %path.display(), "loaded");
        Ok(id)
    }

    /// Reads, verifies, stages and loads a library without registering it.
    pub(crate) fn prepare(
        &self,
        path: &Path,
        options: &LoadOptions,
        before_dlopen: impl FnOnce(&str) -> Result<(), HostError>,
    ) -> Result<Prepared, HostError> {
        let label = loader::label_of(path);
        let plugin = options.expected_id.clone().unwrap_or_else(|| label.clone());
        let io = |action: &'static str, at: &Path, source: std::io::Error| HostError::Io {
            plugin: plugin.clone(),
            action,
            path: at.to_owned(),
            source,
        };
        let bytes = std::fs::read(path).map_err(|e| io("reading the plugin library", path, e))?;
        let signature_path = options.signature.clone().unwrap_or_else(|| {
            let mut p = path.as_os_str().to_owned();
            p.push(".minisig");
            PathBuf::from(p)
        });
        let signature = match plugin_package::read::read_text(&signature_path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io("reading the signature", &signature_path, e)),
        };
        let manifest = match &options.manifest_path {
            Some(p) => Some(std::fs::read(p).map_err(|e| io("reading the manifest", p, e))?),
            None => None,
        };
        let signature_status = signature::verify(
            &self.inner.trust,
            &SignatureCheck {
                library: &bytes,
                signature: signature.as_deref(),
                plugin: &plugin,
                expected_id: options.expected_id.as_deref(),
                manifest: manifest.as_deref(),
                version: options.expected_version.as_deref(),
                path,
            },
        )?;
        let staged = self.inner.loader.stage_bytes(path, &plugin, &bytes)?;
        drop(bytes);
        // Refusals before dlopen leave no private copy behind.
        let refuse = |e: HostError| {
            let _ = std::fs::remove_file(&staged.path);
            Err(e)
        };
        if let (Some(expected), Some(embedded)) = (&options.expected_id, &staged.embedded) {
            let id = &embedded.id;
            if expected != id {
                return refuse(HostError::IdentityMismatch {
                    expected: expected.clone(),
                    found: id.clone(),
                    path: path.to_owned(),
                });
            }
        }
        if let Some(embedded) = &staged.embedded {
            if let Err(e) = before_dlopen(&embedded.id) {
                return refuse(e);
            }
        }
        // Isolation branch point (issue 13): the runner loads the library instead.
        let id = staged
            .embedded
            .as_ref()
            .map_or(plugin.as_str(), |e| e.id.as_str());
        let (mode, process) = self
            .inner
            .isolation
            .resolve(id, options.isolation, &options.process);
        let loaded = match mode {
            crate::isolation::Isolation::InProcess => self.inner.loader.load(&staged)?,
            mode => crate::isolation::load_isolated(
                &staged,
                mode,
                options
                    .permissions
                    .iter()
                    .map(|p| p.name().to_owned())
                    .collect(),
                process,
                self.inner.runner.as_deref(),
            )?,
        };
        if let Some(expected) = &options.expected_id {
            if *expected != loaded.identity.id {
                return Err(HostError::IdentityMismatch {
                    expected: expected.clone(),
                    found: loaded.identity.id.clone(),
                    path: path.to_owned(),
                });
            }
        }
        Ok(Prepared {
            loaded,
            signature: signature_status,
            manifest_sha256: manifest
                .as_deref()
                .map(|bytes| <sha2::Sha256 as sha2::Digest>::digest(bytes).into()),
        })
    }

    pub(crate) fn record_started(&self, id: &str) {
        let mut started = self.inner.started.lock();
        started.retain(|s| s != id);
        started.push(id.to_owned());
    }

    /// Loaded plugins in the order they were loaded.
    pub(crate) fn started_order(&self) -> Vec<String> {
        let loaded = self.inner.plugins.read();
        let mut order: Vec<String> = self
            .inner
            .started
            .lock()
            .iter()
            .filter(|id| loaded.contains_key(*id))
            .cloned()
            .collect();
        // Plugins loaded one by one with `load` come after, in id order.
        for id in loaded.keys() {
            if !order.contains(id) {
                order.push(id.clone());
            }
        }
        order
    }

    pub(crate) fn services_for(&self, slot: &Slot) -> plugin_api::abi::HostServicesBox {
        let template = slot.services.read();
        self.services_with(&slot.id, &template)
    }

    pub(crate) fn services_with(
        &self,
        plugin: &str,
        template: &ServicesTemplate,
    ) -> plugin_api::abi::HostServicesBox {
        PluginServices {
            plugin: plugin.to_owned(),
            permissions: template.permissions.clone(),
            config_json: template.config_json.clone(),
            store: template.store.clone(),
            host: {
                let backend: Arc<dyn ServiceBackend> = self.inner.clone();
                Arc::downgrade(&backend)
            },
        }
        .into_box()
    }

    /// The running live reloads' watch state, for [`Host::health`].
    pub(crate) fn inner_live(&self) -> &Mutex<Vec<std::sync::Weak<crate::watch::WatchHealth>>> {
        &self.inner.live
    }

    pub(crate) fn slot(&self, id: &str) -> Result<Arc<Slot>, HostError> {
        self.inner.slot(id)
    }

    pub(crate) fn invalidate_dispatch(&self) {
        self.inner.invalidate_dispatch();
    }

    /// Tenants the plugin is active for, with their configurations.
    pub(crate) fn tenant_configs(&self, id: &str) -> Vec<(String, String)> {
        match self.inner.slot(id) {
            Ok(slot) => slot
                .tenant_configs
                .lock()
                .iter()
                .map(|(t, c)| (t.clone(), c.clone()))
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Loaded plugins that depend on `id`, directly or not, in start order.
    pub(crate) fn loaded_dependents(&self, id: &str) -> Vec<String> {
        let plugins: Vec<(String, Vec<String>)> = self
            .inner
            .plugins
            .read()
            .values()
            .map(|s| (s.id.clone(), s.dependencies.read().clone()))
            .collect();
        let mut found: BTreeSet<String> = BTreeSet::new();
        let mut frontier = vec![id.to_owned()];
        while let Some(next) = frontier.pop() {
            for (plugin, deps) in &plugins {
                if deps.contains(&next) && found.insert(plugin.clone()) {
                    frontier.push(plugin.clone());
                }
            }
        }
        self.started_order()
            .into_iter()
            .filter(|p| found.contains(p))
            .collect()
    }

    /// The hook subscriptions `id` holds now.
    pub(crate) fn subscriptions_of(&self, id: &str) -> Vec<Subscription> {
        self.inner
            .subscriptions
            .read()
            .iter()
            .filter(|s| s.plugin == id)
            .cloned()
            .collect()
    }

    pub(crate) fn replace_subscriptions(&self, id: &str, subs: Vec<Subscription>) {
        {
            let mut all = self.inner.subscriptions.write();
            all.retain(|s| s.plugin != id);
            all.extend(subs.into_iter().map(|mut s| {
                s.plugin = id.to_owned();
                s
            }));
        }
        self.inner.rebuild_hook_order();
    }

    /// Ids of all loaded plugins, sorted.
    pub fn plugin_ids(&self) -> Vec<String> {
        self.inner.plugins.read().keys().cloned().collect()
    }

    /// A handle for calling into the plugin's current version.
    pub fn plugin(&self, id: &str) -> Result<PluginHandle, HostError> {
        let slot = self.inner.slot(id)?;
        let loaded = slot.current.read().clone();
        let tenants = slot.active_tenants.read().clone();
        Ok(PluginHandle {
            slot,
            loaded,
            tenants,
        })
    }

    /// How many old library versions were unloaded, and which stayed mapped.
    pub fn unload_stats(&self) -> UnloadStats {
        self.inner.loader.unload_stats()
    }

    /// Plugins offering `extension` (`hooks`, `service`, `state`, or a
    /// category code such as `network-automation`), sorted by id. A name
    /// this host does not know is an error, never an empty list.
    pub fn plugins_with(&self, extension: &str) -> Result<Vec<String>, HostError> {
        let known = ["hooks", "service", "state"].iter().chain(
            plugin_api::KNOWN_CATEGORIES
                .iter()
                .filter(|c| **c != "custom"),
        );
        if !known.clone().any(|k| *k == extension) {
            return Err(HostError::UnknownExtension {
                name: extension.to_owned(),
                known: known.copied().collect::<Vec<_>>().join(", "),
            });
        }
        Ok(self
            .statuses()
            .into_iter()
            .filter(|s| s.extensions.contains(&extension))
            .map(|s| s.identity.id)
            .collect())
    }

    /// Plugins exporting category `C`, sorted by id.
    pub fn providers<C: Contract>(&self) -> Vec<String> {
        let plugins = self.inner.plugins.read();
        plugins
            .values()
            .filter(|s| s.current.read().categories.get::<C>().is_some())
            .map(|s| s.id.clone())
            .collect()
    }

    /// Plugins providing the named service (manifest `provides`), sorted by id.
    pub fn providers_of(&self, service: &str) -> Vec<String> {
        let plugins = self.inner.plugins.read();
        plugins
            .values()
            .filter(|s| s.services.read().provides.iter().any(|p| p == service))
            .map(|s| s.id.clone())
            .collect()
    }

    /// Plugins of a category (e.g. `payment`), sorted by id.
    pub fn plugins_in_category(&self, category: &str) -> Vec<String> {
        self.statuses()
            .into_iter()
            .filter(|s| s.identity.category == category)
            .map(|s| s.identity.id)
            .collect()
    }

    /// The first plugin (by id) exporting category `C` that is active for `tenant`.
    pub fn provider_for_tenant<C: Contract>(&self, tenant: &str) -> Option<PluginHandle> {
        self.providers::<C>()
            .into_iter()
            .filter_map(|id| self.plugin(&id).ok())
            .find(|p| p.is_active_for(tenant))
    }
}

/// Lets a quarantine fail the plugin's lifecycle (state `failed`, health red).
fn attach_quarantine(slot: &Arc<Slot>) {
    let loaded = slot.current.read().clone();
    if let Some(child) = crate::isolation::child_of(&loaded.isolation) {
        let weak = Arc::downgrade(slot);
        child.set_on_quarantine(Box::new(move |reason| {
            if let Some(slot) = weak.upgrade() {
                slot.lifecycle
                    .lock()
                    .quarantine(format!("quarantined: {reason}"));
            }
        }));
    }
}
