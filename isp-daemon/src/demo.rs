//! The demo script: runs the configured flows (`[[demo.steps]]`) one by one
//! and says, step by step, what each plugin did; then what the stand-ins
//! received, so the output shows the requests that would have reached
//! Twilio and Stripe.

use crate::config::DemoStep;
use crate::daemon::Daemon;
use crate::flows::{self, money, FlowReport};

/// Runs every demo step as actor `demo`; returns each flow's report.
pub fn run(daemon: &Daemon, say: &dyn Fn(&str)) -> Vec<FlowReport> {
    let steps = &daemon.config().demo.steps;
    let mut reports = Vec::new();
    for (index, step) in steps.iter().enumerate() {
        if daemon.is_stopping() {
            say("[demo] stopping: the daemon is shutting down");
            break;
        }
        let tier = daemon.tier_of(step.tenant()).unwrap_or_default();
        let title = match step {
            DemoStep::NewCustomer(c) => format!(
                "new customer {} ({}) signs up for {} at {}",
                c.name, c.customer_id, c.plan, c.tenant
            ),
            DemoStep::DeviceAlert(a) => format!(
                "{} alert from {} at {}: {}",
                a.severity, a.device, a.tenant, a.message
            ),
            DemoStep::TierChange(t) => format!("{} changes tier to {}", t.tenant, t.tier),
        };
        say("");
        say(&format!(
            "── step {}/{}: {title} (tier {tier})",
            index + 1,
            steps.len()
        ));
        let outcome = match step {
            DemoStep::NewCustomer(request) => flows::new_customer(daemon, request),
            DemoStep::DeviceAlert(request) => flows::device_alert(daemon, request),
            DemoStep::TierChange(request) => flows::change_tier(daemon, "demo", request),
        };
        match outcome {
            Ok(report) => {
                for line in report.lines() {
                    say(&line);
                }
                crate::webhooks::flow_completed(daemon, "demo", &report);
                reports.push(report);
            }
            Err(problem) => say(&format!("[isp] {}: FAILED: {problem}", step.tenant())),
        }
    }
    say("");
    say("── what the stand-ins received");
    for line in standin_summary(daemon) {
        say(&line);
    }
    reports
}

/// What the stand-ins recorded, one line per charge and message.
pub fn standin_summary(daemon: &Daemon) -> Vec<String> {
    let mut lines = Vec::new();
    match daemon.standins().stripe() {
        Some(stripe) => {
            let created: Vec<_> = stripe
                .requests()
                .into_iter()
                .filter(|r| r.method == "POST" && r.path == "/v1/payment_intents")
                .collect();
            lines.push(format!(
                "[stand-in] Stripe stand-in: {}",
                crate::wording::counted(
                    created.len(),
                    "payment intent request",
                    "payment intent requests"
                )
            ));
            for request in created {
                let form: Vec<(String, String)> = form_pairs(&request.body);
                let field = |name: &str| {
                    form.iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                };
                let amount = field("amount").parse::<i64>().unwrap_or_default();
                lines.push(format!(
                    "[stand-in]   {} for {} → HTTP {}",
                    money(amount, &field("currency")),
                    field("metadata[tenant]"),
                    request.status
                ));
            }
        }
        None => lines.push("[stand-in] no Stripe stand-in ran".to_owned()),
    }
    match daemon.standins().twilio() {
        Some(twilio) => {
            let sent = twilio.sent_messages();
            lines.push(format!(
                "[stand-in] Twilio stand-in: {} accepted",
                crate::wording::counted(sent.len(), "message", "messages")
            ));
            for message in sent {
                lines.push(format!(
                    "[stand-in]   {} → {}: {:?}",
                    message.sid, message.to, message.body
                ));
            }
        }
        None => lines.push("[stand-in] no Twilio stand-in ran".to_owned()),
    }
    lines
}

/// `a=1&b=x%20y` → pairs, percent- and plus-decoded.
fn form_pairs(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_bodies_decode() {
        let check = |body: &str, expected: &[(&str, &str)]| {
            let got = form_pairs(body);
            let got: Vec<(&str, &str)> =
                got.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            assert_eq!(got, expected, "{body}");
        };
        check(
            "amount=4999&currency=usd",
            &[("amount", "4999"), ("currency", "usd")],
        );
        check(
            "metadata%5Btenant%5D=acme-fiber",
            &[("metadata[tenant]", "acme-fiber")],
        );
        check("d=a+b%2Cc", &[("d", "a b,c")]);
        check("x=%zz&y=%4", &[("x", "%zz"), ("y", "%4")]);
        check("", &[]);
    }
}
