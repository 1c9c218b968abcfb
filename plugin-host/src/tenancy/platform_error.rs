//! Everything the platform can refuse or fail at, one variant per cause.

use super::*;

/// Everything the platform can refuse or fail at.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlatformError {
    /// No tenant with this id.
    #[error("no tenant `{tenant}`; add it with `Platform::add_tenant`")]
    UnknownTenant {
        /// The tenant asked for.
        tenant: String,
    },
    /// The tenant exists already.
    #[error(
        "tenant `{tenant}` already exists with tier `{tier}`; change its tier with \
         `Platform::change_tier`"
    )]
    TenantExists {
        /// The tenant.
        tenant: String,
        /// Its tier.
        tier: String,
    },
    /// A tenant id that is empty, too long or has other characters than `a-z A-Z 0-9 . _ -`.
    #[error(
        "invalid tenant id {tenant:?}: use 1 to 64 characters of letters, digits, `.`, `_` \
         and `-`"
    )]
    InvalidTenantId {
        /// The refused id.
        tenant: String,
    },
    /// The plugin was never registered with the platform.
    #[error(
        "plugin `{plugin}` is not installed on the platform; register its manifest with \
         `Platform::register_plugin` first"
    )]
    UnknownPlugin {
        /// The plugin asked for.
        plugin: String,
    },
    /// The tenant's tier is below the plugin's `required_tier`.
    #[error(
        "tenant `{tenant}` holds tier `{held}`, but plugin `{plugin}` needs tier `{required}` \
         or higher; upgrade the tenant to `{required}` first"
    )]
    TierTooLow {
        /// The tenant.
        tenant: String,
        /// The plugin.
        plugin: String,
        /// The plugin's required tier.
        required: String,
        /// The tenant's tier.
        held: String,
    },
    /// A tier name that is not configured.
    #[error(transparent)]
    Tier(#[from] TierError),
    /// A manifest's `required_tier` is not a configured tier.
    #[error(
        "plugin `{plugin}` ({}) requires tier `{tier}`, which this platform does not have \
         (tiers: {known}); fix `required_tier` or configure the tier",
        manifest.display()
    )]
    ManifestTier {
        /// The plugin.
        plugin: String,
        /// Its manifest.
        manifest: PathBuf,
        /// The unknown tier.
        tier: String,
        /// The configured tiers.
        known: Tiers,
    },
    /// A manifest's schema that the platform cannot use.
    #[error("plugin `{plugin}` ({}): {message}; fix the manifest", manifest.display())]
    Schema {
        /// The plugin.
        plugin: String,
        /// Its manifest.
        manifest: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A tenant in the state file holds a tier that is not configured.
    #[error(
        "{}: tenant `{tenant}` holds tier `{tier}`, which is not configured (tiers: {known}); \
         add the tier to `PlatformConfig::tiers` or edit the file",
        path.display()
    )]
    StateTier {
        /// The state file.
        path: PathBuf,
        /// The tenant.
        tenant: String,
        /// Its tier.
        tier: String,
        /// The configured tiers.
        known: Tiers,
    },
    /// The overrides are not a JSON object.
    #[error(
        "tenant `{tenant}`: plugin `{plugin}`: overrides must be a JSON object of key → value \
         (or null for none)"
    )]
    OverridesNotAnObject {
        /// The tenant.
        tenant: String,
        /// The plugin.
        plugin: String,
    },
    /// The configuration does not fit the schema, or the operator's file is broken.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A secret reference could not be resolved: the activation fails closed.
    #[error(
        "tenant `{tenant}`: plugin `{plugin}`: key `{key}`: {source}; the plugin was not \
         activated for this tenant"
    )]
    Secret {
        /// The tenant.
        tenant: String,
        /// The plugin.
        plugin: String,
        /// The key whose value is the reference.
        key: String,
        /// Why (boxed to keep every `Result` of the platform small).
        source: Box<SecretError>,
    },
    /// A secret resolved to text that is not of the key's type.
    #[error(
        "tenant `{tenant}`: plugin `{plugin}`: key `{key}` must be {expected}, and the value \
         stored at `{reference}` does not parse as one; store a valid value there. The plugin \
         was not activated for this tenant"
    )]
    SecretType {
        /// The tenant.
        tenant: String,
        /// The plugin.
        plugin: String,
        /// The key.
        key: String,
        /// The reference.
        reference: String,
        /// The declared type.
        expected: ConfigType,
    },
    /// The host refused or the plugin failed a lifecycle step.
    #[error("tenant `{tenant}`: {source}")]
    Host {
        /// The tenant.
        tenant: String,
        /// The host's error (it names the plugin).
        source: HostError,
    },
    /// The tenant never asked for the plugin.
    #[error("tenant `{tenant}` has not requested plugin `{plugin}`; nothing to deactivate")]
    NotRequested {
        /// The tenant.
        tenant: String,
        /// The plugin.
        plugin: String,
    },
    /// A state file or the audit log cannot be read or written.
    #[error(transparent)]
    Persist(#[from] PersistError),
}
