//! Inbound webhooks: signature checks and the delivery-status callback
//! (`MessageSid`, `MessageStatus`, `ErrorCode`). Pure: no IO.

use plugin_api::communication::{DeliveryStatus, StatusUpdate};
use plugin_api::{PluginError, Result, WebhookRequest};

use crate::form;
use crate::signature::{self, Content};

/// Whether `request` carries a valid `X-Twilio-Signature` for `auth_token`.
///
/// Form parameters come from `request.params`; when the daemon passed only
/// the raw body, a form body is decoded here. A URL with `bodySHA256` means
/// a JSON body, validated through its hash.
pub(crate) fn verify(auth_token: &str, request: &WebhookRequest) -> bool {
    let url = request.url.as_str();
    let signature = request.signature.as_str();
    if signature.trim().is_empty() {
        return false;
    }
    if signature::has_body_hash(url) {
        return signature::is_valid(
            auth_token,
            url,
            Content::Json(request.body.as_slice()),
            signature,
        );
    }
    let params = params(request);
    let borrowed: Vec<(&str, &str)> = params
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    signature::is_valid(auth_token, url, Content::Form(&borrowed), signature)
}

/// Verifies `request` and reads the status update it carries.
pub(crate) fn parse_status(auth_token: &str, request: &WebhookRequest) -> Result<StatusUpdate> {
    if !verify(auth_token, request) {
        return Err(PluginError::invalid_request(
            "X-Twilio-Signature does not match this tenant's auth token; \
             check that the URL is exactly the one configured in Twilio (scheme, host, query string)",
        ));
    }
    status_update(&params(request))
}

/// Verifies a webhook given as plain inputs (the body carries the form
/// parameters, or the JSON of a `bodySHA256` URL) and reads its status
/// update: what the daemon's webhook route runs. For `cargo xtask fuzz`,
/// which feeds it mutated requests; not part of the plugin's API.
#[doc(hidden)]
pub fn webhook_report(
    auth_token: &str,
    url: &str,
    body: &[u8],
    signature: &str,
) -> std::result::Result<String, String> {
    let request = WebhookRequest {
        url: url.into(),
        params: Default::default(),
        body: body.to_vec().into(),
        signature: signature.into(),
    };
    parse_status(auth_token, &request)
        .map(|update| format!("{update:?}"))
        .map_err(|e| e.to_string())
}

/// The `X-Twilio-Signature` Twilio sends for a webhook given as
/// [`webhook_report`] takes it. For the fuzzer's seeds; not part of the API.
#[doc(hidden)]
pub fn webhook_signature(auth_token: &str, url: &str, body: &[u8]) -> Option<String> {
    if signature::has_body_hash(url) {
        return signature::compute(auth_token, url, &[]);
    }
    let params = form::decode(&String::from_utf8_lossy(body));
    let borrowed: Vec<(&str, &str)> = params
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    signature::compute(auth_token, url, &borrowed)
}

/// The form parameters of a request, decoded from the body when the daemon
/// did not split them.
fn params(request: &WebhookRequest) -> Vec<(String, String)> {
    if request.params.is_empty() && !request.body.is_empty() {
        return form::decode(&String::from_utf8_lossy(request.body.as_slice()));
    }
    request
        .params
        .iter()
        .map(|kv| (kv.name.to_string(), kv.value.to_string()))
        .collect()
}

