//! The communication category: send messages (SMS, MMS), track their
//! delivery, and verify inbound provider webhooks.

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

use crate::abi::WebhookRequest;

/// A message to send.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct OutboundMessage {
    /// The recipient, E.164 for SMS (`+14155550100`).
    pub to: RString,
    /// The text.
    pub body: RString,
    /// The sender; the provider's configured default when absent.
    pub from: ROption<RString>,
    /// Media to attach (MMS).
    pub media_urls: RVec<RString>,
    /// Where the provider reports delivery status.
    pub status_callback: ROption<RString>,
}

/// Where a message is in its delivery.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting to be sent.
    Queued,
    /// Accepted by the provider.
    Accepted,
    /// Scheduled for later.
    Scheduled,
    /// Being sent.
    Sending,
    /// Handed to the carrier.
    Sent,
    /// Delivered to the handset.
    Delivered,
    /// The carrier could not deliver it.
    Undelivered,
    /// Sending failed.
    Failed,
    /// An inbound message.
    Received,
    /// Read by the recipient.
    Read,
    /// Canceled before sending.
    Canceled,
    /// A status this build does not know.
    Unknown,
}

impl DeliveryStatus {
    /// Parses a provider's lower-case status word.
    pub fn from_word(word: &str) -> Self {
        match word {
            "queued" => Self::Queued,
            "accepted" => Self::Accepted,
            "scheduled" => Self::Scheduled,
            "sending" => Self::Sending,
            "sent" => Self::Sent,
            "delivered" => Self::Delivered,
            "undelivered" => Self::Undelivered,
            "failed" => Self::Failed,
            "received" | "receiving" => Self::Received,
            "read" => Self::Read,
            "canceled" => Self::Canceled,
            _ => Self::Unknown,
        }
    }
}

/// What the provider said about a message.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageReceipt {
    /// The provider's id for the message (Twilio: `SM...`).
    pub provider_message_id: RString,
    /// Its status.
    pub status: DeliveryStatus,
    /// Number of segments billed, when known.
    pub segments: u32,
    /// The provider's error code, when the message failed.
    pub error_code: ROption<u32>,
    /// The provider's error text, when the message failed.
    pub error_message: ROption<RString>,
}

/// A delivery-status callback, parsed.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusUpdate {
    /// The provider's message id.
    pub provider_message_id: RString,
    /// The new status.
    pub status: DeliveryStatus,
    /// The provider's error code, when failed or undelivered.
    pub error_code: ROption<u32>,
}

crate::category::declare_category! {
    /// What a communication plugin implements, in plain Rust.
    category "communication", trait Communication, handle communication;
    /// Sends a message.
    fn send_message(message: OutboundMessage) -> MessageReceipt;
    /// Looks up a message's current status by the provider's id (Twilio: `SM...`).
    fn message_status(provider_message_id: RString) -> MessageReceipt;
    /// Verifies an inbound webhook's signature.
    fn verify_webhook(request: WebhookRequest) -> bool;
    /// Verifies and parses a delivery-status callback.
    fn parse_status_callback(request: WebhookRequest) -> StatusUpdate;
}
