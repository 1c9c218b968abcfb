//! `PUT /api/tenants/{t}/plugins/{p}/config`: replaces a tenant's overrides
//! of one plugin and says what the operator could not see otherwise — which
//! of the keys just set are shadowed by a higher layer (an environment
//! variable), and, when the change is refused, which keys set before the
//! PUT would have been dropped by it.
//!
//! Precedence (plugin-host's `tenancy::config`): manifest default <
//! `config/plugins/<id>.toml` < the tenant's overrides < `PLUGKIT_<ID>_<KEY>`.

use super::*;

use plugin_host::tenancy::ConfigSource;
use serde_json::Map;

/// What a configuration PUT answers: the plugin's view after the change,
/// plus the keys of the PUT whose value comes from a higher layer.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigUpdate {
    /// The tenant's view of the plugin after the change (`config`,
    /// `sources`, `problem`, ... as `GET …/config` answers).
    #[serde(flatten)]
    pub view: TenantPluginView,
    /// Each key the PUT set whose effective value comes from a higher layer
    /// than the tenant's overrides, so the value sent is stored but not used.
    /// Empty when every key sent is in effect.
    pub overridden: Vec<OverriddenKey>,
}

/// One key of a configuration PUT shadowed by a higher layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OverriddenKey {
    /// The configuration key.
    pub key: String,
    /// The layer that wins: `"environment"` (a `PLUGKIT_<ID>_<KEY>`
    /// variable) or, should the precedence change, the source's words.
    pub layer: String,
    /// The environment variable, when `layer` is `"environment"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variable: Option<String>,
    /// Where the effective value comes from, as `sources` says it.
    pub source: String,
    /// What to do about it.
    pub hint: String,
}

impl Daemon {
    /// Replaces the tenant's overrides of `plugin` with `overrides` (the
    /// whole set: a key left out is dropped). Validated first; a refused or
    /// failed change leaves the running configuration as it was, and its
    /// error names the keys set before that the body left out.
    pub fn update_config(
        &self,
        actor: &str,
        tenant: &str,
        plugin: &str,
        overrides: Value,
    ) -> Result<ConfigUpdate, Problem> {
        let before = self.plugin_config(tenant, plugin)?;
        let Value::Object(overrides) = overrides else {
            return Err(Problem::bad_request(
                "the body must be a JSON object of configuration key → value (the tenant's \
                 overrides; sensitive keys as references such as \"${env:VAR}\")",
            )
            .tenant(tenant)
            .plugin(plugin));
        };
        let dropped = dropped_keys(&before, &overrides);
        if let Err(e) =
            self.platform
                .as_actor(actor)
                .request(tenant, plugin, Value::Object(overrides.clone()))
        {
            let mut problem = Problem::from(e).tenant(tenant).plugin(plugin);
            problem
                .error
                .push_str(&replace_hint(tenant, plugin, &dropped));
            return Err(problem);
        }
        let view = self.plugin_config(tenant, plugin)?;
        let overridden = overridden_keys(&overrides, &view.sources);
        Ok(ConfigUpdate { view, overridden })
    }
}

/// The keys that came from the tenant's overrides before and that
/// `overrides` leaves out, sorted.
fn dropped_keys(before: &TenantPluginView, overrides: &Map<String, Value>) -> Vec<String> {
    let tenant_layer = ConfigSource::TenantOverride.to_string();
    before
        .sources
        .iter()
        .filter(|(key, source)| source.starts_with(&tenant_layer) && !overrides.contains_key(*key))
        .map(|(key, _)| key.clone())
        .collect()
}

/// The sentence a refused PUT's error ends with.
fn replace_hint(tenant: &str, plugin: &str, dropped: &[String]) -> String {
    let path = format!("/api/tenants/{tenant}/plugins/{plugin}/config");
    let removed = if dropped.is_empty() {
        String::new()
    } else {
        format!(
            " It left out {}, which the tenant had set before, so it would have removed them.",
            dropped
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    format!(
        " (A PUT replaces the tenant's whole set of overrides.{removed} Nothing was changed: \
         GET {path} first and PUT the full set with your change.)"
    )
}

/// The keys of `overrides` whose effective value (per `sources`) comes from
/// another layer than the tenant's overrides, in key order.
fn overridden_keys(
    overrides: &Map<String, Value>,
    sources: &BTreeMap<String, String>,
) -> Vec<OverriddenKey> {
    let tenant_layer = ConfigSource::TenantOverride.to_string();
    let mut keys: Vec<&String> = overrides.keys().collect();
    keys.sort();
    keys.into_iter()
        .filter_map(|key| {
            let source = sources.get(key)?;
            if source.starts_with(&tenant_layer) {
                return None;
            }
            let variable = source
                .strip_prefix("environment variable `")
                .and_then(|rest| rest.split('`').next())
                .map(str::to_owned);
            let (layer, hint) = match &variable {
                Some(var) => (
                    "environment".to_owned(),
                    format!(
                        "environment variables win over the tenant's overrides; unset `{var}` \
                         in the daemon's environment and restart it for the tenant's value to \
                         apply"
                    ),
                ),
                None => (
                    source.clone(),
                    format!("{source} wins over the tenant's overrides"),
                ),
            };
            Some(OverriddenKey {
                key: key.clone(),
                layer,
                variable,
                source: source.clone(),
                hint,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn a_key_set_by_the_tenant_but_shadowed_by_an_environment_variable_is_named_with_it() {
        let overrides = map(json!({"webhook_secret": "${file:/tmp/x}", "currency": "eur"}));
        let sources = BTreeMap::from([
            (
                "webhook_secret".to_owned(),
                "environment variable `PLUGKIT_STRIPE_WEBHOOK_SECRET`".to_owned(),
            ),
            ("currency".to_owned(), "the tenant's overrides".to_owned()),
        ]);
        let found = overridden_keys(&overrides, &sources);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].key, "webhook_secret");
        assert_eq!(found[0].layer, "environment");
        assert_eq!(
            found[0].variable.as_deref(),
            Some("PLUGKIT_STRIPE_WEBHOOK_SECRET")
        );
        assert!(found[0]
            .hint
            .contains("unset `PLUGKIT_STRIPE_WEBHOOK_SECRET`"));
    }

    #[test]
    fn a_tenant_reference_in_effect_is_not_reported_as_overridden() {
        let overrides = map(json!({"api_key": "${env:KEY}"}));
        let sources = BTreeMap::from([(
            "api_key".to_owned(),
            "the tenant's overrides via ${env:KEY}".to_owned(),
        )]);
        assert!(overridden_keys(&overrides, &sources).is_empty());
    }
}
