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

impl Session {
    /// Waits until `selector` matches an element; returns it.
    fn wait_for(&self, what: &str, selector: &str) -> String {
        let found = RefCell::new(None);
        let waited = wait_until(what, Duration::from_secs(60), None, || {
            *found.borrow_mut() = self.find(selector);
            found.borrow().is_some()
        });
        if let Err(e) = waited {
            let (_, source) = self.call("GET", "/source", None);
            panic!(
                "{e}; page:\n{}",
                source["value"].as_str().unwrap_or_default()
            );
        }
        found.into_inner().unwrap_or_default()
    }

    /// Clicks the element matching `selector` (waiting for it).
    fn click(&self, selector: &str) {
        let element = self.wait_for(&format!("{selector} to click"), selector);
        let (status, body) = self.call(
            "POST",
            &format!("/element/{element}/click"),
            Some(json!({})),
        );
        assert_eq!(status, 200, "clicking {selector}: {body}");
    }

    /// Replaces the text of the field matching `selector` by typing `text`
    /// (WebDriver key codes such as Enter, U+E007, are keys).
    fn type_into(&self, selector: &str, text: &str) {
        let element = self.wait_for(&format!("{selector} to type into"), selector);
        let (status, body) = self.call(
            "POST",
            &format!("/element/{element}/clear"),
            Some(json!({})),
        );
        assert_eq!(status, 200, "clearing {selector}: {body}");
        let (status, body) = self.call(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        );
        assert_eq!(status, 200, "typing into {selector}: {body}");
    }

    /// Sends `keys` to the element matching `selector` without clearing it.
    fn press(&self, selector: &str, keys: &str) {
        let element = self.wait_for(&format!("{selector} for keys"), selector);
        let (status, body) = self.call(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({ "text": keys })),
        );
        assert_eq!(status, 200, "keys to {selector}: {body}");
    }

    /// Runs `script` in the page; its return value.
    fn script(&self, script: &str) -> Value {
        let (status, body) = self.call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        );
        assert_eq!(status, 200, "script {script}: {body}");
        body["value"].clone()
    }

    fn set_window(&self, width: u32, height: u32) {
        let (status, body) = self.call(
            "POST",
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        );
        assert_eq!(status, 200, "resizing: {body}");
    }

    /// Saves a PNG of the viewport to `path`.
    fn screenshot(&self, path: &std::path::Path) {
        use base64::Engine as _;
        let (status, body) = self.call("GET", "/screenshot", None);
        assert_eq!(status, 200, "screenshot: {body}");
        let png = base64::engine::general_purpose::STANDARD
            .decode(body["value"].as_str().unwrap_or_default())
            .expect("the screenshot is base64");
        std::fs::create_dir_all(path.parent().expect("a folder")).expect("target folder");
        std::fs::write(path, png).expect("writing the screenshot");
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.agent.delete(&self.url).call();
    }
}

/// A browser on the admin page: chromedriver, its session and the
/// browser's profile folder, all gone on drop (session first).
struct Browser {
    session: Session,
    _driver: Driver,
    _profile: tempfile::TempDir,
}

impl std::ops::Deref for Browser {
    type Target = Session;
    fn deref(&self) -> &Session {
        &self.session
    }
}

/// Starts chromedriver and a headless chromium on `d`'s admin page (`?token=`).
fn open_page(d: &TestDaemon) -> Browser {
    let chromium = find_program("chromium", &[])
        .expect("chromium is not installed: run `bash tests/peers/install-chromium.sh`");
    let chromedriver = find_program("chromedriver", &[])
        .expect("chromedriver is not installed: run `bash tests/peers/install-chromium.sh`");
    let profile = tempfile::tempdir().expect("browser profile dir");
    let port = free_tcp_port().expect("free port");
    let child = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting chromedriver");
    let driver = Driver { child };
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
                "--window-size=1280,2400",
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
    Browser {
        session,
        _driver: driver,
        _profile: profile,
    }
}

