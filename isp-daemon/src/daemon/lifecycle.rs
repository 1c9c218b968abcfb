//! Starting the daemon (host, platform, plugins, configured tenants) and
//! shutting it down in reverse dependency order.

use super::*;

impl Daemon {
    /// Starts the daemon: stand-ins, plugins, platform state, tenants.
    /// Returns once every plugin that can start has started.
    pub fn start(config: Config, options: StartOptions) -> Result<Self> {
        let mut startup = Vec::new();
        let (state_dir, state_tmp) = match &config.state.dir {
            Some(dir) => (config.resolve(dir), None),
            None => {
                let (tmp, notes) = crate::scratch::create("isp-daemon-state-")
                    .context("creating a temporary state directory")?;
                startup.extend(notes.into_iter().map(|n| format!("[host] {n}")));
                (tmp.path().to_owned(), Some(tmp))
            }
        };
        std::fs::create_dir_all(&state_dir)
            .with_context(|| format!("creating the state directory {}", state_dir.display()))?;

        let dirs = match &options.plugins_from_build {
            Some(map) => {
                if config.trust.policy == crate::config::TrustMode::Require {
                    bail!(
                        "--plugins-from-build installs unsigned libraries, and the trust policy is \
                         `require`; pass --allow-unsigned (development), or install signed plugins \
                         with `cargo xtask install-common-plugins` and use --plugin-dir"
                    );
                }
                let dir = state_dir.join("plugins-from-build");
                let (ids, notes) = install::from_build(map, &dir)?;
                startup.push(format!(
                    "[host] --plugins-from-build: {} laid out UNSIGNED in {}",
                    ids.join(", "),
                    dir.display()
                ));
                startup.extend(notes.into_iter().map(|n| format!("[host] {n}")));
                vec![dir]
            }
            None => {
                // [provisioning] owns its plugin directory: a first boot creates it.
                if let Some(dir) = crate::provision_flag::create_plugin_dir(&config)? {
                    startup.push(format!(
                        "[host] created the plugin directory {} that [provisioning] fills",
                        dir.display()
                    ));
                }
                config.plugin_dirs()
            }
        };
        let trust = config.trust.policy(&config)?;

        let mut env: BTreeMap<String, String> = std::env::vars().collect();
        env.extend(options.env.clone());
        // Resolved by tenancy's resolver, the only one: same references and errors.
        let resolved = plugin_host::tenancy::resolve_secret_reference(
            &config.admin.token,
            &plugin_host::tenancy::Environment::fixed(env.clone()),
        )
        .map(|token| token.expose_secret().to_owned());
        let admin = match resolved {
            Ok(token) if !token.is_empty() => AdminSecret {
                token,
                generated: false,
            },
            Ok(_) if config.admin.generate_token_if_unset => AdminSecret {
                token: random_token()?,
                generated: true,
            },
            Ok(_) => bail!(
                "[admin] token: `{}` resolves to an empty value; set it, or set \
                 generate_token_if_unset = true for a demo",
                config.admin.token
            ),
            Err(_) if config.admin.generate_token_if_unset => AdminSecret {
                token: random_token()?,
                generated: true,
            },
            Err(e) => bail!(
                "[admin] token: {e}; set it, or set generate_token_if_unset = true for a demo"
            ),
        };
        let standins = Standins::start(&config, &env)?;
        startup.extend(standins.notes.iter().cloned());
        env.extend(standins.env.iter().cloned());
        let devices = options
            .devices
            .clone()
            .unwrap_or_else(|| Devices::none("the daemon was started without demo devices"));
        env.extend(devices.env_overrides());

        let (runtime_dir, notes) = crate::scratch::create("isp-daemon-runtime-")
            .context("creating the host's runtime directory")?;
        startup.extend(notes.into_iter().map(|n| format!("[host] {n}")));
        let mut host_config = HostConfig::with_runtime_dir(runtime_dir.path()).trust(trust.clone());
        host_config.isolation = config.plugins.isolation_policy();
        for (id, entry) in &config.plugins.isolation {
            startup.push(format!(
                "[host] {id}: isolation `{}`{}",
                entry.mode,
                entry
                    .memory_mb
                    .map(|mb| format!(", memory {mb} MiB"))
                    .unwrap_or_default()
            ));
        }
        let host = Host::new(host_config).context("creating the plugin host")?;
        startup.push(format!(
            "[host] plugin directories: {}",
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        startup.push(match &trust {
            TrustPolicy::AllowUnsigned => {
                "[host] trust: allow-unsigned — unsigned plugins load (development only)".to_owned()
            }
            TrustPolicy::Require { trusted_keys } => format!(
                "[host] trust: require — only libraries signed by {} load",
                match trusted_keys.len() {
                    1 => "the trusted key".to_owned(),
                    n => format!("one of {n} trusted keys"),
                }
            ),
        });
        let report = host.start_installed(&dirs);
        for status in host.statuses() {
            let signature = match &status.signature {
                SignatureStatus::Verified { key_id } => format!("signed by key {key_id}"),
                SignatureStatus::Unverified { reason } => format!("UNSIGNED: {reason}"),
            };
            startup.push(format!(
                "[host] started {} {} ({signature})",
                status.identity.id, status.identity.version
            ));
            if let Some(isolated) = host.isolation_status(&status.identity.id) {
                startup.push(format!(
                    "[host] {} runs isolated in a sandboxed child process (pid {}): {}",
                    status.identity.id,
                    isolated
                        .pid
                        .map_or_else(|| "none yet".to_owned(), |pid| pid.to_string()),
                    isolated.sandbox.join("; ")
                ));
            }
        }
        for problem in report.problems() {
            startup.push(format!("[host] problem: {problem}"));
        }

        let tiers = match &config.tiers {
            Some(names) => Tiers::new(names.clone()).context("[tiers]")?,
            None => Tiers::default(),
        };
        let config_dir = config
            .state
            .config_dir
            .as_deref()
            .map(|d| config.resolve(d))
            .unwrap_or_else(|| state_dir.clone());
        let webhooks =
            crate::webhook_state::Webhooks::open(&config.webhooks, &state_dir, &|text| {
                plugin_host::tenancy::resolve_secret_reference(
                    text,
                    &Environment::fixed(env.clone()),
                )
                .map(|s| s.expose_secret().to_owned())
                .map_err(|e| e.to_string())
            })?;
        let mut platform_config = PlatformConfig::new(&state_dir, config_dir);
        platform_config.tiers = tiers;
        platform_config.env = Environment::fixed(env.clone());
        platform_config.vault = match &config.vault {
            Some(vault) => Some(vault.resolve(&Environment::fixed(env))?),
            None => None,
        };
        platform_config.actor = "isp-daemon".to_owned();
        let platform = Platform::open(platform_config, host.clone())
            .with_context(|| format!("opening the platform state in {}", state_dir.display()))?;
        startup.push(format!(
            "[platform] state in {}{}",
            state_dir.display(),
            if state_tmp.is_some() {
                " (temporary: removed at exit; set [state] dir to keep it)"
            } else {
                ""
            }
        ));

        let waiting_path = state_dir.join(DAEMON_STATE_FILE);
        let waiting = match std::fs::read_to_string(&waiting_path) {
            Ok(text) => serde_json::from_str(&text).with_context(|| {
                format!(
                    "{} is corrupt; fix or remove it (it lists configured plugins waiting for a tier)",
                    waiting_path.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Waiting {
                format: 1,
                ..Waiting::default()
            },
            Err(e) => {
                return Err(e).with_context(|| format!("reading {}", waiting_path.display()))
            }
        };

        // After the waiting file: a corrupt key file names itself and stops the start.
        let keys = Arc::new(KeyStore::open(&state_dir)?);
        let limits = Arc::new(RateLimits::new(&config.rate_limits).map_err(anyhow::Error::msg)?);

        let daemon = Daemon {
            keys,
            limits,
            config,
            host,
            platform,
            dirs,
            trust,
            state_dir,
            standins,
            devices,
            admin,
            manifests: RwLock::new(BTreeMap::new()),
            discovered: Default::default(),
            flow_stats: Default::default(),
            waiting: Mutex::new(waiting),
            provisioning: Default::default(),
            startup,
            stopping: AtomicBool::new(false),
            watching: AtomicBool::new(false),
            webhooks,
            _runtime_dir: runtime_dir,
            _state_tmp: state_tmp,
        };
        let mut lines = Vec::new();
        daemon.register_started(&mut lines)?;
        let restored = daemon
            .platform
            .restore()
            .context("restoring the persisted state")?;
        if !restored.activated.is_empty() {
            lines.push(format!(
                "[platform] restored {} from the persisted state",
                crate::wording::counted(restored.activated.len(), "activation", "activations")
            ));
        }
        for (tenant, plugin, error) in &restored.failed {
            lines.push(format!("[{plugin}] {tenant}: FAILED to restore: {error}"));
        }
        daemon.seed_tenants(&mut lines)?;
        let mut daemon = daemon;
        daemon.startup.extend(lines);
        Ok(daemon)
    }

    /// Registers every started plugin's manifest with the platform.
    pub(super) fn register_started(&self, lines: &mut Vec<String>) -> Result<()> {
        let found = self.discovered.scan(&self.dirs);
        let mut manifests = self
            .manifests
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        for plugin in found.plugins {
            if self.host.state(&plugin.manifest.id).is_none() {
                continue;
            }
            if let Err(e) = self.platform.register_plugin(&plugin.manifest) {
                lines.push(format!(
                    "[platform] cannot register {}: {e}",
                    plugin.manifest.id
                ));
                continue;
            }
            manifests.insert(plugin.manifest.id.clone(), plugin.manifest);
        }
        Ok(())
    }

    /// Adds configured tenants that are new, and asks for their plugins.
    pub(super) fn seed_tenants(&self, lines: &mut Vec<String>) -> Result<()> {
        let existing: BTreeMap<String, String> = self.platform.tenants().into_iter().collect();
        for (tenant, configured) in &self.config.tenants {
            if let Some(tier) = existing.get(tenant) {
                if tier != &configured.tier {
                    lines.push(format!(
                        "[platform] {tenant}: keeps its persisted tier {tier} (configured: {})",
                        configured.tier
                    ));
                }
                continue;
            }
            self.platform
                .add_tenant(tenant, &configured.tier)
                .with_context(|| format!("adding tenant `{tenant}`"))?;
            lines.push(format!(
                "[platform] {tenant}: added on tier {}",
                configured.tier
            ));
            for plugin in configured.plugins.keys() {
                match self.request_configured("isp-daemon", tenant, plugin) {
                    Ok(()) => lines.push(format!("[{plugin}] {tenant}: activated")),
                    Err(why)
                        if why.kind == ProblemKind::Forbidden
                            || why.kind == ProblemKind::NotFound =>
                    {
                        let reason = self.wait_reason(tenant, plugin);
                        self.wait(tenant, plugin, &reason)?;
                        lines.push(format!("[{plugin}] {tenant}: waiting: {reason}"));
                    }
                    Err(e) => lines.push(format!("[{plugin}] {tenant}: FAILED to activate: {e}")),
                }
            }
        }
        Ok(())
    }

    /// Stops every plugin in reverse dependency order, recording in the
    /// audit log what stops for which tenant (requests are kept, so the
    /// next start restores them). Returns what it did, one line each; a
    /// second call does nothing.
    pub fn shutdown(&self) -> Vec<String> {
        if self.stopping.swap(true, Ordering::SeqCst) {
            return Vec::new();
        }
        self.watching.store(false, Ordering::SeqCst);
        let mut lines = Vec::new();
        let order = self.stop_order();
        lines.push(format!(
            "[host] stopping plugins in reverse dependency order: {}",
            order.join(", ")
        ));
        for id in &order {
            let (tenants, version) = match self.host.status(id) {
                Ok(status) => (status.tenants, Some(status.identity.version.clone())),
                Err(_) => (Vec::new(), None),
            };
            for tenant in tenants {
                self.audit_entry(
                    AuditEntry::new("isp-daemon", AuditAction::Deactivate, AuditOutcome::Ok)
                        .tenant(&tenant)
                        .plugin(id)
                        .versions(version.clone(), None)
                        .detail(crate::webhook_state::events::SHUTDOWN_DETAIL),
                );
            }
            match self.host.remove(id) {
                Ok(()) => lines.push(format!("[host] stopped {id}")),
                Err(e) => lines.push(format!("[host] stopped {id}, with an error: {e}")),
            }
        }
        for e in self.host.stop_all() {
            lines.push(format!("[host] stopping: {e}"));
        }
        if let Err(e) = self.keys.save_usage() {
            lines.push(format!("[keys] the API keys' last use was not saved: {e}"));
        }
        let count = self.platform.audit().entries().map_or(0, |e| e.len());
        lines.push(format!(
            "[audit] {}, each synced to {} as it was written",
            crate::wording::counted(count, "entry", "entries"),
            self.platform.audit().path().display()
        ));
        lines
    }
}
