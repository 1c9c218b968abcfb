//! What the resolver tells an operator: why each blocked plugin is not
//! started, and every problem with the installed set, explained.

use std::fmt;
use std::path::PathBuf;

use semver::{Version, VersionReq};

/// A plugin that is not started.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Blocked {
    /// Its id.
    pub id: String,
    /// Its version.
    pub version: Version,
    /// Why it cannot start.
    pub reason: BlockReason,
}

/// Why a plugin is not started.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlockReason {
    /// Its own requirements fail: one short summary per problem that names it
    /// (each is explained in full in [`Resolution::problems`](super::Resolution::problems)).
    Unmet(Vec<String>),
    /// It depends on these plugins, which are not started.
    WaitingOn(Vec<String>),
    /// Every plugin providing a service it requires is not started.
    NoProvider {
        /// The service.
        service: String,
        /// Its providers, all blocked.
        providers: Vec<String>,
    },
}

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` {} is not started: ", self.id, self.version)?;
        match &self.reason {
            BlockReason::Unmet(summaries) => f.write_str(&summaries.join("; ")),
            BlockReason::WaitingOn(ids) => write!(
                f,
                "it depends on {}, which {} not started",
                quoted_list(ids),
                if ids.len() == 1 { "is" } else { "are" }
            ),
            BlockReason::NoProvider { service, providers } => write!(
                f,
                "it requires service `{service}`, and no provider of it is started ({})",
                quoted_list(providers)
            ),
        }
    }
}

/// One reason the installed set does not fit together, explained for an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResolutionProblem {
    /// More than one manifest has this id.
    DuplicateId {
        /// The shared id.
        id: String,
        /// Each copy's version and manifest path, in version order.
        copies: Vec<(Version, PathBuf)>,
    },
    /// A required dependency is not installed at all.
    MissingDependency {
        /// The plugin that needs it.
        plugin: String,
        /// That plugin's version.
        version: Version,
        /// The id it needs.
        dependency: String,
        /// The versions it accepts.
        required: VersionReq,
    },
    /// A dependency is installed, but no installed version is in the required range.
    VersionMismatch {
        /// The plugin that needs it.
        plugin: String,
        /// That plugin's version.
        version: Version,
        /// The id it needs.
        dependency: String,
        /// The versions it accepts.
        required: VersionReq,
        /// The versions installed.
        found: Vec<Version>,
        /// Whether the dependency is declared optional.
        optional: bool,
    },
    /// Plugins that (transitively) depend on each other.
    Cycle {
        /// The cycle, first id repeated at the end: `a → b → a` is `[a, b, a]`.
        path: Vec<String>,
        /// Other plugins caught in the same knot of cycles, in id order.
        also: Vec<String>,
    },
    /// A plugin declares a conflict with another that is installed.
    Conflict {
        /// The plugin declaring the conflict.
        plugin: String,
        /// Its version.
        version: Version,
        /// The conflicting plugin.
        other: String,
        /// Its installed version.
        other_version: Version,
        /// The range the conflict is declared for.
        range: VersionReq,
    },
    /// The host's `plugin-api` version is outside what the plugin was built for.
    ApiMismatch {
        /// The plugin.
        plugin: String,
        /// Its version.
        version: Version,
        /// The `api` requirement in its manifest.
        required: VersionReq,
        /// The host's `plugin-api` version.
        host: Version,
    },
    /// A required service is provided by no installed plugin.
    MissingService {
        /// The plugin that requires it.
        plugin: String,
        /// Its version.
        version: Version,
        /// The service name.
        service: String,
    },
}

impl fmt::Display for ResolutionProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolutionProblem::DuplicateId { id, copies } => {
                let listed: Vec<String> = copies
                    .iter()
                    .map(|(version, path)| format!("{version} at {}", path.display()))
                    .collect();
                write!(
                    f,
                    "{} installed manifests claim the id `{id}` ({}); the host cannot tell which \
                     one to start, so none of them is started. Remove all but one.",
                    copies.len(),
                    listed.join(", ")
                )
            }
            ResolutionProblem::MissingDependency {
                plugin,
                version,
                dependency,
                required,
            } => write!(
                f,
                "`{plugin}` {version} needs `{dependency}` {required}, but no version of \
                 `{dependency}` is installed (installed: none). Install `{dependency}` or remove \
                 it from the dependencies of `{plugin}`; until then `{plugin}` is not started."
            ),
            ResolutionProblem::VersionMismatch {
                plugin,
                version,
                dependency,
                required,
                found,
                optional,
            } => {
                let found_list = join(found);
                let installed = if found.len() == 1 {
                    format!("the installed version is {found_list}")
                } else {
                    format!("the installed versions are {found_list}")
                };
                let needs = if *optional {
                    "can use (optionally)"
                } else {
                    "needs"
                };
                write!(
                    f,
                    "`{plugin}` {version} {needs} `{dependency}` {required}, but {installed}. \
                     Install a version of `{dependency}` that matches {required}, or a release \
                     of `{plugin}` that accepts {found_list}; until then `{plugin}` is not started."
                )
            }
            ResolutionProblem::Cycle { path, also } => {
                write!(
                    f,
                    "dependency cycle: {}. Plugins in a cycle cannot be started in any order, \
                     so none of them is started; remove one of these dependencies.",
                    path.join(" → ")
                )?;
                if !also.is_empty() {
                    write!(
                        f,
                        " {} {} part of the same cycle through other dependencies.",
                        quoted_list(also),
                        if also.len() == 1 { "is" } else { "are" }
                    )?;
                }
                Ok(())
            }
            ResolutionProblem::Conflict {
                plugin,
                version,
                other,
                other_version,
                range,
            } => write!(
                f,
                "`{plugin}` {version} declares a conflict with `{other}` {range}, and `{other}` \
                 {other_version} is installed. They cannot run together and the host does not \
                 pick one, so neither is started; uninstall one of them."
            ),
            ResolutionProblem::ApiMismatch {
                plugin,
                version,
                required,
                host,
            } => write!(
                f,
                "`{plugin}` {version} was built for plugin-api {required}, but this host \
                 provides plugin-api {host}. Install a release of `{plugin}` built against \
                 plugin-api {host}; until then `{plugin}` is not started."
            ),
            ResolutionProblem::MissingService {
                plugin,
                version,
                service,
            } => write!(
                f,
                "`{plugin}` {version} requires the service `{service}`, but no installed plugin \
                 provides it. Install a plugin whose manifest has `provides = [\"{service}\"]`; \
                 until then `{plugin}` is not started."
            ),
        }
    }
}