#[test]
fn the_admin_page_deactivates_a_plugin_in_a_real_browser() {
    let d = TestDaemon::start();
    let session = open_page(&d);
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
    assert_eq!(
        session_key["scopes"].as_array().map(Vec::len),
        Some(isp_daemon::keys::Scope::ALL.len())
    );
    assert!(session_key["expires"].is_string(), "{session_key}");
    session.wait_for_text("health is shown", "#health-status", |t| t == "healthy");
    session.wait_for(
        "the graph is drawn",
        "#graph-svg g[data-node='network-automation']",
    );
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

/// Where the round trip's screenshots go, for people to look at.
fn screenshot_path(name: &str) -> std::path::PathBuf {
    plugkit_testkit::process::workspace_root()
        .join("target")
        .join(name)
}

/// Issue 17: install → configure → activate → remove through the page, and
/// a removal refused because of a dependent; keyboard and narrow window.
#[test]
fn the_admin_page_installs_configures_activates_and_removes_a_plugin() {
    use crate::packages::{bounded_tenant_echo_manifest, dependent_manifest, package_tar, Signing};

    let d = TestDaemon::start();
    let packages = tempfile::tempdir().expect("package folder");
    let echo = packages.path().join("tenant-echo-0.1.0.tar");
    let dependent = packages.path().join("dep-b-0.1.0.tar");
    std::fs::write(
        &echo,
        package_tar(
            &bounded_tenant_echo_manifest(),
            "fixture-tenant-echo",
            Signing::TestKey,
        ),
    )
    .expect("package");
    std::fs::write(
        &dependent,
        package_tar(&dependent_manifest(), "fixture-dep-b", Signing::TestKey),
    )
    .expect("package");
    let page = open_page(&d);
    page.wait_for_text("the page is loaded", "#message", |t| t == "Up to date.");

    // Every field has a label, every action is a real button.
    let unlabelled = page.script(
        "return [...document.querySelectorAll('input, select, textarea')]\
         .filter(i => !(i.id && document.querySelector('label[for=\"' + i.id + '\"]')))\
         .map(i => i.outerHTML)",
    );
    assert_eq!(unlabelled, json!([]), "fields without a label");

    // Install: upload the package file.
    page.type_into("#package-file", &echo.display().to_string());
    page.click("#upload-button");
    page.wait_for_text("the install is confirmed", "#message", |t| {
        t.starts_with("tenant-echo 0.1.0 installed (signed by key")
    });
    let state = "td[data-state][data-tenant='corner-wifi'][data-plugin='tenant-echo']";
    let why = "td[data-why][data-tenant='corner-wifi'][data-plugin='tenant-echo']";
    page.wait_for_text("tenant-echo is inactive", state, |t| t == "inactive");
    page.wait_for_text("and says why", why, |t| t == "not requested");
    page.wait_for_text(
        "bluesky's network-automation says why it is not entitled",
        "td[data-why][data-tenant='bluesky-net'][data-plugin='network-automation']",
        |t| !t.is_empty(),
    );
    page.wait_for("the catalog lists it", "tr[data-available='tenant-echo']");

    // Configure it for corner-wifi: a literal secret and a wrong type are
    // refused next to their fields, in the API's words.
    page.click("button[data-settings][data-tenant='corner-wifi'][data-plugin='tenant-echo']");
    page.type_into("#field-api_key", "plain-text-secret");
    page.wait_for_text(
        "the form shows max_calls' range",
        "label[for='field-max_calls']",
        |t| t.contains("from 1 to 60"),
    );
    page.type_into("#field-max_calls", "ten");
    page.click("#settings-save");
    let api_key_error = page.wait_for_text(
        "the api_key error is next to the field",
        "[data-field-error='api_key']",
        |t| t.contains("must be a secret reference"),
    );
    page.wait_for_text(
        "the max_calls error is next to the field",
        "[data-field-error='max_calls']",
        |t| t.contains("must be of type integer"),
    );
    let message = page.text_of("#message").unwrap_or_default();
    assert!(
        message.contains(&api_key_error),
        "{message:?} / {api_key_error:?}"
    );
    assert_eq!(d.state_of("corner-wifi", "tenant-echo"), "inactive");

    // A secret reference, then Enter in the field (the keyboard saves).
    page.type_into("#field-max_calls", "3");
    page.type_into("#field-api_key", "${env:ISP_TEST_ADMIN_TOKEN}");
    page.press("#field-api_key", "\u{E007}");
    page.wait_for_text("activated with these settings", "#message", |t| {
        t == "tenant-echo activated for corner-wifi with these settings."
    });
    page.wait_for_text("the state changed", state, |t| t == "active");
    page.wait_for_text(
        "the reference is shown as a reference",
        "[data-field-status='api_key']",
        |t| t == "set — reference ${env:ISP_TEST_ADMIN_TOKEN}",
    );
    assert_eq!(d.state_of("corner-wifi", "tenant-echo"), "active");
    let view = d
        .get("/api/tenants/corner-wifi/plugins/tenant-echo/config")
        .expect(200);
    assert_eq!(view["config"]["max_calls"], 3, "{view}");

    // Calls for the charts, after the sampler's first point for tenant-echo:
    // answered ones and refused ones (an unknown method).
    wait_until(
        "the sampler has a point for tenant-echo",
        Duration::from_secs(30),
        None,
        || {
            d.get("/api/metrics/series").json()["plugins"]["tenant-echo"]
                .as_array()
                .is_some_and(|s| s.len() >= 2)
        },
    )
    .expect("the sampler runs every 5 s");
    let echo_plugin = d
        .daemon
        .host()
        .plugin("tenant-echo")
        .expect("tenant-echo runs");
    for i in 0..40 {
        let method = if i % 8 == 0 {
            "no-such-method"
        } else {
            "config"
        };
        let _ = echo_plugin.invoke("corner-wifi", method, b"");
    }
    drop(echo_plugin);

    // A dependent: its removal comes first.
    page.type_into("#package-file", &dependent.display().to_string());
    page.click("#upload-button");
    page.wait_for_text("dep-b is installed", "#message", |t| {
        t.starts_with("dep-b 0.1.0 installed")
    });
    page.wait_for("the graph draws dep-b", "#graph-svg g[data-node='dep-b']");
    page.click("#refresh");
    page.wait_for(
        "a chart per plugin",
        "svg[data-chart='tenant-echo'] rect.bar-errors",
    );
    // Under the chart, the same calls by tenant: the 5 unknown-method errors
    // were corner-wifi's.
    page.wait_for_text(
        "tenant-echo's errors for corner-wifi",
        "[data-metrics='tenant-echo'] tr[data-tenant='corner-wifi'] td.error",
        |t| t == "5",
    );
    // The whole page in one picture: the window as tall as the page.
    page.click("#settings-close");
    // Focus goes back to the button that opened the form.
    let back = page.script(
        "return document.activeElement.matches(\"button[data-settings][data-tenant='corner-wifi']\
         [data-plugin='tenant-echo']\")",
    );
    assert_eq!(back, json!(true), "focus after closing the settings");
    let height = page
        .script("return document.documentElement.scrollHeight")
        .as_u64()
        .unwrap_or(2400)
        .clamp(900, 8000);
    page.set_window(1280, u32::try_from(height).unwrap_or(2400) + 140);
    page.script("window.scrollTo(0, 0); return null");
    let wide = screenshot_path("isp-daemon-admin-page.png");
    page.screenshot(&wide);
    eprintln!("screenshot: {}", wide.display());

    page.click("button[data-remove='tenant-echo']");
    page.wait_for_text("the removal is refused", "#message", |t| {
        t.contains("cannot be removed: installed plugins depend on it: `dep-b`")
    });
    page.wait_for(
        "tenant-echo is still installed",
        "tr[data-installed='tenant-echo']",
    );
    page.wait_for_text("the refusal is audited", "#audit-table", |t| {
        t.contains("remove") && t.contains("refused")
    });

    page.click("button[data-remove='dep-b']");
    page.wait_for_text("dep-b is removed", "#message", |t| t == "dep-b removed.");
    page.click("button[data-remove='tenant-echo']");
    page.wait_for_text("tenant-echo is removed", "#message", |t| {
        t == "tenant-echo removed."
    });
    assert!(page.find("tr[data-installed='tenant-echo']").is_none());
    assert!(!d
        .get("/api/plugins")
        .expect(200)
        .to_string()
        .contains("\"tenant-echo\""));

    // Readable on a narrow window: nothing wider than the screen.
    page.set_window(400, 900);
    page.wait_for_text("still up", "#message", |t| t == "tenant-echo removed.");
    let overflow = page.script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth",
    );
    assert_eq!(overflow, json!(0), "the page is wider than a narrow window");
    page.script("window.scrollTo(0, 0); return null");
    let narrow = screenshot_path("isp-daemon-admin-page-narrow.png");
    page.screenshot(&narrow);
    eprintln!("screenshot: {}", narrow.display());
}
