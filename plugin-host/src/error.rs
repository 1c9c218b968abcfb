//! The host's error type: one variant per distinct failure, each naming the
//! plugin and the file and saying what to do next.

use std::path::PathBuf;

use crate::lifecycle::{PluginState, Transition};

/// Which lifecycle or service call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Call {
    /// The plugin's constructor.
    Instantiate,
    /// `initialize`.
    Initialize,
    /// `activate`.
    Activate,
    /// `deactivate`.
    Deactivate,
    /// `cleanup`.
    Cleanup,
    /// `health`.
    Health,
    /// A hook handler.
    Hook,
    /// A service or category call.
    Service,
    /// `save_state`.
    SaveState,
    /// `restore_state`.
    RestoreState,
}

impl std::fmt::Display for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Instantiate => "instantiate",
            Self::Initialize => "initialize",
            Self::Activate => "activate",
            Self::Deactivate => "deactivate",
            Self::Cleanup => "cleanup",
            Self::Health => "health",
            Self::Hook => "hook",
            Self::Service => "service call",
            Self::SaveState => "save_state",
            Self::RestoreState => "restore_state",
        })
    }
}

/// Everything that can go wrong in the host.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// Reading or writing a file failed.
    #[error("plugin `{plugin}`: {action} `{}`: {source}", path.display())]
    Io {
        /// The plugin (or the file stem when the id is not known yet).
        plugin: String,
        /// What the host was doing.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// The file is not a complete shared object for this machine.
    #[error(
        "plugin `{plugin}`: `{}` is not a loadable shared library ({reason}); \
         it is corrupt or was copied only in part: reinstall the plugin",
        path.display()
    )]
    CorruptLibrary {
        /// The plugin (or file stem).
        plugin: String,
        /// The file.
        path: PathBuf,
        /// What the ELF check found.
        reason: String,
    },

    /// The file is intact but not a shared library this host can load: built
    /// for another machine, an executable, a macOS or Windows binary, an
    /// archive. A new copy would not help; a different build would.
    #[error("plugin `{plugin}`: `{}` is not a library this host can load: {reason}", path.display())]
    NotForThisHost {
        /// The plugin (or file stem).
        plugin: String,
        /// The file.
        path: PathBuf,
        /// What the file is and what to build instead.
        reason: String,
    },

    /// `dlopen` refused the file.
    #[error(
        "plugin `{plugin}`: the dynamic loader refused `{}`: {message}; \
         check that the library's own dependencies are installed (ldd)",
        path.display()
    )]
    Dlopen {
        /// The plugin (or file stem).
        plugin: String,
        /// The file.
        path: PathBuf,
        /// The loader's message.
        message: String,
    },

    /// The library is not exactly what a trusted key signed.
    #[error(
        "plugin `{plugin}`: refusing to load `{}`: {reason}; install it with \
         `cargo xtask install-plugin` (which signs it) or trust its signer's public key",
        path.display()
    )]
    SignatureRejected {
        /// The plugin.
        plugin: String,
        /// The library's install path.
        path: PathBuf,
        /// What the check found.
        reason: String,
    },

    /// The library exports no plugkit root module.
    #[error(
        "plugin `{plugin}`: `{}` is a shared library but not a plugkit plugin \
         (no root module); build it with `plugin_api::export_plugin!`",
        path.display()
    )]
    NotAPlugin {
        /// The plugin (or file stem).
        plugin: String,
        /// The file.
        path: PathBuf,
    },

    /// The plugin was built against another plugin-api version.
    #[error(
        "plugin `{plugin}`: `{}` was built against plugin-api {plugin_api}, \
         this host speaks plugin-api {host_api}; rebuild the plugin against plugin-api {host_api}",
        path.display()
    )]
    ApiVersionMismatch {
        /// The plugin (or file stem).
        plugin: String,
        /// The file.
        path: PathBuf,
        /// The version the plugin was built against.
        plugin_api: String,
        /// The version this host speaks.
        host_api: String,
    },

    /// The plugin's types do not have the layout the host expects.
    #[error(
        "plugin `{plugin}`: `{}` has an incompatible ABI layout; rebuild it against this host's \
         plugin-api.\n{summary}",
        path.display()
    )]
    AbiMismatch {
        /// The plugin (or file stem).
        plugin: String,
        /// The file.
        path: PathBuf,
        /// abi_stable's final `Error / Expected / Found` lines.
        summary: String,
    },

    /// The library's embedded identity disagrees with what was expected.
    #[error(
        "plugin `{expected}`: `{}` identifies itself as `{found}`; \
         the manifest and the library do not belong together: reinstall the plugin",
        path.display()
    )]
    IdentityMismatch {
        /// What the manifest or caller expected.
        expected: String,
        /// What the library says.
        found: String,
        /// The file.
        path: PathBuf,
    },

    /// A plugin call returned an error.
    #[error("plugin `{plugin}` ({}): {call} failed: {message}", path.display())]
    CallFailed {
        /// The plugin.
        plugin: String,
        /// Its library.
        path: PathBuf,
        /// Which call.
        call: Call,
        /// The plugin's error.
        message: String,
        /// The plugin's error as returned (host-owned copy).
        error: Box<plugin_api::PluginError>,
    },

    /// A plugin call panicked; the SDK caught it.
    #[error(
        "plugin `{plugin}` ({}): {call} panicked: {message}; the plugin was isolated, \
         fix the plugin or check its configuration",
        path.display()
    )]
    CallPanicked {
        /// The plugin.
        plugin: String,
        /// Its library.
        path: PathBuf,
        /// Which call.
        call: Call,
        /// The panic message.
        message: String,
    },

    /// A lifecycle step that the current state does not allow.
    #[error("plugin `{plugin}`: cannot {transition} while {state}")]
    IllegalTransition {
        /// The plugin.
        plugin: String,
        /// Where it is.
        state: PluginState,
        /// What was asked.
        transition: Transition,
    },

    /// No loaded plugin has this id.
    #[error("no plugin `{plugin}` is loaded; list loaded plugins with `Host::plugins`")]
    UnknownPlugin {
        /// The id asked for.
        plugin: String,
    },

    /// A plugin with this id is already loaded.
    #[error(
        "plugin `{plugin}` is already loaded from `{}`; refusing a second copy from `{}`",
        existing.display(), path.display()
    )]
    AlreadyLoaded {
        /// The id.
        plugin: String,
        /// The loaded file.
        existing: PathBuf,
        /// The refused file.
        path: PathBuf,
    },

    /// The plugin lacks the extension a caller asked for.
    #[error("plugin `{plugin}` does not offer the `{extension}` extension")]
    MissingExtension {
        /// The plugin.
        plugin: String,
        /// The extension, e.g. `payment`.
        extension: &'static str,
    },

    /// An extension or category name that this host does not know.
    #[error("unknown extension `{name}`: this host knows {known}")]
    UnknownExtension {
        /// The name asked for.
        name: String,
        /// The names it knows, comma separated.
        known: String,
    },

    /// A fast-path method handle names a method the plugin does not serve.
    #[error(
        "plugin `{plugin}` has no method `{method}` (its fast call table does not list it{after_reload}); \
         check the name against the plugin's documentation"
    )]
    UnknownMethod {
        /// The plugin.
        plugin: String,
        /// The method asked for.
        method: String,
        /// `" since its reload"` when the method went away with a new version.
        after_reload: &'static str,
    },

    /// A handle of one plugin was used with a handle of another.
    #[error(
        "a tenant handle of plugin `{other}` was passed to a call into plugin `{plugin}`; \
         take the tenant handle from the same plugin (`PluginHandle::tenant`)"
    )]
    ForeignHandle {
        /// The plugin called.
        plugin: String,
        /// The plugin the tenant handle belongs to.
        other: String,
    },

    /// A typed category call through a tenant-bound handle taken before a
    /// hot reload: the handle points at the old version's category object.
    #[error(
        "plugin `{plugin}` was reloaded since this handle was taken; take a new one \
         (`Host::plugin(..)?.bind(..)`)"
    )]
    Reloaded {
        /// The plugin.
        plugin: String,
    },

    /// The plugin is not active for the tenant a call was made for.
    #[error("plugin `{plugin}` is not active for tenant `{tenant}`; activate it first")]
    NotActive {
        /// The plugin.
        plugin: String,
        /// The tenant.
        tenant: String,
    },

    /// An isolated plugin's process was killed by a signal during a call.
    #[error(
        "plugin `{plugin}` (process isolation): {call} for tenant `{tenant}` failed: the plugin \
         process was killed by {signal_name}; the host restarts it. Last lines it logged:\n{last_log}"
    )]
    ChildCrashed {
        /// The plugin.
        plugin: String,
        /// The tenant of the call in flight (empty for lifecycle-wide calls).
        tenant: String,
        /// The call in flight.
        call: Call,
        /// The signal number.
        signal: i32,
        /// Its name, e.g. `SIGSEGV`.
        signal_name: &'static str,
        /// The last lines the plugin logged.
        last_log: Box<str>,
    },

    /// An isolated plugin's process was killed for exceeding its memory limit.
    #[error(
        "plugin `{plugin}` (process isolation): {call} for tenant `{tenant}` failed: the plugin \
         process ran out of memory ({limit}); raise `memory_mb` if this is expected. The host \
         restarts it. Last lines it logged:\n{last_log}"
    )]
    ChildOutOfMemory {
        /// The plugin.
        plugin: String,
        /// The tenant of the call in flight.
        tenant: String,
        /// The call in flight.
        call: Call,
        /// Which limit was hit.
        limit: &'static str,
        /// The last lines the plugin logged.
        last_log: Box<str>,
    },

    /// An isolated plugin's process exited on its own during a call.
    #[error(
        "plugin `{plugin}` (process isolation): {call} for tenant `{tenant}` failed: the plugin \
         process exited with status {code} in the middle of the call; the host restarts it. \
         Last lines it logged:\n{last_log}"
    )]
    ChildExited {
        /// The plugin.
        plugin: String,
        /// The tenant of the call in flight.
        tenant: String,
        /// The call in flight.
        call: Call,
        /// The exit status.
        code: i32,
        /// The last lines the plugin logged.
        last_log: Box<str>,
    },

    /// An isolated plugin did not answer in time; its process was killed.
    #[error(
        "plugin `{plugin}` (process isolation): {call} for tenant `{tenant}` missed its \
         {deadline:?} deadline; the plugin process was killed and is restarted. Raise the \
         deadline in the plugin's process options if the call is legitimately slow. Last lines \
         it logged:\n{last_log}"
    )]
    DeadlineExceeded {
        /// The plugin.
        plugin: String,
        /// The tenant of the call in flight.
        tenant: String,
        /// The call in flight.
        call: Call,
        /// The deadline.
        deadline: std::time::Duration,
        /// The last lines the plugin logged.
        last_log: Box<str>,
    },

    /// An isolated plugin's process wrote something that is not a message.
    #[error(
        "plugin `{plugin}` (process isolation): {call} for tenant `{tenant}` failed: garbage on \
         the channel ({detail}); the plugin process was killed and is restarted. Last lines it \
         logged:\n{last_log}"
    )]
    ChannelGarbage {
        /// The plugin.
        plugin: String,
        /// The tenant of the call in flight.
        tenant: String,
        /// The call in flight.
        call: Call,
        /// What was wrong.
        detail: Box<str>,
        /// The last lines the plugin logged.
        last_log: Box<str>,
    },

    /// An isolated plugin crashed too often and is no longer restarted.
    #[error(
        "plugin `{plugin}` is quarantined: {reason}; fix the cause, then release it \
         (`Host::release_quarantine`)"
    )]
    Quarantined {
        /// The plugin.
        plugin: String,
        /// Why.
        reason: String,
    },

    /// The runner process could not be started or could not load the plugin.
    #[error("plugin `{plugin}`: the isolation runner `{}` failed: {reason}", runner.display())]
    RunnerFailed {
        /// The plugin (or the file stem when the id is not known yet).
        plugin: String,
        /// The runner executable.
        runner: PathBuf,
        /// What went wrong and what to do.
        reason: String,
    },

    /// The runner speaks another channel protocol than this host.
    #[error(
        "plugin `{plugin}`: the isolation runner `{}` speaks channel protocol {runner_protocol}, \
         this host speaks {host_protocol}: install the runner built with this host",
        runner.display()
    )]
    RunnerProtocolMismatch {
        /// The plugin.
        plugin: String,
        /// The runner executable.
        runner: PathBuf,
        /// The host's protocol version.
        host_protocol: u32,
        /// The runner's protocol version.
        runner_protocol: u32,
    },
}

