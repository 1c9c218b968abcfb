//! The CRM category: customer contacts and the deals (sales opportunities)
//! attached to them, as a CRM integration (HubSpot, Salesforce, Pipedrive)
//! offers them. Amounts are integer minor units of an ISO 4217 currency.

#![allow(
    non_local_definitions,
    reason = "abi_stable's sabi_trait expands impl blocks inside const items"
)]
#![allow(
    non_camel_case_types,
    reason = "abi_stable's sabi_trait generates `Abi_TO` and `Abi_CTO` names"
)]

use abi_stable::std_types::{ROption, RString, RVec};
use abi_stable::StableAbi;
use serde::{Deserialize, Serialize};

use crate::abi::KeyValue;

/// A contact to create, or to update when one with the same email exists.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ContactUpsert {
    /// The email address; the key contacts are matched by.
    pub email: RString,
    /// Given name.
    pub first_name: ROption<RString>,
    /// Family name.
    pub last_name: ROption<RString>,
    /// Phone number, E.164 (`+14155550100`).
    pub phone: ROption<RString>,
    /// The ISP's own customer id, to link the two records.
    pub customer_id: ROption<RString>,
    /// Further CRM properties by their internal names.
    pub properties: RVec<KeyValue>,
}

/// A contact as the CRM holds it.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// The CRM's id for the contact.
    pub crm_id: RString,
    /// The email address.
    pub email: RString,
    /// Given and family name, as the CRM shows it.
    pub display_name: RString,
    /// Phone number, when known.
    pub phone: ROption<RString>,
    /// The ISP's customer id, when linked.
    pub customer_id: ROption<RString>,
    /// True when this call created the contact, false when it updated one.
    pub created: bool,
}

/// How to find a contact.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContactLookup {
    /// By the CRM's id.
    CrmId(RString),
    /// By email address.
    Email(RString),
    /// By the ISP's customer id.
    CustomerId(RString),
}

/// A deal (opportunity) to open for a contact.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DealCreate {
    /// The contact's CRM id.
    pub contact_crm_id: RString,
    /// The deal's title, e.g. `Upgrade to Fibre 1000`.
    pub title: RString,
    /// Value in minor units.
    pub amount: i64,
    /// ISO 4217 currency, lowercase (`usd`).
    pub currency: RString,
    /// The pipeline stage it starts in; the CRM's default when absent.
    pub stage: ROption<RString>,
}

/// A deal as the CRM holds it.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deal {
    /// The CRM's id for the deal.
    pub crm_id: RString,
    /// The contact it belongs to.
    pub contact_crm_id: RString,
    /// Its title.
    pub title: RString,
    /// Value in minor units.
    pub amount: i64,
    /// ISO 4217 currency.
    pub currency: RString,
    /// The pipeline stage it is in.
    pub stage: RString,
}

/// Moves a deal to another pipeline stage.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DealStageChange {
    /// The deal's CRM id.
    pub deal_crm_id: RString,
    /// The stage to move it to, e.g. `closedwon`.
    pub stage: RString,
}

crate::category::declare_category! {
    /// What a CRM plugin implements, in plain Rust.
    category "crm", trait Crm, handle crm;
    /// Creates a contact, or updates the one with the same email.
    fn upsert_contact(contact: ContactUpsert) -> Contact;
    /// Finds a contact; `PluginError::NotFound` when there is none.
    fn find_contact(lookup: ContactLookup) -> Contact;
    /// Opens a deal for a contact.
    fn create_deal(deal: DealCreate) -> Deal;
    /// Moves a deal to another stage.
    fn move_deal(change: DealStageChange) -> Deal;
}
