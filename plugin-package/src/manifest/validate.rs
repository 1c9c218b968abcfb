//! The rules a schema cannot express (ids, plain library names, self
//! dependencies, duplicate hooks, config defaults and bounds), each reported
//! at its entry, and the [`Manifest`] built from the raw form.

use std::collections::BTreeMap;
use std::path::Path;

use toml::Spanned;

use super::error::Problems;
use super::raw::{RawManifest, Req};
use super::{is_valid_id, ConfigKey, ConfigSchema, ConfigType, Hook, Manifest, Position, ID_RULE};

impl RawManifest {
    /// Builds the manifest and reports every broken rule through `report`.
    pub(super) fn validate(self, path: &Path, problems: &mut Problems<'_>) -> Manifest {
        let id = self.id.get_ref().clone();
        if !is_valid_id(&id) {
            problems.report(
                self.id.span(),
                format!("invalid plugin id `{id}`: {ID_RULE}, e.g. `twilio-sms`"),
            );
        }

        let library = self.library.get_ref();
        let is_plain_name = !library.is_empty()
            && library != "."
            && library != ".."
            && !library.contains(['/', '\\']);
        if !is_plain_name {
            problems.report(
                self.library.span(),
                format!(
                    "`library = \"{library}\"` must be a file name in the plugin's folder, \
                     such as \"libplugkit_twilio.so\", not a path"
                ),
            );
        }

        let mut dependencies = BTreeMap::new();
        for (dep_id, dependency) in self.dependencies {
            let name = dep_id.get_ref();
            if !is_valid_id(name) {
                problems.report(
                    dep_id.span(),
                    format!("invalid dependency id `{name}`: {ID_RULE}"),
                );
            }
            if *name == id {
                problems.report(
                    dep_id.span(),
                    format!("plugin `{id}` depends on itself; remove `{name}` from [dependencies]"),
                );
            }
            dependencies.insert(dep_id.into_inner(), dependency);
        }

        let mut conflicts = BTreeMap::new();
        for (other, Req(range)) in self.conflicts {
            let name = other.get_ref();
            if !is_valid_id(name) {
                problems.report(
                    other.span(),
                    format!("invalid conflict id `{name}`: {ID_RULE}"),
                );
            }
            if *name == id {
                problems.report(
                    other.span(),
                    format!(
                        "plugin `{id}` conflicts with itself; remove `{name}` from [conflicts]"
                    ),
                );
            }
            if dependencies.contains_key(name.as_str()) {
                problems.report(
                    other.span(),
                    format!(
                        "`{name}` is both a dependency and a conflict; a plugin cannot need \
                         and refuse the same plugin, so remove it from [dependencies] or [conflicts]"
                    ),
                );
            }
            conflicts.insert(other.into_inner(), range);
        }

        let provides: Vec<String> = self.provides.into_iter().map(Spanned::into_inner).collect();
        for service in &self.requires {
            if provides.contains(service.get_ref()) {
                problems.report(
                    service.span(),
                    format!(
                        "plugin requires service `{}` that it provides itself; \
                         remove it from `requires`",
                        service.get_ref()
                    ),
                );
            }
        }
        let requires = self.requires.into_iter().map(Spanned::into_inner).collect();

        let mut hooks: Vec<Hook> = Vec::with_capacity(self.hooks.len());
        let mut first_seen: BTreeMap<String, Position> = BTreeMap::new();
        for raw in self.hooks {
            let name = raw.name.get_ref();
            if let Some(first) = first_seen.get(name) {
                problems.report(
                    raw.name.span(),
                    format!(
                        "hook `{name}` is registered twice (first at line {}); \
                         keep one [[hooks]] entry per hook name",
                        first.line
                    ),
                );
            } else {
                first_seen.insert(name.clone(), problems.position(raw.name.span()));
            }
            hooks.push(Hook {
                name: raw.name.into_inner(),
                priority: raw.priority,
                kind: raw.kind,
                before: raw.before,
                after: raw.after,
            });
        }

        let mut keys = BTreeMap::new();
        for (name, raw) in self.config {
            let key_name = name.get_ref();
            if let Some(default) = &raw.default {
                if raw.required {
                    problems.report(
                        default.span(),
                        format!(
                            "config key `{key_name}` is required and also has a default; \
                             remove `default` or set `required = false`"
                        ),
                    );
                }
                if let Err(mismatch) = raw.value_type.check_toml(default.get_ref()) {
                    problems.report(
                        default.span(),
                        format!(
                            "default of config key `{key_name}` does not match its type: {mismatch}; \
                             change the default or the `type`"
                        ),
                    );
                }
            }
            let numeric = matches!(raw.value_type, ConfigType::Integer | ConfigType::Float);
            for bound in [&raw.min, &raw.max].into_iter().flatten() {
                if !numeric {
                    problems.report(
                        bound.span(),
                        format!(
                            "config key `{key_name}` is of type {} and only integer and float \
                             keys take `min`/`max`; remove them",
                            raw.value_type
                        ),
                    );
                } else if !bound.get_ref().is_finite() {
                    problems.report(
                        bound.span(),
                        format!("`min`/`max` of config key `{key_name}` must be a finite number"),
                    );
                }
            }
            if let (Some(min), Some(max)) = (&raw.min, &raw.max) {
                if min.get_ref() > max.get_ref() {
                    problems.report(
                        max.span(),
                        format!(
                            "config key `{key_name}` has `max` {} below `min` {}; swap them",
                            max.get_ref(),
                            min.get_ref()
                        ),
                    );
                }
            }
            if let Some(default) = &raw.default {
                let value = match default.get_ref() {
                    toml::Value::Integer(i) => Some(*i as f64),
                    toml::Value::Float(f) => Some(*f),
                    _ => None,
                };
                let below = raw
                    .min
                    .as_ref()
                    .is_some_and(|m| value.is_some_and(|v| v < *m.get_ref()));
                let above = raw
                    .max
                    .as_ref()
                    .is_some_and(|m| value.is_some_and(|v| v > *m.get_ref()));
                if below || above {
                    problems.report(
                        default.span(),
                        format!(
                            "the default of config key `{key_name}` is outside its `min`/`max`; \
                             change the default or the bounds"
                        ),
                    );
                }
            }
            keys.insert(
                name.into_inner(),
                ConfigKey {
                    value_type: raw.value_type,
                    required: raw.required,
                    default: raw.default.map(Spanned::into_inner),
                    sensitive: raw.sensitive,
                    description: raw.description,
                    min: raw.min.map(Spanned::into_inner),
                    max: raw.max.map(Spanned::into_inner),
                },
            );
        }

        Manifest {
            path: path.to_owned(),
            id,
            name: self.name,
            version: self.version,
            description: self.description,
            authors: self.authors,
            license: self.license,
            category: self.category,
            api: self.api,
            library: self.library.into_inner(),
            dependencies,
            conflicts,
            provides,
            requires,
            permissions: self.permissions.into_iter().map(|p| p.0).collect(),
            hooks,
            config: ConfigSchema { keys },
            required_tier: self.required_tier,
            isolation: self.isolation,
        }
    }
}
