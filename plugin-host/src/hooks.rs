//! The hook bus's ordering: which subscribers run for a hook, in which
//! order. Pure: no IO and no plugin calls (the host dispatches).
//!
//! Order is priority (lower first), constrained by `before`/`after` edges
//! naming other plugins, with the plugin id as the deterministic tie-break.
//! A constraint cycle is an error naming the plugins on it.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use serde::Serialize;

pub use plugin_package::manifest::HookKind;

/// One plugin's subscription to one hook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subscription {
    /// The subscribing plugin.
    pub plugin: String,
    /// The hook name.
    pub hook: String,
    /// Lower runs first.
    pub priority: i32,
    /// Filter or event.
    pub kind: HookKind,
    /// Plugins this one must run before.
    pub before: Vec<String>,
    /// Plugins this one must run after.
    pub after: Vec<String>,
}

/// A `before`/`after` cycle among a hook's subscribers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "hook `{hook}`: the before/after constraints of {} form a cycle; \
     remove one of them from a plugin.toml",
    plugins.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", ")
)]
pub struct OrderingCycle {
    /// The hook.
    pub hook: String,
    /// The plugins whose constraints cannot all hold, sorted.
    pub plugins: Vec<String>,
}

/// Orders the subscribers of one hook.
pub(crate) fn order(hook: &str, subs: &[Subscription]) -> Result<Vec<Subscription>, OrderingCycle> {
    let index: BTreeMap<&str, usize> = subs
        .iter()
        .enumerate()
        .map(|(i, s)| (s.plugin.as_str(), i))
        .collect();
    let mut successors: Vec<Vec<usize>> = vec![Vec::new(); subs.len()];
    let mut indegree = vec![0usize; subs.len()];
    let mut edge = |from: usize, to: usize| {
        if !successors[from].contains(&to) {
            successors[from].push(to);
            indegree[to] += 1;
        }
    };
    for (i, s) in subs.iter().enumerate() {
        // Constraints naming plugins that do not subscribe are ignored.
        for other in &s.before {
            if let Some(&j) = index.get(other.as_str()) {
                edge(i, j);
            }
        }
        for other in &s.after {
            if let Some(&j) = index.get(other.as_str()) {
                edge(j, i);
            }
        }
    }
    let key = |i: usize| Reverse((subs[i].priority, subs[i].plugin.clone(), i));
    let mut ready: BinaryHeap<_> = (0..subs.len())
        .filter(|&i| indegree[i] == 0)
        .map(key)
        .collect();
    let mut out = Vec::with_capacity(subs.len());
    while let Some(Reverse((_, _, i))) = ready.pop() {
        out.push(subs[i].clone());
        for &j in &successors[i] {
            indegree[j] -= 1;
            if indegree[j] == 0 {
                ready.push(key(j));
            }
        }
    }
    if out.len() < subs.len() {
        let mut plugins: Vec<String> = (0..subs.len())
            .filter(|&i| indegree[i] > 0)
            .map(|i| subs[i].plugin.clone())
            .collect();
        plugins.sort();
        return Err(OrderingCycle {
            hook: hook.to_owned(),
            plugins,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(plugin: &str, priority: i32, before: &[&str], after: &[&str]) -> Subscription {
        Subscription {
            plugin: plugin.to_owned(),
            hook: "h".to_owned(),
            priority,
            kind: HookKind::Event,
            before: before.iter().map(|s| s.to_string()).collect(),
            after: after.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn check(subs: &[Subscription], expected: Result<&[&str], &[&str]>) {
        let got = order("h", subs)
            .map(|v| v.into_iter().map(|s| s.plugin).collect::<Vec<_>>())
            .map_err(|e| e.plugins);
        let expected = expected
            .map(|v| v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .map_err(|v| v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(got, expected);
    }

    #[test]
    fn priority_then_id_orders_unconstrained_subscribers() {
        check(&[], Ok(&[]));
        check(
            &[sub("b", 0, &[], &[]), sub("a", 0, &[], &[])],
            Ok(&["a", "b"]),
        );
        check(
            &[sub("a", 10, &[], &[]), sub("b", -5, &[], &[])],
            Ok(&["b", "a"]),
        );
    }

    #[test]
    fn before_and_after_override_priority() {
        check(
            &[sub("a", 0, &[], &["b"]), sub("b", 10, &[], &[])],
            Ok(&["b", "a"]),
        );
        check(
            &[sub("a", 0, &[], &[]), sub("b", 10, &["a"], &[])],
            Ok(&["b", "a"]),
        );
        check(
            &[
                sub("a", 0, &[], &[]),
                sub("b", 1, &[], &[]),
                sub("c", 2, &["a"], &[]),
            ],
            Ok(&["b", "c", "a"]),
        );
        check(&[sub("a", 0, &["ghost"], &["ghost"])], Ok(&["a"]));
    }

    #[test]
    fn constraint_cycles_name_their_plugins() {
        check(
            &[sub("a", 0, &["b"], &[]), sub("b", 0, &["a"], &[])],
            Err(&["a", "b"]),
        );
        check(
            &[
                sub("a", 0, &["b"], &[]),
                sub("b", 0, &["c"], &[]),
                sub("c", 0, &["a"], &[]),
                sub("d", 0, &[], &[]),
            ],
            Err(&["a", "b", "c"]),
        );
    }
}
