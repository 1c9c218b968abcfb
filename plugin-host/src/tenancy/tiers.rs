//! Subscription tiers: an ordered list of names, and which plugins a tier
//! change starts and stops. Pure: no IO, no plugin calls.

use std::collections::BTreeSet;
use std::fmt;

/// The ordered tiers a tenant can hold, lowest first. The default is
/// `free < pro < enterprise`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tiers {
    names: Vec<String>,
}

/// A tier list that cannot be used, or a tier name it does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TierError {
    /// The list is empty.
    #[error("the tier list is empty; configure at least one tier, e.g. `free`")]
    Empty,
    /// A name appears twice.
    #[error("tier `{tier}` appears twice in the tier list; each tier must be listed once")]
    Duplicate {
        /// The repeated name.
        tier: String,
    },
    /// A name is not in the list.
    #[error("unknown tier `{tier}`; the configured tiers are {}", quoted(known))]
    Unknown {
        /// The name asked for.
        tier: String,
        /// The configured tiers, lowest first.
        known: Vec<String>,
    },
}

pub(crate) fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(" < ")
}

impl Default for Tiers {
    fn default() -> Self {
        Self {
            names: ["free", "pro", "enterprise"].map(str::to_owned).to_vec(),
        }
    }
}

impl fmt::Display for Tiers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&quoted(&self.names))
    }
}

impl Tiers {
    /// A tier list from the lowest tier to the highest.
    pub fn new<I, S>(lowest_first: I) -> Result<Self, TierError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let names: Vec<String> = lowest_first.into_iter().map(Into::into).collect();
        if names.is_empty() {
            return Err(TierError::Empty);
        }
        let mut seen = BTreeSet::new();
        for name in &names {
            if !seen.insert(name.as_str()) {
                return Err(TierError::Duplicate { tier: name.clone() });
            }
        }
        Ok(Self { names })
    }

    /// The tiers, lowest first.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The position of `tier` in the list (0 is the lowest).
    pub fn rank(&self, tier: &str) -> Result<usize, TierError> {
        self.names
            .iter()
            .position(|n| n == tier)
            .ok_or_else(|| TierError::Unknown {
                tier: tier.to_owned(),
                known: self.names.clone(),
            })
    }

    /// Whether a tenant holding `held` may run a plugin that needs `required`.
    pub fn allows(&self, held: &str, required: &str) -> Result<bool, TierError> {
        Ok(self.rank(held)? >= self.rank(required)?)
    }
}

/// What a tier change does to a tenant's requested plugins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TierPlan {
    /// Requested plugins the new tier entitles and the old one did not, by id.
    pub activate: Vec<String>,
    /// Requested plugins the old tier entitled and the new one does not, by id.
    pub deactivate: Vec<String>,
}

/// Plans a change from tier `old` to `new` for a tenant that asked for
/// `requested`; `required_tier_of` gives each plugin's required tier. Plugins
/// entitled under both tiers, or neither, are left alone. Both lists are
/// sorted by id.
pub fn plan_tier_change<'a>(
    tiers: &Tiers,
    old: &str,
    new: &str,
    requested: impl IntoIterator<Item = &'a str>,
    required_tier_of: impl Fn(&str) -> Option<String>,
) -> Result<TierPlan, TierError> {
    let old_rank = tiers.rank(old)?;
    let new_rank = tiers.rank(new)?;
    let mut plan = TierPlan::default();
    let requested: BTreeSet<&str> = requested.into_iter().collect();
    for plugin in requested {
        // A plugin nobody registered is entitled under no tier.
        let Some(required) = required_tier_of(plugin) else {
            continue;
        };
        let needed = tiers.rank(&required)?;
        match (old_rank >= needed, new_rank >= needed) {
            (false, true) => plan.activate.push(plugin.to_owned()),
            (true, false) => plan.deactivate.push(plugin.to_owned()),
            _ => {}
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plugins `f` (free), `p` (pro), `e` (enterprise), `x` (unregistered).
    fn required(plugin: &str) -> Option<String> {
        match plugin {
            "f" => Some("free".into()),
            "p" => Some("pro".into()),
            "e" => Some("enterprise".into()),
            _ => None,
        }
    }

    fn check(old: &str, new: &str, requested: &[&str], expected: (&[&str], &[&str])) {
        let plan = plan_tier_change(
            &Tiers::default(),
            old,
            new,
            requested.iter().copied(),
            required,
        )
        .unwrap();
        let (activate, deactivate) = expected;
        assert_eq!(
            (plan.activate, plan.deactivate),
            (
                activate.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                deactivate.iter().map(|s| s.to_string()).collect::<Vec<_>>()
            ),
            "{old} -> {new} with {requested:?}"
        );
    }

    #[test]
    fn upgrades_activate_newly_entitled_requested_plugins() {
        check("free", "pro", &["f", "p", "e"], (&["p"], &[]));
        check("free", "enterprise", &["e", "p", "f"], (&["e", "p"], &[]));
        check("pro", "enterprise", &["f", "p", "e"], (&["e"], &[]));
        check("free", "enterprise", &["f"], (&[], &[]));
        check("free", "pro", &[], (&[], &[]));
    }

    #[test]
    fn downgrades_deactivate_plugins_above_the_new_tier() {
        check("enterprise", "free", &["f", "p", "e"], (&[], &["e", "p"]));
        check("enterprise", "pro", &["f", "p", "e"], (&[], &["e"]));
        check("pro", "free", &["f"], (&[], &[]));
    }

    #[test]
    fn same_tier_and_unregistered_plugins_change_nothing() {
        check("pro", "pro", &["f", "p", "e"], (&[], &[]));
        check("free", "enterprise", &["x"], (&[], &[]));
        check("enterprise", "free", &["x", "x"], (&[], &[]));
    }

    #[test]
    fn unknown_tiers_are_errors_listing_the_configured_ones() {
        let tiers = Tiers::default();
        let err = plan_tier_change(&tiers, "free", "gold", ["f"], required).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown tier `gold`; the configured tiers are `free` < `pro` < `enterprise`"
        );
        let err = plan_tier_change(&tiers, "free", "pro", ["p"], |_| Some("platinum".into()))
            .unwrap_err();
        assert!(matches!(err, TierError::Unknown { ref tier, .. } if tier == "platinum"));
    }

    #[test]
    fn tier_lists_are_ordered_and_checked() {
        let tiers = Tiers::new(["basic", "plus"]).unwrap();
        let cases = [
            ("basic", "basic", true),
            ("plus", "basic", true),
            ("basic", "plus", false),
        ];
        for (held, required, allowed) in cases {
            assert_eq!(
                tiers.allows(held, required),
                Ok(allowed),
                "{held} vs {required}"
            );
        }
        assert_eq!(Tiers::new(Vec::<String>::new()), Err(TierError::Empty));
        assert_eq!(
            Tiers::new(["a", "b", "a"]),
            Err(TierError::Duplicate { tier: "a".into() })
        );
        assert_eq!(
            Tiers::default().to_string(),
            "`free` < `pro` < `enterprise`"
        );
    }
}
