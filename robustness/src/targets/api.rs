//! The admin API: the daemon's axum router driven in-process with tower's
//! `oneshot` (no socket), with mutated request lines, bodies and tokens.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use axum::body::Body;
use axum::http::{header, Method, Request, Uri};
use isp_daemon::api::{self, AdminToken};
use isp_daemon::config::{StandinMode, TrustMode};
use isp_daemon::{Config, Daemon, StartOptions};
use serde_json::Value;
use tower::ServiceExt as _;

use super::lossy;
use crate::engine::{fields, join, Outcome, Target};

const TOKEN: &str = "robustness-admin-token-7c1e";

/// The daemon on its embedded configuration, state in a temporary folder,
/// no stand-ins. With `artifacts` (a `cargo xtask artifacts` map) the
/// reference plugins are installed from the build, so requests reach them;
/// without, no plugin is installed and the API answers from the daemon alone.
fn start_daemon(state: &Path, artifacts: Option<&Path>) -> anyhow::Result<Daemon> {
    let mut config = Config::embedded()?;
    let plugins = state.join("plugins");
    std::fs::create_dir_all(&plugins)?;
    config.plugins.dirs = vec![plugins];
    config.trust.policy = TrustMode::AllowUnsigned;
    config.trust.key_dirs = Vec::new();
    config.state.dir = Some(state.join("state"));
    config.state.config_dir = Some(state.join("config"));
    config.admin.token = "${env:ROBUSTNESS_ADMIN_TOKEN}".to_owned();
    config.admin.generate_token_if_unset = false;
    // A million requests from one key: the limiter is fuzzed, not the fuzzer limited.
    config.rate_limits.default = isp_daemon::ratelimit::Limit {
        per_second: 1e6,
        burst: 1_000_000,
    };
    let standins = if artifacts.is_some() {
        StandinMode::On
    } else {
        StandinMode::Off
    };
    config.standins.twilio = standins;
    config.standins.stripe = standins;
    Daemon::start(
        config,
        StartOptions {
            env: [("ROBUSTNESS_ADMIN_TOKEN".to_owned(), TOKEN.to_owned())].into(),
            plugins_from_build: artifacts.map(Path::to_owned),
            devices: None,
        },
    )
    .context("starting the daemon for the admin API target")
}

/// Requests from the demo script and the admin page: `METHOD /path`, body.
fn requests(workspace: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let demo: toml::Table = toml::from_str(&std::fs::read_to_string(
        workspace.join("isp-daemon/src/demo.toml"),
    )?)?;
    let mut requests = Vec::new();
    let steps = demo
        .get("demo")
        .and_then(|d| d.get("steps"))
        .and_then(toml::Value::as_array)
        .context("the demo has no steps")?;
    for step in steps {
        let Some(mut step) = step.as_table().cloned() else {
            continue;
        };
        let Some(flow) = step
            .remove("flow")
            .and_then(|f| f.as_str().map(str::to_owned))
        else {
            continue;
        };
        requests.push((
            format!("POST /api/flows/{flow}"),
            serde_json::to_string(&step)?,
        ));
    }
    let tenants = demo
        .get("tenants")
        .and_then(toml::Value::as_table)
        .context("the demo has no tenants")?;
    for (tenant, settings) in tenants {
        for (plugin, values) in settings
            .get("plugins")
            .and_then(toml::Value::as_table)
            .into_iter()
            .flatten()
        {
            let base = format!("/api/tenants/{tenant}/plugins/{plugin}");
            let body = serde_json::to_string(values)?;
            requests.push((format!("PUT {base}/config"), body.clone()));
            requests.push((format!("POST {base}/activate"), body));
            requests.push((format!("POST {base}/activate"), String::new()));
            requests.push((format!("GET {base}/config"), String::new()));
            requests.push((format!("POST {base}/deactivate"), String::new()));
        }
        requests.push((format!("GET /api/tenants/{tenant}"), String::new()));
    }
    for line in [
        "GET /",
        "GET /api/daemon",
        "GET /api/plugins",
        "POST /api/plugins/twilio/reload",
        "GET /api/tenants",
        "GET /api/health",
        "GET /api/metrics",
        "GET /api/graph",
        "GET /api/graph.dot",
        "GET /api/audit?limit=5",
    ] {
        requests.push((line.to_owned(), String::new()));
    }
    Ok(requests)
}

