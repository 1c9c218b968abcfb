//! `GET /metrics` scraped by a real Prometheus server (Debian's package,
//! started on 127.0.0.1 by the test with its own configuration): the
//! series for a plugin and a tenant appear with the values the host and
//! the daemon's flow statistics count.

use std::time::Duration;

use plugkit_testkit::process::wait_until;
use plugkit_testkit::prometheus::Prometheus;
use serde_json::json;

use isp_daemon::keys::Scope;

use crate::keys::create_key;
use crate::support::TestDaemon;

/// Runs the new-customer flow for `tenant` (Twilio and Stripe stand-ins).
fn new_customer(d: &TestDaemon, tenant: &str, id: &str) {
    d.post(
        "/api/flows/new-customer",
        &json!({
            "tenant": tenant, "customer_id": id, "name": "Ada",
            "phone": "+14155550123", "plan": "fiber", "monthly_price_minor": 4999,
            "currency": "usd"
        }),
    )
    .expect(200);
}

#[test]
fn metrics_need_a_key_with_metrics_read_and_speak_openmetrics() {
    let d = TestDaemon::start();
    d.request("GET", "/metrics", None, None)
        .expect_error(401, "Authorization: Bearer");
    d.request("GET", "/metrics", Some("not-the-token"), None)
        .expect_error(401, "not an API key");
    // A key that can read everything else but not metrics is refused, and a
    // key that can read only metrics can scrape them and nothing else.
    let others: Vec<Scope> = Scope::ALL
        .into_iter()
        .filter(|s| *s != Scope::MetricsRead)
        .collect();
    let (_, no_metrics) = create_key(&d, "everything but metrics", &others);
    d.request("GET", "/metrics", Some(&no_metrics), None)
        .expect_error(403, "metrics:read");
    let (_, scraper) = create_key(&d, "prometheus", &[Scope::MetricsRead]);
    d.request("GET", "/api/plugins", Some(&scraper), None)
        .expect_error(403, "plugins:read");
    let answer = d.request("GET", "/metrics", Some(&scraper), None);
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(
        answer
            .content_type
            .starts_with("application/openmetrics-text"),
        "{}",
        answer.content_type
    );
    assert!(answer.text.ends_with("# EOF\n"), "{}", answer.text);
    assert!(
        answer
            .text
            .contains("plugkit_tenant_info{tenant=\"acme-fiber\",tier=\"enterprise\"} 1"),
        "{}",
        answer.text
    );
}

