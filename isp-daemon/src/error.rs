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

impl From<PlatformError> for Problem {
    fn from(error: PlatformError) -> Self {
        let message = error.to_string();
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
            error: error.to_string(),
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
