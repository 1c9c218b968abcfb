//! Every plugin command of `cargo xtask`, run through the real binary in a
//! temporary plugin directory, key directory and configuration directory,
//! on plugin crates made by `new-plugin` (so nothing depends on the reference
//! plugins being finished). Builds share the workspace's target directory.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use plugin_host::package::signature::{Expected, TrustPolicy};
use plugin_host::{Host, HostConfig, HostError, LoadOptions};
use tempfile::TempDir;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

/// One isolated set of xtask directories.
struct Env {
    root: TempDir,
}

/// A finished xtask run.
struct Run {
    output: Output,
    what: String,
}

impl Run {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    fn describe(&self) -> String {
        format!(
            "{}\n--- exit: {:?}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.what,
            self.output.status,
            self.stdout(),
            self.stderr()
        )
    }

    fn ok(self) -> Run {
        assert!(
            self.output.status.success(),
            "expected success: {}",
            self.describe()
        );
        self
    }

    fn fails(self) -> Run {
        assert!(
            !self.output.status.success(),
            "expected failure: {}",
            self.describe()
        );
        self
    }
}

impl Env {
    fn new() -> Env {
        Env {
            root: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    fn plugin_dir(&self) -> PathBuf {
        self.path("plugins")
    }

    fn config_dir(&self) -> PathBuf {
        self.path("config")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
        cmd.args(args)
            .current_dir(workspace_root())
            .env("PLUGKIT_PLUGIN_DIR", self.plugin_dir())
            .env("PLUGKIT_KEY_DIR", self.path("keys"))
            .env("PLUGKIT_CONFIG_DIR", self.config_dir())
            .env("CARGO_TARGET_DIR", workspace_root().join("target"))
            .env_remove("PLUGKIT_XTASK_CRASH_AT");
        cmd
    }

    fn run(&self, mut cmd: Command, what: String) -> Run {
        let output = cmd.output().expect("running xtask");
        Run { output, what }
    }

    fn xtask(&self, args: &[&str]) -> Run {
        self.run(self.command(args), format!("xtask {}", args.join(" ")))
    }

    /// `new-plugin <id>` into this environment, then sets its version and
    /// appends `extra` to its manifest.
    fn scaffold(&self, id: &str, version: &str, extra: &str) -> PathBuf {
        let dir = self.path("src").join(id);
        let path = dir.display().to_string();
        self.xtask(&["new-plugin", id, "--category", "custom", "--path", &path])
            .ok();
        set_version(&dir, version);
        if !extra.is_empty() {
            let manifest = dir.join("plugin.toml");
            let text = fs::read_to_string(&manifest).expect("manifest");
            fs::write(&manifest, format!("{text}\n{extra}\n")).expect("manifest");
        }
        dir
    }

    fn public_key(&self) -> String {
        let text =
            fs::read_to_string(self.path("keys").join("plugkit-dev.pub")).expect("public key");
        text.lines().nth(1).expect("key line").to_owned()
    }

    fn key_id(&self) -> String {
        plugin_host::package::minisig::public_key_id(&self.public_key()).expect("key id")
    }

    fn registry(&self) -> serde_json::Value {
        let text = fs::read_to_string(self.plugin_dir().join("registry.json")).expect("registry");
        serde_json::from_str(&text).expect("registry parses")
    }

    fn listed(&self) -> Vec<serde_json::Value> {
        let run = self.xtask(&["list-plugins", "--json"]).ok();
        let rows: serde_json::Value = serde_json::from_str(&run.stdout()).expect("list json");
        rows.as_array().expect("rows").clone()
    }

    fn listed_row(&self, id: &str) -> Option<serde_json::Value> {
        self.listed().into_iter().find(|r| r["id"] == id)
    }

    fn store_entries(&self) -> Vec<String> {
        names_in(&self.plugin_dir().join(".store"))
    }
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn set_version(crate_dir: &Path, version: &str) {
    for file in ["Cargo.toml", "plugin.toml"] {
        let path = crate_dir.join(file);
        let text = fs::read_to_string(&path).expect("read");
        let edited: Vec<String> = text
            .lines()
            .map(|l| {
                if l.starts_with("version = ") {
                    format!("version = \"{version}\"")
                } else {
                    l.to_owned()
                }
            })
            .collect();
        fs::write(&path, edited.join("\n") + "\n").expect("write");
    }
}

fn library_name(id: &str) -> String {
    format!("libplugkit_{}.so", id.replace('-', "_"))
}

fn flip_one_byte(path: &Path) {
    let mut bytes = fs::read(path).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    // Write a new file: the store folder's file may be hard-linked elsewhere.
    fs::remove_file(path).expect("remove");
    fs::write(path, bytes).expect("write");
}

fn require_host(keys: Vec<String>) -> (Host, TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = dir.path().join("runtime");
    let host = Host::new(
        HostConfig::with_runtime_dir(&runtime).trust(TrustPolicy::Require { trusted_keys: keys }),
    )
    .expect("host");
    (host, dir, runtime)
}

fn load_options(id: &str, version: &str) -> LoadOptions {
    LoadOptions {
        expected_id: Some(id.to_owned()),
        expected_version: Some(version.to_owned()),
        ..LoadOptions::default()
    }
}

/// The host refused `library` for its signature, and nothing of it was staged or mapped.
fn assert_refused_before_load(
    result: Result<String, HostError>,
    library: &Path,
    runtime: &Path,
    needle: &str,
) {
    let message = match result {
        Err(e @ HostError::SignatureRejected { .. }) => e.to_string(),
        other => panic!("expected SignatureRejected, got {other:?}"),
    };
    assert!(message.contains(needle), "{message}");
    assert!(
        message.contains(&library.display().to_string()),
        "{message}"
    );
    let maps = fs::read_to_string("/proc/self/maps").expect("maps");
    let canonical = library.canonicalize().expect("canonical");
    for path in [library, canonical.as_path(), runtime] {
        assert!(
            !maps.contains(&path.display().to_string()),
            "{} is mapped after the refusal",
            path.display()
        );
    }
    assert!(names_in(runtime).is_empty(), "nothing may be staged");
}

/// The categories `new-plugin` scaffolds, with the unit test each scaffold brings.
const SCAFFOLDS: [(&str, &str); 5] = [
    (
        "communication",
        "sent_messages_are_in_the_outbox_until_a_callback_moves_them_on",
    ),
    (
        "payment",
        "payments_are_authorized_captured_and_refunded_once_per_key",
    ),
    (
        "network-automation",
        "the_lab_device_answers_snmp_ssh_and_playbooks",
    ),
    (
        "crm",
        "contacts_are_matched_by_email_and_their_deals_move_through_stages",
    ),
    ("custom", "echo_greets_with_the_tenant_greeting"),
];

/// Issue 14 item 7: every category's scaffold is complete as generated. It
/// builds, its unit test passes, it installs signed, and a host that
/// requires signatures loads it and serves a typed call of its category.
#[test]
fn new_plugin_of_every_category_builds_passes_its_unit_test_installs_and_serves_under_require() {
    use plugin_api::categories::*;

    let env = Env::new();
    let mut dirs = Vec::new();
    for (category, unit_test) in SCAFFOLDS {
        let id = format!("new-{category}");
        let dir = env.path(&id);
        let path = dir.display().to_string();
        env.xtask(&["new-plugin", &id, "--category", category, "--path", &path])
            .ok();
        for file in ["Cargo.toml", "plugin.toml", "src/lib.rs", "Cargo.lock"] {
            assert!(dir.join(file).is_file(), "{category}: {file} missing");
        }
        let lib_rs = fs::read_to_string(dir.join("src/lib.rs")).expect("lib.rs");
        assert!(lib_rs.contains("cargo doc -p plugin-api") && lib_rs.contains("#[test]"));

        // Shares the workspace's target directory, so plugin-api and its
        // dependencies are compiled once for all five.
        let test = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
            .args(["test", "--manifest-path"])
            .arg(dir.join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", workspace_root().join("target"))
            .output()
            .expect("cargo test");
        let stdout = String::from_utf8_lossy(&test.stdout);
        let stderr = String::from_utf8_lossy(&test.stderr);
        assert!(
            test.status.success() && stdout.contains(&format!("{unit_test} ... ok")),
            "{category}:\n{stdout}\n{stderr}"
        );
        assert!(
            !stderr.contains("warning"),
            "{category}: the scaffold warns:\n{stderr}"
        );
        dirs.push(path);
    }

    let mut args = vec!["install-plugin"];
    args.extend(dirs.iter().map(String::as_str));
    let install = env.xtask(&args).ok();
    for (category, _) in SCAFFOLDS {
        assert!(
            install
                .stdout()
                .contains(&format!("installed new-{category} 0.1.0")),
            "{}",
            install.describe()
        );
    }
    for step in ["building", "packaging", "verifying", "installing"] {
        assert!(
            install.stderr().contains(step),
            "no `{step}` progress: {}",
            install.describe()
        );
    }
    let example = env.config_dir().join("plugins/new-custom.toml.example");
    let example = fs::read_to_string(example).expect("config example");
    assert!(example.contains("# greeting = \"hello\""), "{example}");

    let (host, _dir, _runtime) = require_host(vec![env.public_key()]);
    let report = host.start_installed(&[env.plugin_dir()]);
    let mut started = report.started.clone();
    started.sort();
    assert_eq!(
        started,
        [
            "new-communication",
            "new-crm",
            "new-custom",
            "new-network-automation",
            "new-payment"
        ],
        "{:#?}",
        report.problems()
    );
    for (category, _) in SCAFFOLDS {
        // No configuration: every scaffold serves on its manifest's defaults.
        host.activate(&format!("new-{category}"), "acme", "{}")
            .unwrap_or_else(|e| panic!("activate new-{category}: {e}"));
    }

    let sms = host.plugin("new-communication").expect("plugin");
    let sms = sms.communication().expect("communication client");
    let message = plugin_api::communication::OutboundMessage {
        to: "+15550123".into(),
        body: "Your router is back online.".into(),
        ..Default::default()
    };
    let receipt = sms.send_message("acme", message).expect("send_message");
    assert_eq!(
        receipt.status,
        plugin_api::communication::DeliveryStatus::Sent
    );
    let status = sms
        .message_status("acme", receipt.provider_message_id.clone())
        .expect("message_status");
    assert_eq!(status, receipt, "message_status answers from the outbox");

    let pay = host.plugin("new-payment").expect("plugin");
    let paid = pay
        .payment()
        .expect("payment client")
        .create_payment(
            "acme",
            plugin_api::payment::CreatePayment {
                amount: plugin_api::payment::Money {
                    amount_minor: 1999,
                    currency: "usd".into(),
                },
                customer: plugin_api::ROption::RNone,
                payment_method: plugin_api::ROption::RNone,
                confirm: true,
                manual_capture: false,
                description: plugin_api::ROption::RNone,
                metadata: Vec::new().into(),
                idempotency_key: "order-1".into(),
            },
        )
        .expect("create_payment");
    assert_eq!(
        (paid.status, paid.amount_received),
        (plugin_api::payment::PaymentStatus::Succeeded, 1999)
    );

    use plugin_api::network_automation::{SnmpOperation, SnmpRequest, SnmpTarget, SnmpValue};
    let net = host.plugin("new-network-automation").expect("plugin");
    let binds = net
        .network_automation()
        .expect("network-automation client")
        .snmp(
            "acme",
            SnmpRequest {
                target: SnmpTarget {
                    address: "192.0.2.1:161".into(),
                    version: plugin_api::network_automation::SnmpVersion::V2c,
                    community: plugin_api::ROption::RNone,
                    user: plugin_api::ROption::RNone,
                    timeout_ms: 0,
                    retries: 0,
                },
                operation: SnmpOperation::Get,
                oids: vec!["1.3.6.1.2.1.1.5.0".into()].into(),
            },
        )
        .expect("snmp");
    assert_eq!(
        binds[0].value,
        SnmpValue::OctetString(b"lab-router-1".to_vec().into()),
        "sysName is the manifest's default device_name"
    );

    let crm = host.plugin("new-crm").expect("plugin");
    let crm = crm.crm().expect("crm client");
    let contact = crm
        .upsert_contact(
            "acme",
            plugin_api::crm::ContactUpsert {
                email: "ada@example.com".into(),
                ..Default::default()
            },
        )
        .expect("upsert_contact");
    let deal = crm
        .create_deal(
            "acme",
            plugin_api::crm::DealCreate {
                contact_crm_id: contact.crm_id.clone(),
                title: "Fibre 1000".into(),
                amount: 4999,
                currency: "usd".into(),
                stage: plugin_api::ROption::RNone,
            },
        )
        .expect("create_deal");
    assert_eq!(
        (deal.contact_crm_id.as_str(), deal.stage.as_str()),
        (contact.crm_id.as_str(), "new")
    );

    let reply = host
        .plugin("new-custom")
        .and_then(|p| p.invoke("acme", "echo", b"you"))
        .expect("invoke");
    assert_eq!(reply, b"hello you");
    assert!(host.stop_all().is_empty());

    let path = &dirs[0];
    let again = env.xtask(&[
        "new-plugin",
        "new-communication",
        "--category",
        "communication",
        "--path",
        path,
    ]);
    assert!(again.fails().stderr().contains("already exists"));
    let bad = env.xtask(&[
        "new-plugin",
        "Bad_Name",
        "--category",
        "custom",
        "--path",
        path,
    ]);
    assert!(bad.fails().stderr().contains("not a valid plugin id"));
    let other = env.path("other").display().to_string();
    let unknown = env
        .xtask(&["new-plugin", "sms", "--category", "sms", "--path", &other])
        .fails();
    assert!(
        unknown
            .stderr()
            .contains("`sms` is not a plugin category; use one of: communication, payment"),
        "{}",
        unknown.describe()
    );
}

#[test]
fn install_list_remove_round_trip() {
    let env = Env::new();
    let dir = env.scaffold("rt-alpha", "0.1.0", "");
    env.xtask(&["install-plugin", &dir.display().to_string()])
        .ok();
    let key_id = env.key_id();

    let table = env.xtask(&["list-plugins"]).ok().stdout();
    let row = table
        .lines()
        .find(|l| l.starts_with("rt-alpha "))
        .unwrap_or_else(|| panic!("no row for rt-alpha:\n{table}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cells[..6],
        [
            "rt-alpha",
            "0.1.0",
            "custom",
            "free",
            "installed",
            "verified"
        ],
        "{table}"
    );
    assert_eq!(cells[6], key_id, "{table}");
    assert!(
        table.lines().next().is_some_and(|h| h.starts_with("ID")),
        "{table}"
    );

    let row = env.listed_row("rt-alpha").expect("json row");
    assert_eq!(row["state"], "installed");
    assert_eq!(row["signature"], format!("verified {key_id}"));
    assert_eq!(row["required_tier"], "free");
    let link = env
        .plugin_dir()
        .canonicalize()
        .expect("dir")
        .join("rt-alpha");
    assert_eq!(row["path"], link.display().to_string());

    let registry = env.registry();
    let entry = &registry["plugins"]["rt-alpha"];
    assert_eq!(entry["version"], "0.1.0");
    assert_eq!(entry["key_id"], key_id.as_str());
    let stored = PathBuf::from(entry["path"].as_str().expect("path"));
    assert_eq!(
        fs::read_link(&link)
            .ok()
            .map(|t| link.parent().expect("p").join(t)),
        Some(stored.clone())
    );
    let library = fs::read(stored.join(library_name("rt-alpha"))).expect("library");
    assert_eq!(entry["sha256"], hex_sha256(&library));
    assert!(entry["installed_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));

    let removed = env.xtask(&["remove-plugin", "rt-alpha"]).ok();
    assert!(
        removed.stdout().contains("removed rt-alpha 0.1.0"),
        "{}",
        removed.describe()
    );
    assert!(env.listed_row("rt-alpha").is_none());
    assert!(fs::symlink_metadata(&link).is_err(), "link left behind");
    assert!(env.store_entries().is_empty(), "{:?}", env.store_entries());
    assert_eq!(env.registry()["plugins"], serde_json::json!({}));
    assert!(!env
        .config_dir()
        .join("plugins/rt-alpha.toml.example")
        .exists());

    let again = env.xtask(&["remove-plugin", "rt-alpha"]).fails();
    assert!(
        again
            .stderr()
            .contains("plugin `rt-alpha` is not installed"),
        "{}",
        again.describe()
    );
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[test]
fn remove_refuses_while_dependents_are_installed_and_force_removes_them_too() {
    let env = Env::new();
    let base = env.scaffold("dep-base", "0.1.0", "");
    let top = env.scaffold("dep-top", "0.1.0", "[dependencies]\ndep-base = \"^0.1\"");
    env.xtask(&[
        "install-plugin",
        &base.display().to_string(),
        &top.display().to_string(),
    ])
    .ok();

    let refused = env.xtask(&["remove-plugin", "dep-base"]).fails();
    let message = refused.stderr();
    assert!(
        message.contains("cannot remove `dep-base`: installed plugins depend on it: `dep-top`")
            && message.contains("--force"),
        "{}",
        refused.describe()
    );
    assert!(env.listed_row("dep-base").is_some() && env.listed_row("dep-top").is_some());

    let forced = env.xtask(&["remove-plugin", "dep-base", "--force"]).ok();
    assert!(
        forced
            .stderr()
            .contains("also removing the plugins that depend on `dep-base`: `dep-top`"),
        "{}",
        forced.describe()
    );
    let stdout = forced.stdout();
    let order: Vec<&str> = stdout.lines().collect();
    assert_eq!(order, ["removed dep-top 0.1.0", "removed dep-base 0.1.0"]);
    assert!(env.listed_row("dep-base").is_none() && env.listed_row("dep-top").is_none());
    assert_eq!(env.registry()["plugins"], serde_json::json!({}));
}

#[test]
fn reinstalling_the_same_version_is_a_no_op_and_an_older_version_needs_allow_downgrade() {
    let env = Env::new();
    let dir = env.scaffold("dg-alpha", "0.2.0", "");
    let path = dir.display().to_string();
    env.xtask(&["install-plugin", &path]).ok();
    let (store, registry) = (env.store_entries(), env.registry());

    let again = env.xtask(&["install-plugin", &path]).ok();
    assert!(
        again
            .stdout()
            .contains("dg-alpha 0.2.0 is already installed")
            && again.stdout().contains("nothing to do"),
        "{}",
        again.describe()
    );
    assert!(!again.stderr().contains("building"), "{}", again.describe());
    assert_eq!((env.store_entries(), env.registry()), (store, registry));

    set_version(&dir, "0.1.0");
    let refused = env.xtask(&["install-plugin", &path]).fails();
    assert!(
        refused
            .stderr()
            .contains("refusing to downgrade `dg-alpha` from 0.2.0 (installed, signed) to 0.1.0")
            && refused.stderr().contains("--allow-downgrade"),
        "{}",
        refused.describe()
    );
    assert_eq!(env.listed_row("dg-alpha").expect("row")["version"], "0.2.0");

    env.xtask(&["install-plugin", &path, "--allow-downgrade"])
        .ok();
    assert_eq!(env.listed_row("dg-alpha").expect("row")["version"], "0.1.0");
    assert_eq!(env.registry()["plugins"]["dg-alpha"]["version"], "0.1.0");
    let store = env.store_entries();
    assert!(
        store.len() == 1 && store[0].starts_with("dg-alpha-0.1.0-"),
        "the replaced version stays in the store: {store:?}"
    );
}

#[test]
fn tampered_library_is_refused_by_verify_validate_and_the_host_before_loading() {
    let env = Env::new();
    let dir = env.scaffold("tamper-alpha", "0.1.0", "");
    env.xtask(&["install-plugin", &dir.display().to_string()])
        .ok();
    let package = env.plugin_dir().join("tamper-alpha");
    let package_arg = package.display().to_string();
    env.xtask(&["verify", &package_arg]).ok();
    env.xtask(&["validate", &package_arg]).ok();
    env.xtask(&["validate", &dir.display().to_string()]).ok();

    let library = package.join(library_name("tamper-alpha"));
    flip_one_byte(&library);

    let verify = env.xtask(&["verify", &package_arg]).fails();
    assert!(
        verify.stderr().contains("plugin `tamper-alpha`")
            && verify
                .stderr()
                .contains("modified or corrupted after it was signed")
            && verify.stderr().contains("install-plugin"),
        "{}",
        verify.describe()
    );
    let validate = env.xtask(&["validate", &package_arg]).fails();
    let report = validate.stderr();
    assert!(report.contains("2 problems"), "{}", validate.describe());
    assert!(
        report.contains("SHA256SUMS") && report.contains("modified or corrupted"),
        "{report}"
    );
    assert_eq!(
        env.listed_row("tamper-alpha").expect("row")["state"],
        "broken"
    );

    let (host, _dir, runtime) = require_host(vec![env.public_key()]);
    let result = host.load(&library, load_options("tamper-alpha", "0.1.0"));
    assert_refused_before_load(result, &library, &runtime, "plugin `tamper-alpha`");
    assert!(host.plugin_ids().is_empty());

    // Reinstalling the same version repairs a copy that fails verification.
    let repair = env
        .xtask(&["install-plugin", &dir.display().to_string()])
        .ok();
    assert!(
        repair.stderr().contains("fails verification"),
        "{}",
        repair.describe()
    );
    env.xtask(&["verify", &package_arg]).ok();
}

#[test]
fn package_signed_by_an_untrusted_key_is_refused() {
    let (env, stranger) = (Env::new(), Env::new());
    let dir = env.scaffold("trust-alpha", "0.1.0", "");
    env.xtask(&["install-plugin", &dir.display().to_string()])
        .ok();
    let package = env.path("copied-package");
    fs::create_dir_all(&package).expect("mkdir");
    let installed = env.plugin_dir().join("trust-alpha");
    for entry in fs::read_dir(&installed).expect("package") {
        let entry = entry.expect("entry");
        fs::copy(entry.path(), package.join(entry.file_name())).expect("copy");
    }
    let package_arg = package.display().to_string();

    let signed = stranger.xtask(&["sign", &package_arg]).ok();
    assert!(signed.stdout().contains("signed"), "{}", signed.describe());
    let stranger_id = stranger.key_id();
    assert_ne!(stranger_id, env.key_id());

    let refused = env.xtask(&["verify", &package_arg]).fails();
    assert!(
        refused.stderr().contains(&format!(
            "signed by key {stranger_id}, which is not one of the trusted keys"
        )),
        "{}",
        refused.describe()
    );
    let stranger_pub = stranger.path("keys").join("plugkit-dev.pub");
    env.xtask(&[
        "verify",
        &package_arg,
        "--trusted-key",
        &stranger_pub.display().to_string(),
    ])
    .ok();

    let library = package.join(library_name("trust-alpha"));
    let (host, _dir, runtime) = require_host(vec![env.public_key()]);
    let result = host.load(&library, load_options("trust-alpha", "0.1.0"));
    assert_refused_before_load(result, &library, &runtime, "not one of the trusted keys");
}

#[test]
fn keygen_makes_one_key_and_keeps_it_unless_forced() {
    let env = Env::new();
    let first = env.xtask(&["keygen"]).ok();
    let key_id = env.key_id();
    assert!(
        first.stderr().contains(&env.public_key()),
        "{}",
        first.describe()
    );
    let secret = env.path("keys").join("plugkit-dev.key");
    let mode = fs::metadata(&secret)
        .expect("secret key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let trusted = env
        .config_dir()
        .join("trusted-keys")
        .join(format!("{key_id}.pub"));
    assert!(fs::read_to_string(trusted).is_ok_and(|t| t.contains(&env.public_key())));

    let second = env.xtask(&["keygen"]).ok();
    assert!(
        second.stdout().contains("already exists"),
        "{}",
        second.describe()
    );
    assert_eq!(env.key_id(), key_id);

    env.xtask(&["keygen", "--force"]).ok();
    assert_ne!(env.key_id(), key_id);
}

#[test]
fn install_common_plugins_resolves_the_three_reference_plugins() {
    let env = Env::new();
    let plan = env
        .xtask(&["install-common-plugins", "--dry-run"])
        .ok()
        .stdout();
    for (package, id) in [
        ("plugkit-twilio", "twilio"),
        ("plugkit-stripe", "stripe"),
        ("plugkit-network-automation", "network-automation"),
    ] {
        assert!(
            plan.contains(&format!("would build `{package}`"))
                && plan.contains(&format!("install {id} ")),
            "{plan}"
        );
    }
    let unknown = env.xtask(&["install-plugin", "no-such-plugin"]).fails();
    assert!(
        unknown.stderr().contains("no plugin `no-such-plugin`")
            && unknown.stderr().contains("twilio"),
        "{}",
        unknown.describe()
    );
}

const CRASH_STEPS: [&str; 6] = [
    "built",
    "packaged",
    "verified",
    "stored",
    "linked",
    "registered",
];

/// What a crash left: the installed version of `crash-alpha`, after checking
/// that the folder is a complete, verifiable package and the registry parses.
fn inspect_after_crash(env: &Env, plugin_dir: &Path) -> Option<String> {
    let registry = plugin_dir.join("registry.json");
    if let Ok(text) = fs::read_to_string(&registry) {
        serde_json::from_str::<serde_json::Value>(&text)
            .unwrap_or_else(|e| panic!("{} does not parse after a crash: {e}", registry.display()));
    }
    let discovery = plugin_host::discovery::discover(&[plugin_dir.to_owned()], &|path| {
        plugin_host::package::signature::embedded_identity(
            &fs::read(path).map_err(|e| e.to_string())?,
        )
    });
    assert!(
        discovery.problems.is_empty(),
        "half-installed plugin: {:#?}",
        discovery.problems
    );
    let plugin = match &discovery.plugins[..] {
        [] => return None,
        [plugin] => plugin,
        more => panic!("more than one plugin: {more:#?}"),
    };
    let library = fs::read(&plugin.library).expect("library");
    let manifest = fs::read(plugin.folder.join("plugin.toml")).expect("manifest");
    let mut signature_path = plugin.library.as_os_str().to_owned();
    signature_path.push(".minisig");
    let signature = fs::read_to_string(PathBuf::from(signature_path)).expect("signature");
    let version = plugin.manifest.version.to_string();
    plugin_host::package::signature::verify_signature(
        &library,
        &signature,
        &[env.public_key()],
        &Expected::plugin("crash-alpha", &version).manifest(&manifest),
    )
    .expect("the installed package verifies");
    assert!(plugin.folder.join("SHA256SUMS").is_file());
    Some(version)
}

/// After the next xtask command, the registry agrees with what is installed
/// and no leftovers remain.
fn assert_reconciled(env: &Env, plugin_dir: &Path, installed: Option<&str>) {
    let mut cmd = env.command(&["list-plugins", "--json"]);
    cmd.env("PLUGKIT_PLUGIN_DIR", plugin_dir);
    let run = env.run(cmd, "list-plugins --json".to_owned()).ok();
    let rows: Vec<serde_json::Value> = serde_json::from_str(&run.stdout()).expect("json");
    let listed = rows
        .iter()
        .find(|r| r["id"] == "crash-alpha")
        .map(|r| r["version"].as_str().unwrap_or_default().to_owned());
    assert_eq!(listed.as_deref(), installed);
    let registry: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(plugin_dir.join("registry.json")).expect("registry"),
    )
    .expect("parses");
    let recorded: BTreeMap<String, String> = registry["plugins"]
        .as_object()
        .expect("plugins")
        .iter()
        .map(|(id, e)| {
            (
                id.clone(),
                e["version"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let expected: BTreeMap<String, String> = installed
        .map(|v| ("crash-alpha".to_owned(), v.to_owned()))
        .into_iter()
        .collect();
    assert_eq!(recorded, expected);
    assert!(names_in(&plugin_dir.join(".staging")).is_empty());
    assert_eq!(
        names_in(&plugin_dir.join(".store")).len(),
        usize::from(installed.is_some())
    );
}

#[test]
fn install_killed_at_any_step_leaves_the_old_or_the_new_installation() {
    let env = Env::new();
    let dir = env.scaffold("crash-alpha", "0.1.0", "");
    let crate_arg = dir.display().to_string();
    let install_into = |plugin_dir: &Path, crash_at: Option<&str>| {
        let mut cmd = env.command(&["install-plugin", &crate_arg]);
        cmd.env("PLUGKIT_PLUGIN_DIR", plugin_dir);
        if let Some(step) = crash_at {
            cmd.env("PLUGKIT_XTASK_CRASH_AT", step);
        }
        env.run(cmd, format!("install-plugin (crash at {crash_at:?})"))
    };
    for step in CRASH_STEPS {
        install_into(&env.path(&format!("upgrade-{step}")), None).ok();
    }
    set_version(&dir, "0.2.0");
    for (index, step) in CRASH_STEPS.iter().enumerate() {
        let committed = index >= CRASH_STEPS.iter().position(|s| *s == "linked").unwrap_or(0);
        for (scenario, before) in [("fresh", None), ("upgrade", Some("0.1.0"))] {
            let plugin_dir = env.path(&format!("{scenario}-{step}"));
            let crashed = install_into(&plugin_dir, Some(step)).fails();
            assert!(
                crashed.stderr().contains("aborting here"),
                "{}",
                crashed.describe()
            );
            let found = inspect_after_crash(&env, &plugin_dir);
            let expected = if committed { Some("0.2.0") } else { before };
            assert_eq!(found.as_deref(), expected, "{scenario}, crash at {step}");
            assert_reconciled(&env, &plugin_dir, expected);
            // And the interrupted install can simply be run again.
            install_into(&plugin_dir, None).ok();
            assert_eq!(
                inspect_after_crash(&env, &plugin_dir).as_deref(),
                Some("0.2.0")
            );
        }
    }
}

/// `cargo xtask dev`: an edit is rebuilt, reinstalled and swapped in by a
/// host watching the plugin directory; the build and swap times are printed.
#[test]
fn dev_rebuilds_an_edit_and_the_watching_host_swaps_it_in() {
    let env = Env::new();
    let dir = env.scaffold("dev-demo", "0.1.0", "");
    let path = dir.display().to_string();
    env.xtask(&["install-plugin", &path]).ok();

    let (host, _host_dir, _runtime) = require_host(vec![env.public_key()]);
    let report = host.start_installed(&[env.plugin_dir()]);
    assert_eq!(report.started, ["dev-demo"], "{:?}", report.problems());
    host.activate("dev-demo", "acme", "{}").expect("activate");
    let echo = |host: &Host| {
        let reply = host
            .plugin("dev-demo")
            .and_then(|p| p.invoke("acme", "echo", b"world"))
            .expect("echo");
        String::from_utf8(reply).expect("utf-8")
    };
    assert_eq!(echo(&host), "hello world");

    let mut options = plugin_host::hot_reload::LiveOptions::new(vec![env.plugin_dir()]);
    options.event_log = Some(env.plugin_dir().join(".plugkit-live.jsonl"));
    let _live = host.watch(options).expect("watch");

    let lib_rs = dir.join("src/lib.rs");
    let source = fs::read_to_string(&lib_rs).expect("lib.rs");
    let edited = source.replace(
        "\"echo\" => Ok([greeting.as_bytes(), b\" \", payload].concat()),",
        "\"echo\" => Ok([greeting.as_bytes(), b\", \", payload, b\"!\"].concat()),",
    );
    assert_ne!(
        source, edited,
        "the scaffold's echo line changed; update this test"
    );
    fs::write(&lib_rs, edited).expect("edit");

    let run = env.xtask(&["dev", &path, "--once"]).ok();
    let stderr = run.stderr();
    assert!(stderr.contains("built in"), "{}", run.describe());
    assert!(
        stderr.contains("live: 0.1.0 -> 0.1.0"),
        "{}",
        run.describe()
    );
    assert!(stderr.contains("callers waited"), "{}", run.describe());
    for step in [
        "check installed",
        "build",
        "package",
        "sign",
        "verify",
        "install",
    ] {
        assert!(
            stderr.contains(&format!(", {step} ")) || stderr.contains(&format!("time: {step} ")),
            "no `{step}` in the time breakdown: {}",
            run.describe()
        );
    }
    assert!(
        stderr.contains("edit to live") && stderr.contains("then the host's watcher and reload"),
        "{}",
        run.describe()
    );
    assert_eq!(echo(&host), "hello, world!");

    // A plugin that was never installed: dev's first cycle is reported as
    // the watching host starting it.
    let fresh = env.scaffold("dev-fresh", "0.1.0", "");
    let run = env
        .xtask(&["dev", &fresh.display().to_string(), "--once"])
        .ok();
    assert!(
        run.stderr().contains("[dev-fresh] live: started 0.1.0"),
        "{}",
        run.describe()
    );
    assert!(host.plugin("dev-fresh").is_ok());
}
