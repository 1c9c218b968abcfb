//! The outbox's tests: event filters, delivery order, the delivery log, endpoint URLs.
use super::*;

fn endpoint(events: &[&str]) -> Endpoint {
    Endpoint {
        id: "e".into(),
        url: "http://127.0.0.1/".into(),
        events: events.iter().map(|e| (*e).to_owned()).collect(),
        secrets: Vec::new(),
        disabled: None,
        source: "api".into(),
        created_at: String::new(),
    }
}

#[test]
fn event_filters_take_exact_names_prefixes_and_everything() {
    let check = |events: &[&str], event_type: &str, expected: bool| {
        assert_eq!(
            endpoint(events).wants(event_type),
            expected,
            "{events:?} {event_type}"
        );
    };
    check(&["*"], "plugin.installed", true);
    check(&["plugin.*"], "plugin.installed", true);
    check(&["plugin.*"], "pluginx.installed", false);
    check(&["plugin.*"], "reload.swapped", false);
    check(&["reload.swapped"], "reload.swapped", true);
    check(&["reload.swapped"], "reload.rolled_back", false);
}

/// Deliveries queued in one millisecond, and after a reopen (a
/// restart), come out in the order they were queued, not by message id
/// (`msg_audit_10000_…` sorts before `msg_audit_9999_…` as text).
#[test]
fn pending_deliveries_come_out_in_the_order_they_were_queued_across_a_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let open = || Outbox::open(dir.path(), DeliveryConfig::default()).expect("outbox");
    let outbox = open();
    outbox
        .create("e", "http://127.0.0.1:9/", vec!["*".to_owned()], None)
        .expect("endpoint");
    let ids = ["msg_audit_9999_a", "msg_audit_10000_b", "msg_0_c"];
    for id in ids {
        outbox.emit_as(id, "plugin.installed", Value::Null);
    }
    drop(outbox);
    let outbox = open();
    outbox.emit_as("msg_audit_1_d", "plugin.installed", Value::Null);
    let order: Vec<String> = outbox.pending().into_iter().map(|d| d.message_id).collect();
    assert_eq!(order, [ids[0], ids[1], ids[2], "msg_audit_1_d"]);
}

#[test]
fn a_delivery_log_keeps_one_older_file_when_it_grows_past_the_limit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("e.jsonl");
    for i in 0..5 {
        append_rotating(&path, &format!("line {i}\n"), 14).expect("append");
    }
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    assert_eq!(read(&path), "line 4\n");
    assert_eq!(read(&rotated(&path)), "line 2\nline 3\n");
}

#[test]
fn endpoint_urls_are_absolute_http_without_credentials() {
    assert_eq!(check_url("https://hooks.example.net/in"), Ok(()));
    assert_eq!(check_url("http://127.0.0.1:9000"), Ok(()));
    assert_eq!(check_url("http://10.0.0.7/hooks"), Ok(()));
    assert_eq!(check_url("http://[::1]:9000/"), Ok(()));
    for bad in [
        "ftp://x",
        "hooks.example.net",
        "https://",
        "https://u:p@h/",
        "https://u@h/",
        "http://h/a b",
        // Regression (new-user trial): a `webhooks:manage` key could make
        // the daemon POST to the cloud metadata service.
        "http://169.254.169.254/latest",
        "http://[fe80::1]/",
        "http://[::ffff:169.254.169.254]/",
        "http://0.0.0.0:80/",
        "http://255.255.255.255/",
        "http://224.0.0.1/",
    ] {
        assert!(check_url(bad).is_err(), "{bad}");
    }
    let refused = check_url("http://169.254.169.254/latest").expect_err("metadata");
    assert!(refused.contains("link-local"), "{refused}");
}