/// Reads a status callback's parameters. Older callbacks name the fields
/// `SmsSid` and `SmsStatus`; they are accepted when the new names are absent.
fn status_update(params: &[(String, String)]) -> Result<StatusUpdate> {
    let get = |name: &str| {
        params
            .iter()
            .find(|(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    };
    let sid = get("MessageSid")
        .or_else(|| get("SmsSid"))
        .ok_or_else(|| PluginError::invalid_request("status callback has no `MessageSid`"))?;
    let status = get("MessageStatus")
        .or_else(|| get("SmsStatus"))
        .ok_or_else(|| PluginError::invalid_request("status callback has no `MessageStatus`"))?;
    let error_code = match get("ErrorCode") {
        None => None,
        Some(code) => Some(code.trim().parse::<u32>().map_err(|_| {
            PluginError::invalid_request(format!(
                "status callback `ErrorCode` is not a number: {code:?}"
            ))
        })?),
    };
    Ok(StatusUpdate {
        provider_message_id: sid.into(),
        status: DeliveryStatus::from_word(status),
        error_code: error_code.into(),
    })
}

#[cfg(test)]
mod tests {
    use abi_stable::std_types::ROption;
    use plugin_api::KeyValue;

    use super::*;

    const TOKEN: &str = "12345";
    const URL: &str = "https://isp.example/hooks/twilio/status?tenant=t1";

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn signed(list: &[(&str, &str)]) -> WebhookRequest {
        WebhookRequest {
            url: URL.into(),
            params: list.iter().map(|(n, v)| KeyValue::new(*n, *v)).collect(),
            body: form::encode(list).into_bytes().into(),
            signature: signature::compute(TOKEN, URL, list).unwrap().into(),
        }
    }

    fn check(list: &[(&str, &str)], expected: Result<StatusUpdate>) {
        assert_eq!(status_update(&pairs(list)), expected, "{list:?}");
    }

    fn update(sid: &str, status: DeliveryStatus, code: Option<u32>) -> Result<StatusUpdate> {
        Ok(StatusUpdate {
            provider_message_id: sid.into(),
            status,
            error_code: code.into(),
        })
    }

    #[test]
    fn status_fields_are_read() {
        check(
            &[
                ("MessageSid", "SM1"),
                ("MessageStatus", "delivered"),
                ("AccountSid", "AC1"),
            ],
            update("SM1", DeliveryStatus::Delivered, None),
        );
        check(
            &[
                ("MessageSid", "SM2"),
                ("MessageStatus", "undelivered"),
                ("ErrorCode", "30003"),
            ],
            update("SM2", DeliveryStatus::Undelivered, Some(30003)),
        );
        check(
            &[("SmsSid", "SM3"), ("SmsStatus", "sent"), ("ErrorCode", "")],
            update("SM3", DeliveryStatus::Sent, None),
        );
    }

    #[test]
    fn missing_or_bad_fields_are_invalid_requests() {
        for list in [
            &[("MessageStatus", "sent")][..],
            &[("MessageSid", "SM1")][..],
            &[
                ("MessageSid", "SM1"),
                ("MessageStatus", "failed"),
                ("ErrorCode", "x"),
            ][..],
        ] {
            let result = status_update(&pairs(list));
            assert!(
                matches!(result, Err(PluginError::InvalidRequest { .. })),
                "{list:?}: {result:?}"
            );
        }
    }

    #[test]
    fn a_signed_callback_parses() {
        let request = signed(&[
            ("MessageSid", "SM9"),
            ("MessageStatus", "failed"),
            ("ErrorCode", "30008"),
        ]);
        let got = parse_status(TOKEN, &request).unwrap();
        assert_eq!(got.error_code, ROption::RSome(30008));
        assert_eq!(got.status, DeliveryStatus::Failed);
    }

    #[test]
    fn a_raw_form_body_is_decoded_when_params_are_absent() {
        let mut request = signed(&[
            ("MessageSid", "SM9"),
            ("MessageStatus", "sent"),
            ("To", "+15005550006"),
        ]);
        request.params = Vec::new().into();
        assert!(verify(TOKEN, &request));
        assert_eq!(
            parse_status(TOKEN, &request).unwrap().status,
            DeliveryStatus::Sent
        );
    }

    #[test]
    fn bad_signatures_are_refused_before_parsing() {
        let list = [("MessageSid", "SM9"), ("MessageStatus", "delivered")];
        let mut wrong_token = signed(&list);
        wrong_token.signature = signature::compute("54321", URL, &list).unwrap().into();
        let mut unsigned = signed(&list);
        unsigned.signature = "".into();
        let mut tampered = signed(&list);
        tampered.params[1] = KeyValue::new("MessageStatus", "failed");
        let mut other_url = signed(&list);
        other_url.url = "https://isp.example/hooks/twilio/status?tenant=t2".into();
        for request in [wrong_token, unsigned, tampered, other_url] {
            assert!(!verify(TOKEN, &request), "{request:?}");
            let result = parse_status(TOKEN, &request);
            assert!(
                matches!(result, Err(PluginError::InvalidRequest { .. })),
                "{result:?}"
            );
        }
    }

    #[test]
    fn json_webhooks_verify_through_the_body_hash() {
        // The JSON-body case of twilio-python's request validator tests.
        let body = r#"{"property": "value", "boolean": true}"#;
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2\
                   &bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
        let request = WebhookRequest {
            url: url.into(),
            params: Vec::new().into(),
            body: body.as_bytes().to_vec().into(),
            signature: "a9nBmqA0ju/hNViExpshrM61xv4=".into(),
        };
        assert!(verify(TOKEN, &request));
        let mut changed = request.clone();
        changed.body = br#"{"property": "value", "boolean": false}"#.to_vec().into();
        assert!(!verify(TOKEN, &changed));
    }
}
