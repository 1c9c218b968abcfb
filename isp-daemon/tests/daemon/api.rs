//! The admin API, endpoint by endpoint, on a daemon running the signed
//! reference plugins under `require` with the Twilio and Stripe stand-ins:
//! auth, listings, per-tenant activation, configuration (redacted on read,
//! validated and never half-applied on write), health, metrics, the
//! dependency graph, reloads, the audit log, the flow endpoints, and bad
//! input answered with a 4xx JSON error naming the problem.

use serde_json::{json, Value};

use crate::support::{resign, TestDaemon, TOKEN, TOKEN_ID};

fn plugin_states(overview: &Value) -> Vec<(String, String)> {
    overview["plugins"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["plugin"].as_str().unwrap_or_default().to_owned(),
                p["state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

#[test]
fn every_api_route_answers_401_without_the_bearer_token_and_changes_nothing() {
    let d = TestDaemon::start();
    let audit_before = d.get("/api/audit").expect(200)["entries"]
        .as_array()
        .map_or(0, Vec::len);
    // Every route of the scope table, the key routes included.
    for (method, path, _) in isp_daemon::api::routes() {
        let (method, path) = (method.as_str(), crate::keys::concrete(&path));
        let body = (method != "GET" && method != "DELETE").then_some("{}");
        for token in [None, Some("wrong-token"), Some("")] {
            let answer = d.request(method, &path, token, body);
            assert_eq!(
                answer.status, 401,
                "{method} {path} with {token:?}: {}",
                answer.text
            );
            assert!(
                answer.json()["error"].as_str().is_some(),
                "{method} {path}: {}",
                answer.text
            );
        }
    }
    assert_eq!(d.state_of("acme-fiber", "twilio"), "active");
    let audit_after = d.get("/api/audit").expect(200)["entries"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(
        audit_before, audit_after,
        "a refused request was audited or acted on"
    );
    // The page itself carries no data and needs no token.
    let page = d.request("GET", "/", None, None);
    assert_eq!(page.status, 200);
    assert!(
        page.content_type.starts_with("text/html"),
        "{}",
        page.content_type
    );
    assert!(page.text.contains("isp-daemon admin"));
    assert!(!page.text.contains(TOKEN));
}

#[test]
fn plugins_lists_the_available_and_the_installed_plugins_with_their_signatures() {
    let d = TestDaemon::start();
    let body = d.get("/api/plugins").expect(200);
    let mut available: Vec<(String, String, bool)> = body["available"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["id"].as_str().unwrap_or_default().to_owned(),
                p["required_tier"].as_str().unwrap_or_default().to_owned(),
                p["loaded"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    available.sort();
    assert_eq!(
        available,
        [
            (
                "network-automation".to_owned(),
                "enterprise".to_owned(),
                true
            ),
            ("stripe".to_owned(), "pro".to_owned(), true),
            ("twilio".to_owned(), "free".to_owned(), true),
        ]
    );
    let installed = body["installed"].as_array().cloned().unwrap_or_default();
    assert_eq!(installed.len(), 3, "{body}");
    for plugin in &installed {
        assert_eq!(plugin["state"], "active", "{plugin}");
        assert_eq!(plugin["signature"]["status"], "verified", "{plugin}");
        // The demo runs network-automation in a sandboxed child and the
        // others in-process (`null`: no child process to show).
        assert!(plugin.get("isolation").is_some(), "{plugin}");
        if plugin["id"] == "network-automation" {
            assert_eq!(plugin["isolation"]["mode"], "process", "{plugin}");
            assert_eq!(plugin["isolation"]["serving"], true, "{plugin}");
            assert!(plugin["isolation"]["pid"].is_u64(), "{plugin}");
            assert!(
                plugin["isolation"]["sandbox"]
                    .as_array()
                    .is_some_and(|layers| layers
                        .iter()
                        .any(|l| l.as_str().is_some_and(|l| l.starts_with("memory: ")))),
                "{plugin}"
            );
        } else {
            assert!(plugin["isolation"].is_null(), "{plugin}");
        }
    }
    let twilio = installed
        .iter()
        .find(|p| p["id"] == "twilio")
        .expect("twilio installed");
    assert_eq!(
        twilio["tenants"],
        json!(["acme-fiber", "bluesky-net", "corner-wifi"])
    );
    assert_eq!(body["problems"], json!([]));
}

#[test]
fn tenants_show_each_plugins_state_per_tier_and_the_providers() {
    let d = TestDaemon::start();
    let body = d.get("/api/tenants").expect(200);
    let tenants = body["tenants"].as_array().cloned().unwrap_or_default();
    let by_id = |id: &str| {
        tenants
            .iter()
            .find(|t| t["tenant"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("tenant {id} missing from {body}"))
    };
    let acme = by_id("acme-fiber");
    assert_eq!(acme["tier"], "enterprise");
    assert_eq!(
        plugin_states(&acme),
        pairs(&[
            ("network-automation", "active"),
            ("stripe", "active"),
            ("twilio", "active")
        ])
    );
    assert_eq!(
        acme["providers"],
        json!({"payment": "stripe", "communication": "twilio", "network-automation": "network-automation"})
    );
    let bluesky = by_id("bluesky-net");
    assert_eq!(
        plugin_states(&bluesky),
        pairs(&[
            ("network-automation", "waiting"),
            ("stripe", "active"),
            ("twilio", "active")
        ])
    );
    let corner = by_id("corner-wifi");
    assert_eq!(corner["tier"], "free");
    assert_eq!(
        plugin_states(&corner),
        pairs(&[
            ("network-automation", "not_entitled"),
            ("stripe", "waiting"),
            ("twilio", "active")
        ])
    );
    assert_eq!(corner["providers"]["payment"], Value::Null);
    // One tenant alone, and an unknown one.
    assert_eq!(
        d.get("/api/tenants/corner-wifi").expect(200)["tier"],
        "free"
    );
    let missing = d
        .get("/api/tenants/no-such-isp")
        .expect_error(404, "no tenant `no-such-isp`");
    assert_eq!(missing["tenant"], "no-such-isp");
}

#[test]
fn deactivate_and_activate_change_one_tenant_only_and_are_audited() {
    let d = TestDaemon::start();
    let after = d
        .post_empty("/api/tenants/bluesky-net/plugins/twilio/deactivate")
        .expect(200);
    assert!(plugin_states(&after).contains(&("twilio".to_owned(), "inactive".to_owned())));
    assert_eq!(d.state_of("bluesky-net", "twilio"), "inactive");
    assert_eq!(d.state_of("acme-fiber", "twilio"), "active");
    assert!(!d
        .daemon
        .host()
        .plugin("twilio")
        .expect("twilio")
        .is_active_for("bluesky-net"));

    // Deactivating again: nothing to deactivate.
    let again = d
        .post_empty("/api/tenants/bluesky-net/plugins/twilio/deactivate")
        .expect_error(409, "has not requested plugin `twilio`");
    assert_eq!(again["tenant"], "bluesky-net");
    assert_eq!(again["plugin"], "twilio");

    // Activating without a body uses the tenant's configured settings.
    d.post_empty("/api/tenants/bluesky-net/plugins/twilio/activate")
        .expect(200);
    assert_eq!(d.state_of("bluesky-net", "twilio"), "active");

    let audit = d.get("/api/audit?limit=5").expect(200);
    let entries = audit["entries"].as_array().cloned().unwrap_or_default();
    let mine: Vec<(String, String)> = entries
        .iter()
        .filter(|e| e["actor"] == TOKEN_ID && e["tenant"] == "bluesky-net")
        .map(|e| {
            (
                e["action"].as_str().unwrap_or_default().to_owned(),
                e["outcome"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(mine, pairs(&[("deactivate", "ok"), ("activate", "ok")]));
}

#[test]
fn activation_above_the_tier_unknown_names_and_bad_bodies_get_4xx_json_errors() {
    let d = TestDaemon::start();
    let refused = d
        .post_empty("/api/tenants/corner-wifi/plugins/network-automation/activate")
        .expect_error(403, "needs tier `enterprise`");
    assert_eq!(refused["tenant"], "corner-wifi");
    assert_eq!(refused["plugin"], "network-automation");
    assert_eq!(
        d.state_of("corner-wifi", "network-automation"),
        "not_entitled"
    );

    d.post_empty("/api/tenants/ghost/plugins/twilio/activate")
        .expect_error(404, "no tenant `ghost`");
    let unknown = d
        .post_empty("/api/tenants/acme-fiber/plugins/fax/activate")
        .expect_error(404, "no plugin `fax`");
    assert_eq!(unknown["plugin"], "fax");
    d.request(
        "POST",
        "/api/tenants/acme-fiber/plugins/twilio/activate",
        Some(TOKEN),
        Some("{not json"),
    )
    .expect_error(400, "not a valid JSON object");
    d.request("PATCH", "/api/tenants/acme-fiber", Some(TOKEN), Some("{}"))
        .expect_error(
            405,
            "PATCH /api/tenants/acme-fiber is not allowed: this route takes GET",
        );
    d.get("/api/nothing-here")
        .expect_error(404, "no such route");
}

#[test]
fn configuration_reads_redact_sensitive_and_secret_values() {
    let d = TestDaemon::start();
    let standin = d.daemon.standins().twilio().expect("twilio stand-in");
    let answer = d.get("/api/tenants/acme-fiber/plugins/twilio/config");
    assert!(
        !answer.text.contains(standin.auth_token()),
        "the auth token leaked: {}",
        answer.text
    );
    let view = answer.expect(200);
    assert_eq!(view["config"]["auth_token"], "<redacted>");
    // Set through a PLUGKIT_TWILIO_ACCOUNT_SID variable (the stand-in's): shown, not sensitive.
    assert_eq!(view["config"]["account_sid"], standin.account_sid());
    assert_eq!(view["config"]["on_call_number"], "+14155550100");
    assert_eq!(view["active"], true);
    assert!(
        view["sources"]["on_call_number"]
            .as_str()
            .is_some_and(|s| s.contains("overrides")),
        "{view}"
    );

    let stripe = d.daemon.standins().stripe().expect("stripe stand-in");
    let answer = d.get("/api/tenants/acme-fiber/plugins/stripe/config");
    assert!(
        !answer.text.contains(stripe.secret_key()),
        "{}",
        answer.text
    );
    assert!(
        !answer.text.contains(stripe.webhook_secret()),
        "{}",
        answer.text
    );
    let view = answer.expect(200);
    assert_eq!(view["config"]["secret_key"], "<redacted>");
    assert_eq!(view["config"]["max_amount_minor"], 100000);

    d.get("/api/tenants/corner-wifi/plugins/network-automation/config")
        .expect_error(404, "has not requested plugin `network-automation`");
}

#[test]
fn a_refused_configuration_update_changes_nothing() {
    let d = TestDaemon::start();
    let path = "/api/tenants/acme-fiber/plugins/twilio/config";
    let before = d.get(path).expect(200);
    let overrides = |extra: Value| {
        let mut base = json!({
            "account_sid": "${env:TWILIO_ACCOUNT_SID}",
            "auth_token": "${env:TWILIO_AUTH_TOKEN}",
            "from_number": "+15005550006",
        });
        if let (Value::Object(b), Value::Object(e)) = (&mut base, extra) {
            b.extend(e);
        }
        base
    };

    // Schema: an unknown key and a wrong type, both reported at once.
    let invalid = d
        .put(
            path,
            &overrides(json!({"on_call": "+1", "timeout_ms": "fast"})),
        )
        .expect_error(422, "has 2 problems");
    let message = invalid["error"].as_str().unwrap_or_default();
    assert!(
        message.contains("`on_call`") && message.contains("`timeout_ms`"),
        "{message}"
    );
    assert_eq!(invalid["tenant"], "acme-fiber");
    assert_eq!(invalid["plugin"], "twilio");

    // A sensitive value written in the clear is refused, and not echoed.
    let plaintext = d
        .put(path, &overrides(json!({"auth_token": "hunter2-plaintext"})))
        .expect_error(422, "must be a secret reference");
    assert!(!plaintext.to_string().contains("hunter2-plaintext"));

    // The plugin itself refuses the new configuration: rolled back.
    d.put(path, &overrides(json!({"on_call_number": "555-0100"})))
        .expect_error(422, "on_call_number");

    // A PUT replaces the whole set: one that leaves out `from_number` and
    // `on_call_number` fails activation, and says which keys it dropped and
    // to send the full set.
    let partial = d
        .put(path, &json!({"timeout_ms": 5000}))
        .expect_error(422, "A PUT replaces the tenant's whole set of overrides");
    let message = partial["error"].as_str().unwrap_or_default();
    assert!(
        message.contains("`from_number`")
            && message.contains("`on_call_number`")
            && message.contains("GET /api/tenants/acme-fiber/plugins/twilio/config first"),
        "{message}"
    );

    // Not an object at all.
    d.put(path, &json!(["on_call_number"]))
        .expect_error(400, "JSON object");

    let after = d.get(path).expect(200);
    assert_eq!(before, after, "a refused update changed the configuration");
    assert_eq!(d.state_of("acme-fiber", "twilio"), "active");
    // The running configuration is the old one: the on-call number is paged.
    let report = d
        .post(
            "/api/flows/device-alert",
            &json!({"tenant": "acme-fiber", "device": "olt-1", "severity": "warning", "message": "fan"}),
        )
        .expect(200);
    assert_eq!(report["ok"], true, "{report}");
    let sent = d
        .daemon
        .standins()
        .twilio()
        .expect("stand-in")
        .sent_messages();
    assert_eq!(sent.last().map(|m| m.to.as_str()), Some("+14155550100"));
}

#[test]
fn a_valid_configuration_update_applies_at_once() {
    let d = TestDaemon::start();
    let path = "/api/tenants/acme-fiber/plugins/twilio/config";
    let view = d
        .put(
            path,
            &json!({
                "account_sid": "${env:TWILIO_ACCOUNT_SID}",
                "auth_token": "${env:TWILIO_AUTH_TOKEN}",
                "from_number": "+15005550006",
                "on_call_number": "+14155550199",
            }),
        )
        .expect(200);
    assert_eq!(view["config"]["on_call_number"], "+14155550199");
    assert_eq!(view["config"]["auth_token"], "<redacted>");
    // The stand-in's PLUGKIT_TWILIO_* variables win over the tenant's
    // account_sid and auth_token: the answer says so, key by key.
    let overridden: Vec<(&str, &str)> = view["overridden"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| {
            (
                o["key"].as_str().unwrap_or_default(),
                o["variable"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        overridden,
        [
            ("account_sid", "PLUGKIT_TWILIO_ACCOUNT_SID"),
            ("auth_token", "PLUGKIT_TWILIO_AUTH_TOKEN"),
        ],
        "{view}"
    );
    assert_eq!(view["overridden"][0]["layer"], "environment");
    d.post(
        "/api/flows/device-alert",
        &json!({"tenant": "acme-fiber", "device": "olt-9", "severity": "critical", "message": "los"}),
    )
    .expect(200);
    let sent = d
        .daemon
        .standins()
        .twilio()
        .expect("stand-in")
        .sent_messages();
    let page = sent.last().expect("an SMS");
    assert_eq!(page.to, "+14155550199");
    assert!(
        page.body.contains("olt-9") && page.body.contains("los"),
        "{}",
        page.body
    );
    let audit = d.get("/api/audit?limit=1").expect(200);
    assert_eq!(audit["entries"][0]["action"], "config_change");
}

#[test]
fn health_metrics_and_the_daemon_summary_cover_every_plugin() {
    let d = TestDaemon::start();
    let health = d.get("/api/health").expect(200);
    assert_eq!(health["status"], "healthy");
    let mut plugins: Vec<String> = health["plugins"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| p["plugin"].as_str().unwrap_or_default().to_owned())
        .collect();
    plugins.sort();
    assert_eq!(plugins, ["network-automation", "stripe", "twilio"]);

    d.post(
        "/api/flows/device-alert",
        &json!({"tenant": "acme-fiber", "device": "olt-1", "severity": "info", "message": "reboot"}),
    )
    .expect(200);
    let metrics = d.get("/api/metrics").expect(200);
    for plugin in ["network-automation", "stripe", "twilio"] {
        assert!(metrics["plugins"][plugin]["calls"].is_u64(), "{metrics}");
    }
    assert!(
        metrics["plugins"]["twilio"]["calls"].as_u64().unwrap_or(0) >= 1,
        "{metrics}"
    );

    let info = d.get("/api/daemon").expect(200);
    assert_eq!(info["trust"], "require (1 key)");
    assert_eq!(info["tiers"], json!(["free", "pro", "enterprise"]));
    assert!(info["standins"]["twilio"].as_str().is_some(), "{info}");
}

#[test]
fn the_dependency_graph_is_served_as_json_and_dot() {
    let d = TestDaemon::start();
    let graph = d.get("/api/graph").expect(200);
    let mut nodes: Vec<(String, String)> = graph["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| {
            (
                n["id"].as_str().unwrap_or_default().to_owned(),
                n["state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    nodes.sort();
    assert_eq!(
        nodes,
        pairs(&[
            ("network-automation", "healthy"),
            ("stripe", "healthy"),
            ("twilio", "healthy")
        ])
    );
    let start: Vec<Value> = graph["start_order"].as_array().cloned().unwrap_or_default();
    let mut stop: Vec<Value> = graph["stop_order"].as_array().cloned().unwrap_or_default();
    stop.reverse();
    assert_eq!(start, stop);
    assert_eq!(graph["problems"], json!([]));

    let dot = d.get("/api/graph.dot");
    assert_eq!(dot.status, 200);
    assert!(
        dot.content_type.starts_with("text/vnd.graphviz"),
        "{}",
        dot.content_type
    );
    assert!(dot.text.starts_with("digraph"), "{}", dot.text);
    for plugin in ["twilio", "stripe", "network-automation"] {
        assert!(dot.text.contains(plugin), "{}", dot.text);
    }
}

#[test]
fn reload_swaps_nothing_for_an_unchanged_library_and_is_audited() {
    let d = TestDaemon::start();
    let report = d.post_empty("/api/plugins/stripe/reload").expect(200);
    assert_eq!(report["plugin"], "stripe");
    assert_eq!(report["outcome"], "unchanged", "{report}");
    assert_eq!(d.state_of("acme-fiber", "stripe"), "active");
    let audit = d.get("/api/audit?limit=1").expect(200);
    let entry = &audit["entries"][0];
    assert_eq!(entry["action"], "reload");
    assert_eq!(entry["plugin"], "stripe");
    assert_eq!(entry["actor"], TOKEN_ID);

    let missing = d
        .post_empty("/api/plugins/fax/reload")
        .expect_error(404, "no plugin `fax` is installed");
    assert_eq!(missing["plugin"], "fax");
}

/// Regression (issue 14): the admin reload goes through start-up's folder
/// check, and a `plugin.toml` changed alone is applied once signed for,
/// refused while its signature does not bind it.
#[test]
fn reload_checks_the_folder_as_startup_does_and_applies_a_signed_manifest_change() {
    let d = TestDaemon::start();
    let folder = d.dir.path().join("plugins").join("stripe");
    let manifest = folder.join("plugin.toml");
    let original = std::fs::read_to_string(&manifest).expect("manifest");
    let reload = |d: &TestDaemon| d.post_empty("/api/plugins/stripe/reload").expect(200);

    // The library says 0.1.0, the manifest 0.2.0: start-up's refusal.
    std::fs::write(
        &manifest,
        original.replace("version = \"0.1.0\"", "version = \"0.2.0\""),
    )
    .expect("write");
    let report = reload(&d);
    assert_eq!(report["outcome"], "rolled_back", "{report}");
    assert_eq!(report["step"], "validate", "{report}");
    let error = report["error"].as_str().expect("error");
    assert!(
        error.contains("was built as `stripe` 0.1.0, but its manifest")
            && error.contains("describes `stripe` 0.2.0"),
        "{error}"
    );
    assert_eq!(d.state_of("acme-fiber", "stripe"), "active");

    // A permission added to the manifest, not signed for: refused.
    let widened = original.replace(
        "permissions = [\"network:outbound\", \"secrets:read\"]",
        "permissions = [\"network:outbound\", \"secrets:read\", \"metrics:write\"]",
    );
    assert_ne!(
        widened, original,
        "the stripe manifest's permissions line moved"
    );
    std::fs::write(&manifest, &widened).expect("write");
    let report = reload(&d);
    assert_eq!(report["outcome"], "rolled_back", "{report}");
    assert_eq!(report["step"], "load", "{report}");
    assert_eq!(report["library_changed"], false, "{report}");

    // Signed for: applied, and the audit log says what changed.
    resign(&folder);
    let report = reload(&d);
    assert_eq!(report["outcome"], "swapped", "{report}");
    assert_eq!(
        report["manifest_changes"],
        json!(["permissions: network:outbound, secrets:read → network:outbound, secrets:read, metrics:write"]),
        "{report}"
    );
    assert_eq!(d.state_of("acme-fiber", "stripe"), "active");
    let audit = d.get("/api/audit?limit=1").expect(200);
    let detail = audit["entries"][0]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.starts_with("manifest applied: permissions"),
        "{audit}"
    );

    let again = reload(&d);
    assert_eq!(again["outcome"], "unchanged", "{again}");
}

#[test]
fn the_audit_log_is_served_oldest_first_and_refuses_a_bad_limit() {
    let d = TestDaemon::start();
    let audit = d.get("/api/audit").expect(200);
    let entries = audit["entries"].as_array().cloned().unwrap_or_default();
    let first: Vec<(String, String)> = entries
        .iter()
        .take(3)
        .map(|e| {
            (
                e["action"].as_str().unwrap_or_default().to_owned(),
                e["plugin"].as_str().unwrap_or("-").to_owned(),
            )
        })
        .collect();
    assert_eq!(first.len(), 3);
    assert!(
        first.iter().all(|(action, _)| action == "install"),
        "{first:?}"
    );
    assert!(entries
        .iter()
        .any(|e| e["action"] == "add_tenant" && e["tenant"] == "corner-wifi"));
    assert!(audit["path"]
        .as_str()
        .is_some_and(|p| p.ends_with("audit.jsonl")));
    assert_eq!(
        d.get("/api/audit?limit=2").expect(200)["entries"]
            .as_array()
            .map_or(0, Vec::len),
        2
    );
    d.get("/api/audit?limit=lots")
        .expect_error(400, "whole number");
    d.get("/api/audit?since=1")
        .expect_error(400, "unknown field `since`");
}

#[test]
fn flow_endpoints_check_their_input() {
    let d = TestDaemon::start();
    let customer = |change: Value| {
        let mut c = json!({
            "tenant": "acme-fiber", "customer_id": "c-1", "name": "Ada",
            "phone": "+14155550123", "plan": "fiber", "monthly_price_minor": 4999, "currency": "usd"
        });
        if let (Value::Object(b), Value::Object(e)) = (&mut c, change) {
            b.extend(e);
        }
        c
    };
    d.request("POST", "/api/flows/new-customer", Some(TOKEN), Some("nope"))
        .expect_error(400, "not a valid new customer");
    d.post("/api/flows/new-customer", &json!({"tenant": "acme-fiber"}))
        .expect_error(400, "`customer_id` is missing; `name` is missing");
    d.post(
        "/api/flows/new-customer",
        &customer(json!({"colour": "red"})),
    )
    .expect_error(400, "`colour` is not a field of a new customer");
    // Every missing field at once, with the shape to send.
    let missing = d
        .post("/api/flows/device-alert", &json!({"tenant": "acme-fiber"}))
        .expect_error(
            400,
            "`device` is missing; `severity` is missing; `message` is missing",
        );
    assert!(
        missing["error"]
            .as_str()
            .is_some_and(|e| e.contains("Expected {\"tenant\": string")),
        "{missing}"
    );
    d.post(
        "/api/flows/new-customer",
        &customer(json!({"tenant": "ghost"})),
    )
    .expect_error(404, "no tenant `ghost`");
    let bad = d
        .post(
            "/api/flows/new-customer",
            &customer(json!({"phone": "0800 123"})),
        )
        .expect_error(422, "`phone`");
    assert_eq!(bad["tenant"], "acme-fiber");
    d.post(
        "/api/flows/device-alert",
        &json!({"tenant": "acme-fiber", "device": "x", "severity": "apocalyptic", "message": "m"}),
    )
    .expect_error(422, "`severity`");
    d.post(
        "/api/flows/tier-change",
        &json!({"tenant": "acme-fiber", "tier": "platinum"}),
    )
    .expect_error(422, "unknown tier `platinum`");
    d.post(
        "/api/flows/tier-change",
        &json!({"tenant": "ghost", "tier": "pro"}),
    )
    .expect_error(404, "no tenant `ghost`");
    // None of it reached a stand-in.
    assert!(d
        .daemon
        .standins()
        .twilio()
        .expect("stand-in")
        .sent_messages()
        .is_empty());
    assert!(d
        .daemon
        .standins()
        .stripe()
        .expect("stand-in")
        .requests()
        .is_empty());
}

#[test]
fn a_new_customer_through_the_api_is_charged_welcomed_and_activated() {
    let d = TestDaemon::start();
    let report = d
        .post(
            "/api/flows/new-customer",
            &json!({
                "tenant": "bluesky-net", "customer_id": "blue-7", "name": "Grace Hopper",
                "phone": "+14155550124", "plan": "cable-300", "monthly_price_minor": 2999,
                "currency": "usd"
            }),
        )
        .expect(200);
    assert_eq!(report["ok"], true, "{report}");
    let lines: Vec<String> = report["lines"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l.as_str().map(str::to_owned))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("[stripe] bluesky-net: charged 29.99 USD (pi_")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("[twilio] bluesky-net: welcome SMS to +14155550124")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l
            == "[network] bluesky-net: skipped: tier pro has no network-automation provider; the device is not provisioned"),
        "{lines:#?}"
    );
    let sent = d
        .daemon
        .standins()
        .twilio()
        .expect("stand-in")
        .sent_messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, "+14155550124");
    assert_eq!(
        sent[0].body,
        "Welcome to bluesky-net, Grace Hopper! Your cable-300 service is being activated."
    );
}

#[test]
fn a_free_tenant_gets_a_clear_skip_for_payment_and_a_tier_change_activates_stripe() {
    let d = TestDaemon::start();
    let customer = json!({
        "tenant": "corner-wifi", "customer_id": "cw-9", "name": "Alan Turing",
        "phone": "+14155550125", "plan": "wifi-50", "monthly_price_minor": 1499, "currency": "usd"
    });
    let report = d.post("/api/flows/new-customer", &customer).expect(200);
    assert_eq!(report["ok"], true, "{report}");
    assert!(
        report["lines"].as_array().into_iter().flatten().any(|l| {
            l
            == "[payment] corner-wifi: skipped: tier free has no payment provider; no charge taken"
        }),
        "{report}"
    );
    assert!(d
        .daemon
        .standins()
        .stripe()
        .expect("stand-in")
        .requests()
        .is_empty());

    let upgrade = d
        .post(
            "/api/flows/tier-change",
            &json!({"tenant": "corner-wifi", "tier": "pro"}),
        )
        .expect(200);
    let lines = upgrade["lines"].to_string();
    assert!(
        lines.contains("[platform] corner-wifi: tier free → pro"),
        "{lines}"
    );
    assert!(
        lines.contains(
            "[stripe] corner-wifi: activated: its configured settings were waiting for tier pro"
        ),
        "{lines}"
    );
    assert_eq!(d.state_of("corner-wifi", "stripe"), "active");
    let mut again = customer.clone();
    again["customer_id"] = json!("cw-10");
    let report = d.post("/api/flows/new-customer", &again).expect(200);
    assert!(
        report["lines"]
            .to_string()
            .contains("[stripe] corner-wifi: charged 14.99 USD"),
        "{report}"
    );

    let downgrade = d
        .post(
            "/api/flows/tier-change",
            &json!({"tenant": "corner-wifi", "tier": "free"}),
        )
        .expect(200);
    assert!(
        downgrade["lines"]
            .to_string()
            .contains("[stripe] corner-wifi: deactivated"),
        "{downgrade}"
    );
    assert_eq!(d.state_of("corner-wifi", "stripe"), "not_entitled");
    let unchanged = d
        .post(
            "/api/flows/tier-change",
            &json!({"tenant": "corner-wifi", "tier": "free"}),
        )
        .expect(200);
    assert!(
        unchanged["lines"]
            .to_string()
            .contains("already on tier free"),
        "{unchanged}"
    );
}

#[test]
fn releasing_a_quarantine_is_an_audited_operator_action_for_isolated_plugins_only() {
    let d = TestDaemon::start();
    // network-automation runs isolated in the demo configuration.
    let released = d
        .post_empty("/api/plugins/network-automation/release")
        .expect(200);
    assert_eq!(released["plugin"], "network-automation", "{released}");
    assert!(released["was_quarantined"].is_null(), "{released}");
    assert_eq!(released["isolation"]["serving"], true, "{released}");
    let audit = d.get("/api/audit").expect(200);
    assert!(
        audit["entries"].as_array().into_iter().flatten().any(|e| {
            e["action"] == "release_quarantine"
                && e["plugin"] == "network-automation"
                && e["outcome"] == "ok"
        }),
        "{audit}"
    );
    // It still serves after the release.
    assert_eq!(d.state_of("acme-fiber", "network-automation"), "active");

    // In-process plugins are never quarantined: a conflict that says why.
    d.post_empty("/api/plugins/twilio/release")
        .expect_error(409, "runs in-process");
    d.post_empty("/api/plugins/no-such-plugin/release")
        .expect_error(404, "no plugin `no-such-plugin` is loaded");
}
