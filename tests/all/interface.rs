//! Categories are an open list: a plugin built against plugin-api 0.2.0, as
//! it was before the `crm` category existed (kept in
//! `tests/fixtures/interface-0.2.0`), loads and serves in this host, and
//! `crm` works for a plugin built against the current interface.

use plugin_api::categories::*;
use plugin_api::communication::OutboundMessage;
use plugin_api::crm::{ContactLookup, ContactUpsert, DealCreate, DealStageChange};
use plugin_api::PluginError;
use plugin_host::{HostError, LoadOptions};
use plugkit_tests::artifacts;

use crate::foundation::new_host;

#[test]
fn a_plugin_built_before_the_crm_category_loads_and_serves_in_this_host() {
    let (host, _dir) = new_host();
    let id = host
        .load(
            artifacts().library("fixture-before-crm"),
            LoadOptions::default(),
        )
        .expect("a 0.2.0 plugin loads in a 0.2.x host");
    host.initialize(&id).expect("initialize");
    host.activate(&id, "acme", "{}").expect("activate");

    let plugin = host.plugin(&id).expect("handle");
    assert_eq!(plugin.identity().api_version, "0.2.0");
    assert_ne!(plugin_api::API_VERSION, "0.2.0", "the host is newer");
    assert_eq!(
        host.status(&id).expect("status").extensions,
        ["service", "communication"]
    );

    let receipt = plugin
        .communication()
        .and_then(|c| {
            c.send_message(
                "acme",
                OutboundMessage {
                    to: "+14155550100".into(),
                    body: "hello from 0.2.0".into(),
                    ..Default::default()
                },
            )
        })
        .expect("typed category call");
    assert_eq!(
        receipt.provider_message_id.as_str(),
        "acme:+14155550100:hello from 0.2.0"
    );
    let missing = plugin
        .communication()
        .and_then(|c| c.message_status("acme", "SM1".into()))
        .unwrap_err();
    assert!(
        matches!(&missing, HostError::CallFailed { error, .. } if matches!(**error, PluginError::NotFound { .. })),
        "{missing}"
    );
    assert_eq!(
        plugin.invoke("acme", "echo", b"x").expect("service call"),
        b"acme:echo:x"
    );

    // It knows nothing of `crm`, and says so by name.
    let err = plugin.crm().err().expect("no crm category");
    assert!(
        matches!(&err, HostError::MissingExtension { plugin, extension: "crm" } if plugin == "before-crm"),
        "{err}"
    );
    host.cleanup(&id).expect("cleanup");
}

#[test]
fn crm_calls_cross_the_boundary_with_every_field() {
    let (host, _dir) = new_host();
    let id = host
        .load(artifacts().library("fixture-good"), LoadOptions::default())
        .expect("load");
    host.initialize(&id).expect("initialize");
    host.activate(&id, "acme", "{}").expect("activate");
    let plugin = host.plugin(&id).expect("handle");
    assert_eq!(
        host.providers::<plugin_api::crm::Contract>(),
        ["fixture-good"]
    );
    let crm = plugin.crm().expect("crm category");

    let upsert = ContactUpsert {
        email: "ada@example.com".into(),
        first_name: Some("Ada".into()).into(),
        last_name: None.into(),
        phone: Some("+14155550100".into()).into(),
        customer_id: Some("cust-7".into()).into(),
        properties: vec![plugin_api::KeyValue::new("plan", "fibre-1000")].into(),
    };
    let contact = crm.upsert_contact("acme", upsert.clone()).expect("upsert");
    // The fixture echoes the whole request as JSON into `crm_id`.
    let echoed: ContactUpsert = serde_json::from_str(contact.crm_id.as_str()).expect("json");
    assert_eq!(echoed, upsert);
    assert_eq!(contact.display_name.as_str(), "acme");
    assert!(contact.created);

    let found = crm
        .find_contact("acme", ContactLookup::CustomerId("cust-7".into()))
        .expect("find");
    assert_eq!(found.crm_id.as_str(), r#"{"CustomerId":"cust-7"}"#);
    let missing = crm
        .find_contact("acme", ContactLookup::Email("nobody@example.com".into()))
        .unwrap_err();
    assert!(
        matches!(&missing, HostError::CallFailed { error, .. } if matches!(**error, PluginError::NotFound { .. })),
        "{missing}"
    );

    let deal = crm
        .create_deal(
            "acme",
            DealCreate {
                contact_crm_id: "c1".into(),
                title: "Upgrade to Fibre 1000".into(),
                amount: 4_999,
                currency: "usd".into(),
                stage: None.into(),
            },
        )
        .expect("deal");
    assert_eq!(deal.stage.as_str(), "appointmentscheduled");
    assert_eq!(deal.amount, 4_999);
    let moved = crm
        .move_deal(
            "acme",
            DealStageChange {
                deal_crm_id: deal.crm_id.clone(),
                stage: "closedwon".into(),
            },
        )
        .expect("move");
    assert_eq!(moved.stage.as_str(), "closedwon");
    assert_eq!(moved.crm_id, deal.crm_id);

    // A tenant the plugin is not active for never reaches it.
    let refused = crm
        .find_contact("globex", ContactLookup::Email("a@b.c".into()))
        .unwrap_err();
    assert!(matches!(refused, HostError::NotActive { .. }), "{refused}");
    host.cleanup(&id).expect("cleanup");
}
