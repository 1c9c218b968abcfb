//! The payment category: create, confirm, capture and refund payments, and
//! verify and parse the provider's webhooks. Amounts are integer minor units.

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

use crate::abi::{KeyValue, WebhookRequest};

/// An amount of money in minor units (cents) of an ISO 4217 currency.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    /// Minor units, e.g. 1999 for 19.99.
    pub amount_minor: i64,
    /// Lower-case ISO 4217 code, e.g. `usd`.
    pub currency: RString,
}

/// A new payment.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatePayment {
    /// How much.
    pub amount: Money,
    /// The provider's customer id, when known.
    pub customer: ROption<RString>,
    /// The payment method to charge (Stripe: `pm_...`).
    pub payment_method: ROption<RString>,
    /// Confirm immediately.
    pub confirm: bool,
    /// Authorize now, capture later.
    pub manual_capture: bool,
    /// Shown on statements and dashboards.
    pub description: ROption<RString>,
    /// Free-form metadata.
    pub metadata: RVec<KeyValue>,
    /// Makes retries safe: the same key never charges twice.
    pub idempotency_key: RString,
}

/// Confirms a payment.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfirmPayment {
    /// The payment.
    pub payment_id: RString,
    /// A payment method, if not set at creation.
    pub payment_method: ROption<RString>,
    /// Idempotency key.
    pub idempotency_key: RString,
}

/// Captures an authorized payment.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapturePayment {
    /// The payment.
    pub payment_id: RString,
    /// Capture less than authorized; everything when absent.
    pub amount_minor: ROption<i64>,
    /// Idempotency key.
    pub idempotency_key: RString,
}

/// Refunds a payment in full or in part.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRequest {
    /// The payment.
    pub payment_id: RString,
    /// Partial amount; the full remaining amount when absent.
    pub amount_minor: ROption<i64>,
    /// `duplicate`, `fraudulent` or `requested_by_customer`.
    pub reason: ROption<RString>,
    /// Idempotency key.
    pub idempotency_key: RString,
}

/// Where a payment is.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Needs a payment method.
    RequiresPaymentMethod,
    /// Needs confirmation.
    RequiresConfirmation,
    /// Needs customer action (3-D Secure).
    RequiresAction,
    /// Being processed.
    Processing,
    /// Authorized, waiting for capture.
    RequiresCapture,
    /// Paid.
    Succeeded,
    /// Canceled.
    Canceled,
    /// A status this build does not know.
    Unknown,
}

impl PaymentStatus {
    /// Parses Stripe-style status words.
    pub fn from_word(word: &str) -> Self {
        match word {
            "requires_payment_method" => Self::RequiresPaymentMethod,
            "requires_confirmation" => Self::RequiresConfirmation,
            "requires_action" => Self::RequiresAction,
            "processing" => Self::Processing,
            "requires_capture" => Self::RequiresCapture,
            "succeeded" => Self::Succeeded,
            "canceled" => Self::Canceled,
            _ => Self::Unknown,
        }
    }
}

/// A payment as the provider sees it.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRecord {
    /// The provider's id (Stripe: `pi_...`).
    pub id: RString,
    /// Its status.
    pub status: PaymentStatus,
    /// The amount asked for.
    pub amount: Money,
    /// How much was received.
    pub amount_received: i64,
    /// How much can still be captured.
    pub amount_capturable: i64,
    /// The latest charge id, when there is one.
    pub latest_charge: ROption<RString>,
}

/// Where a refund is.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    /// Waiting.
    Pending,
    /// Done.
    Succeeded,
    /// Failed.
    Failed,
    /// Canceled.
    Canceled,
    /// Needs customer action.
    RequiresAction,
    /// A status this build does not know.
    Unknown,
}

/// A refund.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    /// The provider's id (Stripe: `re_...`).
    pub id: RString,
    /// The refunded payment.
    pub payment_id: RString,
    /// How much.
    pub amount: Money,
    /// Its status.
    pub status: RefundStatus,
}

/// What a payment webhook was about.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentEventKind {
    /// A payment succeeded.
    PaymentSucceeded,
    /// A payment failed.
    PaymentFailed,
    /// A charge was refunded.
    ChargeRefunded,
    /// Another event type (see `event_type`).
    Other,
}

/// A verified, parsed payment webhook.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentEvent {
    /// The provider's event id (Stripe: `evt_...`).
    pub id: RString,
    /// The kind.
    pub kind: PaymentEventKind,
    /// The provider's event type, e.g. `payment_intent.succeeded`.
    pub event_type: RString,
    /// The payment it concerns.
    pub payment_id: ROption<RString>,
    /// The amount it concerns.
    pub amount: ROption<Money>,
    /// Why it failed, for failures.
    pub failure_message: ROption<RString>,
    /// When the provider created it (Unix seconds).
    pub created: i64,
}

crate::category::declare_category! {
    /// What a payment plugin implements, in plain Rust.
    category "payment", trait Payment, handle payment;
    /// Creates a payment.
    fn create_payment(request: CreatePayment) -> PaymentRecord;
    /// Confirms a payment.
    fn confirm_payment(request: ConfirmPayment) -> PaymentRecord;
    /// Captures an authorized payment.
    fn capture_payment(request: CapturePayment) -> PaymentRecord;
    /// Refunds a payment.
    fn refund(request: RefundRequest) -> Refund;
    /// Verifies and parses a webhook.
    fn parse_webhook(request: WebhookRequest) -> PaymentEvent;
}
