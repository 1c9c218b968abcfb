//! Every error of the admin API is JSON (issue 16, part 6): the framework's
//! own rejections (body too large, a path that is not UTF-8, a wrong method,
//! a wrong content type, an unknown route, a bad query) and the guard's
//! (no or a wrong credential, a missing scope, a rate limit) answer with the
//! handlers' shape, `{"error": "...", "tenant"?, "plugin"?}`. One test per kind.

use isp_daemon::keys::Scope;
use isp_daemon::ratelimit::Limit;
use serde_json::Value;
use ureq::http;

use crate::keys::create_key;
use crate::support::{TestDaemon, ADMIN_TOKEN, TOKEN};

/// An answer with its headers.
struct Raw {
    status: u16,
    headers: http::HeaderMap,
    body: Value,
}

/// Sends `method path` with `headers` and `body` as given, nothing added.
fn send(d: &TestDaemon, method: &str, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Raw {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut request = http::Request::builder()
        .method(method)
        .uri(format!("{}{path}", d.base));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(body).expect("request");
    let mut response = agent.run(request).expect("an answer");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Raw {
        status,
        headers,
        body,
    }
}

/// Asserts `status`, a JSON content type, and the handlers' error shape
/// with a message containing `part`.
#[track_caller]
fn check(raw: &Raw, status: u16, part: &str) {
    assert_eq!(raw.status, status, "{}", raw.body);
    let content_type = raw
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert_eq!(content_type, "application/json", "{}", raw.body);
    let object = raw.body.as_object().expect("a JSON object");
    assert!(
        object
            .keys()
            .all(|k| ["error", "tenant", "plugin"].contains(&k.as_str())),
        "not the handlers' shape: {}",
        raw.body
    );
    let error = object["error"].as_str().unwrap_or_default();
    assert!(error.contains(part), "{error:?} lacks {part:?}");
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

#[test]
fn a_body_over_the_size_limit_is_a_json_413() {
    let d = TestDaemon::start();
    let auth = bearer();
    let raw = send(
        &d,
        "PUT",
        "/api/tenants/acme-fiber/plugins/twilio/config",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        vec![b' '; 3 * 1024 * 1024],
    );
    check(&raw, 413, "the request was refused");
}

#[test]
fn a_path_segment_that_is_not_utf8_is_a_json_400() {
    let d = TestDaemon::start();
    let auth = bearer();
    let raw = send(
        &d,
        "GET",
        "/api/tenants/acme%FF",
        &[("authorization", &auth)],
        Vec::new(),
    );
    check(&raw, 400, "percent-escape each path segment as UTF-8");
}

#[test]
fn a_wrong_method_is_a_json_405_with_allow() {
    let d = TestDaemon::start();
    let auth = bearer();
    let raw = send(
        &d,
        "DELETE",
        "/api/tenants",
        &[("authorization", &auth)],
        Vec::new(),
    );
    check(
        &raw,
        405,
        "DELETE /api/tenants is not allowed: this route takes GET",
    );
    let allow = raw
        .headers
        .get("allow")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(allow.contains("GET"), "Allow: {allow:?}");
}

#[test]
fn a_body_that_is_not_json_on_a_json_route_is_a_json_415() {
    let d = TestDaemon::start();
    let auth = bearer();
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        let raw = send(
            &d,
            "PUT",
            "/api/tenants/acme-fiber/plugins/twilio/config",
            &[("authorization", &auth), ("content-type", content_type)],
            b"{}".to_vec(),
        );
        check(&raw, 415, "send `Content-Type: application/json`");
    }
    let raw = send(
        &d,
        "POST",
        "/api/flows/tier-change",
        &[("authorization", &auth)],
        b"{}".to_vec(),
    );
    check(&raw, 415, "no Content-Type");
    // The key routes, which take the admin token, too.
    let admin = format!("Bearer {ADMIN_TOKEN}");
    let raw = send(
        &d,
        "POST",
        "/api/keys",
        &[("authorization", &admin), ("content-type", "text/plain")],
        br#"{"name": "x", "scopes": ["audit:read"]}"#.to_vec(),
    );
    check(&raw, 415, "send `Content-Type: application/json`");
}

#[test]
fn an_unknown_route_is_a_json_404() {
    let d = TestDaemon::start();
    let auth = bearer();
    for path in [
        "/api/nothing-here",
        "/nothing-here",
        "/api/tenants/acme-fiber/nothing",
    ] {
        let raw = send(&d, "GET", path, &[("authorization", &auth)], Vec::new());
        check(&raw, 404, "no such route");
    }
}

#[test]
fn a_missing_or_wrong_credential_is_a_json_401_with_www_authenticate() {
    let d = TestDaemon::start();
    for (headers, part) in [
        (&[][..], "needs `Authorization: Bearer"),
        (&[("authorization", "Bearer nope")][..], "not an API key"),
        (
            &[(
                "authorization",
                "Bearer ispk_abcdefghijklmnopqrstuvwxyz0123000000",
            )][..],
            "checksum does not match",
        ),
        (
            &[("authorization", "Basic dXNlcjpwYXNz")][..],
            "Bearer scheme",
        ),
    ] {
        let raw = send(&d, "GET", "/api/plugins", headers, Vec::new());
        check(&raw, 401, part);
        let challenge = raw
            .headers
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(challenge.starts_with("Bearer"), "{challenge:?}");
    }
}

#[test]
fn a_key_without_the_routes_scope_is_a_json_403_naming_it() {
    let d = TestDaemon::start();
    let (_, key) = create_key(&d, "reader", &[Scope::PluginsRead]);
    let auth = format!("Bearer {key}");
    let raw = send(
        &d,
        "GET",
        "/api/audit",
        &[("authorization", &auth)],
        Vec::new(),
    );
    check(&raw, 403, "lacks the scope `audit:read`");
}

#[test]
fn a_rate_limited_request_is_a_json_429() {
    let d = TestDaemon::start_with(
        |config| {
            config.rate_limits.default = Limit {
                per_second: 0.01,
                burst: 1,
            };
        },
        None,
    );
    let auth = bearer();
    let first = send(
        &d,
        "GET",
        "/api/daemon",
        &[("authorization", &auth)],
        Vec::new(),
    );
    assert_eq!(first.status, 200);
    let raw = send(
        &d,
        "GET",
        "/api/daemon",
        &[("authorization", &auth)],
        Vec::new(),
    );
    check(&raw, 429, "over its rate limit for `plugins:read`");
    assert!(raw.headers.contains_key("retry-after"));
}

#[test]
fn a_bad_query_value_is_a_json_400_naming_the_parameter() {
    let d = TestDaemon::start();
    let auth = bearer();
    for (query, part) in [("limit=lots", "limit"), ("since=monday", "since")] {
        let raw = send(
            &d,
            "GET",
            &format!("/api/audit?{query}"),
            &[("authorization", &auth)],
            Vec::new(),
        );
        check(&raw, 400, part);
    }
}

/// A request without a credential: method, path, headers, body, status.
type PublicCase<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], Vec<u8>, u16);

