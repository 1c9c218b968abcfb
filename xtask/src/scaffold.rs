//! `cargo xtask new-plugin <name> --category <category> [--path DIR]`: a
//! plugin crate that builds, installs and loads as it is, with a manifest, a
//! unit test, and comments pointing to the docs.
//!
//! Inside the workspace (the default is `plugins/<name>`) the crate is added
//! to the workspace members. Elsewhere it is its own workspace with a path
//! dependency on this workspace's `plugin-api`, plugkit's dev profile (so a
//! shared `CARGO_TARGET_DIR` reuses compiled dependencies) and a copy of
//! `Cargo.lock` (so it builds against the dependency versions the host was
//! built and tested with).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use plugin_package::manifest::Manifest;

use crate::artifacts::workspace_root;

pub(crate) fn run(name: &str, category: &str, path: Option<PathBuf>) -> Result<()> {
    check_id(name)?;
    let root = workspace_root();
    let dir = path.unwrap_or_else(|| root.join("plugins").join(name));
    if dir.exists() && fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some()) {
        bail!(
            "{} already exists and is not empty; choose another --path or remove it",
            dir.display()
        );
    }
    fs::create_dir_all(dir.join("src")).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    let in_workspace = dir.starts_with(&root);
    let files = Files::new(name, category, &dir, &root, in_workspace);

    // The manifest must pass the host's own parser before anything is written.
    Manifest::parse(&files.manifest, &dir.join("plugin.toml")).map_err(|e| {
        anyhow::anyhow!("the generated manifest is invalid (is `{category}` a category word?): {e}")
    })?;
    fs::write(dir.join("Cargo.toml"), &files.cargo_toml)?;
    fs::write(dir.join("plugin.toml"), &files.manifest)?;
    fs::write(dir.join("src").join("lib.rs"), &files.lib_rs)?;
    if in_workspace {
        add_member(&root, &dir)?;
    } else {
        let lock = root.join("Cargo.lock");
        fs::copy(&lock, dir.join("Cargo.lock"))
            .with_context(|| format!("copying {}", lock.display()))?;
    }
    println!(
        "created plugin `{name}` ({category}) in {dir}\n\
         next:\n  cargo test --manifest-path {dir}/Cargo.toml      # its unit test\n  \
         cargo xtask install-plugin {dir}                   # build, sign, install\n  \
         cargo xtask list-plugins",
        dir = dir.display()
    );
    Ok(())
}

fn check_id(name: &str) -> Result<()> {
    let ok = (2..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        bail!(
            "`{name}` is not a valid plugin id: use 2 to 64 characters of a-z, 0-9 and `-`, \
             starting with a letter (e.g. `sms-gateway`)"
        );
    }
    Ok(())
}

struct Files {
    cargo_toml: String,
    manifest: String,
    lib_rs: String,
}

