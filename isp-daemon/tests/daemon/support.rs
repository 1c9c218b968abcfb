//! Test support: the reference plugins installed into a plugin directory
//! and signed with a key the test generates (so the daemon runs under
//! `require`), a daemon started in-process on the embedded configuration
//! with its admin API on a free port, and a small HTTP client.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use isp_daemon::api::{self, AdminToken};
use isp_daemon::config::{StandinMode, TrustMode};
use isp_daemon::peers::Devices;
use isp_daemon::{Config, Daemon, StartOptions};
use plugin_host::package::manifest::Manifest;
use plugin_host::package::signature::SignedClaims;
use plugkit_testkit::process::workspace_root;
use serde_json::Value;
use tempfile::TempDir;

/// The admin token of every in-process test daemon: it only manages API keys.
pub(crate) const ADMIN_TOKEN: &str = "test-admin-token-5f2a9c";

/// An API key with every scope, which `get`, `post`, `put` and
/// `post_empty` send. [`TestDaemon::start_in`] writes its digest into the
/// daemon's key file before the daemon starts (as an operator restores
/// `api-keys.json` from a backup), so it is a constant other tests can use.
pub(crate) const TOKEN: &str = "ispk_TestHarnessAllScopes00000000014HHYey";

/// The id of [`TOKEN`]'s key: the actor the audit log names for the helpers' changes.
pub(crate) const TOKEN_ID: &str = "key_testharness";

/// Writes [`TOKEN`] as key `key_testharness` into `state_dir/api-keys.json`
/// unless the file exists (a restart keeps what the daemon wrote).
pub(crate) fn seed_all_scope_key(state_dir: &Path) {
    use sha2::Digest as _;
    let path = state_dir.join(isp_daemon::keys::KEYS_FILE);
    if path.exists() {
        return;
    }
    std::fs::create_dir_all(state_dir).expect("state directory");
    let digest: String = sha2::Sha256::digest(TOKEN.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let file = serde_json::json!({
        "format": 1,
        "keys": [{
            "id": TOKEN_ID,
            "name": "test harness (every scope)",
            "scopes": isp_daemon::keys::Scope::ALL.map(|s| s.as_str()),
            "created": 1_700_000_000u64,
            "secrets": [{"sha256": digest, "hint": "ispk_…HYey", "created": 1_700_000_000u64}],
        }],
    });
    std::fs::write(&path, serde_json::to_vec_pretty(&file).expect("json")).expect("key file");
}

/// The reference plugins: id, package, crate folder.
pub(crate) const PLUGINS: [(&str, &str, &str); 3] = [
    ("twilio", "plugkit-twilio", "plugins/twilio"),
    ("stripe", "plugkit-stripe", "plugins/stripe"),
    (
        "network-automation",
        "plugkit-network-automation",
        "plugins/network-automation",
    ),
];

/// A signing key made up for this test run.
pub(crate) struct Signer {
    public: minisign::PublicKey,
    secret: minisign::SecretKey,
}

impl Signer {
    fn new() -> Self {
        let pair = minisign::KeyPair::generate_unencrypted_keypair().expect("key pair");
        Self {
            public: pair.pk,
            secret: pair.sk,
        }
    }

    /// The public key's base64 line.
    pub(crate) fn public_line(&self) -> String {
        self.public.to_base64()
    }

    /// A minisign signature of `library` carrying `claims`.
    pub(crate) fn sign_claims(&self, library: &[u8], claims: &SignedClaims) -> String {
        self.sign(library, claims)
    }

    fn sign(&self, library: &[u8], claims: &SignedClaims) -> String {
        minisign::sign(
            Some(&self.public),
            &self.secret,
            Cursor::new(library),
            Some(&claims.trusted_comment()),
            Some("isp-daemon test signature"),
        )
        .expect("sign")
        .into_string()
    }
}

/// One key for the whole test binary.
pub(crate) fn signer() -> &'static Signer {
    static SIGNER: OnceLock<Signer> = OnceLock::new();
    SIGNER.get_or_init(Signer::new)
}

/// A second key the daemons do not trust.
pub(crate) fn other_signer() -> &'static Signer {
    static OTHER: OnceLock<Signer> = OnceLock::new();
    OTHER.get_or_init(Signer::new)
}

