//! What the daemon refuses or fails at, in a form the admin API turns into a
//! status code and a JSON body naming the tenant and plugin concerned.

use std::fmt;

use plugin_host::tenancy::{ConfigError, ConfigProblem};
use plugin_host::{Call, HostError, PlatformError};
use serde::Serialize;

/// The class of a [`Problem`]; the admin API maps each to one status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The request is malformed (400).
    BadRequest,
    /// The tenant's tier does not allow it (403).
    Forbidden,
    /// No such tenant, plugin or route (404).
    NotFound,
    /// The request contradicts the current state (409).
    Conflict,
    /// The request is well-formed but its content is refused (422).
    Unprocessable,
    /// The request body is over the route's limit (413).
    PayloadTooLarge,
    /// The daemon or a plugin failed (500).
    Internal,
    /// A server the daemon depends on (the OCI registry) failed or cannot
    /// be reached (502).
    BadGateway,
}

/// A refused or failed request: what went wrong, and whom it concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Which class of problem.
    #[serde(skip)]
    pub kind: ProblemKind,
    /// What is wrong and what to do, in one paragraph.
    pub error: String,
    /// The tenant concerned, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The plugin concerned, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    /// What else the answer lists, flattened into the JSON body (boxed:
    /// most problems have none, and every `Result` stays small).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub detail: Option<Box<ProblemDetail>>,
}

/// The lists some problems carry besides their message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProblemDetail {
    /// Per-field errors of a refused configuration: each names the key and
    /// says, in the words of `error`, what is wrong with it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldError>,
    /// The installed plugins that depend on the one a refused removal names.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dependents: Vec<String>,
}

/// One configuration key's problem: `{"field": "<key>", "error": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The configuration key.
    pub field: String,
    /// What is wrong with it and what to do (the same sentence as in `error`).
    pub error: String,
}

impl Problem {
    /// A problem of `kind` saying `error`.
    pub fn new(kind: ProblemKind, error: impl Into<String>) -> Self {
        Self {
            kind,
            error: error.into(),
            tenant: None,
            plugin: None,
            detail: None,
        }
    }

    /// The same problem, listing the plugins that depend on the one it names.
    pub fn dependents(mut self, dependents: Vec<String>) -> Self {
        self.detail.get_or_insert_with(Default::default).dependents = dependents;
        self
    }

    /// The same problem, naming `tenant`.
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// The same problem, naming `plugin`.
    pub fn plugin(mut self, plugin: impl Into<String>) -> Self {
        self.plugin = Some(plugin.into());
        self
    }

    /// A malformed request.
    pub fn bad_request(error: impl Into<String>) -> Self {
        Self::new(ProblemKind::BadRequest, error)
    }

    /// Refused content.
    pub fn unprocessable(error: impl Into<String>) -> Self {
        Self::new(ProblemKind::Unprocessable, error)
    }

    /// Something missing.
    pub fn not_found(error: impl Into<String>) -> Self {
        Self::new(ProblemKind::NotFound, error)
    }

    /// A failure of the daemon or a plugin.
    pub fn internal(error: impl Into<String>) -> Self {
        Self::new(ProblemKind::Internal, error)
    }

    /// No tenant `tenant`.
    pub fn unknown_tenant(tenant: &str) -> Self {
        Self::not_found(format!(
            "no tenant `{tenant}`; list the tenants with GET /api/tenants"
        ))
        .tenant(tenant)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.error)
    }
}

impl std::error::Error for Problem {}

/// `plugin` is not installed, in the words of the daemon's operator.
fn not_installed(plugin: &str) -> String {
    format!(
        "no plugin `{plugin}` is installed; GET /api/plugins lists the installed plugins, and \
         POST /api/packages (or the admin page's upload) installs one"
    )
}

/// The operator's words for platform errors whose own text tells an
/// embedder which Rust function to call (`Platform::register_plugin`):
/// the daemon's operator acts through routes, configuration keys and
/// commands instead.
fn platform_words(error: &PlatformError) -> Option<String> {
    Some(match error {
        PlatformError::UnknownTenant { tenant } => format!(
            "no tenant `{tenant}`; GET /api/tenants lists the tenants, and a new tenant is a \
             `[tenants.<id>]` table in the daemon's configuration"
        ),
        PlatformError::TenantExists { tenant, tier } => format!(
            "tenant `{tenant}` already exists with tier `{tier}`; change its tier with POST \
             /api/flows/tier-change"
        ),
        PlatformError::UnknownPlugin { plugin } => not_installed(plugin),
        PlatformError::Host { tenant, source } => {
            format!("tenant `{tenant}`: {}", host_words(source)?)
        }
        _ => return None,
    })
}