impl Files {
    fn new(id: &str, category: &str, dir: &Path, root: &Path, in_workspace: bool) -> Files {
        let crate_name = format!("plugkit-{id}");
        let library = format!("lib{}.so", crate_name.replace('-', "_"));
        let type_name: String = id
            .split('-')
            .map(|part| {
                let mut chars = part.chars();
                chars
                    .next()
                    .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                    .unwrap_or_default()
            })
            .collect();
        let title = type_name.clone();
        let api_req = {
            let mut parts = plugin_api::API_VERSION.split('.');
            format!(
                "^{}.{}",
                parts.next().unwrap_or("0"),
                parts.next().unwrap_or("1")
            )
        };
        let api_path = if in_workspace {
            relative(dir, &root.join("plugin-api"))
        } else {
            root.join("plugin-api").display().to_string()
        };
        let (edition, tail) = if in_workspace {
            (
                "edition.workspace = true",
                "\n[lints]\nworkspace = true\n".to_owned(),
            )
        } else {
            (
                "edition = \"2021\"",
                "\n# Outside the plugkit workspace this crate is its own workspace. The profile\n\
                 # is plugkit's, so builds sharing its CARGO_TARGET_DIR reuse compiled dependencies.\n\
                 [workspace]\n\n[profile.dev]\ndebug = \"line-tables-only\"\n\n\
                 [profile.dev.package.\"*\"]\ndebug = false\n\n\
                 [profile.dev.package.plugin-api]\ndebug = \"line-tables-only\"\n"
                    .to_owned(),
            )
        };
        let cargo_toml = format!(
            r#"# Plugin `{id}`, made by `cargo xtask new-plugin`.
# Build, sign and install it with `cargo xtask install-plugin <this folder>`.
[package]
name = "{crate_name}"
# Must equal `version` in plugin.toml: the library embeds it and the host compares.
version = "0.1.0"
{edition}
publish = false

[lib]
# cdylib: the library the host loads; rlib: lets `cargo test` run the plugin in-process.
crate-type = ["cdylib", "rlib"]

[dependencies]
# The only crate a plugin needs: the stable ABI and the SDK. Never depend on plugin-host.
plugin-api = {{ path = "{api_path}" }}

[dev-dependencies]
serde_json = "1"
{tail}"#
        );
        let manifest = format!(
            r#"# Manifest of plugin `{id}`: what the host reads before it loads the library.
# Every field is documented on `plugin_package::manifest::Manifest` (plugin-host/src/manifest.rs,
# or `cargo doc -p plugin-host --open`). `id` and `version` must match `ID` in
# src/lib.rs and `version` in Cargo.toml: the library embeds both and the host checks.
id = "{id}"
name = "{title}"
version = "0.1.0"
description = "TODO: say in one paragraph what {id} does."
authors = ["TODO"]
license = "MIT OR Apache-2.0"
category = "{category}"
# The plugin-api versions this plugin is built for.
api = "{api_req}"
library = "{library}"
required_tier = "free"
# Host capabilities it uses, e.g. "network:outbound", "secrets:read", "hooks:emit".
permissions = []

# Other plugins it needs, by id:
# [dependencies]
# other-plugin = "^1.0"

# Hooks it receives (implement `plugin_api::Hooks` and add `hooks` to export_plugin!):
# [[hooks]]
# name = "order.created"
# kind = "event"

# Its configuration schema; `cargo xtask install-plugin` writes
# config/plugins/{id}.toml.example from it.
[config.greeting]
type = "string"
default = "hello"
description = "Word the `echo` method puts before each payload."
"#
        );
        let category_hint = match category {
            "communication" => "\n//! A `communication` plugin also implements `plugin_api::communication::Communication`\n//! and lists `communication` in `export_plugin!` (see plugins/twilio).",
            "payment" => "\n//! A `payment` plugin also implements `plugin_api::payment::Payment` and lists\n//! `payment` in `export_plugin!` (see plugins/stripe).",
            "network-automation" => "\n//! A `network-automation` plugin also implements `plugin_api::network_automation::Network`\n//! and lists `network` in `export_plugin!` (see plugins/network-automation).",
            _ => "",
        };
        let lib_rs = format!(
            r#"//! Plugin `{id}`: TODO say what it does.
//!
//! Where to read next: the SDK in `plugin-api` (`cargo doc -p plugin-api --open`,
//! or plugin-api/src/lib.rs and sdk.rs), the manifest fields on
//! `plugin_package::manifest::Manifest`, and ARCHITECTURE.md at the plugkit root.{category_hint}

use std::collections::BTreeMap;
use std::sync::RwLock;

use plugin_api::{{Plugin, PluginError, Result, Service, TenantConfig}};

/// The plugin. The host may call it from many threads at once, so
/// per-tenant state sits behind a lock.
pub struct {type_name} {{
    /// Each active tenant's greeting.
    greetings: RwLock<BTreeMap<String, String>>,
}}

impl Plugin for {type_name} {{
    const ID: &'static str = "{id}";
    const NAME: &'static str = "{title}";
    const CATEGORY: &'static str = "{category}";

    fn new() -> Result<Self> {{
        // No IO here; do that in `initialize`.
        Ok(Self {{
            greetings: RwLock::new(BTreeMap::new()),
        }})
    }}

    fn activate(&self, tenant: &TenantConfig) -> Result<()> {{
        // The tenant's configuration, layered over the [config] defaults of plugin.toml.
        let greeting = tenant
            .get::<String>("greeting")?
            .unwrap_or_else(|| "hello".to_owned());
        self.greetings
            .write()
            .map_err(|_| PluginError::failed("greetings lock poisoned"))?
            .insert(tenant.tenant().to_owned(), greeting);
        Ok(())
    }}

    fn deactivate(&self, tenant: &str) -> Result<()> {{
        self.greetings
            .write()
            .map_err(|_| PluginError::failed("greetings lock poisoned"))?
            .remove(tenant);
        Ok(())
    }}
}}

impl Service for {type_name} {{
    fn invoke(&self, tenant: &str, method: &str, payload: &[u8]) -> Result<Vec<u8>> {{
        let greetings = self
            .greetings
            .read()
            .map_err(|_| PluginError::failed("greetings lock poisoned"))?;
        let greeting = greetings
            .get(tenant)
            .ok_or_else(|| PluginError::not_found(format!("active tenant `{{tenant}}`")))?;
        match method {{
            "echo" => Ok([greeting.as_bytes(), b" ", payload].concat()),
            other => Err(PluginError::unsupported(format!("method `{{other}}`"))),
        }}
    }}
}}

// Exports the plugin through the stable ABI; list every extension trait it implements.
plugin_api::export_plugin!({type_name}, extensions: [service]);

#[cfg(test)]
mod tests {{
    use super::*;

    // Plugin logic is tested in-process (the crate is also an rlib); loading the
    // library is the host's integration tests' job.
    #[test]
    fn echo_greets_with_the_tenant_greeting() -> Result<()> {{
        let plugin = {type_name}::new()?;
        plugin.activate(&TenantConfig::new("acme", serde_json::json!({{"greeting": "hi"}})))?;
        assert_eq!(plugin.invoke("acme", "echo", b"there")?, b"hi there");
        assert!(plugin.invoke("globex", "echo", b"there").is_err());
        Ok(())
    }}
}}
"#
        );
        Files {
            cargo_toml,
            manifest,
            lib_rs,
        }
    }
}

