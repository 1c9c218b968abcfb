//! The demo script end to end, in-process: every flow against the Twilio
//! and Stripe stand-ins and a real snmpd and sshd as the customer's device,
//! checked by what the stand-ins received; state that survives a restart;
//! and hot reload of the plugin directory (`--watch`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use isp_daemon::peers::Devices;
use isp_daemon::{demo, live};
use plugkit_testkit::process::wait_until;
use plugkit_testkit::snmpd::{self, Snmpd};
use plugkit_testkit::sshd::Sshd;
use serde_json::json;

use crate::support::TestDaemon;

fn has(lines: &[String], needle: &str) -> bool {
    lines.iter().any(|l| l.contains(needle))
}

#[test]
fn the_demo_runs_every_flow_against_the_standins_and_real_devices() {
    let snmpd = Snmpd::shared().expect("snmpd");
    let sshd = Sshd::shared().expect("sshd");
    let d = TestDaemon::start_with(|_| {}, Some(Devices::of(Some(snmpd), Some(sshd))));
    let lines = Mutex::new(Vec::new());
    let reports = demo::run(&d.daemon, &|line| {
        lines.lock().expect("lines").push(line.to_owned());
    });
    let lines = lines.into_inner().expect("lines");
    let outcomes: Vec<(&str, &str, bool)> = reports
        .iter()
        .map(|r| (r.flow, r.tenant.as_str(), r.ok))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("new-customer", "acme-fiber", true),
            ("new-customer", "bluesky-net", true),
            ("new-customer", "corner-wifi", true),
            ("new-customer", "bluesky-net", false),
            ("device-alert", "acme-fiber", true),
            ("tier-change", "corner-wifi", true),
            ("new-customer", "corner-wifi", true),
        ],
        "{lines:#?}"
    );

    // The demo configuration runs network-automation in a sandboxed child
    // (issue 13), and its SNMP and SSH steps above went through it.
    let startup = d.daemon.startup_lines();
    assert!(
        startup.iter().any(|l| l.starts_with(
            "[host] network-automation runs isolated in a sandboxed child process (pid "
        )),
        "{startup:#?}"
    );
    assert!(
        d.daemon
            .host()
            .isolation_status("network-automation")
            .is_some_and(|s| s.serving),
        "network-automation is served by its child"
    );

    // Stripe received exactly the three first charges that passed the filter.
    let stripe = d.daemon.standins().stripe().expect("stripe stand-in");
    let charges: Vec<String> = stripe
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/payment_intents")
        .map(|r| {
            assert_eq!(r.status, 200, "{r:?}");
            assert!(r.body.contains("currency=usd"), "{}", r.body);
            assert!(r.body.contains("payment_method=pm_card_visa"), "{}", r.body);
            r.body
                .split('&')
                .find_map(|p| p.strip_prefix("amount="))
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(charges, ["4999", "2999", "1999"], "{lines:#?}");

    // Twilio: welcome texts to the customers' phones and the on-call page.
    let twilio = d.daemon.standins().twilio().expect("twilio stand-in");
    let sent: Vec<(String, String)> = twilio
        .sent_messages()
        .into_iter()
        .map(|m| (m.to, m.body))
        .collect();
    let expected_to = [
        "+14155550123",
        "+14155550124",
        "+14155550125",
        "+14155550100",
        "+14155550127",
    ];
    assert_eq!(
        sent.iter().map(|(to, _)| to.as_str()).collect::<Vec<_>>(),
        expected_to,
        "{sent:#?}"
    );
    assert_eq!(
        sent[0].1,
        "Welcome to acme-fiber, Ada Lovelace! Your fiber-1000 service is being activated."
    );
    assert!(sent[3].1.contains("CRITICAL"), "{}", sent[3].1);
    assert!(sent[3].1.contains("olt-7.acme-fiber.net"), "{}", sent[3].1);
    assert!(
        sent[3].1.contains("optical power below -27 dBm"),
        "{}",
        sent[3].1
    );
    assert!(
        !sent.iter().any(|(to, _)| to == "+14155550126"),
        "the vetoed customer was welcomed"
    );

    // What the output says each plugin did.
    for needle in [
        "[stripe] acme-fiber: charged 49.99 USD (pi_",
        "[twilio] acme-fiber: welcome SMS to +14155550123",
        &format!(
            "[network-automation] acme-fiber: SNMP GET {}: sysName=\"{}\"",
            snmpd.address(),
            snmpd::SYS_NAME
        ),
        &format!(
            "[network-automation] acme-fiber: SSH 127.0.0.1:{} `echo provisioned plan fiber-1000 \
             for customer acme-1001` → exit 0: provisioned plan fiber-1000 for customer acme-1001",
            sshd.port()
        ),
        "[hooks] acme-fiber: service.activated → network-automation",
        "[network] bluesky-net: skipped: tier pro has no network-automation provider",
        "[payment] corner-wifi: skipped: tier free has no payment provider",
        "[stripe] bluesky-net: vetoed: stripe: payment of 29900 usd for customer blue-2002 exceeds",
        "[isp] bluesky-net: FAILED: customer blue-2002 is not activated",
        "[twilio] acme-fiber: paged on-call +14155550100 by SMS about the critical alert on olt-7.acme-fiber.net",
        "[platform] corner-wifi: tier free → pro",
        "[stripe] corner-wifi: charged 19.99 USD (pi_",
        "[stand-in] Stripe stand-in: 3 payment intent requests",
        "[stand-in] Twilio stand-in: 5 messages accepted",
    ] {
        assert!(has(&lines, needle), "no line with {needle:?} in {lines:#?}");
    }
}

#[test]
fn a_restart_restores_the_persisted_state_over_the_configured_one() {
    let first = TestDaemon::start();
    first
        .post_empty("/api/tenants/bluesky-net/plugins/twilio/deactivate")
        .expect(200);
    first
        .post(
            "/api/flows/tier-change",
            &json!({"tenant": "corner-wifi", "tier": "pro"}),
        )
        .expect(200);
    let graph = first.get("/api/graph").expect(200);
    let mut expected_stop: Vec<String> = graph["start_order"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    expected_stop.reverse();
    let dir = Arc::clone(&first.dir);
    let stopped = first.stop();
    assert_eq!(
        stopped[0],
        format!(
            "[host] stopping plugins in reverse dependency order: {}",
            expected_stop.join(", ")
        )
    );
    let stopped_in_order: Vec<&str> = stopped
        .iter()
        .filter_map(|l| l.strip_prefix("[host] stopped "))
        .collect();
    assert_eq!(stopped_in_order, expected_stop);

    let second = TestDaemon::start_in(dir, |_| {}, None);
    let startup = second.daemon.startup_lines();
    assert!(
        startup
            .iter()
            .any(|l| l == "[platform] corner-wifi: keeps its persisted tier pro (configured: free)"),
        "{startup:#?}"
    );
    assert_eq!(second.state_of("bluesky-net", "twilio"), "inactive");
    assert_eq!(second.state_of("corner-wifi", "stripe"), "active");
    assert_eq!(
        second.state_of("acme-fiber", "network-automation"),
        "active"
    );
    assert_eq!(
        second.state_of("bluesky-net", "network-automation"),
        "waiting"
    );
    // The first run's shutdown is in the audit log: one entry per tenant served.
    let audit = second.get("/api/audit").expect(200);
    let stops = audit["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| {
            e["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("daemon stopping"))
        })
        .count();
    // acme-fiber: 3, bluesky-net: stripe, corner-wifi: twilio and stripe.
    assert_eq!(stops, 6, "{audit}");
}

#[test]
fn watch_mode_stops_a_removed_plugin_and_restores_it_when_it_comes_back() {
    let d = TestDaemon::start();
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = Arc::clone(&seen);
    live::watch(
        &d.daemon,
        Arc::new(move |line: &str| sink.lock().expect("lines").push(line.to_owned())),
    )
    .expect("watch");
    let saw = |needle: &str| {
        let lines = Arc::clone(&seen);
        let needle = needle.to_owned();
        wait_until(&needle.clone(), Duration::from_secs(60), None, move || {
            lines
                .lock()
                .expect("lines")
                .iter()
                .any(|l| l.contains(&needle))
        })
    };
    let plugins = d.dir.path().join("plugins");
    let parked = d.dir.path().join("parked-network-automation");
    std::fs::rename(plugins.join("network-automation"), &parked).expect("remove the folder");
    saw("[reload] network-automation stopped: its folder was removed").expect("stopped");
    assert_eq!(d.state_of("acme-fiber", "network-automation"), "inactive");
    assert!(d.daemon.host().state("network-automation").is_none());

    std::fs::rename(&parked, plugins.join("network-automation")).expect("bring it back");
    saw("[reload] network-automation 0.1.0 started").expect("started");
    wait_until(
        "acme-fiber gets network-automation back",
        Duration::from_secs(30),
        None,
        || d.state_of("acme-fiber", "network-automation") == "active",
    )
    .expect("restored for acme-fiber");
    assert_eq!(d.state_of("bluesky-net", "network-automation"), "waiting");
}

/// Regression (issue 14): the plugin directory moved away and back left the
/// watcher deaf without a word. Now health says live reload is degraded
/// while it is gone, and the watch is re-armed when it is back.
#[test]
fn watch_mode_reports_live_reload_degraded_while_the_plugin_directory_is_gone() {
    let d = TestDaemon::start();
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = Arc::clone(&seen);
    live::watch(
        &d.daemon,
        Arc::new(move |line: &str| sink.lock().expect("lines").push(line.to_owned())),
    )
    .expect("watch");
    let saw = |needle: &str| {
        let lines = Arc::clone(&seen);
        let needle = needle.to_owned();
        wait_until(&needle.clone(), Duration::from_secs(60), None, move || {
            lines
                .lock()
                .expect("lines")
                .iter()
                .any(|l| l.contains(&needle))
        })
    };
    let health = d.get("/api/health").expect(200);
    assert_eq!(health["live_reload"]["status"], "healthy", "{health}");

    let plugins = d.dir.path().join("plugins");
    let parked = d.dir.path().join("parked-plugins");
    std::fs::rename(&plugins, &parked).expect("move the plugin directory away");
    saw(&format!("[reload] {} is gone", plugins.display())).expect("gone");
    saw("[reload] network-automation stopped: its folder was removed").expect("stopped");
    let health = d.get("/api/health").expect(200);
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["live_reload"]["status"], "degraded", "{health}");
    let message = health["live_reload"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("is gone; live reload resumes when it is created again"),
        "{health}"
    );

    std::fs::rename(&parked, &plugins).expect("bring it back");
    saw(&format!("[reload] {} is back", plugins.display())).expect("back");
    if let Err(e) = saw("[reload] network-automation 0.1.0 started") {
        panic!("{e}: {:#?}", seen.lock().expect("lines"));
    }
    wait_until(
        "acme-fiber gets network-automation back",
        Duration::from_secs(30),
        None,
        || d.state_of("acme-fiber", "network-automation") == "active",
    )
    .expect("restored for acme-fiber");
    let health = d.get("/api/health").expect(200);
    assert_eq!(health["live_reload"]["status"], "healthy", "{health}");
}