impl HostError {
    /// The plugin this error is about, when there is one.
    pub fn plugin(&self) -> Option<&str> {
        match self {
            Self::Io { plugin, .. }
            | Self::CorruptLibrary { plugin, .. }
            | Self::NotForThisHost { plugin, .. }
            | Self::Dlopen { plugin, .. }
            | Self::SignatureRejected { plugin, .. }
            | Self::NotAPlugin { plugin, .. }
            | Self::ApiVersionMismatch { plugin, .. }
            | Self::AbiMismatch { plugin, .. }
            | Self::CallFailed { plugin, .. }
            | Self::CallPanicked { plugin, .. }
            | Self::IllegalTransition { plugin, .. }
            | Self::UnknownPlugin { plugin }
            | Self::AlreadyLoaded { plugin, .. }
            | Self::MissingExtension { plugin, .. }
            | Self::NotActive { plugin, .. }
            | Self::UnknownMethod { plugin, .. }
            | Self::ForeignHandle { plugin, .. }
            | Self::Reloaded { plugin }
            | Self::ChildCrashed { plugin, .. }
            | Self::ChildOutOfMemory { plugin, .. }
            | Self::ChildExited { plugin, .. }
            | Self::DeadlineExceeded { plugin, .. }
            | Self::ChannelGarbage { plugin, .. }
            | Self::Quarantined { plugin, .. }
            | Self::RunnerFailed { plugin, .. }
            | Self::RunnerProtocolMismatch { plugin, .. } => Some(plugin),
            Self::IdentityMismatch { expected, .. } => Some(expected),
            Self::UnknownExtension { .. } => None,
        }
    }
}

