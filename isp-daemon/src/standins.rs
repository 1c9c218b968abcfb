//! The Twilio and Stripe stand-ins: started when the configuration asks for
//! them (or, in `auto` mode, when the real credentials are not in the
//! environment), and pointed at through `PLUGKIT_<ID>_<KEY>` variables,
//! which win over every tenant's settings. They are named as stand-ins in
//! everything the daemon prints.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use plugin_host::tenancy::env_var_name;
use plugkit_standins::stripe::{StripeStandIn, StripeStandInConfig};
use plugkit_standins::twilio::{TwilioStandIn, TwilioStandInConfig};

use crate::config::{Config, StandinMode};

/// Variables that hold real Twilio credentials.
const TWILIO_CREDENTIALS: [&str; 2] = ["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"];
/// The variable that holds a real Stripe key.
const STRIPE_CREDENTIALS: [&str; 1] = ["STRIPE_SECRET_KEY"];

/// The running stand-ins; they stop when this is dropped.
#[derive(Default)]
pub struct Standins {
    twilio: Option<TwilioStandIn>,
    stripe: Option<StripeStandIn>,
    /// Variables pointing the plugins at the stand-ins.
    pub(crate) env: Vec<(String, String)>,
    /// What was started and why, one line each.
    pub(crate) notes: Vec<String>,
}

impl std::fmt::Debug for Standins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Standins")
            .field("twilio", &self.twilio.as_ref().map(TwilioStandIn::base_url))
            .field("stripe", &self.stripe.as_ref().map(StripeStandIn::base_url))
            .finish_non_exhaustive()
    }
}

/// Whether a stand-in runs: `Ok(reason)` to start it, `Err(reason)` not to.
fn decide(
    mode: StandinMode,
    credentials: &[&str],
    env: &BTreeMap<String, String>,
) -> Result<String, String> {
    let missing: Vec<&str> = credentials
        .iter()
        .copied()
        .filter(|var| env.get(*var).is_none_or(|v| v.is_empty()))
        .collect();
    match mode {
        StandinMode::On => Ok("[standins] asks for it".to_owned()),
        StandinMode::Off => Err("[standins] turns it off".to_owned()),
        StandinMode::Auto if missing.is_empty() => Err(format!(
            "real credentials are configured ({})",
            credentials.join(", ")
        )),
        StandinMode::Auto => Ok(format!("{} not set", missing.join(" and "))),
    }
}

impl Standins {
    /// Starts the stand-ins `config` calls for; `env` is the daemon's environment.
    pub(crate) fn start(config: &Config, env: &BTreeMap<String, String>) -> Result<Self> {
        let mut out = Standins::default();
        match decide(config.standins.twilio, &TWILIO_CREDENTIALS, env) {
            Ok(why) => {
                let mut setup = TwilioStandInConfig::default();
                // The senders the tenants are configured with belong to the stand-in's account.
                for tenant in config.tenants.values() {
                    let from = tenant
                        .plugins
                        .get("twilio")
                        .and_then(|t| t.get("from_number"))
                        .and_then(toml::Value::as_str);
                    if let Some(from) = from {
                        if !setup.from_numbers.iter().any(|n| n == from) {
                            setup.from_numbers.push(from.to_owned());
                        }
                    }
                }
                let standin =
                    TwilioStandIn::start(setup).context("starting the Twilio stand-in")?;
                out.notes.push(format!(
                    "[stand-in] Twilio API stand-in at {} ({why}); it is NOT Twilio: messages \
                     are recorded locally and go to no phone",
                    standin.base_url()
                ));
                out.env.extend([
                    (env_var_name("twilio", "base_url"), standin.base_url()),
                    (
                        env_var_name("twilio", "account_sid"),
                        standin.account_sid().to_owned(),
                    ),
                    (
                        env_var_name("twilio", "auth_token"),
                        standin.auth_token().to_owned(),
                    ),
                ]);
                out.twilio = Some(standin);
            }
            Err(why) => out.notes.push(format!(
                "[stand-in] no Twilio stand-in: {why}; twilio talks to its configured API"
            )),
        }
        match decide(config.standins.stripe, &STRIPE_CREDENTIALS, env) {
            Ok(why) => {
                let standin = StripeStandIn::start(StripeStandInConfig::default())
                    .context("starting the Stripe stand-in")?;
                out.notes.push(format!(
                    "[stand-in] Stripe API stand-in at {} ({why}); it is NOT Stripe: no money \
                     moves",
                    standin.base_url()
                ));
                out.env.extend([
                    (
                        env_var_name("stripe", "base_url"),
                        standin.base_url().to_owned(),
                    ),
                    (
                        env_var_name("stripe", "secret_key"),
                        standin.secret_key().to_owned(),
                    ),
                    (
                        env_var_name("stripe", "webhook_secret"),
                        standin.webhook_secret().to_owned(),
                    ),
                ]);
                out.stripe = Some(standin);
            }
            Err(why) => out.notes.push(format!(
                "[stand-in] no Stripe stand-in: {why}; stripe talks to its configured API"
            )),
        }
        Ok(out)
    }

    /// The Twilio stand-in, when it runs.
    pub fn twilio(&self) -> Option<&TwilioStandIn> {
        self.twilio.as_ref()
    }

    /// The Stripe stand-in, when it runs.
    pub fn stripe(&self) -> Option<&StripeStandIn> {
        self.stripe.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_mode_starts_a_standin_only_without_real_credentials() {
        let env = |vars: &[(&str, &str)]| -> BTreeMap<String, String> {
            vars.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let check = |mode, vars: &[(&str, &str)], expected: Result<&str, &str>| {
            let got = decide(mode, &TWILIO_CREDENTIALS, &env(vars));
            assert_eq!(
                got.as_deref().map_err(String::as_str),
                expected,
                "{mode:?} {vars:?}"
            );
        };
        check(
            StandinMode::Auto,
            &[],
            Ok("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN not set"),
        );
        check(
            StandinMode::Auto,
            &[("TWILIO_ACCOUNT_SID", "AC1"), ("TWILIO_AUTH_TOKEN", "")],
            Ok("TWILIO_AUTH_TOKEN not set"),
        );
        check(
            StandinMode::Auto,
            &[("TWILIO_ACCOUNT_SID", "AC1"), ("TWILIO_AUTH_TOKEN", "t")],
            Err("real credentials are configured (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN)"),
        );
        check(
            StandinMode::On,
            &[("TWILIO_ACCOUNT_SID", "AC1"), ("TWILIO_AUTH_TOKEN", "t")],
            Ok("[standins] asks for it"),
        );
        check(StandinMode::Off, &[], Err("[standins] turns it off"));
    }
}
