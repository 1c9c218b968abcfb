//! API keys end to end (issue 16, parts 1 and 4): the scope walk over the
//! whole route table, an integrator's read-only key, rotation and
//! revocation, audit by key id, the case of the Bearer scheme, a corrupt
//! key file, and rate limits per key with their headers.

use std::time::Duration;

use isp_daemon::api;
use isp_daemon::auth::Need;
use isp_daemon::keys::{Scope, KEYS_FILE};
use isp_daemon::ratelimit::Limit;
use isp_daemon::Daemon;
use serde_json::{json, Value};

use crate::support::{test_config, test_options, Answer, TestDaemon, ADMIN_TOKEN, TOKEN};

/// A concrete path for a route of the table: tenant `acme-fiber`, plugin
/// `twilio`, key `key_nope`.
pub(crate) fn concrete(path: &str) -> String {
    path.replace("{tenant}", "acme-fiber")
        .replace("{plugin}", "twilio")
        .replace("{id}", "key_nope")
}

/// Creates a key with `scopes` through the API; answers (id, secret).
pub(crate) fn create_key(d: &TestDaemon, name: &str, scopes: &[Scope]) -> (String, String) {
    let made = d
        .request(
            "POST",
            "/api/keys",
            Some(ADMIN_TOKEN),
            Some(&json!({"name": name, "scopes": scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>()}).to_string()),
        )
        .expect(201);
    let id = made["key"]["id"].as_str().expect("an id").to_owned();
    let secret = made["secret"].as_str().expect("a secret").to_owned();
    (id, secret)
}

fn body_for(method: &str) -> Option<&'static str> {
    (method != "GET" && method != "DELETE").then_some("{}")
}

#[test]
fn every_route_refuses_a_key_without_its_scope_naming_it_and_admits_a_key_with_it() {
    let d = TestDaemon::start();
    let routes = api::routes();
    assert!(routes.len() >= 20, "{} routes", routes.len());
    for (method, path, need) in routes {
        let url = concrete(&path);
        let method = method.as_str();
        match need {
            Need::Scope(scope) => {
                let others: Vec<Scope> = Scope::ALL.into_iter().filter(|s| *s != scope).collect();
                let (_, lacking) = create_key(&d, &format!("all but {scope}"), &others);
                let (_, holding) = create_key(&d, &format!("only {scope}"), &[scope]);
                d.request(method, &url, Some(&lacking), body_for(method))
                    .expect_error(403, &format!("lacks the scope `{scope}`"));
                let answer = d.request(method, &url, Some(&holding), body_for(method));
                assert_ne!(answer.status, 401, "{method} {url}: {}", answer.text);
                assert!(
                    !(answer.status == 403 && answer.text.contains("scope")),
                    "{method} {url} with `{scope}`: {}",
                    answer.text
                );
                // The admin token opens no scoped route.
                d.request(method, &url, Some(ADMIN_TOKEN), body_for(method))
                    .expect_error(403, "the admin token only manages API keys");
            }
            Need::AdminToken => {
                d.request(method, &url, Some(TOKEN), body_for(method))
                    .expect_error(403, "API keys cannot manage API keys");
                let answer = d.request(method, &url, Some(ADMIN_TOKEN), body_for(method));
                assert!(
                    ![401, 403].contains(&answer.status),
                    "{method} {url} with the admin token: {}",
                    answer.text
                );
            }
        }
    }
}

