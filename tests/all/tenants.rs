//! The multi-tenant platform end to end, on real plugin libraries: tenant
//! isolation, tier gates and tier changes, layered configuration, secrets
//! from env, files and a live OpenBao, the canary leak hunt, and state that
//! survives a restart.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use plugin_host::dispatch::Subscription;
use plugin_host::package::manifest::Manifest;
use plugin_host::tenancy::{
    AuditAction, AuditOutcome, ConfigError, Environment, PersistError, SecretError, VaultConfig,
    AUDIT_FILE, REDACTED, REGISTRY_FILE, TENANTS_FILE,
};
use plugin_host::{Host, HostConfig, LoadOptions, Platform, PlatformConfig, PlatformError};
use plugkit_testkit::openbao::OpenBao;
use plugkit_testkit::process::{free_tcp_port, workspace_root};
use plugkit_tests::{artifacts, with_log_capture};
use serde_json::{json, Value};
use tempfile::TempDir;

const ECHO: &str = "tenant-echo";

/// The fixture's own manifest.
fn echo_manifest() -> Manifest {
    let path = workspace_root().join("tests/fixtures/tenant-echo/plugin.toml");
    Manifest::load(&path).expect("tenant-echo manifest")
}

/// A manifest for a recording fixture (`fixture-good`, `dep-a`) at `tier`.
fn recording_manifest(dir: &Path, id: &str, tier: &str) -> Manifest {
    let path = dir.join("plugins").join(id).join("plugin.toml");
    let text = format!(
        "id = \"{id}\"\nname = \"{id}\"\nversion = \"0.1.0\"\napi = \"^0.2\"\n\
         library = \"lib{id}.so\"\nrequired_tier = \"{tier}\"\n\
         [[hooks]]\nname = \"customer.tier_changed\"\n"
    );
    Manifest::parse(&text, &path).expect("manifest")
}

fn subscriptions(manifest: &Manifest) -> Vec<Subscription> {
    manifest
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
        .collect()
}

/// A test's world: one host, the plugins it loaded, and directories.
struct World {
    dir: TempDir,
    host: Host,
    manifests: Vec<Manifest>,
}

