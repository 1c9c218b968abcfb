//! Layered plugin configuration for one tenant: manifest defaults <
//! `config/plugins/<id>.toml` < the tenant's overrides < `PLUGKIT_<ID>_<KEY>`
//! environment variables, checked against the manifest's `[config]` schema.
//!
//! Pure apart from [`ConfigFile::read`]. Secret references are recognised
//! here but resolved elsewhere (`secrets`), so nothing in this module ever
//! holds a resolved secret. Values themselves never appear in an error or in
//! `Debug` output: a misconfigured sensitive key must not leak through the
//! message that reports it.
//!
//! One job per file: `environment` (where variables come from), `error`
//! (problems and errors), `file` (the operator's file, the only IO),
//! `schema` (the storable schema) and `layer` (layering and checking).
//! Each uses only those before it. The variable name that overrides a key
//! and the `.toml.example` text are plugin-package's (`manifest`), pure and
//! shared with xtask; they are re-exported here under their old paths.

mod environment;
mod error;
mod file;
mod layer;
mod schema;

pub use environment::Environment;
pub use error::{ConfigError, ConfigProblem, ConfigSource, REDACTED};
pub(crate) use file::ConfigFile;
pub(crate) use layer::{layer, parse_typed, Layered, Layers};
pub use plugin_package::manifest::{env_var_name, example_toml};
pub(crate) use schema::Schema;

use std::path::Path;

use plugin_package::manifest::Manifest;
use serde_json::{Map, Value};

use file::config_file_path;

#[cfg(test)]
mod tests;

/// Runs the whole layering for one tenant on text inputs, as activation
/// does before it resolves secrets: `manifest`'s schema, the operator's
/// file `file_text`, the tenant's `overrides` and the environment `env`.
/// Returns what the operator would be shown: the redacted configuration and
/// its sources, or the error message. For `cargo xtask fuzz`, which feeds it
/// mutated inputs; not part of the API.
#[doc(hidden)]
pub fn layered_config_report(
    manifest: &Manifest,
    file_text: &str,
    overrides: &Map<String, Value>,
    env: &[(String, String)],
) -> Result<String, String> {
    let plugin = manifest.id.as_str();
    let tenant = "fuzz-tenant";
    let config_dir = Path::new("config");
    let schema = Schema::from_manifest(&manifest.config)?;
    let file = ConfigFile::parse(
        plugin,
        tenant,
        &config_file_path(config_dir, plugin),
        file_text,
    )
    .map_err(|e| e.to_string())?;
    let env = Environment::fixed(env.iter().cloned());
    let layered = layer(&Layers {
        plugin,
        tenant,
        schema: &schema,
        config_dir,
        file: Some(&file),
        overrides,
        env: &env,
    })
    .map_err(|e| e.to_string())?;
    Ok(format!(
        "{layered:?} {:?} {:?}",
        layered.redacted(),
        layered.sources()
    ))
}
