//! The communication category: send messages (SMS, MMS), track their
//! delivery, and verify inbound provider webhooks.

#![allow(
    non_local_definitions,
    reason = "abi_stable's sabi_trait expands impl blocks inside const items"
)]
#![allow(
    non_camel_case_types,
    reason = "abi_stable's sabi_trait generates `Trait_TO` and `Trait_CTO` names"
)]

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RArc, ROption, RResult, RStr, RString, RVec};
use abi_stable::{sabi_trait, StableAbi};
use serde::{Deserialize, Serialize};

use crate::abi::{PluginError, WebhookRequest};
use crate::sdk::{guard, Adapter, Plugin, Result};

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

/// The stable-ABI communication provider.
#[sabi_trait]
pub trait CommunicationProvider: Send + Sync {
    /// Sends a message.
    fn send_message(
        &self,
        tenant: RStr<'_>,
        message: OutboundMessage,
    ) -> RResult<MessageReceipt, PluginError>;
    /// Looks up a message's current status.
    fn message_status(
        &self,
        tenant: RStr<'_>,
        provider_message_id: RStr<'_>,
    ) -> RResult<MessageReceipt, PluginError>;
    /// Verifies an inbound webhook's signature.
    fn verify_webhook(
        &self,
        tenant: RStr<'_>,
        request: WebhookRequest,
    ) -> RResult<bool, PluginError>;
    /// Verifies and parses a delivery-status callback.
    #[sabi(last_prefix_field)]
    fn parse_status_callback(
        &self,
        tenant: RStr<'_>,
        request: WebhookRequest,
    ) -> RResult<StatusUpdate, PluginError>;
}

/// The communication provider trait object.
pub type CommunicationProviderBox = CommunicationProvider_TO<'static, RArc<()>>;

/// What a communication plugin implements, in plain Rust.
pub trait Communication: Plugin {
    /// Sends a message.
    fn send_message(&self, tenant: &str, message: OutboundMessage) -> Result<MessageReceipt>;
    /// Looks up a message's status.
    fn message_status(&self, tenant: &str, provider_message_id: &str) -> Result<MessageReceipt>;
    /// Verifies an inbound webhook's signature.
    fn verify_webhook(&self, tenant: &str, request: &WebhookRequest) -> Result<bool>;
    /// Verifies and parses a delivery-status callback.
    fn parse_status_callback(&self, tenant: &str, request: &WebhookRequest)
        -> Result<StatusUpdate>;
}

impl<P: Communication> CommunicationProvider for Adapter<P> {
    fn send_message(
        &self,
        tenant: RStr<'_>,
        message: OutboundMessage,
    ) -> RResult<MessageReceipt, PluginError> {
        guard(|| self.plugin().send_message(tenant.as_str(), message))
    }

    fn message_status(
        &self,
        tenant: RStr<'_>,
        provider_message_id: RStr<'_>,
    ) -> RResult<MessageReceipt, PluginError> {
        guard(|| {
            self.plugin()
                .message_status(tenant.as_str(), provider_message_id.as_str())
        })
    }

    fn verify_webhook(
        &self,
        tenant: RStr<'_>,
        request: WebhookRequest,
    ) -> RResult<bool, PluginError> {
        guard(|| self.plugin().verify_webhook(tenant.as_str(), &request))
    }

    fn parse_status_callback(
        &self,
        tenant: RStr<'_>,
        request: WebhookRequest,
    ) -> RResult<StatusUpdate, PluginError> {
        guard(|| {
            self.plugin()
                .parse_status_callback(tenant.as_str(), &request)
        })
    }
}

#[doc(hidden)]
pub fn __communication<P: Communication>(p: &RArc<Adapter<P>>) -> CommunicationProviderBox {
    CommunicationProvider_TO::from_ptr(p.clone(), TD_Opaque)
}
