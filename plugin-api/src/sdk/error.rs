//! Errors and health in plain Rust: the `Error`/`Result` a plugin returns
//! (`PluginError`, the same type that crosses the boundary, with its
//! constructors) and `Health`.

use crate::abi::{HealthStatus, PluginError};

/// Errors a plugin returns. The same type crosses the boundary unchanged.
pub type Error = PluginError;

/// Shorthand for results in plugin code.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl PluginError {
    /// A general failure with a message.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::Failed {
            message: message.into().into(),
        }
    }

    /// An invalid or missing configuration value.
    pub fn invalid_config(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidConfig {
            key: key.into().into(),
            message: message.into().into(),
        }
    }

    /// A request the plugin cannot act on.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::InvalidRequest {
            message: message.into().into(),
        }
    }

    /// Something asked for does not exist.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound {
            what: what.into().into(),
        }
    }

    /// An error answered by an external provider.
    pub fn provider(code: impl Into<String>, message: impl Into<String>, retryable: bool) -> Self {
        Self::Provider {
            code: code.into().into(),
            message: message.into().into(),
            retryable,
        }
    }

    /// A call the plugin does not support.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::Unsupported {
            message: message.into().into(),
        }
    }
}

impl std::fmt::Display for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Failed { message } => write!(f, "{message}"),
            Self::Panicked { message } => write!(f, "panicked: {message}"),
            Self::InvalidConfig { key, message } => {
                write!(f, "invalid configuration `{key}`: {message}")
            }
            Self::PermissionDenied { permission } => write!(
                f,
                "permission `{permission}` is not declared in the plugin's manifest; \
                 add it to `permissions` in plugin.toml"
            ),
            Self::InvalidRequest { message } => write!(f, "invalid request: {message}"),
            Self::NotFound { what } => write!(f, "not found: {what}"),
            Self::Provider {
                code,
                message,
                retryable,
            } => {
                let retry = if *retryable { " (retryable)" } else { "" };
                write!(f, "provider error {code}: {message}{retry}")
            }
            Self::Unsupported { message } => write!(f, "unsupported: {message}"),
        }
    }
}

impl std::error::Error for PluginError {}

/// A plugin's health, in plain Rust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// The status.
    pub status: HealthStatus,
    /// Why, when not healthy.
    pub message: String,
}

impl Health {
    /// Everything works.
    pub fn healthy() -> Self {
        Self {
            status: HealthStatus::Healthy,
            message: String::new(),
        }
    }

    /// Works with reduced function.
    pub fn degraded(message: impl Into<String>) -> Self {
        Self {
            status: HealthStatus::Degraded,
            message: message.into(),
        }
    }

    /// Does not work.
    pub fn unhealthy(message: impl Into<String>) -> Self {
        Self {
            status: HealthStatus::Unhealthy,
            message: message.into(),
        }
    }
}