// An isolated plugin's proxies return `PluginError`s through ABI-shaped
// objects; the distinct host error behind one (a crash, a missed deadline)
// waits here for `loader::call_error` to take it back.
thread_local! {
    /// The host error behind the last `PluginError` a proxy returned on this
    /// thread, keyed by that error's message.
    static LAST_FAILURE: std::cell::RefCell<Option<(String, HostError)>> = const { std::cell::RefCell::new(None) };
}

/// Keeps `err` for [`take_stashed_failure`] and returns the plugin error that
/// travels through the ABI-shaped proxy in its place.
pub(crate) fn stash_failure(err: HostError) -> plugin_api::PluginError {
    let message = err.to_string();
    LAST_FAILURE.with(|f| *f.borrow_mut() = Some((message.clone(), err)));
    plugin_api::PluginError::Failed {
        message: message.into(),
    }
}

/// The host error a proxy stashed for `error`, if `error` came from one.
pub(crate) fn take_stashed_failure(error: &plugin_api::PluginError) -> Option<HostError> {
    let plugin_api::PluginError::Failed { message } = error else {
        return None;
    };
    LAST_FAILURE.with(|f| {
        let mut slot = f.borrow_mut();
        match slot.as_ref() {
            Some((m, _)) if m.as_str() == message.as_str() => slot.take().map(|(_, e)| e),
            _ => None,
        }
    })
}
