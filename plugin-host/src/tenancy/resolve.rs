//! A tenant's configuration of one plugin: layered and checked (`config`),
//! then its secret references resolved (`secrets`) into the JSON the plugin gets.

use super::*;

impl Platform {
    pub(super) fn layered(
        &self,
        installed: &Installed,
        tenant: &str,
        plugin: &str,
        request: &PluginRequest,
    ) -> Result<Layered, PlatformError> {
        let file = ConfigFile::read(&self.inner.config_dir, plugin, tenant)?;
        Ok(config::layer(&Layers {
            plugin,
            tenant,
            schema: &installed.schema,
            config_dir: &self.inner.config_dir,
            file: file.as_ref(),
            overrides: &request.overrides,
            env: &self.inner.env,
        })?)
    }

    /// Builds the JSON configuration handed to the plugin, secrets resolved.
    pub(super) fn resolve(
        &self,
        installed: &Installed,
        tenant: &str,
        plugin: &str,
        request: &PluginRequest,
    ) -> Result<SecretString, PlatformError> {
        let layered = self.layered(installed, tenant, plugin, request)?;
        let mut values = Map::new();
        for (key, entry) in layered.entries {
            let value = match &entry.reference {
                None => entry.value,
                Some(reference) => {
                    let secret = self.inner.secrets.resolve(reference).map_err(|source| {
                        PlatformError::Secret {
                            tenant: tenant.to_owned(),
                            plugin: plugin.to_owned(),
                            key: key.clone(),
                            source: Box::new(source),
                        }
                    })?;
                    parse_typed(secret.expose_secret(), entry.value_type).ok_or_else(|| {
                        PlatformError::SecretType {
                            tenant: tenant.to_owned(),
                            plugin: plugin.to_owned(),
                            key: key.clone(),
                            reference: reference.to_string(),
                            expected: entry.value_type,
                        }
                    })?
                }
            };
            values.insert(key, value);
        }
        let json = Value::Object(values).to_string();
        Ok(SecretString::from(json))
    }
}
