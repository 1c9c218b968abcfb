//! `[vault]`: the Vault or OpenBao server (KV version 2) that
//! `${vault:path#key}` references resolve against — tenants' plugin
//! settings at activation and the daemon's own secrets such as the
//! registry credentials of `[provisioning]`, all through the platform's
//! one resolver (`Platform::resolve_secret`). The token is itself a
//! reference (`${env:…}` or `${file:…}`), never plain text in the file.

use std::time::Duration;

use anyhow::{Context, Result};
use plugin_host::tenancy::{resolve_secret_reference, Environment, VaultConfig};
use serde::Deserialize;

/// `[vault]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultSection {
    /// Base address, `http://127.0.0.1:8200` or `https://vault.example:8200`.
    pub addr: String,
    /// The token, as a reference: `${env:VAULT_TOKEN}` or `${file:/run/secrets/vault-token}`.
    pub token: String,
    /// The KV version 2 mount [default: `secret`].
    #[serde(default)]
    pub mount: Option<String>,
    /// Limit for one request (humantime: `10s`) [default: 10 s].
    #[serde(default)]
    pub timeout: Option<String>,
}

impl VaultSection {
    /// The platform's Vault, its token resolved from `env` or a file.
    ///
    /// # Errors
    /// A token that is not an `${env:…}`/`${file:…}` reference or does not
    /// resolve, or a timeout that is not a duration; each names the key.
    pub fn resolve(&self, env: &Environment) -> Result<VaultConfig> {
        let token = resolve_secret_reference(&self.token, env).with_context(|| {
            "[vault] token must be a reference to the token, such as \"${env:VAULT_TOKEN}\""
        })?;
        let mut config = VaultConfig::new(self.addr.trim_end_matches('/'), token);
        if let Some(mount) = &self.mount {
            config.mount = mount.trim_matches('/').to_owned();
        }
        if let Some(timeout) = &self.timeout {
            config.timeout = humantime::parse_duration(timeout)
                .with_context(|| {
                    format!("[vault] timeout {timeout:?} is not a duration such as \"10s\"")
                })?
                .max(Duration::from_millis(1));
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn the_vault_token_is_a_reference_and_never_plain_text() {
        let env = Environment::fixed([("VAULT_TOKEN", "s.token-canary")]);
        let section = |token: &str, timeout: Option<&str>| VaultSection {
            addr: "http://127.0.0.1:8200/".to_owned(),
            token: token.to_owned(),
            mount: Some("/kv/".to_owned()),
            timeout: timeout.map(str::to_owned),
        };
        let config = section("${env:VAULT_TOKEN}", Some("3s"))
            .resolve(&env)
            .expect("resolves");
        assert_eq!(config.addr, "http://127.0.0.1:8200");
        assert_eq!(config.mount, "kv");
        assert_eq!(config.timeout, Duration::from_secs(3));
        assert_eq!(config.token.expose_secret(), "s.token-canary");
        let plain = section("s.token-canary", None)
            .resolve(&env)
            .expect_err("plain");
        let text = format!("{plain:#}");
        assert!(text.contains("[vault] token must be a reference"), "{text}");
        assert!(!text.contains("canary"), "{text}");
        let bad = section("${env:VAULT_TOKEN}", Some("soon"))
            .resolve(&env)
            .expect_err("timeout");
        assert!(format!("{bad:#}").contains("[vault] timeout"), "{bad:#}");
    }
}