impl ResolutionProblem {
    /// One line for the [`BlockReason::Unmet`] of `plugin`, which this problem names.
    pub(super) fn summary_for(&self, plugin: &str) -> String {
        match self {
            ResolutionProblem::DuplicateId { copies, .. } => {
                format!("{} installed manifests claim its id", copies.len())
            }
            ResolutionProblem::MissingDependency {
                dependency,
                required,
                ..
            } => format!("needs `{dependency}` {required}, which is not installed"),
            ResolutionProblem::VersionMismatch {
                dependency,
                required,
                found,
                ..
            } => format!("needs `{dependency}` {required}, found {}", join(found)),
            ResolutionProblem::Cycle { path, .. } => {
                format!("part of the dependency cycle {}", path.join(" → "))
            }
            ResolutionProblem::Conflict {
                plugin: declarer,
                version,
                other,
                other_version,
                ..
            } => {
                if declarer == plugin {
                    format!("conflicts with `{other}` {other_version}")
                } else {
                    format!("conflicts with `{declarer}` {version}")
                }
            }
            ResolutionProblem::ApiMismatch { required, host, .. } => {
                format!("needs plugin-api {required}, the host has {host}")
            }
            ResolutionProblem::MissingService { service, .. } => {
                format!("requires service `{service}`, which no plugin provides")
            }
        }
    }
}

fn join<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn quoted_list(ids: &[String]) -> String {
    ids.iter()
        .map(|id| format!("`{id}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
