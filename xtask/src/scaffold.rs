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
    let template = template(category)?;
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
    let files = Files::new(name, template, &dir, &root, in_workspace);

    // The manifest must pass the host's own parser before anything is written.
    Manifest::parse(&files.manifest, &dir.join("plugin.toml")).map_err(|e| {
        anyhow::anyhow!(
            "new-plugin generated an invalid manifest for `{category}` (a bug in xtask/src/scaffold.rs; \
             please report it): {e}"
        )
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
        "created plugin `{name}` ({category}) in {dir}: it implements its category with an \
         in-memory example and a unit test\n\
         next:\n  cargo xtask dev {dir} --plugin-dir <dir a daemon watches>  # build, sign, install; \
         again on every save\n  \
         cargo test --manifest-path {dir}/Cargo.toml  # its unit test\n  \
         cargo xtask install-plugin {dir}  # install once",
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

/// What `new-plugin` writes for one category: a working in-memory example
/// of the category's contract with a unit test, and the manifest's
/// `[config]` section it reads.
struct Template {
    category: &'static str,
    /// `src/lib.rs`, with `__ID__`, `__TYPE__` and `__TITLE__` to fill in.
    source: &'static str,
    /// The `[config.*]` tables of `plugin.toml`.
    config: &'static str,
}

/// One template per category the SDK knows, and `custom`.
const TEMPLATES: &[Template] = &[
    Template {
        category: "communication",
        source: include_str!("../templates/communication.rs.tmpl"),
        config: r#"[config.webhook_token]
type = "string"
required = false
sensitive = true
description = "The signature status callbacks must carry; without it every callback is refused."
"#,
    },
    Template {
        category: "payment",
        source: include_str!("../templates/payment.rs.tmpl"),
        config: r#"[config.webhook_token]
type = "string"
required = false
sensitive = true
description = "The signature webhooks must carry; without it every webhook is refused."
"#,
    },
    Template {
        category: "network-automation",
        source: include_str!("../templates/network_automation.rs.tmpl"),
        config: r#"[config.device_name]
type = "string"
default = "lab-router-1"
description = "The name the lab device at 192.0.2.1 answers to (sysName, `hostname`)."
"#,
    },
    Template {
        category: "crm",
        source: include_str!("../templates/crm.rs.tmpl"),
        config: r#"[config.default_stage]
type = "string"
default = "new"
description = "The pipeline stage a new deal starts in when it names none."
"#,
    },
    Template {
        category: "custom",
        source: include_str!("../templates/custom.rs.tmpl"),
        config: r#"[config.greeting]
type = "string"
default = "hello"
description = "Word the `echo` method puts before each payload."
"#,
    },
];

/// The template for `category`, or an error listing the ones there are.
fn template(category: &str) -> Result<&'static Template> {
    TEMPLATES
        .iter()
        .find(|t| t.category == category)
        .with_context(|| {
            let known: Vec<&str> = TEMPLATES.iter().map(|t| t.category).collect();
            if plugin_api::KNOWN_CATEGORIES.contains(&category) {
                format!(
                    "`new-plugin` has no example for the category `{category}` yet; scaffold a \
                     `custom` plugin and implement the category's trait from plugin-api by hand \
                     (categories with examples: {})",
                    known.join(", ")
                )
            } else {
                format!(
                    "`{category}` is not a plugin category; use one of: {}",
                    known.join(", ")
                )
            }
        })
}

struct Files {
    cargo_toml: String,
    manifest: String,
    lib_rs: String,
}

impl Files {
    fn new(id: &str, template: &Template, dir: &Path, root: &Path, in_workspace: bool) -> Files {
        let category = template.category;
        let config = template.config;
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
# Every field is documented on `plugin_package::manifest::Manifest` (plugkit's
# plugin-package/src/manifest/). `id` is read into the code by
# `plugin_api::manifest_id!()`, and `version` must equal Cargo.toml's: the build
# fails otherwise, and the host checks the library embeds both.
# `isolation = "process"` would make a sandboxed child process this plugin's minimum.
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
# config/plugins/{id}.toml.example from it. Every value is optional, so the
# plugin serves a tenant that configures nothing.
{config}"#
        );
        let lib_rs = template
            .source
            .replace("__TYPE__", &type_name)
            .replace("__TITLE__", &title)
            .replace("__ID__", id);
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
    fn every_category_has_a_template_whose_manifest_the_host_accepts() {
        let root = Path::new("/w");
        let dir = root.join("plugins/sms-gateway");
        for category in plugin_api::KNOWN_CATEGORIES {
            let template = template(category).expect("a template for every known category");
            let files = Files::new("sms-gateway", template, &dir, root, true);
            let manifest = Manifest::parse(&files.manifest, &dir.join("plugin.toml"))
                .unwrap_or_else(|e| panic!("{category}: {e}"));
            assert_eq!(manifest.category.to_string(), *category);
            assert!(
                files
                    .lib_rs
                    .contains(&format!("const CATEGORY: &'static str = \"{category}\";")),
                "{category}"
            );
            assert!(files.lib_rs.contains("pub struct SmsGateway"), "{category}");
            assert!(
                !files.lib_rs.contains("__"),
                "{category}: a placeholder is left"
            );
        }
        let unknown = template("sms").err().map(|e| e.to_string());
        assert!(
            unknown
                .as_deref()
                .is_some_and(|m| m.contains("not a plugin category")
                    && m.contains("communication, payment, network-automation, crm, custom")),
            "{unknown:?}"
        );
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