impl World {
    /// A host with `tenant-echo` plus the recording fixtures named as
    /// `(package, id, tier)`, each loaded and initialized.
    fn new(extra: &[(&str, &str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let host = new_host(dir.path(), "runtime");
        let mut manifests = vec![echo_manifest()];
        for (_, id, tier) in extra {
            manifests.push(recording_manifest(dir.path(), id, tier));
        }
        let world = Self {
            dir,
            host,
            manifests,
        };
        world.load_all(&world.host, extra);
        world
    }

    fn load_all(&self, host: &Host, extra: &[(&str, &str, &str)]) {
        let mut packages = vec!["fixture-tenant-echo"];
        packages.extend(extra.iter().map(|(package, _, _)| *package));
        for (package, manifest) in packages.iter().zip(&self.manifests) {
            let id = host
                .load(
                    artifacts().library(package),
                    LoadOptions {
                        expected_id: Some(manifest.id.clone()),
                        hooks: subscriptions(manifest),
                        ..LoadOptions::default()
                    },
                )
                .expect("load");
            host.initialize(&id).expect("initialize");
        }
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn config_dir(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    /// Writes `config/plugins/<plugin>.toml`.
    fn config_file(&self, plugin: &str, text: &str) -> PathBuf {
        let path = self
            .config_dir()
            .join("plugins")
            .join(format!("{plugin}.toml"));
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, text).expect("write config");
        path
    }

    fn platform_config(&self, env: Environment, vault: Option<VaultConfig>) -> PlatformConfig {
        let mut config = PlatformConfig::new(self.state_dir(), self.config_dir());
        config.env = env;
        config.vault = vault;
        config.actor = "test-admin".to_owned();
        config
    }

    /// A platform on this world's host with every manifest registered.
    fn platform(&self, env: Environment, vault: Option<VaultConfig>) -> Platform {
        let platform = Platform::open(self.platform_config(env, vault), self.host.clone())
            .expect("open platform");
        for manifest in &self.manifests {
            platform.register_plugin(manifest).expect("register");
        }
        platform
    }
}

fn new_host(dir: &Path, runtime: &str) -> Host {
    Host::new(HostConfig::with_runtime_dir(dir.join(runtime))).expect("host")
}

fn no_env() -> Environment {
    Environment::fixed(Vec::<(String, String)>::new())
}

fn invoke_json(host: &Host, plugin: &str, tenant: &str, method: &str, payload: Value) -> Value {
    let bytes = host
        .plugin(plugin)
        .and_then(|p| p.invoke(tenant, method, payload.to_string().as_bytes()))
        .unwrap_or_else(|e| panic!("{plugin}.{method} for {tenant}: {e}"));
    serde_json::from_slice(&bytes).expect("json answer")
}

/// The configuration `tenant-echo` holds for `tenant`, secrets masked by the plugin.
fn echo_config(host: &Host, tenant: &str) -> Value {
    invoke_json(host, ECHO, tenant, "config", Value::Null)
}

/// Whether `tenant-echo` received exactly `value` for `key` for `tenant`.
fn echo_has(host: &Host, tenant: &str, key: &str, value: &str) -> bool {
    invoke_json(
        host,
        ECHO,
        tenant,
        "matches",
        json!({ "key": key, "value": value }),
    ) == json!(true)
}

fn active(host: &Host, plugin: &str, tenant: &str) -> bool {
    host.plugin(plugin)
        .is_ok_and(|handle| handle.is_active_for(tenant))
}

fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{prefix}-{}-{nanos:x}", std::process::id())
}

#[test]
fn two_tenants_share_a_plugin_without_seeing_each_others_configuration() {
    let world = World::new(&[]);
    let file = world.config_file(ECHO, "# shared by every tenant\nmax_calls = 20\n");
    let globex_key = world.dir.path().join("globex.key");
    std::fs::write(&globex_key, "globex-secret-from-file\n").expect("key file");
    let platform = world.platform(
        Environment::fixed([("ACME_KEY", "acme-secret-from-env")]),
        None,
    );
    platform.add_tenant("acme", "free").expect("acme");
    platform.add_tenant("globex", "pro").expect("globex");

    platform
        .request(
            "acme",
            ECHO,
            json!({ "api_key": "${env:ACME_KEY}", "greeting": "hola" }),
        )
        .expect("acme activates");
    // Activating for acme did nothing for globex.
    assert!(active(&world.host, ECHO, "acme"));
    assert!(!active(&world.host, ECHO, "globex"));
    assert_eq!(
        invoke_json(&world.host, ECHO, "acme", "tenants", Value::Null),
        json!(["acme"])
    );

    platform
        .request(
            "globex",
            ECHO,
            json!({
                "api_key": format!("${{file:{}}}", globex_key.display()),
                "greeting": "bonjour",
                "regions": ["us", "ca"],
            }),
        )
        .expect("globex activates");

    assert_eq!(
        echo_config(&world.host, "acme"),
        json!({
            "api_key": "<masked>", "greeting": "hola", "max_calls": 20,
            "ratio": 0.5, "enabled": true, "regions": ["eu"],
        })
    );
    assert_eq!(
        echo_config(&world.host, "globex"),
        json!({
            "api_key": "<masked>", "greeting": "bonjour", "max_calls": 20,
            "ratio": 0.5, "enabled": true, "regions": ["us", "ca"],
        })
    );
    // Each tenant's credential reached the plugin, and only its own.
    assert!(echo_has(
        &world.host,
        "acme",
        "api_key",
        "acme-secret-from-env"
    ));
    assert!(!echo_has(
        &world.host,
        "acme",
        "api_key",
        "globex-secret-from-file"
    ));
    assert!(echo_has(
        &world.host,
        "globex",
        "api_key",
        "globex-secret-from-file"
    ));
    assert!(!echo_has(
        &world.host,
        "globex",
        "api_key",
        "acme-secret-from-env"
    ));

    // The operator's view: redacted, with sources, and nothing of the other tenant.
    let view = platform.tenant_view("acme").expect("view");
    assert_eq!(view.tier, "free");
    let echo = &view.plugins[0];
    assert!(echo.active && echo.entitled && echo.problem.is_none());
    assert_eq!(echo.config["api_key"], json!(REDACTED));
    assert_eq!(echo.config["greeting"], json!("hola"));
    assert_eq!(
        echo.sources["max_calls"],
        format!("{}:2:13", file.display())
    );
    assert_eq!(
        echo.sources["api_key"],
        "the tenant's overrides via ${env:ACME_KEY}"
    );
    let shown = serde_json::to_string(&view).expect("serialize view");
    assert!(
        !shown.contains("bonjour") && !shown.contains("globex"),
        "{shown}"
    );

    // Deactivating one tenant leaves the other serving, configuration intact.
    platform.deactivate("acme", ECHO).expect("deactivate acme");
    assert!(!active(&world.host, ECHO, "acme"));
    assert_eq!(
        echo_config(&world.host, "globex")["greeting"],
        json!("bonjour")
    );

    let entries = platform.audit().entries().expect("audit");
    let summary: Vec<(AuditAction, Option<&str>, AuditOutcome, &str)> = entries
        .iter()
        .filter(|e| e.tenant.is_some())
        .map(|e| (e.action, e.tenant.as_deref(), e.outcome, e.actor.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            (
                AuditAction::AddTenant,
                Some("acme"),
                AuditOutcome::Ok,
                "test-admin"
            ),
            (
                AuditAction::AddTenant,
                Some("globex"),
                AuditOutcome::Ok,
                "test-admin"
            ),
            (
                AuditAction::Activate,
                Some("acme"),
                AuditOutcome::Ok,
                "test-admin"
            ),
            (
                AuditAction::Activate,
                Some("globex"),
                AuditOutcome::Ok,
                "test-admin"
            ),
            (
                AuditAction::Deactivate,
                Some("acme"),
                AuditOutcome::Ok,
                "test-admin"
            ),
        ]
    );
    let activation = entries
        .iter()
        .find(|e| e.action == AuditAction::Activate)
        .expect("activate entry");
    assert_eq!(activation.plugin.as_deref(), Some(ECHO));
    assert_eq!(activation.to_version.as_deref(), Some("0.1.0"));
    assert!(activation.time.ends_with('Z') && activation.time.contains('T'));
}

#[test]
fn a_tenant_below_the_required_tier_is_refused_with_both_tiers_named() {
    let world = World::new(&[("fixture-good", "fixture-good", "pro")]);
    let platform = world.platform(no_env(), None);
    platform.add_tenant("acme", "free").expect("acme");

    let err = platform
        .request("acme", "fixture-good", Value::Null)
        .expect_err("free may not run a pro plugin");
    assert!(matches!(err, PlatformError::TierTooLow { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "tenant `acme` holds tier `free`, but plugin `fixture-good` needs tier `pro` or higher; \
         upgrade the tenant to `pro` first"
    );
    assert!(!active(&world.host, "fixture-good", "acme"));
    assert!(platform
        .tenant_view("acme")
        .expect("view")
        .plugins
        .is_empty());
    let last = platform
        .audit()
        .entries()
        .expect("audit")
        .pop()
        .expect("entry");
    assert_eq!(
        (last.action, last.outcome, last.plugin.as_deref()),
        (
            AuditAction::Activate,
            AuditOutcome::Refused,
            Some("fixture-good")
        )
    );
    assert_eq!(last.detail, err.to_string());

    // A manifest asking for a tier the platform does not have is refused at install.
    let odd = recording_manifest(world.dir.path(), "fixture-good", "platinum");
    let err = platform.register_plugin(&odd).expect_err("unknown tier");
    assert!(matches!(err, PlatformError::ManifestTier { .. }), "{err:?}");
    assert!(
        err.to_string().contains(
            "requires tier `platinum`, which this platform does not have (tiers: `free` < `pro` \
             < `enterprise`)"
        ),
        "{err}"
    );
}

#[test]
fn removing_a_plugin_deactivates_it_for_every_tenant_and_keeps_their_requests() {
    let world = World::new(&[]);
    let platform = world.platform(Environment::fixed([("K", "k")]), None);
    for tenant in ["acme", "globex"] {
        platform.add_tenant(tenant, "free").expect("tenant");
        platform
            .request(tenant, ECHO, json!({ "api_key": "${env:K}" }))
            .expect("request");
    }
    platform
        .as_actor("alice")
        .remove_plugin(ECHO)
        .expect("remove");
    assert!(!active(&world.host, ECHO, "acme") && !active(&world.host, ECHO, "globex"));
    let view = platform.tenant_view("acme").expect("view");
    assert_eq!(view.plugins.len(), 1, "the request is kept");
    assert_eq!(view.plugins[0].version, None);
    let entries = platform.audit().entries().expect("audit");
    let tail: Vec<(AuditAction, &str, Option<&str>)> = entries[entries.len() - 3..]
        .iter()
        .map(|e| (e.action, e.actor.as_str(), e.from_version.as_deref()))
        .collect();
    assert_eq!(
        tail,
        [
            (AuditAction::Deactivate, "alice", Some("0.1.0")),
            (AuditAction::Deactivate, "alice", Some("0.1.0")),
            (AuditAction::Remove, "alice", Some("0.1.0")),
        ]
    );
    let err = platform
        .request("acme", ECHO, Value::Null)
        .expect_err("not installed");
    assert!(
        matches!(err, PlatformError::UnknownPlugin { .. }),
        "{err:?}"
    );

    // Installing it again and restoring brings both tenants back.
    platform
        .register_plugin(&echo_manifest())
        .expect("reinstall");
    let report = platform.restore().expect("restore");
    assert_eq!(report.activated.len(), 2, "{report:?}");
    assert!(echo_has(&world.host, "globex", "api_key", "k"));
}

#[test]
fn upgrade_and_downgrade_move_the_right_plugins_and_fire_the_hook() {
    let world = World::new(&[
        ("fixture-good", "fixture-good", "pro"),
        ("fixture-dep-a", "dep-a", "enterprise"),
    ]);
    world.config_file(ECHO, "api_key = \"${env:SHARED_KEY}\"\n");
    let platform = world.platform(Environment::fixed([("SHARED_KEY", "k")]), None);
    platform.add_tenant("acme", "enterprise").expect("acme");
    platform.add_tenant("globex", "enterprise").expect("globex");
    for plugin in [ECHO, "fixture-good", "dep-a"] {
        platform.request("acme", plugin, Value::Null).expect("acme");
    }
    platform
        .request("globex", ECHO, Value::Null)
        .expect("globex echo");
    platform
        .request("globex", "dep-a", Value::Null)
        .expect("globex dep-a");
    let hooks_of = |tenant: &str| invoke_json(&world.host, ECHO, tenant, "hooks", Value::Null);
    let acme_active = || {
        [ECHO, "fixture-good", "dep-a"]
            .into_iter()
            .filter(|p| active(&world.host, p, "acme"))
            .collect::<Vec<_>>()
    };

    let down = platform.change_tier("acme", "free").expect("downgrade");
    assert_eq!(down.deactivated, ["dep-a", "fixture-good"]);
    assert!(
        down.activated.is_empty() && down.failed.is_empty(),
        "{down:?}"
    );
    assert_eq!(acme_active(), [ECHO]);
    // The other tenant on the same plugins is untouched.
    assert!(active(&world.host, "dep-a", "globex"));
    assert_eq!(down.hook.delivered, [ECHO]);
    assert_eq!(
        hooks_of("acme"),
        json!([{ "hook": "customer.tier_changed",
                 "payload": { "tenant": "acme", "from": "enterprise", "to": "free" } }])
    );
    assert_eq!(hooks_of("globex"), json!([]));

    // Requests are kept while the tier does not allow them.
    let view = platform.tenant_view("acme").expect("view");
    let kept: Vec<(&str, bool, bool)> = view
        .plugins
        .iter()
        .map(|p| (p.plugin.as_str(), p.entitled, p.active))
        .collect();
    assert_eq!(
        kept,
        [
            ("dep-a", false, false),
            ("fixture-good", false, false),
            (ECHO, true, true)
        ]
    );

    let up = platform.change_tier("acme", "pro").expect("upgrade to pro");
    assert_eq!(up.activated, ["fixture-good"]);
    assert!(up.deactivated.is_empty(), "{up:?}");
    assert_eq!(acme_active(), [ECHO, "fixture-good"]);
    let up = platform.change_tier("acme", "enterprise").expect("upgrade");
    assert_eq!(up.activated, ["dep-a"]);
    assert_eq!(acme_active(), [ECHO, "fixture-good", "dep-a"]);
    // fixture-good subscribes too, and now hears about the tier as acme's plugin.
    assert_eq!(up.hook.delivered.len(), 3, "{:?}", up.hook);
    assert_eq!(hooks_of("acme").as_array().map(Vec::len), Some(3));

    let tier_changes: Vec<String> = platform
        .audit()
        .entries()
        .expect("audit")
        .into_iter()
        .filter(|e| e.action == AuditAction::TierChange)
        .map(|e| e.detail)
        .collect();
    assert_eq!(
        tier_changes,
        [
            "`enterprise` -> `free`; activate []; deactivate [dep-a, fixture-good]",
            "`free` -> `pro`; activate [fixture-good]; deactivate []",
            "`pro` -> `enterprise`; activate [dep-a]; deactivate []",
        ]
    );
}

#[test]
fn configuration_errors_name_key_tenant_file_line_and_type() {
    let world = World::new(&[]);
    let file = world.config_file(
        ECHO,
        "greeting = \"hi\"\nmax_calls = \"many\"\ncolour = 1\n",
    );
    let platform = world.platform(no_env(), None);
    platform.add_tenant("acme", "free").expect("acme");
    let err = platform
        .request(
            "acme",
            ECHO,
            json!({ "api_key": "${env:NOPE}", "enabled": "yes" }),
        )
        .expect_err("invalid");
    assert!(
        matches!(err, PlatformError::Config(ConfigError::Invalid { .. })),
        "{err:?}"
    );
    let path = file.display();
    assert_eq!(
        err.to_string(),
        format!(
            "configuration of plugin `tenant-echo` for tenant `acme` has 3 problems; fix each and \
             retry:\n  \
             key `colour` (set in {path}:3:10) is not in the plugin's [config] schema, which \
             declares `api_key`, `enabled`, `greeting`, `max_calls`, `ratio`, `region_note`, \
             `regions`; remove it or fix its spelling\n  \
             key `max_calls` (set in {path}:2:13) must be of type integer, found a string; write \
             an integer such as 42\n  \
             key `enabled` (set in the tenant's overrides) must be of type boolean, found a \
             string; write true or false"
        )
    );
    assert!(!active(&world.host, ECHO, "acme"));
    let view = platform.tenant_view("acme").expect("view");
    assert!(view.plugins.is_empty(), "a refused request is not stored");
}

#[test]
fn a_configuration_change_reactivates_with_the_new_values() {
    let world = World::new(&[]);
    let platform = world.platform(Environment::fixed([("K", "secret")]), None);
    platform.add_tenant("acme", "free").expect("acme");
    platform
        .request(
            "acme",
            ECHO,
            json!({ "api_key": "${env:K}", "greeting": "one" }),
        )
        .expect("first");
    platform
        .request(
            "acme",
            ECHO,
            json!({ "api_key": "${env:K}", "greeting": "two" }),
        )
        .expect("change");
    assert_eq!(echo_config(&world.host, "acme")["greeting"], json!("two"));
    let last = platform
        .audit()
        .entries()
        .expect("audit")
        .pop()
        .expect("entry");
    assert_eq!(
        (last.action, last.outcome),
        (AuditAction::ConfigChange, AuditOutcome::Ok)
    );
    assert_eq!(last.detail, "overridden keys: `api_key`, `greeting`");

    // A change that cannot be resolved leaves the running configuration alone.
    let err = platform
        .request(
            "acme",
            ECHO,
            json!({ "api_key": "${env:MISSING}", "greeting": "three" }),
        )
        .expect_err("unresolvable");
    assert!(matches!(err, PlatformError::Secret { .. }), "{err:?}");
    assert_eq!(echo_config(&world.host, "acme")["greeting"], json!("two"));
    let view = platform.tenant_view("acme").expect("view");
    assert_eq!(view.plugins[0].config["greeting"], json!("two"));
}

#[test]
fn secrets_resolve_from_env_file_and_a_live_openbao() {
    let bao = OpenBao::start().expect("OpenBao");
    bao.put_secret(
        "tenants/vaultco",
        &json!({ "api_key": "from-openbao", "calls": "7" }),
    )
    .expect("write secret");
    let world = World::new(&[]);
    let key_file = world.dir.path().join("fileco.key");
    std::fs::write(&key_file, "from-file\n").expect("key file");
    let vault = VaultConfig::new(bao.addr(), bao.root_token().to_owned().into());
    let platform = world.platform(Environment::fixed([("ENVCO_KEY", "from-env")]), Some(vault));
    let cases = [
        ("envco", "${env:ENVCO_KEY}".to_owned(), "from-env"),
        (
            "fileco",
            format!("${{file:{}}}", key_file.display()),
            "from-file",
        ),
        (
            "vaultco",
            "${vault:tenants/vaultco#api_key}".to_owned(),
            "from-openbao",
        ),
    ];
    for (tenant, reference, _) in &cases {
        platform.add_tenant(tenant, "free").expect("tenant");
        platform
            .request(tenant, ECHO, json!({ "api_key": reference }))
            .unwrap_or_else(|e| panic!("{tenant}: {e}"));
    }
    for (tenant, _, value) in &cases {
        assert!(echo_has(&world.host, tenant, "api_key", value), "{tenant}");
    }
    // A secret stands for a value of any type, checked once resolved.
    platform
        .request(
            "vaultco",
            ECHO,
            json!({ "api_key": "${vault:tenants/vaultco#api_key}",
                    "max_calls": "${vault:tenants/vaultco#calls}" }),
        )
        .expect("typed secret");
    assert_eq!(echo_config(&world.host, "vaultco")["max_calls"], json!(7));
}

#[test]
fn vault_failures_fail_closed_and_name_the_reference_not_the_token() {
    let bao = OpenBao::start().expect("OpenBao");
    bao.put_secret("tenants/acme", &json!({ "api_key": "fine" }))
        .expect("write secret");
    let world = World::new(&[]);
    let token = bao.root_token().to_owned();
    let good = world.platform(
        no_env(),
        Some(VaultConfig::new(bao.addr(), token.clone().into())),
    );
    good.add_tenant("acme", "free").expect("acme");
    good.add_tenant("globex", "free").expect("globex");
    good.request(
        "acme",
        ECHO,
        json!({ "api_key": "${vault:tenants/acme#api_key}" }),
    )
    .expect("acme reads its secret");

    let check =
        |platform: &Platform, reference: &str, expect: fn(&SecretError) -> bool, says: &str| {
            let err = platform
                .request("globex", ECHO, json!({ "api_key": reference }))
                .expect_err("must fail closed");
            match &err {
                PlatformError::Secret {
                    source,
                    key,
                    tenant,
                    ..
                } => {
                    assert!(expect(source), "{source:?}");
                    assert_eq!((key.as_str(), tenant.as_str()), ("api_key", "globex"));
                }
                other => panic!("expected a secret error, got {other:?}"),
            }
            let text = err.to_string();
            assert!(text.contains(reference), "{text}");
            assert!(text.contains(says), "{text}");
            assert!(
                !text.contains(&token) && !format!("{err:?}").contains(&token),
                "{text}"
            );
            assert!(!active(&world.host, ECHO, "globex"), "{reference}");
            assert!(platform
                .tenant_view("globex")
                .expect("view")
                .plugins
                .is_empty());
            // The other tenant keeps running.
            assert!(echo_has(&world.host, "acme", "api_key", "fine"));
            text
        };

    let missing = check(
        &good,
        "${vault:tenants/nobody#api_key}",
        |e| matches!(e, SecretError::NotFound { .. }),
        "has no secret at secret/data/tenants/nobody",
    );
    assert!(
        missing.ends_with("the plugin was not activated for this tenant"),
        "{missing}"
    );
    check(
        &good,
        "${vault:tenants/acme#other_key}",
        |e| matches!(e, SecretError::NotFound { .. }),
        "has no key `other_key`",
    );

    let wrong_token = Platform::open(
        world.platform_config(
            no_env(),
            Some(VaultConfig::new(
                bao.addr(),
                "not-the-token".to_owned().into(),
            )),
        ),
        world.host.clone(),
    )
    .expect("second platform view");
    check(
        &wrong_token,
        "${vault:tenants/acme#api_key}",
        |e| matches!(e, SecretError::Denied { .. }),
        "does not accept the configured token",
    );
    drop(wrong_token);

    let addr = bao.addr();
    drop(bao);
    let down = check(
        &good,
        "${vault:tenants/acme#api_key}",
        |e| matches!(e, SecretError::Unavailable { .. }),
        &format!("cannot reach Vault at {addr}"),
    );
    assert!(down.contains("check that it runs"), "{down}");

    let failures = good
        .audit()
        .entries()
        .expect("audit")
        .into_iter()
        .filter(|e| e.outcome == AuditOutcome::Failed && e.tenant.as_deref() == Some("globex"))
        .count();
    // Both platform values share the state directory and so the audit log.
    assert_eq!(failures, 4, "each failed activation is audited");
}

/// The reason a refused `${vault:...}` reference gives, with its variant.
fn vault_refusal(platform: &Platform, reference: &str) -> (SecretError, String) {
    let err = platform
        .request("globex", ECHO, json!({ "api_key": reference }))
        .expect_err("must fail closed");
    let text = err.to_string();
    match err {
        PlatformError::Secret { source, .. } => (*source, text),
        other => panic!("expected a secret error, got {other:?}"),
    }
}

fn bao_ok(bao: &OpenBao, method: &str, path: &str, body: Option<serde_json::Value>) -> String {
    let (status, answer) = bao.api(method, path, body.as_ref()).expect("OpenBao API");
    assert!(
        (200..300).contains(&status),
        "{method} {path}: {status} {answer}"
    );
    answer
}

// Issue 14, item 5: against a live OpenBao, each way a KV v2 read is refused
// says why and what to do, instead of "no secret at …; write it there".
#[test]
fn each_vault_refusal_says_exactly_why_and_what_to_do_next() {
    let bao = OpenBao::start().expect("OpenBao");
    let world = World::new(&[]);
    let root = bao.root_token().to_owned();
    let platform_with = |mount: &str, token: &str| {
        let mut vault = VaultConfig::new(bao.addr(), token.to_owned().into());
        vault.mount = mount.to_owned();
        Platform::open(
            world.platform_config(no_env(), Some(vault)),
            world.host.clone(),
        )
        .expect("platform")
    };
    // The first view registers the plugins; the others share its state.
    let root_platform = world.platform(
        no_env(),
        Some(VaultConfig::new(bao.addr(), root.clone().into())),
    );
    root_platform.add_tenant("globex", "free").expect("globex");

    // The latest version deleted: a 404 that still carries its metadata.
    bao.put_secret("tenants/deleted", &json!({ "api_key": "v1" }))
        .unwrap();
    bao.put_secret("tenants/deleted", &json!({ "api_key": "v2" }))
        .unwrap();
    bao_ok(&bao, "DELETE", "secret/data/tenants/deleted", None);
    let (err, text) = vault_refusal(&root_platform, "${vault:tenants/deleted#api_key}");
    assert!(matches!(err, SecretError::Deleted { .. }), "{text}");
    assert!(
        text.contains("latest version (2)")
            && text.contains("was deleted at 20")
            && text.contains("bao kv undelete -mount=secret -versions=2 tenants/deleted"),
        "{text}"
    );

    // A destroyed version cannot be restored, only written again.
    bao.put_secret("tenants/destroyed", &json!({ "api_key": "v1" }))
        .unwrap();
    bao_ok(
        &bao,
        "PUT",
        "secret/destroy/tenants/destroyed",
        Some(json!({ "versions": [1] })),
    );
    let (err, text) = vault_refusal(&root_platform, "${vault:tenants/destroyed#api_key}");
    assert!(matches!(err, SecretError::Destroyed { .. }), "{text}");
    assert!(
        text.contains("latest version (1)")
            && text.contains("cannot be recovered")
            && text.contains("bao kv put -mount=secret tenants/destroyed api_key=..."),
        "{text}"
    );

    // The secret exists, on a KV version 1 mount a v2 read never finds.
    bao_ok(
        &bao,
        "POST",
        "sys/mounts/kv1",
        Some(json!({ "type": "kv", "options": { "version": "1" } })),
    );
    bao_ok(
        &bao,
        "POST",
        "kv1/tenants/acme",
        Some(json!({ "api_key": "x" })),
    );
    let (err, text) = vault_refusal(
        &platform_with("kv1", &root),
        "${vault:tenants/acme#api_key}",
    );
    assert!(matches!(err, SecretError::WrongMount { .. }), "{text}");
    assert!(
        text.contains("`kv1/` is a KV version 1 engine")
            && text.contains("bao kv enable-versioning kv1/"),
        "{text}"
    );

    // Another kind of engine, and no engine at all.
    bao_ok(
        &bao,
        "POST",
        "sys/mounts/transit",
        Some(json!({ "type": "transit" })),
    );
    let (err, text) = vault_refusal(
        &platform_with("transit", &root),
        "${vault:tenants/acme#api_key}",
    );
    assert!(matches!(err, SecretError::WrongMount { .. }), "{text}");
    assert!(text.contains("`transit/` is a `transit` engine"), "{text}");
    let (err, text) = vault_refusal(
        &platform_with("nomount", &root),
        "${vault:tenants/acme#api_key}",
    );
    assert!(matches!(err, SecretError::WrongMount { .. }), "{text}");
    assert!(
        text.contains("no secrets engine mounted at `nomount/`")
            && text.contains("bao secrets enable -path=nomount kv-v2"),
        "{text}"
    );

    // A valid token whose policy does not reach the path, then an unknown token.
    bao.put_secret("tenants/acme", &json!({ "api_key": "fine" }))
        .unwrap();
    bao_ok(
        &bao,
        "PUT",
        "sys/policy/other-tenants",
        Some(json!({ "policy": "path \"secret/data/other/*\" { capabilities = [\"read\"] }" })),
    );
    let created = bao_ok(
        &bao,
        "POST",
        "auth/token/create",
        Some(json!({ "policies": ["other-tenants"] })),
    );
    let narrow: serde_json::Value = serde_json::from_str(&created).unwrap();
    let narrow = narrow["auth"]["client_token"].as_str().unwrap().to_owned();
    let (err, text) = vault_refusal(
        &platform_with("secret", &narrow),
        "${vault:tenants/acme#api_key}",
    );
    assert!(matches!(err, SecretError::Denied { .. }), "{text}");
    assert!(
        text.contains("the token is valid, but its policies (default, other-tenants)")
            && text.contains("grant `read` on `secret/data/tenants/acme`"),
        "{text}"
    );
    assert!(!text.contains(&narrow), "{text}");
    let (err, text) = vault_refusal(
        &platform_with("secret", "s.not-a-token"),
        "${vault:tenants/acme#api_key}",
    );
    assert!(matches!(err, SecretError::Denied { .. }), "{text}");
    assert!(
        text.contains("does not accept the configured token")
            && text.contains("mistyped, expired or revoked"),
        "{text}"
    );

    // A sealed server.
    bao_ok(&bao, "PUT", "sys/seal", None);
    let (err, text) = vault_refusal(&root_platform, "${vault:tenants/acme#api_key}");
    assert!(matches!(err, SecretError::Sealed { .. }), "{text}");
    assert!(
        text.contains("is sealed (503)") && text.contains("bao operator unseal"),
        "{text}"
    );
    assert!(!text.contains(&root), "{text}");
}

#[test]
fn canary_secret_never_leaks_into_logs_errors_views_or_files() {
    let canary = unique("canary-7f3a");
    let bao = OpenBao::start().expect("OpenBao");
    bao.put_secret("tenants/canary", &json!({ "api_key": canary }))
        .expect("write secret");
    let world = World::new(&[("fixture-good", "fixture-good", "pro")]);
    // The operator's file points every tenant at the vault secret.
    world.config_file(ECHO, "api_key = \"${vault:tenants/canary#api_key}\"\n");
    let vault = VaultConfig::new(bao.addr(), bao.root_token().to_owned().into());

    let mut printed: Vec<(String, String)> = Vec::new();
    let mut note = |what: &str, text: String| printed.push((what.to_owned(), text));
    let lines = with_log_capture(|log| {
        let platform = world.platform(
            Environment::fixed([("GLOBEX_KEY", canary.as_str())]),
            Some(vault.clone()),
        );
        platform.add_tenant("acme", "pro").expect("acme");
        platform.add_tenant("globex", "free").expect("globex");
        platform
            .request("acme", ECHO, Value::Null)
            .expect("acme via vault");
        platform
            .request("globex", ECHO, json!({ "api_key": "${env:GLOBEX_KEY}" }))
            .expect("globex via env");
        platform
            .request("acme", "fixture-good", Value::Null)
            .expect("good");
        // The canary really went through.
        assert!(echo_has(&world.host, "acme", "api_key", &canary));
        assert!(echo_has(&world.host, "globex", "api_key", &canary));

        // Every way of getting it wrong, each with an error to inspect.
        let attempts = [
            json!({ "api_key": canary }),
            json!({ "api_key": "${env:GLOBEX_KEY}", "max_calls": canary }),
            json!({ "api_key": "${env:GLOBEX_KEY}", "max_calls": "${env:GLOBEX_KEY}" }),
            json!({ "api_key": "${env:GLOBEX_KEY}", "enabled": canary }),
            json!(canary),
        ];
        for attempt in attempts {
            let err = platform
                .request("globex", ECHO, attempt)
                .expect_err("refused");
            note("error", err.to_string());
            note("error debug", format!("{err:?}"));
        }
        let change = platform.change_tier("acme", "free").expect("downgrade");
        note("tier change", format!("{change:?}"));
        note(
            "tier change json",
            serde_json::to_string(&change).expect("json"),
        );
        for tenant in ["acme", "globex"] {
            let view = platform.tenant_view(tenant).expect("view");
            note("view debug", format!("{view:?}"));
            note("view json", serde_json::to_string(&view).expect("json"));
            note(
                "plugin answer",
                echo_config(&world.host, tenant).to_string(),
            );
        }
        note("platform debug", format!("{platform:?}"));
        note("statuses", format!("{:?}", world.host.statuses()));
        note("health", format!("{:?}", world.host.health()));
        note("vault config", format!("{vault:?}"));
        platform.deactivate("globex", ECHO).expect("deactivate");

        // A restart on a fresh host, restored from the state files.
        let host = new_host(world.dir.path(), "runtime-2");
        world.load_all(&host, &[("fixture-good", "fixture-good", "pro")]);
        let reopened = Platform::open(
            world.platform_config(
                Environment::fixed([("GLOBEX_KEY", canary.as_str())]),
                Some(vault.clone()),
            ),
            host.clone(),
        )
        .expect("reopen");
        let restored = reopened.restore().expect("restore");
        note("restore", format!("{restored:?}"));
        note("reopened debug", format!("{reopened:?}"));
        assert!(echo_has(&host, "acme", "api_key", &canary));
        let lines = log.lines();
        assert!(
            lines
                .iter()
                .any(|l| l.contains("lifecycle tenant-echo activate acme")),
            "the capture sees plugin logs"
        );
        lines
    });
    for line in lines {
        note("log line", line);
    }
    for entry in std::fs::read_dir(world.state_dir()).expect("state dir") {
        let path = entry.expect("entry").path();
        note(
            &path.display().to_string(),
            std::fs::read_to_string(&path).expect("read state file"),
        );
    }
    for name in [TENANTS_FILE, REGISTRY_FILE, AUDIT_FILE] {
        assert!(
            printed.iter().any(|(what, _)| what.ends_with(name)),
            "{name} was inspected"
        );
    }
    let leaks: Vec<&(String, String)> = printed
        .iter()
        .filter(|(_, text)| text.contains(&canary))
        .collect();
    assert!(leaks.is_empty(), "the canary leaked: {leaks:#?}");
    assert!(printed.len() > 20, "inspected {} outputs", printed.len());
}

#[test]
fn state_survives_a_restart_and_restore_reactivates_what_it_says() {
    let world = World::new(&[("fixture-good", "fixture-good", "pro")]);
    let env = || Environment::fixed([("K", "k")]);
    {
        let platform = world.platform(env(), None);
        platform.add_tenant("acme", "pro").expect("acme");
        platform.add_tenant("globex", "pro").expect("globex");
        platform
            .request(
                "acme",
                ECHO,
                json!({ "api_key": "${env:K}", "greeting": "kept" }),
            )
            .expect("acme echo");
        platform
            .request("acme", "fixture-good", Value::Null)
            .expect("good");
        platform
            .request("globex", ECHO, json!({ "api_key": "${env:K}" }))
            .expect("globex");
        platform
            .request("globex", "fixture-good", Value::Null)
            .expect("good");
        platform.change_tier("globex", "free").expect("downgrade");
    }

    // A new process: a fresh host with the plugins loaded, the same state dir.
    let host = new_host(world.dir.path(), "runtime-2");
    world.load_all(&host, &[("fixture-good", "fixture-good", "pro")]);
    let platform =
        Platform::open(world.platform_config(env(), None), host.clone()).expect("reopen");
    assert_eq!(
        platform.tenants(),
        [
            ("acme".to_owned(), "pro".to_owned()),
            ("globex".to_owned(), "free".to_owned())
        ]
    );
    let report = platform.restore().expect("restore");
    let pairs = |v: &[(String, String)]| {
        v.iter()
            .map(|(t, p)| format!("{t}/{p}"))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        pairs(&report.activated),
        [
            "acme/fixture-good",
            "acme/tenant-echo",
            "globex/tenant-echo"
        ]
    );
    assert_eq!(report.skipped.len(), 1, "{report:?}");
    assert_eq!(
        (report.skipped[0].0.as_str(), report.skipped[0].1.as_str()),
        ("globex", "fixture-good")
    );
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(echo_config(&host, "acme")["greeting"], json!("kept"));
    assert!(!active(&host, "fixture-good", "globex"));

    // Restoring twice changes nothing.
    let again = platform.restore().expect("restore again");
    assert!(
        again.activated.is_empty() && again.already_active.len() == 3,
        "{again:?}"
    );
    // The audit log spans both runs.
    let entries = platform.audit().entries().expect("audit");
    assert!(entries
        .iter()
        .any(|e| e.detail == "restored after a restart"));
    assert!(entries.iter().any(|e| e.action == AuditAction::Install));
}

#[test]
fn a_corrupt_state_file_is_reported_with_its_path_and_left_untouched() {
    let world = World::new(&[]);
    let platform = world.platform(no_env(), None);
    platform.add_tenant("acme", "free").expect("acme");
    drop(platform);
    let path = world.state_dir().join(TENANTS_FILE);
    let damaged = "{\"format\": 1, \"tenants\": {\"acme\": {\"tier\": ";
    std::fs::write(&path, damaged).expect("damage");

    let err = Platform::open(world.platform_config(no_env(), None), world.host.clone())
        .expect_err("corrupt state must not open");
    match &err {
        PlatformError::Persist(PersistError::Corrupt { path: p, line, .. }) => {
            assert_eq!((p, *line), (&path, 1));
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(
        err.to_string().starts_with(&format!(
            "state file {} is corrupt at line 1",
            path.display()
        )),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&path).expect("read"),
        damaged,
        "never reset"
    );

    // A tier that is not configured any more is refused the same way.
    std::fs::write(
        &path,
        "{\"format\": 1, \"tenants\": {\"acme\": {\"tier\": \"gold\"}}}",
    )
    .expect("write");
    let err = Platform::open(world.platform_config(no_env(), None), world.host.clone())
        .expect_err("unknown tier");
    assert!(matches!(err, PlatformError::StateTier { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn an_unreachable_vault_port_fails_closed() {
    // No server at all on this port (as opposed to one that was stopped).
    let port = free_tcp_port().expect("port");
    let world = World::new(&[]);
    let platform = world.platform(
        no_env(),
        Some(VaultConfig::new(
            format!("http://127.0.0.1:{port}"),
            "t".to_owned().into(),
        )),
    );
    platform.add_tenant("acme", "free").expect("acme");
    let err = platform
        .request("acme", ECHO, json!({ "api_key": "${vault:x#y}" }))
        .expect_err("unreachable");
    match &err {
        PlatformError::Secret { source, .. } => {
            assert!(
                matches!(**source, SecretError::Unavailable { .. }),
                "{err:?}"
            );
        }
        other => panic!("expected a secret error, got {other:?}"),
    }
    assert!(!active(&world.host, ECHO, "acme"));
}

// Issue 12, item 6: a plugin's secret service reads what tenancy resolved
// (the only secret path; `Host::set_secret` is gone).
#[test]
fn a_plugin_reads_the_secret_tenancy_resolved_for_its_tenant_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let host = new_host(dir.path(), "runtime");
    let id = "fixture-good";
    let path = dir.path().join("plugins").join(id).join("plugin.toml");
    let text = format!(
        "id = \"{id}\"\nname = \"{id}\"\nversion = \"0.1.0\"\napi = \"^0.2\"\n\
         library = \"lib{id}.so\"\nrequired_tier = \"free\"\n\
         permissions = [\"secrets:read\"]\n\
         [config.api_key]\ntype = \"string\"\nrequired = true\nsensitive = true\n\
         description = \"The tenant's credential.\"\n"
    );
    let manifest = Manifest::parse(&text, &path).expect("manifest");
    let loaded = host
        .load(
            artifacts().library("fixture-good"),
            LoadOptions {
                expected_id: Some(id.to_owned()),
                permissions: manifest.permissions.iter().copied().collect(),
                ..LoadOptions::default()
            },
        )
        .expect("load");
    host.initialize(&loaded).expect("initialize");
    let mut config = PlatformConfig::new(dir.path().join("state"), dir.path().join("config"));
    config.env = Environment::fixed([
        ("ACME_KEY", "acme-secret-from-env"),
        ("GLOBEX_KEY", "globex-secret-from-env"),
    ]);
    let platform = Platform::open(config, host.clone()).expect("open platform");
    platform.register_plugin(&manifest).expect("register");
    platform.add_tenant("acme", "free").expect("acme");
    platform.add_tenant("globex", "free").expect("globex");
    platform
        .request("acme", id, json!({ "api_key": "${env:ACME_KEY}" }))
        .expect("acme activates");
    platform
        .request("globex", id, json!({ "api_key": "${env:GLOBEX_KEY}" }))
        .expect("globex activates");
    let plugin = host.plugin(id).expect("handle");
    assert_eq!(
        plugin.invoke("acme", "secret", b"api_key").expect("secret"),
        b"acme-secret-from-env"
    );
    assert_eq!(
        plugin
            .invoke("globex", "secret", b"api_key")
            .expect("secret"),
        b"globex-secret-from-env"
    );
    platform
        .deactivate("globex", id)
        .expect("deactivate globex");
    assert!(
        plugin.invoke("globex", "secret", b"api_key").is_err(),
        "an inactive tenant has no secrets"
    );
    assert!(
        plugin.invoke("acme", "secret", b"other_key").is_err(),
        "only configured values are secrets"
    );
}