#[test]
fn prometheus_scrapes_plugin_and_tenant_series() {
    let d = TestDaemon::start();
    new_customer(&d, "acme-fiber", "c-metrics-1");
    new_customer(&d, "acme-fiber", "c-metrics-2");
    let stripe = d.daemon.host().metrics("stripe").expect("stripe metrics");
    assert!(stripe.calls > 0, "the flow called stripe: {stripe:?}");
    // The same calls by tenant: the flows ran for acme-fiber only.
    let stripe_tenants = d
        .daemon
        .host()
        .tenant_metrics("stripe")
        .expect("stripe tenant metrics");
    let acme = &stripe_tenants["acme-fiber"];
    assert!(
        acme.calls > 0,
        "the flow called stripe for acme-fiber: {acme:?}"
    );
    assert_eq!(
        stripe_tenants.values().map(|t| t.calls).sum::<u64>(),
        stripe.calls,
        "every stripe call was made for a tenant: {stripe_tenants:?}"
    );

    // Stripe's steps in the two reports, as the daemon counted them.
    let stripe_steps = d
        .daemon
        .flow_stats()
        .steps()
        .into_iter()
        .filter(|(flow, tenant, actor, outcome, _)| {
            flow == "new-customer"
                && tenant == "acme-fiber"
                && actor == "stripe"
                && *outcome == "done"
        })
        .map(|s| s.4)
        .sum::<u64>();
    assert!(stripe_steps >= 2, "each flow charged through stripe");

    let target = d.base.trim_start_matches("http://");
    // Prometheus scrapes with a key that can do nothing else.
    let (_, scraper) = create_key(&d, "prometheus", &[Scope::MetricsRead]);
    let prometheus = Prometheus::scraping(target, "/metrics", &scraper).expect("Prometheus starts");

    // Each expected series with its value, as the host counts it now.
    let expected = [
        (
            "plugkit_plugin_calls_total{plugin=\"stripe\"}".to_owned(),
            stripe.calls as f64,
        ),
        (
            "plugkit_plugin_errors_total{plugin=\"stripe\"}".to_owned(),
            stripe.errors as f64,
        ),
        (
            "plugkit_plugin_panics_total{plugin=\"stripe\"}".to_owned(),
            stripe.panics as f64,
        ),
        (
            "plugkit_plugin_permission_denials_total{plugin=\"stripe\"}".to_owned(),
            stripe.permission_denials as f64,
        ),
        (
            "plugkit_plugin_reloads_total{plugin=\"stripe\",outcome=\"swapped\"}".to_owned(),
            stripe.reloads as f64,
        ),
        (
            "plugkit_plugin_call_duration_seconds_count{plugin=\"stripe\"}".to_owned(),
            stripe.latency_buckets.iter().sum::<u64>() as f64,
        ),
        (
            "plugkit_plugin_tenant_active{plugin=\"stripe\",tenant=\"acme-fiber\"}".to_owned(),
            1.0,
        ),
        // Per plugin and tenant.
        (
            "plugkit_plugin_tenant_calls_total{plugin=\"stripe\",tenant=\"acme-fiber\"}".to_owned(),
            acme.calls as f64,
        ),
        (
            "plugkit_plugin_tenant_errors_total{plugin=\"stripe\",tenant=\"acme-fiber\"}"
                .to_owned(),
            acme.errors as f64,
        ),
        (
            "plugkit_plugin_tenant_call_duration_seconds_count{plugin=\"stripe\",tenant=\"acme-fiber\"}"
                .to_owned(),
            acme.latency_buckets.iter().sum::<u64>() as f64,
        ),
        (
            "plugkit_tenant_info{tenant=\"acme-fiber\",tier=\"enterprise\"}".to_owned(),
            1.0,
        ),
        ("plugkit_plugin_up{plugin=\"twilio\"}".to_owned(), 1.0),
        // Per tenant: the two flows, and Stripe's charge step in each.
        (
            "plugkit_flow_runs_total{flow=\"new-customer\",tenant=\"acme-fiber\",outcome=\"reached\"}"
                .to_owned(),
            2.0,
        ),
        (
            "plugkit_flow_steps_total{flow=\"new-customer\",tenant=\"acme-fiber\",plugin=\"stripe\",outcome=\"done\"}"
                .to_owned(),
            stripe_steps as f64,
        ),
    ];
    let mut last = String::new();
    let seen = wait_until(
        "Prometheus has the daemon's series",
        Duration::from_secs(60),
        None,
        || {
            last.clear();
            expected
                .iter()
                .all(|(query, value)| match prometheus.query(query) {
                    Ok(series) if series.len() == 1 && series[0].value == *value => true,
                    other => {
                        last = format!("{query}: {other:?}, expected {value}");
                        false
                    }
                })
        },
    );
    assert!(
        seen.is_ok(),
        "{seen:?}; last: {last}\ntargets: {:?}\nlog:\n{}",
        prometheus.targets(),
        prometheus.log_tail()
    );

    // The histogram's buckets are cumulative and end at +Inf.
    let buckets = prometheus
        .query("plugkit_plugin_call_duration_seconds_bucket{plugin=\"stripe\"}")
        .expect("buckets");
    let inf = buckets
        .iter()
        .find(|s| s.labels.get("le").map(String::as_str) == Some("+Inf"))
        .unwrap_or_else(|| panic!("no +Inf bucket: {buckets:?}"));
    assert_eq!(inf.value, stripe.latency_buckets.iter().sum::<u64>() as f64);

    // Prometheus's own view of the target: up, scraped with the token.
    let up = prometheus.query("up{job=\"isp-daemon\"}").expect("up");
    assert_eq!(up.len(), 1);
    assert_eq!(up[0].value, 1.0, "{:?}", prometheus.targets());
}
