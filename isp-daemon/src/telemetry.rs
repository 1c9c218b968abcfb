//! Structured logs: the `tracing` subscriber (text or JSON lines on
//! stderr) and the request log, one line per API request with its method,
//! path, status, latency, and the plugin and tenant it concerns.
//!
//! Invariants:
//! - Every request runs inside a `request` span carrying `plugin`,
//!   `tenant` (from the path; empty when the request names none) and an
//!   empty `key_id` that authentication records once it knows the key;
//!   the blocking work of a handler runs in the same span (see
//!   `api::blocking`), so a plugin's own log lines (`target: "plugin"`,
//!   field `plugin`, from the host's log service) carry the tenant too.
//!   Test: `daemon::logs::json_logs_carry_plugin_and_tenant`.
//! - Secrets never reach a log line: the request line names the key's id,
//!   never a header's value.

use std::str::FromStr;
use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;
use tracing_subscriber::filter::LevelFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines (ANSI colours on a terminal).
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`,
    /// `fields`, and `spans` (each span's fields, outermost first).
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!(
                "unknown log format `{other}`; use `text` or `json`"
            )),
        }
    }
}

/// Installs the global subscriber writing to stderr at `level`.
pub fn init(level: LevelFilter, format: LogFormat, ansi: bool) {
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level);
    match format {
        LogFormat::Text => builder.with_ansi(ansi).with_target(false).init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(false)
            .with_span_list(true)
            .with_target(true)
            .init(),
    }
}

/// The plugin and tenant a request path names: `/api/plugins/{plugin}/…`,
/// `/api/tenants/{tenant}` and `/api/tenants/{tenant}/plugins/{plugin}/…`.
pub fn subjects(path: &str) -> (Option<&str>, Option<&str>) {
    let mut segments = path.trim_start_matches('/').split('/');
    let (mut plugin, mut tenant) = (None, None);
    while let Some(segment) = segments.next() {
        match segment {
            "plugins" => plugin = segments.next().filter(|s| !s.is_empty()).or(plugin),
            "tenants" => tenant = segments.next().filter(|s| !s.is_empty()).or(tenant),
            _ => {}
        }
    }
    (plugin, tenant)
}

/// The request log middleware: a `request` span around the handler, and
/// one `info` line when the answer is ready.
pub async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let (plugin, tenant) = subjects(&path);
    let span = tracing::info_span!(
        "request",
        method = %method,
        path = %path,
        plugin = plugin.unwrap_or(""),
        tenant = tenant.unwrap_or(""),
        key_id = tracing::field::Empty,
    );
    let started = Instant::now();
    async move {
        let response = next.run(request).await;
        let status = response.status().as_u16();
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        if status >= 500 {
            tracing::warn!(status, latency_ms, "request failed");
        } else {
            tracing::info!(status, latency_ms, "request");
        }
        response
    }
    .instrument(span)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(path: &str, expected: (Option<&str>, Option<&str>)) {
        assert_eq!(subjects(path), expected, "{path}");
    }

    #[test]
    fn the_path_names_the_plugin_and_tenant() {
        check("/api/health", (None, None));
        check("/api/plugins", (None, None));
        check("/api/plugins/stripe/reload", (Some("stripe"), None));
        check("/api/tenants/acme", (None, Some("acme")));
        check(
            "/api/tenants/acme/plugins/twilio/config",
            (Some("twilio"), Some("acme")),
        );
        check("/metrics", (None, None));
    }

    #[test]
    fn log_formats_parse_in_any_case() {
        assert_eq!("json".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!("TEXT".parse::<LogFormat>(), Ok(LogFormat::Text));
        assert!("xml".parse::<LogFormat>().unwrap_err().contains("text"));
    }
}
