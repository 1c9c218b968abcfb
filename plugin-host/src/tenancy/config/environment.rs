//! Where environment variables come from, and the variable that overrides
//! a plugin's key (`PLUGKIT_<ID>_<KEY>`).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// Where environment variables come from: the process, or a fixed set (tests,
/// or a daemon that snapshots its environment at start).
#[derive(Clone, Default)]
pub struct Environment {
    fixed: Option<Arc<BTreeMap<String, String>>>,
}

impl Environment {
    /// The process environment, read at each use.
    pub fn process() -> Self {
        Self { fixed: None }
    }

    /// A fixed set of variables; the process environment is not consulted.
    pub fn fixed<I, K, V>(vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            fixed: Some(Arc::new(
                vars.into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
            )),
        }
    }

    /// The value of `name`, when it is set and valid UTF-8.
    pub fn var(&self, name: &str) -> Option<String> {
        match &self.fixed {
            Some(vars) => vars.get(name).cloned(),
            None => std::env::var(name).ok(),
        }
    }
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names only: environment values are often credentials.
        match &self.fixed {
            None => f.write_str("Environment::process"),
            Some(vars) => f
                .debug_tuple("Environment::fixed")
                .field(&vars.keys().collect::<Vec<_>>())
                .finish(),
        }
    }
}
