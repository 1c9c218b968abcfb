//! Category calls across the process boundary: the one place that maps a
//! category's calls to `Request::Category` messages and back.
//!
//! Written by hand for the three categories that exist today; the
//! one-definition-per-category redesign (issue 12) generates a serde
//! `Request`/`Response` enum and a `serve(object, tenant, request)` per
//! category, which replace the enums here and the body of [`serve`].
//!
//! Category payloads are JSON, not postcard: plugin-api's types use serde's
//! internally and adjacently tagged enums (`PluginError`, `SnmpValue`),
//! which only a self-describing format can decode. The envelope and the
//! byte-level `invoke` hot path stay postcard.

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RArc, RResult, RStr, RVec};
use plugin_api::abi::{PluginError, PluginInstance};
use plugin_api::communication::{
    CommunicationProvider, CommunicationProviderBox, CommunicationProvider_TO, MessageReceipt,
    OutboundMessage, StatusUpdate,
};
use plugin_api::network::{
    NetworkAutomation, NetworkAutomationBox, NetworkAutomation_TO, PlaybookReport, PlaybookRun,
    SnmpRequest, SshCommand, SshOutput, VarBind,
};
use plugin_api::payment::{
    CapturePayment, ConfirmPayment, CreatePayment, Payment, PaymentEvent, PaymentProvider,
    PaymentProviderBox, PaymentProvider_TO, Refund, RefundRequest,
};
use plugin_api::WebhookRequest;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::process::ChildPlugin;
use super::wire::WireError;

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum CommunicationCall {
    SendMessage(OutboundMessage),
    MessageStatus(String),
    VerifyWebhook(WebhookRequest),
    ParseStatusCallback(WebhookRequest),
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum PaymentCall {
    Create(CreatePayment),
    Confirm(ConfirmPayment),
    Capture(CapturePayment),
    Refund(RefundRequest),
    ParseWebhook(WebhookRequest),
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum NetworkCall {
    Snmp(SnmpRequest),
    SshExec(SshCommand),
    RunPlaybook(PlaybookRun),
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, WireError> {
    serde_json::to_vec(value).map_err(|e| WireError::Failed(format!("encoding a reply: {e}")))
}

fn answer<T, U: Serialize>(
    r: RResult<T, PluginError>,
    f: impl FnOnce(T) -> U,
) -> Result<Vec<u8>, WireError> {
    match r {
        RResult::ROk(v) => encode(&f(v)),
        RResult::RErr(e) => Err(WireError::from(&e)),
    }
}

fn missing(category: &str) -> WireError {
    WireError::Unsupported(format!(
        "this plugin does not offer the `{category}` category"
    ))
}

/// Runner side: serves one category call on the loaded instance.
pub(crate) fn serve(
    instance: &PluginInstance,
    category: &str,
    tenant: &str,
    request: &[u8],
) -> Result<Vec<u8>, WireError> {
    let bad = |e: serde_json::Error| {
        WireError::InvalidRequest(format!("undecodable `{category}` request: {e}"))
    };
    let t = || RStr::from_str(tenant);
    match category {
        "communication" => {
            let c = instance
                .communication
                .as_ref()
                .into_option()
                .ok_or_else(|| missing(category))?;
            match serde_json::from_slice::<CommunicationCall>(request).map_err(bad)? {
                CommunicationCall::SendMessage(m) => answer(c.send_message(t(), m), |r| r),
                CommunicationCall::MessageStatus(id) => {
                    answer(c.message_status(t(), id.as_str().into()), |r| r)
                }
                CommunicationCall::VerifyWebhook(w) => answer(c.verify_webhook(t(), w), |r| r),
                CommunicationCall::ParseStatusCallback(w) => {
                    answer(c.parse_status_callback(t(), w), |r| r)
                }
            }
        }
        "payment" => {
            let c = instance
                .payment
                .as_ref()
                .into_option()
                .ok_or_else(|| missing(category))?;
            match serde_json::from_slice::<PaymentCall>(request).map_err(bad)? {
                PaymentCall::Create(r) => answer(c.create_payment(t(), r), |r| r),
                PaymentCall::Confirm(r) => answer(c.confirm_payment(t(), r), |r| r),
                PaymentCall::Capture(r) => answer(c.capture_payment(t(), r), |r| r),
                PaymentCall::Refund(r) => answer(c.refund(t(), r), |r| r),
                PaymentCall::ParseWebhook(r) => answer(c.parse_webhook(t(), r), |r| r),
            }
        }
        "network" => {
            let c = instance
                .network
                .as_ref()
                .into_option()
                .ok_or_else(|| missing(category))?;
            match serde_json::from_slice::<NetworkCall>(request).map_err(bad)? {
                NetworkCall::Snmp(r) => answer(c.snmp(t(), r), |v: RVec<VarBind>| v.into_vec()),
                NetworkCall::SshExec(r) => answer(c.ssh_exec(t(), r), |r| r),
                NetworkCall::RunPlaybook(r) => answer(c.run_playbook(t(), r), |r| r),
            }
        }
        other => Err(WireError::Unsupported(format!(
            "unknown category `{other}` (host and runner disagree?)"
        ))),
    }
}

/// Host side: the category objects of a proxy instance.
#[derive(Clone)]
pub(crate) struct CategoryProxy {
    pub(crate) child: std::sync::Arc<ChildPlugin>,
}

impl CategoryProxy {
    fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        category: &str,
        tenant: RStr<'_>,
        request: &Req,
    ) -> RResult<Resp, PluginError> {
        let bytes = match serde_json::to_vec(request) {
            Ok(b) => b,
            Err(e) => {
                return RResult::RErr(PluginError::failed(format!(
                    "encoding the `{category}` request: {e}"
                )))
            }
        };
        match self.child.category(category, tenant.as_str(), bytes) {
            RResult::ROk(reply) => match serde_json::from_slice::<Resp>(&reply) {
                Ok(v) => RResult::ROk(v),
                Err(e) => RResult::RErr(self.child.garbage(
                    tenant.as_str(),
                    format!("undecodable `{category}` reply: {e}"),
                )),
            },
            RResult::RErr(e) => RResult::RErr(e),
        }
    }

    pub(crate) fn communication(&self) -> CommunicationProviderBox {
        CommunicationProvider_TO::from_ptr(RArc::new(self.clone()), TD_Opaque)
    }

    pub(crate) fn payment(&self) -> PaymentProviderBox {
        PaymentProvider_TO::from_ptr(RArc::new(self.clone()), TD_Opaque)
    }

    pub(crate) fn network(&self) -> NetworkAutomationBox {
        NetworkAutomation_TO::from_ptr(RArc::new(self.clone()), TD_Opaque)
    }
}

impl CommunicationProvider for CategoryProxy {
    fn send_message(
        &self,
        tenant: RStr<'_>,
        message: OutboundMessage,
    ) -> RResult<MessageReceipt, PluginError> {
        self.call(
            "communication",
            tenant,
            &CommunicationCall::SendMessage(message),
        )
    }
    fn message_status(
        &self,
        tenant: RStr<'_>,
        id: RStr<'_>,
    ) -> RResult<MessageReceipt, PluginError> {
        self.call(
            "communication",
            tenant,
            &CommunicationCall::MessageStatus(id.to_string()),
        )
    }
    fn verify_webhook(
        &self,
        tenant: RStr<'_>,
        request: WebhookRequest,
    ) -> RResult<bool, PluginError> {
        self.call(
            "communication",
            tenant,
            &CommunicationCall::VerifyWebhook(request),
        )
    }
    fn parse_status_callback(
        &self,
        tenant: RStr<'_>,
        request: WebhookRequest,
    ) -> RResult<StatusUpdate, PluginError> {
        self.call(
            "communication",
            tenant,
            &CommunicationCall::ParseStatusCallback(request),
        )
    }
}

impl PaymentProvider for CategoryProxy {
    fn create_payment(
        &self,
        tenant: RStr<'_>,
        request: CreatePayment,
    ) -> RResult<Payment, PluginError> {
        self.call("payment", tenant, &PaymentCall::Create(request))
    }
    fn confirm_payment(
        &self,
        tenant: RStr<'_>,
        request: ConfirmPayment,
    ) -> RResult<Payment, PluginError> {
        self.call("payment", tenant, &PaymentCall::Confirm(request))
    }
    fn capture_payment(
        &self,
        tenant: RStr<'_>,
        request: CapturePayment,
    ) -> RResult<Payment, PluginError> {
        self.call("payment", tenant, &PaymentCall::Capture(request))
    }
    fn refund(&self, tenant: RStr<'_>, request: RefundRequest) -> RResult<Refund, PluginError> {
        self.call("payment", tenant, &PaymentCall::Refund(request))
    }
    fn parse_webhook(
        &self,
        tenant: RStr<'_>,
        request: WebhookRequest,
    ) -> RResult<PaymentEvent, PluginError> {
        self.call("payment", tenant, &PaymentCall::ParseWebhook(request))
    }
}

impl NetworkAutomation for CategoryProxy {
    fn snmp(&self, tenant: RStr<'_>, request: SnmpRequest) -> RResult<RVec<VarBind>, PluginError> {
        self.call::<_, Vec<VarBind>>("network", tenant, &NetworkCall::Snmp(request))
            .map(RVec::from)
    }
    fn ssh_exec(&self, tenant: RStr<'_>, command: SshCommand) -> RResult<SshOutput, PluginError> {
        self.call("network", tenant, &NetworkCall::SshExec(command))
    }
    fn run_playbook(
        &self,
        tenant: RStr<'_>,
        run: PlaybookRun,
    ) -> RResult<PlaybookReport, PluginError> {
        self.call("network", tenant, &NetworkCall::RunPlaybook(run))
    }
}
