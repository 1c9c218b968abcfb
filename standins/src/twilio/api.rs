//! Routing and the Messages resource: the one handler, creating a message
//! after every check in Twilio's order, fetching one, and Twilio's JSON shape
//! for it.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::error::{
    injected_failure, invalid_from, json_headers, method_not_allowed, not_capable, TwilioError,
};
use super::request::{
    authenticate, code_for, form_params, is_e164, is_http_url, is_sender_id, segments,
};
use super::{RecordedRequest, SentMessage, Shared, TwilioStandInConfig, API_VERSION};

/// The one handler: Twilio's paths end in `.json`, which path patterns do
/// not express well, so routing is done here.
pub(super) async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let outcome = route(&shared, &method, &path, &headers, &body);
    let (status, error_code, response) = match outcome {
        Ok((status, resource)) => (
            status,
            None,
            (
                StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
                json_headers(),
                resource.to_string(),
            )
                .into_response(),
        ),
        Err(error) => (error.status, Some(error.code), error.into_response()),
    };
    shared.state().requests.push(RecordedRequest {
        method: method.to_string(),
        path,
        status,
        error_code,
    });
    response
}

fn route(
    shared: &Shared,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(u16, Value), TwilioError> {
    if let Some((status, headers)) = shared.state().failures.pop_front() {
        return Err(TwilioError {
            headers,
            ..injected_failure(status)
        });
    }
    let not_found = || {
        TwilioError::new(
            404,
            20404,
            format!("The requested resource {path} was not found"),
        )
    };
    let rest = path
        .strip_prefix("/2010-04-01/Accounts/")
        .ok_or_else(not_found)?;
    let (account, resource) = rest.split_once('/').ok_or_else(not_found)?;
    let user = authenticate(&shared.config, headers)?;
    if account != shared.config.account_sid {
        return Err(TwilioError::authentication("invalid username"));
    }
    match (resource, method) {
        ("Messages.json", &Method::POST) => {
            let params = form_params(headers, body);
            create_message(shared, &user, &params).map(|v| (201, v))
        }
        ("Messages.json", _) => Err(method_not_allowed(method)),
        (other, &Method::GET) => {
            let sid = other
                .strip_prefix("Messages/")
                .and_then(|s| s.strip_suffix(".json"))
                .ok_or_else(not_found)?;
            let state = shared.state();
            let message = state
                .messages
                .iter()
                .find(|m| m.sid == sid)
                .ok_or_else(not_found)?;
            Ok((200, resource_json(&shared.config, message)))
        }
        (other, _) if other.starts_with("Messages/") => Err(method_not_allowed(method)),
        _ => Err(not_found()),
    }
}

fn create_message(
    shared: &Shared,
    user: &str,
    params: &[(String, String)],
) -> Result<Value, TwilioError> {
    let config = &shared.config;
    let first = |name: &str| {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let to = first("To")
        .ok_or_else(|| TwilioError::bad_request(21604, "A 'To' phone number is required."))?;
    let from = first("From");
    let service = first("MessagingServiceSid");
    if from.is_none() && service.is_none() {
        return Err(TwilioError::bad_request(
            21603,
            "A 'From' or 'MessagingServiceSid' parameter is required to send a message.",
        ));
    }
    let body = first("Body").unwrap_or("");
    let media_urls: Vec<String> = params
        .iter()
        .filter(|(n, v)| n == "MediaUrl" && !v.is_empty())
        .map(|(_, v)| v.clone())
        .collect();
    if body.is_empty() && media_urls.is_empty() {
        return Err(TwilioError::bad_request(21602, "Message body is required."));
    }
    if body.chars().count() > 1600 {
        return Err(TwilioError::bad_request(
            21617,
            "The concatenated message body exceeds the 1600 character limit.",
        ));
    }
    if let Some(bad) = media_urls.iter().find(|u| !is_http_url(u)) {
        return Err(TwilioError::bad_request(
            21620,
            format!("Invalid media URL(s): {bad}"),
        ));
    }
    let status_callback = first("StatusCallback");
    if let Some(url) = status_callback.filter(|u| !is_http_url(u)) {
        return Err(TwilioError::bad_request(
            21609,
            format!("Invalid StatusCallback url: {url}"),
        ));
    }
    if !is_e164(to) || code_for(&config.to_errors, to) == Some(21211) {
        return Err(TwilioError::bad_request(
            21211,
            format!("The 'To' number {to} is not a valid phone number."),
        ));
    }
    if let Some(from) = from {
        match code_for(&config.from_errors, from) {
            Some(21606) => return Err(not_capable(from)),
            Some(code) => return Err(invalid_from(code, from)),
            None if !is_sender_id(from) => return Err(invalid_from(21212, from)),
            None if !config.from_numbers.iter().any(|n| n == from) => {
                return Err(not_capable(from))
            }
            None => {}
        }
    }
    if let Some(service) = service {
        if !config.messaging_service_sids.iter().any(|s| s == service) {
            return Err(TwilioError::bad_request(
                21701,
                format!("The Messaging Service Sid {service} is invalid."),
            ));
        }
    }
    if let Some(code) = code_for(&config.to_errors, to) {
        let sender = from.unwrap_or("the messaging service");
        let message = match code {
            21408 => format!("Permission to send an SMS has not been enabled for the region indicated by the 'To' number: {to}."),
            21610 => "Attempt to send to unsubscribed recipient".to_owned(),
            21612 => format!("The 'To' phone number: {to}, is not currently reachable using the 'From' phone number: {sender} via SMS."),
            21614 => format!("'To' number {to} is not a valid mobile number"),
            other => format!("Twilio error {other} for 'To' number {to}"),
        };
        return Err(TwilioError::bad_request(code, message));
    }

    let mut state = shared.state();
    state.next_sid += 1;
    let message = SentMessage {
        sid: format!("SM{:032x}", 0x5a5a_0000_0000_u64 + state.next_sid),
        to: to.to_owned(),
        from: from.map(str::to_owned),
        messaging_service_sid: service.map(str::to_owned),
        body: body.to_owned(),
        media_urls,
        status_callback: status_callback.map(str::to_owned),
        // Twilio queues a message sent from a number and "accepts" one
        // handed to a messaging service, which picks the sender later.
        status: if from.is_some() { "queued" } else { "accepted" }.to_owned(),
        error_code: None,
        num_segments: segments(body),
        auth_user: user.to_owned(),
    };
    let resource = resource_json(config, &message);
    state.messages.push(message);
    Ok(resource)
}

/// Twilio's message resource.
fn resource_json(config: &TwilioStandInConfig, message: &SentMessage) -> Value {
    let now = rfc2822_now();
    let uri = format!(
        "/{API_VERSION}/Accounts/{}/Messages/{}.json",
        config.account_sid, message.sid
    );
    let sent = !matches!(message.status.as_str(), "queued" | "accepted" | "scheduled");
    json!({
        "account_sid": config.account_sid,
        "api_version": API_VERSION,
        "body": message.body,
        "date_created": now,
        "date_sent": if sent { Value::from(now.clone()) } else { Value::Null },
        "date_updated": now,
        "direction": "outbound-api",
        "error_code": message.error_code,
        "error_message": Value::Null,
        "from": message.from,
        "messaging_service_sid": message.messaging_service_sid,
        "num_media": message.media_urls.len().to_string(),
        "num_segments": message.num_segments.to_string(),
        "price": Value::Null,
        "price_unit": "USD",
        "sid": message.sid,
        "status": message.status,
        "subresource_uris": {
            "media": format!("/{API_VERSION}/Accounts/{}/Messages/{}/Media.json", config.account_sid, message.sid),
        },
        "to": message.to,
        "uri": uri,
    })
}

/// The current time as Twilio writes dates: `Thu, 24 Aug 2023 05:01:45 +0000`.
fn rfc2822_now() -> String {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    rfc2822(seconds)
}

fn rfc2822(unix_seconds: u64) -> String {
    let t = UNIX_EPOCH + std::time::Duration::from_secs(unix_seconds);
    // An HTTP date is RFC 2822 with `GMT` for the zone; Twilio writes `+0000`.
    let http = httpdate::fmt_http_date(t);
    match http.strip_suffix("GMT") {
        Some(stem) => format!("{stem}+0000"),
        None => http,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc2822_in_utc() {
        assert_eq!(rfc2822(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc2822(1_692_853_305), "Thu, 24 Aug 2023 05:01:45 +0000");
        assert_eq!(rfc2822(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
    }
}
