//! `robustness-stripe`: the Stripe plugin's webhook check (`Stripe-Signature`)
//! and the event behind it, under `cargo xtask fuzz stripe`.

use std::path::Path;

use plugkit_robustness::{fields, join, lossy, read_dir_files, Outcome, Target};
use plugkit_stripe::webhook;

fn main() {
    plugkit_robustness::main_with(|name, workspace| (name == "stripe").then(|| stripe(workspace)));
}

/// A header value that asks the harness to sign the (mutated) body.
const RESIGN: &str = "SIGN";

const STRIPE_SECRET: &str = "whsec_test_5f2a9c0d1e8b7a6f5e4d3c2b1a0f9e8d";
const TOLERANCE: i64 = 300;

/// Stripe: the fields are the endpoint secret, the `Stripe-Signature`
/// header, the body, and the clock (`now`, Unix seconds).
fn stripe(workspace: &Path) -> anyhow::Result<Target> {
    let bodies = read_dir_files(&workspace.join("robustness/corpus/stripe"))?;
    let mut seeds = Vec::new();
    for body in &bodies {
        let t: i64 = 1_700_000_000;
        let signed = webhook::sign(body, STRIPE_SECRET, t);
        let rolled = format!(
            "{},v1={},v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39",
            webhook::sign(body, "whsec_old", t),
            signed.split_once("v1=").map_or("", |(_, v)| v)
        );
        for (header, now) in [
            (signed.clone(), t + 5),
            (rolled, t),
            (signed, t + TOLERANCE + 1),
            (format!("t={t},v1={RESIGN}"), t + 1),
        ] {
            seeds.push(join(&[
                STRIPE_SECRET.as_bytes(),
                header.as_bytes(),
                body,
                now.to_string().as_bytes(),
            ]));
        }
    }
    Ok(Target {
        name: "stripe",
        focus: None,
        seeds,
        dictionary: [
            "t=",
            "v1=",
            "v0=",
            ",",
            " ",
            "=",
            "\"object\"",
            "\"type\"",
            "\"data\"",
            "\"payment_intent\"",
            "\"charge\"",
            "\"amount_received\"",
            "\"currency\"",
            "null",
            "{}",
            "[]",
        ]
        .iter()
        .map(|t| t.as_bytes().to_vec())
        .collect(),
        run: Box::new(|input| {
            let parts = fields(input);
            let part = |i: usize| parts.get(i).copied().unwrap_or_default();
            let now = lossy(part(3))
                .trim()
                .parse::<i64>()
                .unwrap_or(1_700_000_000);
            let body = part(2);
            let secret = lossy(part(0));
            let mut header = lossy(part(1)).into_owned();
            if header.contains(RESIGN) {
                // Sign the mutated body with the header's own `t`, so the
                // event parsing behind the check is reached too.
                let t = header
                    .split(',')
                    .find_map(|item| item.trim().strip_prefix("t="))
                    .and_then(|t| t.parse::<i64>().ok())
                    .unwrap_or(0);
                let signed = webhook::sign(body, &secret, t);
                let hex = signed.split_once("v1=").map_or("", |(_, v)| v).to_owned();
                header = header.replace(RESIGN, &hex);
            }
            // As the plugin does: the event is read only once the signature holds.
            let verdict = webhook::verify(body, &header, &secret, TOLERANCE, now)
                .and_then(|()| webhook::parse_event(body));
            let shown = match &verdict {
                Ok(event) => format!("{event:?}"),
                Err(error) => error.to_string(),
            };
            std::hint::black_box(shown);
            Outcome::Handled(match verdict {
                Ok(_) => "accepted",
                Err(webhook::WebhookError::InvalidEvent(_)) => "signed, not an event",
                Err(_) => "refused",
            })
        }),
    })
}
