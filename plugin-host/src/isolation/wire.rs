//! The messages host and runner exchange over the shared-memory channel,
//! encoded with `postcard` (compact, no schema negotiation, serde-driven, so
//! every plugin-api type that derives `Serialize` crosses unchanged).
//!
//! postcard is not self-describing, so serde's internally tagged and
//! untagged enums cannot cross it: `PluginError` (internally tagged for its
//! JSON form) travels as [`WireError`], and the round-trip tests below keep
//! every category type honest.

use abi_stable::std_types::RString;
use plugin_api::abi::PluginError;
use plugin_api::HealthStatus;
use serde::{Deserialize, Serialize};

/// Bumped whenever a message below changes shape; host and runner refuse
/// each other when they disagree (the runner is rebuilt with the host).
pub(crate) const PROTOCOL_VERSION: u32 = 1;

/// The first message: what the runner needs to sandbox itself and load.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Hello {
    /// The plugin id (or label) for messages.
    pub(crate) plugin: String,
    /// Manifest permissions, in manifest spelling.
    pub(crate) permissions: Vec<String>,
    /// Limits to apply.
    pub(crate) limits: WireLimits,
    /// Cgroup v1 directories the runner joins (created and limited by the host).
    pub(crate) cgroups: Vec<String>,
    /// The host's pid: the runner exits when its parent is no longer it.
    pub(crate) host_pid: u32,
    /// Busy-wait before sleeping on the channel futex, in nanoseconds.
    pub(crate) spin_ns: u64,
}

/// Resource limits as the runner applies them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WireLimits {
    /// Address-space limit, when no cgroup memory limit is in force.
    pub(crate) address_space_mb: Option<u64>,
    /// `RLIMIT_CPU` in seconds, when no cgroup CPU quota is in force.
    pub(crate) cpu_seconds: Option<u64>,
    /// `RLIMIT_NOFILE`.
    pub(crate) open_files: u64,
}

/// Host → runner.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Request {
    Hello(Hello),
    Initialize,
    Activate {
        tenant: String,
        config_json: String,
    },
    Deactivate {
        tenant: String,
    },
    Cleanup,
    Health,
    Hook {
        tenant: String,
        hook: String,
        content_type: String,
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
    },
    Invoke {
        tenant: String,
        method: String,
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
    },
    SaveState,
    RestoreState {
        format_version: u32,
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    /// A category call; `request` is the category's own serialized request
    /// (see `categories::serve`).
    Category {
        category: String,
        tenant: String,
        #[serde(with = "serde_bytes")]
        request: Vec<u8>,
    },
    /// Exit cleanly.
    Shutdown,
}

/// Which optional extensions the loaded instance has.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Extensions {
    pub(crate) hooks: bool,
    pub(crate) service: bool,
    pub(crate) state: bool,
    /// The category codes it exports that the runner's plugin-api knows.
    pub(crate) categories: Vec<String>,
}

/// What the library says about itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WireIdentity {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) description: String,
    pub(crate) authors: String,
    pub(crate) category: String,
    pub(crate) api_version: String,
}

/// A hook outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum WireHookOutcome {
    Continue,
    Replace {
        content_type: String,
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    Veto(String),
    Failed(WireError),
}

/// Runner → host, answering a [`Request`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Reply {
    Ready {
        identity: WireIdentity,
        extensions: Extensions,
        /// One line per sandbox layer: what is in force, or why not.
        sandbox: Vec<String>,
    },
    /// The library could not be loaded (the loader's error, as text).
    Refused {
        message: String,
    },
    Done(Result<(), WireError>),
    Health {
        status: HealthStatus,
        message: String,
    },
    Hook(WireHookOutcome),
    Bytes(Result<Bytes, WireError>),
    State(Result<Option<(u32, Vec<u8>)>, WireError>),
}

/// Runner → host in the middle of a call: a host service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Callback {
    Log {
        level: u8,
        message: String,
    },
    Config,
    Secret {
        tenant: String,
        name: String,
    },
    Emit {
        tenant: String,
        hook: String,
        content_type: String,
        payload: Vec<u8>,
    },
    StateGet {
        tenant: String,
        key: String,
    },
    StatePut {
        tenant: String,
        key: String,
        value: Vec<u8>,
    },
    Metric {
        name: String,
        value: f64,
    },
}

/// Host → runner, answering a [`Callback`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum CallbackReply {
    Logged,
    Config(String),
    Secret(Result<String, WireError>),
    Unit(Result<(), WireError>),
    StateGet(Result<Option<Vec<u8>>, WireError>),
}

/// A byte payload that postcard copies in one piece (a plain `Vec<u8>` is
/// a sequence of single bytes to serde).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct Bytes(#[serde(with = "serde_bytes")] pub(crate) Vec<u8>);

/// Encodes a message; fails only when it does not fit `out`.
pub(crate) fn encode<T: Serialize>(value: &T, out: &mut [u8]) -> Result<usize, postcard::Error> {
    postcard::to_slice(value, out).map(|used| used.len())
}

/// Decodes a message.
pub(crate) fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, postcard::Error> {
    postcard::from_bytes(bytes)
}

/// [`PluginError`] in a shape postcard can carry (externally tagged).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum WireError {
    Failed(String),
    Panicked(String),
    InvalidConfig(String, String),
    PermissionDenied(String),
    InvalidRequest(String),
    NotFound(String),
    Provider(String, String, bool),
    Unsupported(String),
}

impl From<&PluginError> for WireError {
    fn from(e: &PluginError) -> Self {
        match e {
            PluginError::Failed { message } => Self::Failed(message.to_string()),
            PluginError::Panicked { message } => Self::Panicked(message.to_string()),
            PluginError::InvalidConfig { key, message } => {
                Self::InvalidConfig(key.to_string(), message.to_string())
            }
            PluginError::PermissionDenied { permission } => {
                Self::PermissionDenied(permission.to_string())
            }
            PluginError::InvalidRequest { message } => Self::InvalidRequest(message.to_string()),
            PluginError::NotFound { what } => Self::NotFound(what.to_string()),
            PluginError::Provider {
                code,
                message,
                retryable,
            } => Self::Provider(code.to_string(), message.to_string(), *retryable),
            PluginError::Unsupported { message } => Self::Unsupported(message.to_string()),
        }
    }
}

impl From<WireError> for PluginError {
    fn from(e: WireError) -> Self {
        let r = RString::from;
        match e {
            WireError::Failed(m) => Self::Failed { message: r(m) },
            WireError::Panicked(m) => Self::Panicked { message: r(m) },
            WireError::InvalidConfig(k, m) => Self::InvalidConfig {
                key: r(k),
                message: r(m),
            },
            WireError::PermissionDenied(p) => Self::PermissionDenied { permission: r(p) },
            WireError::InvalidRequest(m) => Self::InvalidRequest { message: r(m) },
            WireError::NotFound(w) => Self::NotFound { what: r(w) },
            WireError::Provider(c, m, retryable) => Self::Provider {
                code: r(c),
                message: r(m),
                retryable,
            },
            WireError::Unsupported(m) => Self::Unsupported { message: r(m) },
        }
    }
}

/// An ABI result as a wire result.
pub(crate) fn to_wire<T, U>(
    r: abi_stable::std_types::RResult<T, PluginError>,
    f: impl FnOnce(T) -> U,
) -> Result<U, WireError> {
    match r {
        abi_stable::std_types::RResult::ROk(v) => Ok(f(v)),
        abi_stable::std_types::RResult::RErr(e) => Err(WireError::from(&e)),
    }
}
