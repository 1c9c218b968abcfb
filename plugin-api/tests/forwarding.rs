//! A category's forwarding object (what process isolation hands the host)
//! behaves exactly like the plugin's own object: every call crosses as a
//! serialized `Request`, is served by `Contract::serve` against the real
//! object, and comes back as the same answer — or as an error naming the
//! mismatch when the other side answers another method.

use std::sync::Arc;

use abi_stable::std_types::RResult;
use plugin_api::category::{Contract, Forward};
use plugin_api::crm::{self, ContactLookup, ContactUpsert, Crm, Deal, DealCreate, DealStageChange};
use plugin_api::{Plugin, PluginError, Result};

struct Book;

impl Plugin for Book {
    const ID: &'static str = "book";
    const NAME: &'static str = "Book";
    const CATEGORY: &'static str = "crm";
    fn new() -> Result<Self> {
        Ok(Book)
    }
}

impl Crm for Book {
    fn upsert_contact(&self, tenant: &str, contact: ContactUpsert) -> Result<crm::Contact> {
        Ok(crm::Contact {
            crm_id: format!("{tenant}/{}", contact.email).into(),
            email: contact.email,
            display_name: "Ada".into(),
            phone: contact.phone,
            customer_id: contact.customer_id,
            created: true,
        })
    }
    fn find_contact(&self, _tenant: &str, lookup: ContactLookup) -> Result<crm::Contact> {
        Err(PluginError::not_found(format!("{lookup:?}")))
    }
    fn create_deal(&self, _tenant: &str, deal: DealCreate) -> Result<Deal> {
        if deal.amount < 0 {
            panic!("negative deal");
        }
        Ok(Deal {
            crm_id: "d1".into(),
            contact_crm_id: deal.contact_crm_id,
            title: deal.title,
            amount: deal.amount,
            currency: deal.currency,
            stage: "new".into(),
        })
    }
    fn move_deal(&self, _tenant: &str, change: DealStageChange) -> Result<Deal> {
        Err(PluginError::unsupported(change.stage.to_string()))
    }
}

plugin_api::export_plugin!(Book, extensions: [crm]);

/// Serves requests against the plugin's real object after a serde round
/// trip each way, as the isolation runner does across its channel.
struct Loopback {
    instance: Arc<plugin_api::abi::PluginInstance>,
    /// Answer every request with this method's response instead.
    wrong: bool,
}

impl Forward for Loopback {
    fn forward<C: Contract>(
        &self,
        tenant: &str,
        request: C::Request,
    ) -> RResult<C::Response, PluginError> {
        let bytes = serde_json::to_vec(&request).expect("request serializes");
        let request: C::Request = serde_json::from_slice(&bytes).expect("request deserializes");
        let object = self
            .instance
            .category_local::<C>()
            .expect("the plugin exports the category");
        let response = match C::serve(object, tenant, request) {
            RResult::ROk(response) => response,
            RResult::RErr(e) => return RResult::RErr(e),
        };
        if self.wrong {
            let other = crm::Response::find_contact(crm::Contact {
                crm_id: "x".into(),
                email: "x".into(),
                display_name: "x".into(),
                phone: None.into(),
                customer_id: None.into(),
                created: false,
            });
            let bytes = serde_json::to_vec(&other).expect("serializes");
            return RResult::ROk(serde_json::from_slice(&bytes).expect("a crm response"));
        }
        let bytes = serde_json::to_vec(&response).expect("response serializes");
        RResult::ROk(serde_json::from_slice(&bytes).expect("response deserializes"))
    }
}

fn instance() -> Arc<plugin_api::abi::PluginInstance> {
    match (__plugkit_root_module().instantiate())() {
        RResult::ROk(instance) => Arc::new(instance),
        RResult::RErr(e) => panic!("instantiate: {e}"),
    }
}

fn forwarded(wrong: bool) -> plugin_api::abi::CategoryObject {
    crm::Contract::forwarding(Loopback {
        instance: instance(),
        wrong,
    })
}

fn upsert() -> ContactUpsert {
    ContactUpsert {
        email: "ada@example.com".into(),
        phone: Some("+14155550100".into()).into(),
        ..Default::default()
    }
}

#[test]
fn a_forwarded_call_answers_what_the_plugin_answers() {
    let local = instance();
    let direct = local
        .category_local::<crm::Contract>()
        .expect("local object")
        .upsert_contact("acme".into(), upsert())
        .into_result()
        .expect("direct call");

    let object = forwarded(false);
    let remote = object
        .downcast_local::<crm::Contract>()
        .expect("the forwarding object is a crm object");
    let through = remote
        .upsert_contact("acme".into(), upsert())
        .into_result()
        .expect("forwarded call");
    assert_eq!(through, direct);
    assert_eq!(through.crm_id.as_str(), "acme/ada@example.com");
}

#[test]
fn plugin_errors_and_panics_cross_the_forwarder_as_errors() {
    let object = forwarded(false);
    let remote = object
        .downcast_local::<crm::Contract>()
        .expect("crm object");
    let missing = remote
        .find_contact(
            "acme".into(),
            ContactLookup::Email("nobody@example.com".into()),
        )
        .into_result();
    assert!(
        matches!(missing, Err(PluginError::NotFound { .. })),
        "{missing:?}"
    );
    let panicked = remote
        .create_deal(
            "acme".into(),
            DealCreate {
                contact_crm_id: "c".into(),
                title: "t".into(),
                amount: -1,
                currency: "usd".into(),
                stage: None.into(),
            },
        )
        .into_result();
    assert!(
        matches!(&panicked, Err(PluginError::Panicked { message }) if message.contains("negative deal")),
        "{panicked:?}"
    );
}

#[test]
fn an_answer_to_another_method_is_an_error_naming_both() {
    let object = forwarded(true);
    let remote = object
        .downcast_local::<crm::Contract>()
        .expect("crm object");
    let err = remote
        .upsert_contact("acme".into(), upsert())
        .into_result()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid request: `crm.upsert_contact` was answered as `find_contact`: the plugin's \
         process speaks another version of the contract; rebuild it against this host's plugin-api"
    );
}