/// New-user trial (the public webhook 403 named a library's path): no
/// answer to a caller without a credential names a file, a library, or an
/// internal error chain (the HTTP library's or the host's own words).
#[test]
fn public_answers_name_no_files_libraries_or_internal_errors() {
    let d = TestDaemon::start();
    let workspace = plugkit_testkit::process::workspace_root();
    let leaks = [
        d.dir.path().display().to_string(),
        workspace.display().to_string(),
        ".so".to_owned(),
        "Failed to".to_owned(),
        "panicked".to_owned(),
        "::".to_owned(),
    ];
    let json = [("content-type", "application/json")];
    let cases: Vec<PublicCase<'_>> = vec![
        ("GET", "/nothing-here", &[], Vec::new(), 404),
        ("GET", "/api/tenants", &[], Vec::new(), 401),
        ("PUT", "/", &[], Vec::new(), 405),
        ("GET", "/webhooks/stripe/acme-fiber", &[], Vec::new(), 405),
        (
            "POST",
            "/webhooks/ghost/acme-fiber",
            &json,
            b"{}".to_vec(),
            404,
        ),
        (
            "POST",
            "/webhooks/stripe/acme-fiber",
            &json,
            b"{}".to_vec(),
            400,
        ),
        (
            "POST",
            "/webhooks/stripe/acme-fiber",
            &[
                ("content-type", "application/json"),
                ("stripe-signature", "t=1,v1=00"),
            ],
            b"{}".to_vec(),
            403,
        ),
        (
            "POST",
            "/webhooks/twilio/acme-fiber",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("x-twilio-signature", "bm90IGEgc2lnbmF0dXJl"),
            ],
            b"MessageSid=SM1&MessageStatus=sent".to_vec(),
            403,
        ),
        (
            "POST",
            "/webhooks/stripe/acme-fiber",
            &json,
            vec![b' '; 3 * 1024 * 1024],
            413,
        ),
    ];
    for (method, path, headers, body, status) in cases {
        let raw = send(&d, method, path, headers, body);
        let what = format!("{method} {path}");
        assert_eq!(raw.status, status, "{what}: {}", raw.body);
        let error = raw.body["error"].as_str().unwrap_or_default();
        assert!(!error.is_empty(), "{what}: {}", raw.body);
        for leak in &leaks {
            assert!(
                !raw.body.to_string().contains(leak.as_str()),
                "{what} names {leak:?}: {}",
                raw.body
            );
        }
        // Regression (new-user trial): the public 413 pointed providers at
        // the admin API's package uploads.
        assert!(
            !path.starts_with("/webhooks/") || !raw.body.to_string().contains("/api/"),
            "{what} names the admin API: {}",
            raw.body
        );
    }
}