/// The built library of a package.
pub(crate) fn library(package: &str) -> PathBuf {
    plugkit_tests::artifacts().library(package).to_owned()
}

/// Installs the reference plugins into `dir` as `cargo xtask install-plugin`
/// lays them out: `<id>/plugin.toml`, the library, its `.minisig` binding both.
pub(crate) fn install_signed(dir: &Path) {
    for (id, package, folder) in PLUGINS {
        let target = dir.join(id);
        std::fs::create_dir_all(&target).expect("plugin folder");
        let manifest_text =
            std::fs::read(workspace_root().join(folder).join("plugin.toml")).expect("manifest");
        let manifest_path = target.join("plugin.toml");
        std::fs::write(&manifest_path, &manifest_text).expect("write manifest");
        let manifest = Manifest::load(&manifest_path).expect("parse manifest");
        let bytes = std::fs::read(library(package)).expect("library");
        let installed = target.join(&manifest.library);
        std::fs::write(&installed, &bytes).expect("write library");
        let claims = SignedClaims::new(id, &manifest.version.to_string(), &bytes)
            .with_manifest(&manifest_text);
        let mut signature = installed.as_os_str().to_owned();
        signature.push(".minisig");
        std::fs::write(signature, signer().sign(&bytes, &claims)).expect("write signature");
    }
}

/// Signs the library in the installed plugin folder `folder` again, bound
/// to the manifest now in it (an operator's re-sign after editing `plugin.toml`).
pub(crate) fn resign(folder: &Path) {
    let manifest_path = folder.join("plugin.toml");
    let manifest_text = std::fs::read(&manifest_path).expect("manifest");
    let manifest = Manifest::load(&manifest_path).expect("parse manifest");
    let library = folder.join(&manifest.library);
    let bytes = std::fs::read(&library).expect("library");
    let claims = SignedClaims::new(&manifest.id, &manifest.version.to_string(), &bytes)
        .with_manifest(&manifest_text);
    let mut signature = library.as_os_str().to_owned();
    signature.push(".minisig");
    std::fs::write(signature, signer().sign(&bytes, &claims)).expect("write signature");
}

/// A JSON artifact map (package → library) like `cargo xtask test` writes.
pub(crate) fn artifact_map(dir: &Path) -> PathBuf {
    let map: BTreeMap<&str, PathBuf> = PLUGINS
        .iter()
        .map(|(_, package, _)| (*package, library(package)))
        .collect();
    let path = dir.join("plugkit-artifacts.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&map).expect("json")).expect("write map");
    path
}

/// The embedded configuration, set up for a test in `dir`: signed plugins,
/// state in `dir/state`, stand-ins on, admin token [`ADMIN_TOKEN`] from the environment.
pub(crate) fn test_config(dir: &Path) -> Config {
    let plugins = dir.join("plugins");
    if !plugins.exists() {
        install_signed(&plugins);
    }
    let mut config = Config::embedded().expect("embedded config");
    config.plugins.dirs = vec![plugins];
    config.trust.policy = TrustMode::Require;
    config.trust.keys = vec![signer().public_line()];
    config.trust.key_dirs = Vec::new();
    config.state.dir = Some(dir.join("state"));
    config.state.config_dir = Some(dir.join("config"));
    config.admin.listen = "127.0.0.1:0".to_owned();
    config.admin.token = "${env:ISP_TEST_ADMIN_TOKEN}".to_owned();
    config.admin.generate_token_if_unset = false;
    config.standins.twilio = StandinMode::On;
    config.standins.stripe = StandinMode::On;
    config
}

/// Start options with the test token and `devices`.
pub(crate) fn test_options(devices: Option<Devices>) -> StartOptions {
    StartOptions {
        env: [("ISP_TEST_ADMIN_TOKEN".to_owned(), ADMIN_TOKEN.to_owned())].into(),
        plugins_from_build: None,
        devices,
    }
}

/// An answer of the admin API.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) content_type: String,
    pub(crate) text: String,
}

impl Answer {
    /// The body as JSON (`Null` when it is not JSON).
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub(crate) fn expect(self, status: u16) -> Value {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        self.json()
    }