/// [`platform_words`] for the host's errors.
fn host_words(error: &HostError) -> Option<String> {
    Some(match error {
        HostError::UnknownPlugin { plugin } => not_installed(plugin),
        HostError::Quarantined { plugin, reason } => format!(
            "plugin `{plugin}` is quarantined: {reason}; fix the cause, then release it with \
             POST /api/plugins/{plugin}/release (or the admin page's Release button)"
        ),
        HostError::Reloaded { plugin } => {
            format!("plugin `{plugin}` was reloaded while the request ran; send the request again")
        }
        _ => return None,
    })
}

/// Rust names the host's texts use for settings, and the daemon's
/// configuration keys an operator sets instead; applied to every text the
/// host writes, nested ones too (a secret's error inside a tenant's).
const OPERATOR_NAMES: [(&str, &str); 2] = [
    (
        "`PlatformConfig::vault` (address and token)",
        "`[vault]` in the daemon's configuration (address and token)",
    ),
    (
        "`PlatformConfig::tiers`",
        "`tiers` in the daemon's configuration",
    ),
];

/// `text` with the host's Rust names of settings replaced by the daemon's
/// configuration keys.
pub(crate) fn in_operator_words(text: String) -> String {
    OPERATOR_NAMES.iter().fold(text, |text, (rust, operator)| {
        if text.contains(rust) {
            text.replace(rust, operator)
        } else {
            text
        }
    })
}

impl From<PlatformError> for Problem {
    fn from(error: PlatformError) -> Self {
        let message =
            platform_words(&error).unwrap_or_else(|| in_operator_words(error.to_string()));
        let (kind, tenant, plugin) = match &error {
            PlatformError::UnknownTenant { tenant } => (ProblemKind::NotFound, Some(tenant), None),
            PlatformError::TenantExists { tenant, .. } => {
                (ProblemKind::Conflict, Some(tenant), None)
            }
            PlatformError::InvalidTenantId { tenant } => {
                (ProblemKind::BadRequest, Some(tenant), None)
            }
            PlatformError::UnknownPlugin { plugin } => {
                (ProblemKind::NotFound, None, Some(plugin.as_str()))
            }
            PlatformError::TierTooLow { tenant, plugin, .. } => {
                (ProblemKind::Forbidden, Some(tenant), Some(plugin.as_str()))
            }
            PlatformError::Tier(_) => (ProblemKind::Unprocessable, None, None),
            PlatformError::OverridesNotAnObject { tenant, plugin } => {
                (ProblemKind::BadRequest, Some(tenant), Some(plugin.as_str()))
            }
            PlatformError::Config(config) => {
                let kind = match config {
                    ConfigError::Invalid { .. } => ProblemKind::Unprocessable,
                    // The operator's file is broken: not the caller's fault.
                    _ => ProblemKind::Internal,
                };
                let (tenant, plugin) = match config {
                    ConfigError::Invalid { tenant, plugin, .. }
                    | ConfigError::Read { tenant, plugin, .. }
                    | ConfigError::Syntax { tenant, plugin, .. } => {
                        (Some(tenant), Some(plugin.as_str()))
                    }
                    _ => (None, None),
                };
                (kind, tenant, plugin)
            }
            PlatformError::Secret { tenant, plugin, .. }
            | PlatformError::SecretType { tenant, plugin, .. } => (
                ProblemKind::Unprocessable,
                Some(tenant),
                Some(plugin.as_str()),
            ),
            PlatformError::NotRequested { tenant, plugin } => {
                (ProblemKind::Conflict, Some(tenant), Some(plugin.as_str()))
            }
            PlatformError::Host { tenant, source } => {
                let kind = match source {
                    // The plugin refused the configuration it was activated with.
                    HostError::CallFailed {
                        call: Call::Activate,
                        ..
                    } => ProblemKind::Unprocessable,
                    HostError::UnknownPlugin { .. } => ProblemKind::NotFound,
                    _ => ProblemKind::Internal,
                };
                (kind, Some(tenant), source.plugin())
            }
            _ => (ProblemKind::Internal, None, None),
        };
        Problem {
            kind,
            error: message,
            tenant: tenant.cloned(),
            plugin: plugin.map(str::to_owned),
            detail: Some(field_errors(&error))
                .filter(|f| !f.is_empty())
                .map(|fields| {
                    Box::new(ProblemDetail {
                        fields,
                        dependents: Vec::new(),
                    })
                }),
        }
    }
}

