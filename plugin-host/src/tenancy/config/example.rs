//! The commented-out `config/plugins/<id>.toml.example` for a plugin.

use serde_json::Value;

use plugin_package::manifest::{ConfigType, Manifest};

use super::environment::env_var_name;

/// The text of `config/plugins/<id>.toml.example` for a plugin: every key
/// with its description, type, default and environment variable, all
/// commented out, so a copy of the file changes nothing until edited.
pub fn example_toml(manifest: &Manifest) -> String {
    let id = &manifest.id;
    let mut out = format!(
        "# Configuration of plugin `{id}` {}, for every tenant.\n\
         # Copy this file to {id}.toml and uncomment what you change.\n\
         # Layers, later wins: manifest defaults < this file < per-tenant overrides\n\
         # < environment variables PLUGKIT_<ID>_<KEY>.\n\
         # A string value may be a secret reference, resolved at activation:\n\
         # \"${{env:VAR}}\", \"${{file:/path}}\" or \"${{vault:path#key}}\".\n",
        manifest.version
    );
    if manifest.config.is_empty() {
        out.push_str("\n# This plugin declares no configuration keys.\n");
    }
    for (name, key) in manifest.config.iter() {
        out.push('\n');
        for line in key.description.lines().filter(|l| !l.trim().is_empty()) {
            out.push_str(&format!("# {}\n", line.trim()));
        }
        let mut facts = vec![key.value_type.as_str().to_owned()];
        if key.required {
            facts.push("required".to_owned());
        }
        if key.sensitive {
            facts.push("sensitive: use a secret reference".to_owned());
        }
        out.push_str(&format!(
            "# {} · env {}\n",
            facts.join(", "),
            env_var_name(id, name)
        ));
        let shown_name = toml_key(name);
        let value = match (&key.default, key.sensitive) {
            (_, true) => format!("\"${{vault:plugins/{id}#{name}}}\""),
            (Some(default), false) => default.to_string(),
            (None, false) => placeholder(key.value_type).to_owned(),
        };
        out.push_str(&format!("# {shown_name} = {value}\n"));
    }
    out
}

fn placeholder(t: ConfigType) -> &'static str {
    match t {
        ConfigType::String => "\"\"",
        ConfigType::Integer => "0",
        ConfigType::Float => "0.0",
        ConfigType::Boolean => "false",
        ConfigType::List => "[]",
    }
}

/// A key as TOML needs it: bare when it can be, quoted otherwise.
fn toml_key(name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        name.to_owned()
    } else {
        Value::String(name.to_owned()).to_string()
    }
}