/// Fields: the request line (`METHOD /path?query`), the body, and the
/// `Authorization` header value.
pub(crate) fn api(workspace: &Path) -> anyhow::Result<Target> {
    // In memory when the machine has a tmpfs: every change the API makes
    // is written and synced to the state and audit files, and a million
    // syncs on a shared disk dominate the run.
    let shm = Path::new("/dev/shm");
    let mut builder = tempfile::Builder::new();
    builder.prefix("plugkit-robustness-api-");
    let state = if shm.is_dir() {
        builder.tempdir_in(shm)?
    } else {
        builder.tempdir()?
    };
    let artifacts = std::env::var_os("PLUGKIT_ARTIFACTS").map(std::path::PathBuf::from);
    let daemon = Arc::new(start_daemon(state.path(), artifacts.as_deref())?);
    let router = api::router(Arc::clone(&daemon), AdminToken::new(TOKEN));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    // The admin token only manages keys: the requests carry a key with every scope.
    let key = daemon
        .keys()
        .create(
            isp_daemon::keys::NewKey {
                name: "robustness api target".to_owned(),
                scopes: isp_daemon::keys::Scope::ALL.to_vec(),
                expires_in_secs: None,
            },
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        )
        .context("creating the target's API key")?;
    let bearer = format!("Bearer {}", key.secret);
    // Most seeds leave the header field out (the token is then sent as
    // is), so most mutations land in request lines and bodies; the rest
    // carry it, to reach the token check with mutated headers.
    let seeds = requests(workspace)?
        .into_iter()
        .enumerate()
        .map(|(i, (line, body))| {
            if i % 4 == 0 {
                join(&[line.as_bytes(), body.as_bytes(), bearer.as_bytes()])
            } else {
                join(&[line.as_bytes(), body.as_bytes()])
            }
        })
        .collect();
    Ok(Target {
        name: "api",
        focus: Some(1),
        seeds,
        dictionary: [
            "\"tenant\":",
            "\"tier\":",
            "\"enterprise\"",
            "\"free\"",
            "\"customer_id\":",
            "\"monthly_price_minor\":",
            "\"currency\":",
            "\"severity\":",
            "\"critical\"",
            "null",
            "true",
            "[]",
            "{}",
            "\"\\u0000\"",
            "\"\\ud800\"",
            "/api/",
            "/tenants/",
            "/plugins/",
            "%2F",
            "%00",
            "%FF",
            "..",
            "?limit=",
            "Bearer ",
        ]
        .iter()
        .map(|t| t.as_bytes().to_vec())
        .collect(),
        run: Box::new(move |input| {
            // Kept alive for as long as the target runs.
            let _state = &state;
            let _daemon = &daemon;
            let parts = fields(input);
            let part = |i: usize| parts.get(i).copied().unwrap_or_default();
            let line = lossy(part(0));
            let (method, target) = line.split_once(' ').unwrap_or(("GET", line.as_ref()));
            let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::POST);
            let mut request = Request::builder()
                .method(method.clone())
                .uri(uri(target))
                .header(header::CONTENT_TYPE, "application/json");
            let authorization = match parts.get(2) {
                Some(value) => header::HeaderValue::from_bytes(value).ok(),
                None => header::HeaderValue::from_str(&bearer).ok(),
            };
            if let Some(value) = authorization {
                request = request.header(header::AUTHORIZATION, value);
            }
            let Ok(request) = request.body(Body::from(part(1).to_vec())) else {
                return Outcome::Handled("not a request");
            };
            // Faults are grouped by method kind, not by each made-up name.
            let method_kind = match method.as_str() {
                "GET" | "POST" | "PUT" | "DELETE" | "HEAD" | "OPTIONS" | "PATCH" | "TRACE"
                | "CONNECT" => method.as_str().to_owned(),
                _ => "an unknown method".to_owned(),
            };
            let router = router.clone();
            let answer = runtime.block_on(async move {
                let response = router.oneshot(request).await?;
                let status = response.status();
                let content_type = response
                    .headers()
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                    .await
                    .map_err(|e| anyhow::anyhow!("reading the answer: {e}"))?;
                anyhow::Ok((status, content_type, body))
            });
            let (status, content_type, body) = match answer {
                Ok(answer) => answer,
                Err(error) => {
                    return Outcome::Fault {
                        key: "the router failed".to_owned(),
                        message: error.to_string(),
                    }
                }
            };
            let error = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned));
            if status.is_server_error() {
                let message = error.unwrap_or_else(|| lossy(&body).into_owned());
                return Outcome::Fault {
                    key: format!("{} for {method_kind}: {}", status.as_u16(), shape(&message)),
                    message,
                };
            }
            if status.is_client_error()
                && (!content_type.starts_with("application/json") || error.is_none())
            {
                let text = lossy(&body).into_owned();
                return Outcome::Fault {
                    key: format!(
                        "{} for {method_kind} is not a JSON error: {}",
                        status.as_u16(),
                        shape(&text)
                    ),
                    message: format!("{content_type}: {text}"),
                };
            }
            Outcome::Handled(match status.as_u16() {
                200..=299 => "2xx",
                401 => "401",
                404 => "404",
                400..=499 => "other 4xx",
                _ => "other",
            })
        }),
    })
}

/// A request target the HTTP layer accepts: bytes a client would have to
/// escape are percent-escaped.
fn uri(target: &str) -> Uri {
    if let Ok(uri) = Uri::try_from(target) {
        if uri.scheme().is_none() && target.starts_with('/') {
            return uri;
        }
    }
    let mut escaped = String::from(if target.starts_with('/') { "" } else { "/" });
    for byte in target.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/?=&%:@!$'()*+,;".contains(&byte) {
            escaped.push(char::from(byte));
        } else {
            escaped.push_str(&format!("%{byte:02X}"));
        }
    }
    Uri::try_from(escaped.as_str()).unwrap_or_else(|_| Uri::from_static("/"))
}

/// A message with its variable parts (quoted text, numbers) blanked, so one
/// fault reached with different inputs is counted as one.
fn shape(message: &str) -> String {
    let mut out = String::new();
    let mut quoted = None;
    for c in message.chars() {
        match quoted {
            Some(q) if c == q => {
                quoted = None;
                out.push(c);
            }
            Some(_) => {}
            None if c == '`' || c == '"' => {
                quoted = Some(c);
                out.push(c);
            }
            None if c.is_ascii_digit() => {
                if !out.ends_with('#') {
                    out.push('#');
                }
            }
            None => out.push(c),
        }
    }
    out.chars().take(160).collect()
}