/// The keys a platform error is about, each with its own sentence.
fn field_errors(error: &PlatformError) -> Vec<FieldError> {
    let field = |key: &str, error: String| FieldError {
        field: key.to_owned(),
        error,
    };
    match error {
        PlatformError::Config(ConfigError::Invalid { problems, .. }) => problems
            .iter()
            .filter_map(|problem| {
                let key = match problem {
                    ConfigProblem::UnknownKey { key, .. }
                    | ConfigProblem::WrongType { key, .. }
                    | ConfigProblem::Missing { key, .. }
                    | ConfigProblem::PlaintextSecret { key }
                    | ConfigProblem::OutOfRange { key, .. }
                    | ConfigProblem::BadReference { key, .. } => key,
                    _ => return None,
                };
                Some(field(key, problem.to_string()))
            })
            .collect(),
        PlatformError::Secret { key, .. } | PlatformError::SecretType { key, .. } => {
            vec![field(key, error.to_string())]
        }
        _ => Vec::new(),
    }
}

impl From<HostError> for Problem {
    fn from(error: HostError) -> Self {
        let kind = match &error {
            HostError::UnknownPlugin { .. } => ProblemKind::NotFound,
            _ => ProblemKind::Internal,
        };
        let plugin = error.plugin().map(str::to_owned);
        Problem {
            kind,
            error: host_words(&error).unwrap_or_else(|| in_operator_words(error.to_string())),
            tenant: None,
            plugin,
            detail: None,
        }
    }
}

/// The HTTP status of a problem of `kind`: the one mapping every route uses.
pub(crate) fn status_of(kind: ProblemKind) -> axum::http::StatusCode {
    use axum::http::StatusCode;
    match kind {
        ProblemKind::BadRequest => StatusCode::BAD_REQUEST,
        ProblemKind::Forbidden => StatusCode::FORBIDDEN,
        ProblemKind::NotFound => StatusCode::NOT_FOUND,
        ProblemKind::Conflict => StatusCode::CONFLICT,
        ProblemKind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
        ProblemKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ProblemKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        ProblemKind::BadGateway => StatusCode::BAD_GATEWAY,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// New-user trial: a tenant's problem named `Platform::register_plugin`.
    #[test]
    fn operator_facing_texts_name_routes_and_keys_not_rust_functions() {
        let host = |source: HostError| PlatformError::Host {
            tenant: "acme-fiber".to_owned(),
            source,
        };
        let cases: Vec<(PlatformError, &str)> = vec![
            (
                PlatformError::UnknownTenant {
                    tenant: "ghost".to_owned(),
                },
                "GET /api/tenants",
            ),
            (
                PlatformError::TenantExists {
                    tenant: "acme-fiber".to_owned(),
                    tier: "pro".to_owned(),
                },
                "POST /api/flows/tier-change",
            ),
            (
                PlatformError::UnknownPlugin {
                    plugin: "twilio".to_owned(),
                },
                "POST /api/packages",
            ),
            (
                host(HostError::UnknownPlugin {
                    plugin: "twilio".to_owned(),
                }),
                "GET /api/plugins",
            ),
            (
                host(HostError::Quarantined {
                    plugin: "network-automation".to_owned(),
                    reason: "crashed 5 times".to_owned(),
                }),
                "POST /api/plugins/network-automation/release",
            ),
            (
                host(HostError::Reloaded {
                    plugin: "twilio".to_owned(),
                }),
                "send the request again",
            ),
        ];
        for (error, route) in cases {
            let raw = error.to_string();
            let problem = Problem::from(error);
            assert!(problem.error.contains(route), "{raw} → {}", problem.error);
            assert!(!problem.error.contains("::"), "{raw} → {}", problem.error);
        }
        let secret = "secret `${vault:x#y}` needs a Vault, and none is configured; set \
                      `PlatformConfig::vault` (address and token) or use an env or file reference";
        let words = in_operator_words(secret.to_owned());
        assert!(
            words.contains("`[vault]` in the daemon's configuration"),
            "{words}"
        );
        assert!(!words.contains("::"), "{words}");
    }
}