/// `to` relative to `from` (both absolute).
fn relative(from: &Path, to: &Path) -> String {
    let from: Vec<_> = from.components().collect();
    let to: Vec<_> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".to_owned(); from.len() - common];
    parts.extend(
        to[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    parts.join("/")
}

/// Adds the new crate to `[workspace] members` of the root Cargo.toml.
fn add_member(root: &Path, dir: &Path) -> Result<()> {
    let path = root.join("Cargo.toml");
    let text = fs::read_to_string(&path)?;
    let member = relative(root, dir);
    let edited = text.find("members = [").and_then(|start| {
        let close = start + text[start..].find(']')?;
        let mut out = text[..close].trim_end().to_owned();
        if !out.ends_with(',') && !out.ends_with('[') {
            out.push(',');
        }
        out.push_str(&format!("\n    \"{member}\",\n"));
        out.push_str(&text[close..]);
        Some(out)
    });
    match edited {
        Some(edited) => {
            crate::files::write_atomic(&path, edited.as_bytes())?;
            eprintln!(
                "xtask: added \"{member}\" to the workspace members in {}",
                path.display()
            );
            Ok(())
        }
        None => bail!(
            "created the crate, but could not find `members = [` in {}; add \"{member}\" to \
             [workspace] members by hand",
            path.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_walk_up_then_down() {
        for (from, to, expected) in [
            ("/w/plugins/sms", "/w/plugin-api", "../../plugin-api"),
            ("/w", "/w/plugins/sms", "plugins/sms"),
            ("/w/a", "/w/a/b", "b"),
        ] {
            assert_eq!(relative(Path::new(from), Path::new(to)), expected);
        }
    }

    #[test]
    fn plugin_ids_follow_the_manifest_rule() {
        for (id, ok) in [
            ("sms-gateway", true),
            ("a1", true),
            ("a", false),
            ("Sms", false),
            ("1sms", false),
            ("sms_gateway", false),
        ] {
            assert_eq!(check_id(id).is_ok(), ok, "{id}");
        }
    }

    #[test]
    fn new_workspace_members_are_appended_to_the_members_list() {
        let root = tempfile::tempdir().expect("temp dir");
        let manifest = root.path().join("Cargo.toml");
        fs::write(
            &manifest,
            "[workspace]\nmembers = [\n    \"plugin-api\",\n    \"xtask\",\n]\n\n[profile.dev]\n",
        )
        .expect("write");
        add_member(root.path(), &root.path().join("plugins").join("sms")).expect("add");
        assert_eq!(
            fs::read_to_string(&manifest).expect("read"),
            "[workspace]\nmembers = [\n    \"plugin-api\",\n    \"xtask\",\n    \"plugins/sms\",\n]\n\n[profile.dev]\n"
        );
    }
}
