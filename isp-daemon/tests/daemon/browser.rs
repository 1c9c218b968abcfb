//! The admin page in a real headless browser: Debian's chromium driven by
//! chromedriver over the W3C WebDriver protocol (plain HTTP and JSON). The
//! page is loaded with `?token=`, a deactivate button is clicked, and the
//! change shows in the page and through the API.
//!
//! Needs `bash tests/peers/install-chromium.sh`; without it the test fails
//! and says so.

use std::cell::RefCell;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use plugkit_testkit::process::{find_program, free_tcp_port, wait_until};
use serde_json::{json, Value};

use crate::support::{TestDaemon, ADMIN_TOKEN};

/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver, killed on drop.
struct Driver {
    child: Child,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A WebDriver session, deleted (and its browser closed) on drop.
struct Session {
    agent: ureq::Agent,
    url: String,
}

impl Session {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.url);
        let result = match (method, body) {
            ("GET", _) => self.agent.get(&url).call(),
            ("DELETE", _) => self.agent.delete(&url).call(),
            (_, body) => self
                .agent
                .post(&url)
                .header("Content-Type", "application/json")
                .send(body.unwrap_or_else(|| json!({})).to_string()),
        };
        let mut response = result.unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The element matching `selector`, if there is one now.
    fn find(&self, selector: &str) -> Option<String> {
        let (status, body) = self.call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": selector})),
        );
        (status == 200)
            .then(|| body["value"][ELEMENT].as_str().map(str::to_owned))
            .flatten()
    }

    /// The visible text of the element matching `selector`, if there is one now.
    fn text_of(&self, selector: &str) -> Option<String> {
        let element = self.find(selector)?;
        let (status, body) = self.call("GET", &format!("/element/{element}/text"), None);
        (status == 200)
            .then(|| body["value"].as_str().map(str::to_owned))
            .flatten()
    }

    /// Waits for `selector` to have text satisfying `wanted`.
    fn wait_for_text(&self, what: &str, selector: &str, wanted: impl Fn(&str) -> bool) -> String {
        let last = RefCell::new(None);
        let found = wait_until(what, Duration::from_secs(60), None, || {
            let text = self.text_of(selector);
            let ok = text.as_deref().is_some_and(&wanted);
            *last.borrow_mut() = text;
            ok
        });
        if let Err(e) = found {
            let (_, source) = self.call("GET", "/source", None);
            panic!(
                "{e}; last text {:?}; page:\n{}",
                last.borrow(),
                source["value"].as_str().unwrap_or_default()
            );
        }
        last.into_inner().unwrap_or_default()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.agent.delete(&self.url).call();
    }
}

#[test]
fn the_admin_page_deactivates_a_plugin_in_a_real_browser() {
    let chromium = find_program("chromium", &[])
        .expect("chromium is not installed: run `bash tests/peers/install-chromium.sh`");
    let chromedriver = find_program("chromedriver", &[])
        .expect("chromedriver is not installed: run `bash tests/peers/install-chromium.sh`");
    let d = TestDaemon::start();
    let profile = tempfile::tempdir().expect("browser profile dir");

    let port = free_tcp_port().expect("free port");
    let child = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting chromedriver");
    let _driver = Driver { child };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into();
    let driver_url = format!("http://127.0.0.1:{port}");
    wait_until("chromedriver ready", Duration::from_secs(30), None, || {
        agent
            .get(&format!("{driver_url}/status"))
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .is_some_and(|v| v["value"]["ready"] == true)
    })
    .expect("chromedriver did not become ready");

    let capabilities = json!({"capabilities": {"alwaysMatch": {
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        },
    }}});
    let mut created = agent
        .post(&format!("{driver_url}/session"))
        .header("Content-Type", "application/json")
        .send(capabilities.to_string())
        .expect("creating a WebDriver session");
    let created: Value =
        serde_json::from_str(&created.body_mut().read_to_string().unwrap_or_default())
            .unwrap_or(Value::Null);
    let session_id = created["value"]["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("no session: {created}"))
        .to_owned();
    let session = Session {
        agent: agent.clone(),
        url: format!("{driver_url}/session/{session_id}"),
    };

    session.call(
        "POST",
        "/url",
        Some(json!({"url": format!("{}/?token={ADMIN_TOKEN}", d.base)})),
    );
    let state_cell = "td[data-state][data-tenant='bluesky-net'][data-plugin='twilio']";
    session.wait_for_text(
        "the page shows bluesky-net's twilio as active",
        state_cell,
        |t| t == "active",
    );
    // The token left the address bar; the page shows health and the graph.
    let (_, url) = session.call("GET", "/url", None);
    assert!(
        !url["value"]
            .as_str()
            .unwrap_or_default()
            .contains(ADMIN_TOKEN),
        "{url}"
    );
    // The page traded the admin token (which only manages keys) for a
    // session key with every scope, listed by its name.
    let keys = d
        .request("GET", "/api/keys", Some(ADMIN_TOKEN), None)
        .expect(200);
    let session_key = keys["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|k| k["name"] == "admin page session")
        .unwrap_or_else(|| panic!("no session key: {keys}"));
    assert_eq!(session_key["scopes"].as_array().map(Vec::len), Some(8));
    assert!(session_key["expires"].is_string(), "{session_key}");
    session.wait_for_text("health is shown", "#health-status", |t| t == "healthy");
    session.wait_for_text("the DOT graph is shown", "#graph-dot", |t| {
        t.starts_with("digraph") && t.contains("network-automation")
    });
    // Isolation per plugin: network-automation in its sandboxed child, the
    // others in-process.
    session.wait_for_text(
        "network-automation's isolation is shown",
        "td[data-isolation='network-automation']",
        |t| t.starts_with("process (pid ") && t.contains("0 restart(s)") && t.contains("memory: "),
    );
    session.wait_for_text(
        "twilio runs in-process",
        "td[data-isolation='twilio']",
        |t| t == "in-process",
    );

    let button = session
        .find("button[data-action='deactivate'][data-tenant='bluesky-net'][data-plugin='twilio']")
        .expect("a deactivate button for bluesky-net's twilio");
    let (status, body) = session.call("POST", &format!("/element/{button}/click"), Some(json!({})));
    assert_eq!(status, 200, "{body}");

    session.wait_for_text(
        "the page shows bluesky-net's twilio as inactive",
        state_cell,
        |t| t == "inactive",
    );
    assert!(session
        .find("button[data-action='activate'][data-tenant='bluesky-net'][data-plugin='twilio']")
        .is_some());
    session.wait_for_text("the page confirms", "#message", |t| {
        t == "twilio deactivated for bluesky-net."
    });
    // The API agrees, and nothing else changed.
    assert_eq!(d.state_of("bluesky-net", "twilio"), "inactive");
    assert_eq!(d.state_of("acme-fiber", "twilio"), "active");
    assert_eq!(d.state_of("corner-wifi", "twilio"), "active");
}