#[test]
fn an_integrators_read_only_key_reads_cannot_write_and_stops_after_rotation_and_revocation() {
    let d = TestDaemon::start();
    let made = d
        .request(
            "POST",
            "/api/keys",
            Some(ADMIN_TOKEN),
            Some(r#"{"name": "billing sync", "scopes": ["tenants:read", "plugins:read"]}"#),
        )
        .expect(201);
    let id = made["key"]["id"].as_str().expect("id").to_owned();
    let secret = made["secret"].as_str().expect("secret").to_owned();
    assert!(
        secret.starts_with("ispk_") && secret.len() == 41,
        "{secret}"
    );

    // It reads, and a write is a 403 naming the scope it needs.
    d.request("GET", "/api/tenants", Some(&secret), None)
        .expect(200);
    d.request(
        "POST",
        "/api/tenants/acme-fiber/plugins/twilio/deactivate",
        Some(&secret),
        None,
    )
    .expect_error(403, "lacks the scope `tenants:write`");
    assert_eq!(d.state_of("acme-fiber", "twilio"), "active");

    // The list is masked: the hint, never the secret, and the last use.
    let list = d.request("GET", "/api/keys", Some(ADMIN_TOKEN), None);
    assert!(!list.text.contains(&secret[5..]), "{}", list.text);
    let listed = list.expect(200)["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["id"] == id.as_str()).cloned())
        .expect("listed");
    assert_eq!(
        listed["hint"],
        format!("ispk_…{}", &secret[secret.len() - 4..])
    );
    assert_eq!(listed["scopes"], json!(["plugins:read", "tenants:read"]));
    assert_eq!(listed["state"], "active");
    assert!(listed["last_used"].is_string(), "{listed}");
    let file = std::fs::read_to_string(d.dir.path().join("state").join(KEYS_FILE)).expect("file");
    assert!(
        !file.contains(&secret[5..]),
        "the key file holds the secret"
    );

    // Rotation: both secrets work during the grace period, then only the new one.
    let rotated = d
        .request(
            "POST",
            &format!("/api/keys/{id}/rotate"),
            Some(ADMIN_TOKEN),
            Some(r#"{"grace_secs": 1}"#),
        )
        .expect(200);
    let new_secret = rotated["secret"].as_str().expect("new secret").to_owned();
    assert_eq!(rotated["key"]["id"], id.as_str());
    assert_eq!(
        rotated["key"]["previous_secrets"].as_array().map(Vec::len),
        Some(1)
    );
    d.request("GET", "/api/tenants", Some(&new_secret), None)
        .expect(200);
    std::thread::sleep(Duration::from_millis(2100));
    d.request("GET", "/api/tenants", Some(&secret), None)
        .expect_error(401, "replaced by a rotation");
    d.request("GET", "/api/tenants", Some(&new_secret), None)
        .expect(200);

    // Revocation stops the key at once, and says so.
    d.request(
        "DELETE",
        &format!("/api/keys/{id}"),
        Some(ADMIN_TOKEN),
        None,
    )
    .expect(200);
    let refused = d
        .request("GET", "/api/tenants", Some(&new_secret), None)
        .expect_error(401, "was revoked");
    assert!(refused["error"].as_str().unwrap_or_default().contains(&id));
    d.request("POST", "/api/keys/key_nope/rotate", Some(ADMIN_TOKEN), None)
        .expect_error(404, "no API key `key_nope`");
    // Regression (new-user trial): an expiry of u64::MAX seconds was
    // stored, and every later list answered a panic. Refused; the list
    // still answers.
    d.request(
        "POST",
        "/api/keys",
        Some(ADMIN_TOKEN),
        Some(
            &json!({"name": "forever", "scopes": ["tenants:read"], "expires_in_secs": u64::MAX})
                .to_string(),
        ),
    )
    .expect_error(422, "at most 315360000 (10 years)");
    let listed = d
        .request("GET", "/api/keys", Some(ADMIN_TOKEN), None)
        .expect(200);
    assert!(!listed.to_string().contains("forever"), "{listed}");

    // Each change of the key is in the audit log, by the admin token, without a secret.
    let audit = d.get("/api/audit");
    assert!(!audit.text.contains(&secret[5..]) && !audit.text.contains(&new_secret[5..]));
    let changes: Vec<String> = audit.expect(200)["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["action"] == "api_key" && e["detail"].as_str().unwrap_or("").contains(&id))
        .map(|e| {
            assert_eq!(e["actor"], "admin-token", "{e}");
            e["detail"]
                .as_str()
                .unwrap_or_default()
                .split(' ')
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(changes, ["created", "rotated", "revoked"]);
}

#[test]
fn a_key_that_expired_is_refused_with_when() {
    let d = TestDaemon::start();
    let made = d
        .request(
            "POST",
            "/api/keys",
            Some(ADMIN_TOKEN),
            Some(r#"{"name": "short", "scopes": ["audit:read"], "expires_in_secs": 1}"#),
        )
        .expect(201);
    let secret = made["secret"].as_str().expect("secret").to_owned();
    d.request("GET", "/api/audit", Some(&secret), None)
        .expect(200);
    std::thread::sleep(Duration::from_millis(2100));
    d.request("GET", "/api/audit", Some(&secret), None)
        .expect_error(401, "expired at");
    for (body, part) in [
        (r#"{"name": "x", "scopes": []}"#, "at least one"),
        (
            r#"{"name": "x", "scopes": ["root"]}"#,
            "unknown scope \"root\"",
        ),
        (
            r#"{"name": "x", "scopes": ["audit:read"], "expires_in_secs": 0}"#,
            "above 0",
        ),
        (r#"{"scopes": ["audit:read"]}"#, "missing field `name`"),
    ] {
        let answer = d.request("POST", "/api/keys", Some(ADMIN_TOKEN), Some(body));
        assert!(
            [400, 422].contains(&answer.status),
            "{body}: {}",
            answer.text
        );
        answer_error_contains(&answer, part);
    }
}

fn answer_error_contains(answer: &Answer, part: &str) {
    let error = answer.json()["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(error.contains(part), "{error:?} lacks {part:?}");
}

#[test]
fn changes_are_audited_with_the_key_id_and_never_its_secret() {
    let d = TestDaemon::start();
    let (id, secret) = create_key(&d, "operator", &[Scope::TenantsWrite, Scope::AuditRead]);
    d.request(
        "POST",
        "/api/tenants/acme-fiber/plugins/twilio/deactivate",
        Some(&secret),
        None,
    )
    .expect(200);
    let audit = d.request("GET", "/api/audit?limit=1", Some(&secret), None);
    assert!(!audit.text.contains(&secret[5..]));
    let entry = audit.expect(200)["entries"][0].clone();
    assert_eq!(entry["actor"], id.as_str(), "{entry}");
    assert_eq!(entry["action"], "deactivate", "{entry}");
    for file in std::fs::read_dir(d.dir.path().join("state")).expect("state dir") {
        let path = file.expect("entry").path();
        if let Ok(text) = std::fs::read_to_string(&path) {
            assert!(
                !text.contains(&secret[5..]),
                "{} holds the secret",
                path.display()
            );
        }
    }
}

#[test]
fn the_bearer_scheme_is_matched_in_any_case() {
    let d = TestDaemon::start();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let response = agent
            .get(&format!("{}/api/tenants", d.base))
            .header("Authorization", format!("{scheme} {TOKEN}"))
            .call()
            .expect("GET /api/tenants");
        assert_eq!(response.status().as_u16(), 200, "{scheme}");
    }
    let response = agent
        .get(&format!("{}/api/tenants", d.base))
        .header("Authorization", format!("Basic {TOKEN}"))
        .call()
        .expect("GET /api/tenants");
    assert_eq!(response.status().as_u16(), 401);
}

#[test]
fn a_corrupt_key_file_stops_the_start_naming_the_file_and_keeps_every_state_file() {
    let d = TestDaemon::start();
    let dir = std::sync::Arc::clone(&d.dir);
    create_key(&d, "kept", &[Scope::PluginsRead]);
    drop(d);
    let state = dir.path().join("state");
    let key_file = state.join(KEYS_FILE);
    std::fs::write(&key_file, b"{\"format\": 1, \"keys\": [ trunc").expect("corrupt it");
    let before = snapshot(&state);

    let error = Daemon::start(test_config(dir.path()), test_options(None))
        .map(|_| ())
        .expect_err("a corrupt key file stops the start");
    let text = format!("{error:#}");
    assert!(text.contains(&key_file.display().to_string()), "{text}");
    assert!(text.contains("move it aside"), "{text}");
    assert_eq!(snapshot(&state), before, "a state file changed");

    // Moved aside, the daemon starts; the admin token makes new keys.
    std::fs::rename(&key_file, state.join("api-keys.json.corrupt")).expect("move aside");
    let d = TestDaemon::start_in(dir, |_| {}, None);
    d.request("GET", "/api/keys", Some(ADMIN_TOKEN), None)
        .expect(200);
}

/// Every regular file in `dir` (not recursive) with its bytes.
fn snapshot(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("state dir")
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).expect("read"),
            )
        })
        .collect();
    files.sort();
    files
}

/// Sends GET `path` with `key`; answers the status, the rate-limit headers and the body.
fn limited_get(d: &TestDaemon, path: &str, key: &str) -> (u16, [Option<u64>; 4], Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent
        .get(&format!("{}{path}", d.base))
        .header("Authorization", format!("Bearer {key}"))
        .call()
        .expect("GET");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
    };
    let headers = [
        header("ratelimit-limit"),
        header("ratelimit-remaining"),
        header("ratelimit-reset"),
        header("retry-after"),
    ];
    let status = response.status().as_u16();
    let body = serde_json::from_str(&response.body_mut().read_to_string().unwrap_or_default())
        .unwrap_or(Value::Null);
    (status, headers, body)
}

#[test]
fn a_key_over_its_rate_limit_gets_429_with_the_headers_and_another_key_does_not() {
    let d = TestDaemon::start_with(
        |config| {
            config.rate_limits.scopes.insert(
                Scope::AuditRead,
                Limit {
                    per_second: 0.05,
                    burst: 3,
                },
            );
        },
        None,
    );
    let (id, busy) = create_key(&d, "busy", &[Scope::AuditRead, Scope::TenantsRead]);
    let (_, calm) = create_key(&d, "calm", &[Scope::AuditRead]);
    for remaining in [2, 1, 0] {
        let (status, [limit, left, reset, retry], _) = limited_get(&d, "/api/audit", &busy);
        assert_eq!(status, 200);
        assert_eq!((limit, left, retry), (Some(3), Some(remaining), None));
        assert!(reset.is_some_and(|r| r <= 60), "{reset:?}");
    }
    let (status, [limit, left, reset, retry], body) = limited_get(&d, "/api/audit", &busy);
    assert_eq!(status, 429, "{body}");
    assert_eq!((limit, left), (Some(3), Some(0)));
    assert!(retry.is_some_and(|r| (1..=20).contains(&r)), "{retry:?}");
    assert_eq!(reset, Some(60));
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&id) && error.contains("audit:read"),
        "{error}"
    );
    // Another key, and the same key under another scope, are not limited.
    let (status, [_, left, ..], _) = limited_get(&d, "/api/audit", &calm);
    assert_eq!((status, left), (200, Some(2)));
    let (status, [limit, ..], _) = limited_get(&d, "/api/tenants", &busy);
    assert_eq!((status, limit), (200, Some(200)));
}

/// New-user trial: each admin page visit with `?token=` made a new 12 h
/// session key, so the key list grew with every visit.
#[test]
fn page_visits_with_the_admin_token_reuse_one_session_key() {
    let d = TestDaemon::start();
    let mut secrets = std::collections::BTreeSet::new();
    for visit in 0..25 {
        let answer = d.request("POST", "/api/session", Some(ADMIN_TOKEN), None);
        let status = answer.status;
        let session = answer.json();
        assert_eq!(status, if visit == 0 { 201 } else { 200 }, "{session}");
        assert_eq!(session["reused"], visit > 0, "{session}");
        secrets.insert(session["secret"].as_str().expect("a secret").to_owned());
    }
    assert_eq!(secrets.len(), 1, "{secrets:?}");
    let keys = d
        .request("GET", "/api/keys", Some(ADMIN_TOKEN), None)
        .expect(200);
    let sessions: Vec<&Value> = keys["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|k| k["page_session"] == true)
        .collect();
    assert_eq!(sessions.len(), 1, "{keys:#}");
    assert_eq!(sessions[0]["name"], "admin page session");
    // The session key opens every scoped route; an API key cannot make one.
    let secret = secrets.first().expect("one");
    d.request("GET", "/api/audit", Some(secret), None)
        .expect(200);
    d.request("POST", "/api/session", Some(TOKEN), None)
        .expect_error(403, "API keys cannot manage API keys");
}

/// New-user trial: a 403 for a missing scope lacked the `RateLimit-*`
/// headers that the key's other answers carry.
#[test]
fn a_refused_answer_to_a_known_key_carries_the_rate_limit_headers() {
    let d = TestDaemon::start_with(
        |config| {
            config.rate_limits.scopes.insert(
                Scope::AuditRead,
                Limit {
                    per_second: 0.05,
                    burst: 2,
                },
            );
        },
        None,
    );
    let (_, reader) = create_key(&d, "tenants only", &[Scope::TenantsRead]);
    // 403 (missing scope), counted against the route's scope.
    for remaining in [1, 0] {
        let (status, [limit, left, reset, retry], body) = limited_get(&d, "/api/audit", &reader);
        assert_eq!(status, 403, "{body}");
        assert_eq!(
            (limit, left, retry),
            (Some(2), Some(remaining), None),
            "{body}"
        );
        assert!(reset.is_some(), "{body}");
    }
    // Over the limit: 429 with Retry-After, refused or not.
    let (status, [limit, left, _, retry], body) = limited_get(&d, "/api/audit", &reader);
    assert_eq!(status, 429, "{body}");
    assert_eq!((limit, left), (Some(2), Some(0)));
    assert!(retry.is_some_and(|r| r >= 1), "{retry:?}");
    // A 404 from the handler and a 400 for a path that is not UTF-8 carry them too.
    for path in ["/api/tenants/no-such-tenant", "/api/tenants/%FF"] {
        let (status, [limit, left, reset, _], body) = limited_get(&d, path, &reader);
        assert!((400..500).contains(&status), "{path}: {status} {body}");
        assert!(
            limit.is_some() && left.is_some() && reset.is_some(),
            "{path}: {body}"
        );
    }
}
