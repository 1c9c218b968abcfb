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
//! `schema` (the storable schema), `layer` (layering and checking) and
//! `example` (the `.toml.example` text). Each uses only those before it.

mod environment;
mod error;
mod example;
mod file;
mod layer;
mod schema;

pub use environment::{env_var_name, Environment};
pub use error::{ConfigError, ConfigProblem, ConfigSource, REDACTED};
pub use example::example_toml;
pub(crate) use file::ConfigFile;
pub(crate) use layer::{layer, parse_typed, Layered, Layers};
pub(crate) use schema::Schema;

#[cfg(test)]
mod tests;
