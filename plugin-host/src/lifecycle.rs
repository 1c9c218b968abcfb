//! The plugin lifecycle state machine: which step is allowed from which
//! state. Pure: no IO, no plugin calls; the host asks it before every step.
//!
//! ```text
//! loaded ─initialize→ initialized ─activate→ active ⇄ inactive ─cleanup→ cleaned up
//!                          └────────────cleanup──────────────────┘
//! any state ─fail→ failed ─cleanup→ cleaned up
//! ```
//!
//! `active` means at least one tenant is active; the set of tenants is kept
//! beside the state.

use std::collections::BTreeSet;
use std::fmt;

/// Where a plugin is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PluginState {
    /// Library loaded and instantiated.
    Loaded,
    /// `initialize` succeeded.
    Initialized,
    /// Serving at least one tenant.
    Active,
    /// Was active; serves no tenant now.
    Inactive,
    /// `cleanup` ran; the plugin will not be called again.
    CleanedUp,
    /// A lifecycle call failed or panicked; only `cleanup` is allowed.
    Failed,
}

impl fmt::Display for PluginState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Loaded => "loaded",
            Self::Initialized => "initialized",
            Self::Active => "active",
            Self::Inactive => "inactive",
            Self::CleanedUp => "cleaned up",
            Self::Failed => "failed",
        })
    }
}

/// A lifecycle step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// `initialize`.
    Initialize,
    /// `activate` for a tenant.
    Activate(String),
    /// `deactivate` for a tenant.
    Deactivate(String),
    /// `cleanup`.
    Cleanup,
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Initialize => f.write_str("initialize"),
            Self::Activate(t) => write!(f, "activate for tenant `{t}`"),
            Self::Deactivate(t) => write!(f, "deactivate for tenant `{t}`"),
            Self::Cleanup => f.write_str("clean up"),
        }
    }
}

/// A plugin's state and the tenants it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lifecycle {
    state: PluginState,
    tenants: BTreeSet<String>,
    failure: Option<String>,
    /// The state a quarantined plugin returns to when released.
    resume: Option<PluginState>,
}

impl Lifecycle {
    pub(crate) fn new() -> Self {
        Self {
            state: PluginState::Loaded,
            tenants: BTreeSet::new(),
            failure: None,
            resume: None,
        }
    }

    pub(crate) fn state(&self) -> PluginState {
        self.state
    }

    pub(crate) fn tenants(&self) -> &BTreeSet<String> {
        &self.tenants
    }

    pub(crate) fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// Whether `step` is allowed now. Does not change anything.
    pub(crate) fn check(&self, step: &Transition) -> Result<(), PluginState> {
        use PluginState::*;
        let allowed = match (self.state, step) {
            (Loaded, Transition::Initialize) => true,
            (Initialized | Inactive, Transition::Activate(_)) => true,
            (Active, Transition::Activate(t)) => !self.tenants.contains(t),
            (Active, Transition::Deactivate(t)) => self.tenants.contains(t),
            (Loaded | Initialized | Inactive | Failed, Transition::Cleanup) => true,
            _ => false,
        };
        if allowed {
            Ok(())
        } else {
            Err(self.state)
        }
    }

    /// Records that `step` succeeded. Call only after [`Lifecycle::check`] passed.
    pub(crate) fn complete(&mut self, step: &Transition) {
        match step {
            Transition::Initialize => self.state = PluginState::Initialized,
            Transition::Activate(t) => {
                self.tenants.insert(t.clone());
                self.state = PluginState::Active;
            }
            Transition::Deactivate(t) => {
                self.tenants.remove(t);
                if self.tenants.is_empty() {
                    self.state = PluginState::Inactive;
                }
            }
            Transition::Cleanup => {
                self.tenants.clear();
                self.state = PluginState::CleanedUp;
            }
        }
    }

    /// Records that a step failed in a way that leaves the plugin unusable.
    pub(crate) fn fail(&mut self, cause: String) {
        self.tenants.clear();
        self.state = PluginState::Failed;
        self.failure = Some(cause);
    }

    /// Fails a plugin whose process was quarantined, keeping its tenants so
    /// that a release can bring it back as it was.
    pub(crate) fn quarantine(&mut self, cause: String) {
        if self.state != PluginState::Failed {
            self.resume = Some(self.state);
        }
        self.state = PluginState::Failed;
        self.failure = Some(cause);
    }

    /// Undoes [`Lifecycle::quarantine`].
    pub(crate) fn recover(&mut self) {
        if let Some(state) = self.resume.take() {
            self.state = state;
            self.failure = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(steps: &[Transition]) -> Result<PluginState, (usize, PluginState)> {
        let mut life = Lifecycle::new();
        for (i, step) in steps.iter().enumerate() {
            life.check(step).map_err(|s| (i, s))?;
            life.complete(step);
        }
        Ok(life.state())
    }

    fn check(steps: &[Transition], expected: Result<PluginState, (usize, PluginState)>) {
        assert_eq!(run(steps), expected, "steps: {steps:?}");
    }

    fn act(t: &str) -> Transition {
        Transition::Activate(t.to_owned())
    }

    fn deact(t: &str) -> Transition {
        Transition::Deactivate(t.to_owned())
    }

    use PluginState::*;
    use Transition::{Cleanup, Initialize};

    #[test]
    fn legal_paths_reach_their_states() {
        check(&[], Ok(Loaded));
        check(&[Initialize], Ok(Initialized));
        check(&[Initialize, act("a")], Ok(Active));
        check(&[Initialize, act("a"), act("b"), deact("a")], Ok(Active));
        check(&[Initialize, act("a"), deact("a")], Ok(Inactive));
        check(&[Initialize, act("a"), deact("a"), act("a")], Ok(Active));
        check(&[Initialize, act("a"), deact("a"), Cleanup], Ok(CleanedUp));
        check(&[Initialize, Cleanup], Ok(CleanedUp));
        check(&[Cleanup], Ok(CleanedUp));
    }

    #[test]
    fn illegal_steps_are_refused_with_the_current_state() {
        check(&[act("a")], Err((0, Loaded)));
        check(&[Initialize, Initialize], Err((1, Initialized)));
        check(&[Initialize, act("a"), act("a")], Err((2, Active)));
        check(&[Initialize, act("a"), Cleanup], Err((2, Active)));
        check(&[Initialize, deact("a")], Err((1, Initialized)));
        check(&[Initialize, act("a"), deact("b")], Err((2, Active)));
        check(&[Cleanup, Initialize], Err((1, CleanedUp)));
        check(&[Cleanup, Cleanup], Err((1, CleanedUp)));
    }

    #[test]
    fn failed_plugin_allows_only_cleanup() {
        let mut life = Lifecycle::new();
        life.fail("initialize panicked".to_owned());
        assert_eq!(life.check(&Initialize), Err(Failed));
        assert_eq!(life.check(&act("a")), Err(Failed));
        assert_eq!(life.failure(), Some("initialize panicked"));
        assert_eq!(life.check(&Cleanup), Ok(()));
    }
}
