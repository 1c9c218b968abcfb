//! `robustness-twilio`: the Twilio plugin's webhook check (`X-Twilio-Signature`)
//! and the status callback behind it, under `cargo xtask fuzz twilio`.

use std::path::Path;

use anyhow::Context as _;
use plugkit_robustness::{fields, join, lossy, read_dir_files, Outcome, Target};

fn main() {
    plugkit_robustness::main_with(|name, workspace| (name == "twilio").then(|| twilio(workspace)));
}

/// A signature field that asks the harness to sign the (mutated) request.
const RESIGN: &str = "SIGN";

const TWILIO_TOKEN: &str = "12345abcde12345abcde12345abcde12";

/// URLs a Twilio webhook may be delivered to: default and explicit ports,
/// query strings with escapes, user info, IPv6.
const TWILIO_URLS: &[&str] = &[
    "https://isp.example.net/webhooks/twilio/acme-fiber/status",
    "https://isp.example.net:443/webhooks/twilio/status?tenant=acme-fiber&attempt=1",
    "http://127.0.0.1:8089/webhooks/twilio/status?name=Ada%20Lovelace&x=a%2Bb",
    "https://user:pass@[2001:db8::1]:8443/hook?q=%E2%9C%93#frag",
];

/// Twilio: the fields are the auth token, the URL, the body (form or JSON)
/// and the signature header.
fn twilio(workspace: &Path) -> anyhow::Result<Target> {
    let bodies = read_dir_files(&workspace.join("robustness/corpus/twilio"))?;
    let mut seeds = Vec::new();
    for body in &bodies {
        let json = body.first() == Some(&b'{');
        for url in TWILIO_URLS {
            let url = if json {
                let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(body));
                let sep = if url.contains('?') { '&' } else { '?' };
                match url.split_once('#') {
                    Some((u, f)) => format!("{u}{sep}bodySHA256={hash}#{f}"),
                    None => format!("{url}{sep}bodySHA256={hash}"),
                }
            } else {
                (*url).to_owned()
            };
            let signature = plugkit_twilio::webhook_signature(TWILIO_TOKEN, &url, body)
                .context("signing a seed")?;
            for signature in [signature.as_str(), RESIGN] {
                seeds.push(join(&[
                    TWILIO_TOKEN.as_bytes(),
                    url.as_bytes(),
                    body,
                    signature.as_bytes(),
                ]));
            }
        }
    }
    Ok(Target {
        name: "twilio",
        focus: None,
        seeds,
        dictionary: [
            "%",
            "%2B",
            "%20",
            "%E2%9C%93",
            "%%",
            "%0",
            "+",
            "&",
            "=",
            "?",
            "#",
            ":443",
            ":80",
            ":",
            "@",
            "[",
            "]",
            "://",
            "bodySHA256=",
            "MessageStatus=",
            "ErrorCode=",
            "MessageSid=",
            "SmsSid=",
            "SmsStatus=",
        ]
        .iter()
        .map(|t| t.as_bytes().to_vec())
        .collect(),
        run: Box::new(|input| {
            let parts = fields(input);
            let part = |i: usize| parts.get(i).copied().unwrap_or_default();
            let (token, url, body) = (lossy(part(0)), lossy(part(1)), part(2));
            // `SIGN`: sign the mutated request, so the parsing behind the
            // check is reached too.
            let signature = match lossy(part(3)).into_owned() {
                s if s == RESIGN => {
                    plugkit_twilio::webhook_signature(&token, &url, body).unwrap_or_default()
                }
                s => s,
            };
            let verdict = plugkit_twilio::webhook_report(&token, &url, body, &signature);
            let class = if verdict.is_ok() {
                "accepted"
            } else {
                "refused"
            };
            let _ = std::hint::black_box(verdict);
            Outcome::Handled(class)
        }),
    })
}