    /// Asserts a JSON error body with this status whose message contains `part`.
    #[track_caller]
    pub(crate) fn expect_error(self, status: u16, part: &str) -> Value {
        assert!(
            self.content_type.starts_with("application/json"),
            "an error must be JSON, got {:?}: {}",
            self.content_type,
            self.text
        );
        let body = self.expect(status);
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(part), "error {error:?} lacks {part:?}");
        body
    }
}

/// A daemon running in-process, its API served on a free port.
pub(crate) struct TestDaemon {
    pub(crate) daemon: Arc<Daemon>,
    pub(crate) base: String,
    agent: ureq::Agent,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    runtime: Option<tokio::runtime::Runtime>,
    pub(crate) dir: Arc<TempDir>,
}

impl TestDaemon {
    /// The embedded configuration with test settings, no demo devices.
    pub(crate) fn start() -> Self {
        Self::start_with(|_| {}, None)
    }

    /// The test configuration changed by `change`, with `devices`.
    pub(crate) fn start_with(change: impl FnOnce(&mut Config), devices: Option<Devices>) -> Self {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        Self::start_in(dir, change, devices)
    }

    /// Like [`TestDaemon::start_with`], in an existing directory (a restart).
    pub(crate) fn start_in(
        dir: Arc<TempDir>,
        change: impl FnOnce(&mut Config),
        devices: Option<Devices>,
    ) -> Self {
        let mut config = test_config(dir.path());
        change(&mut config);
        if let Some(state_dir) = &config.state.dir {
            seed_all_scope_key(state_dir);
        }
        let daemon = Arc::new(Daemon::start(config, test_options(devices)).expect("daemon starts"));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let router = api::router(Arc::clone(&daemon), AdminToken::new(ADMIN_TOKEN));
        runtime.spawn(api::serve(listener, router, async move {
            let _ = stopped.await;
        }));
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        Self {
            daemon,
            base: format!("http://{addr}"),
            agent,
            stop: Some(stop),
            runtime: Some(runtime),
            dir,
        }
    }

    /// Sends a request with `token` (none when `None`).
    pub(crate) fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Answer {
        let url = format!("{}{path}", self.base);
        let auth = token.map(|t| format!("Bearer {t}"));
        let result = match (method, body) {
            ("GET" | "DELETE", _) => {
                let mut r = if method == "GET" {
                    self.agent.get(&url)
                } else {
                    self.agent.delete(&url)
                };
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
            (method, body) => {
                let mut r = match method {
                    "POST" => self.agent.post(&url),
                    "PUT" => self.agent.put(&url),
                    "PATCH" => self.agent.patch(&url),
                    other => panic!("unsupported method {other}"),
                };
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                match body {
                    Some(b) => r.header("Content-Type", "application/json").send(b),
                    None => r.send_empty(),
                }
            }
        };
        let mut response = result.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        Answer {
            status,
            content_type,
            text,
        }
    }

    /// GET with the all-scope key [`TOKEN`].
    pub(crate) fn get(&self, path: &str) -> Answer {
        self.request("GET", path, Some(TOKEN), None)
    }

    /// POST of a JSON value with the all-scope key [`TOKEN`].
    pub(crate) fn post(&self, path: &str, body: &Value) -> Answer {
        self.request("POST", path, Some(TOKEN), Some(&body.to_string()))
    }

    /// POST without a body, with the all-scope key [`TOKEN`].
    pub(crate) fn post_empty(&self, path: &str) -> Answer {
        self.request("POST", path, Some(TOKEN), None)
    }

    /// PUT of a JSON value with the all-scope key [`TOKEN`].
    pub(crate) fn put(&self, path: &str, body: &Value) -> Answer {
        self.request("PUT", path, Some(TOKEN), Some(&body.to_string()))
    }

    /// The state of `plugin` for `tenant` as the API reports it.
    pub(crate) fn state_of(&self, tenant: &str, plugin: &str) -> String {
        let overview = self.get(&format!("/api/tenants/{tenant}")).expect(200);
        overview["plugins"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["plugin"] == plugin)
            .and_then(|p| p["state"].as_str())
            .unwrap_or("<absent>")
            .to_owned()
    }

    /// Stops the API and the daemon; returns the daemon's shutdown lines.
    pub(crate) fn stop(mut self) -> Vec<String> {
        self.stop_server();
        self.daemon.shutdown()
    }

    fn stop_server(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        self.stop_server();
        self.daemon.shutdown();
    }
}
