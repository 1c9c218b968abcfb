//! Checking a request as Twilio does: HTTP Basic credentials, the form body,
//! and the shape of phone numbers, sender ids and URLs; segment counting.

use axum::http::{header, HeaderMap};
use base64::Engine as _;

use super::error::TwilioError;
use super::TwilioStandInConfig;

/// Checks HTTP Basic auth; returns the user (account or API key SID).
pub(super) fn authenticate(
    config: &TwilioStandInConfig,
    headers: &HeaderMap,
) -> Result<String, TwilioError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| TwilioError::authentication("No credentials provided"))?;
    let encoded = value
        .strip_prefix("Basic ")
        .ok_or_else(|| TwilioError::authentication("No credentials provided"))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| TwilioError::authentication("invalid username"))?;
    let (user, password) = decoded
        .split_once(':')
        .ok_or_else(|| TwilioError::authentication("invalid username"))?;
    let account = user == config.account_sid && password == config.auth_token;
    let api_key = config
        .api_keys
        .iter()
        .any(|(sid, secret)| sid == user && secret == password);
    if account || api_key {
        Ok(user.to_owned())
    } else if user == config.account_sid || config.api_keys.iter().any(|(sid, _)| sid == user) {
        Err(TwilioError::authentication("invalid password"))
    } else {
        Err(TwilioError::authentication("invalid username"))
    }
}

/// The form parameters; a body that is not urlencoded carries none, as at Twilio.
pub(super) fn form_params(headers: &HeaderMap, body: &[u8]) -> Vec<(String, String)> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';').next().is_some_and(|t| {
                t.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    if !is_form {
        return Vec::new();
    }
    form_urlencoded::parse(body).into_owned().collect()
}

pub(super) fn code_for(list: &[(String, u32)], number: &str) -> Option<u32> {
    list.iter().find(|(n, _)| n == number).map(|(_, c)| *c)
}

pub(super) fn is_http_url(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

pub(super) fn is_e164(number: &str) -> bool {
    let Some(digits) = number.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len())
        && !digits.starts_with('0')
        && digits.bytes().all(|b| b.is_ascii_digit())
}

/// A phone number, a short code (5-6 digits) or an alphanumeric sender ID
/// (up to 11 letters, digits and spaces, at least one letter).
pub(super) fn is_sender_id(from: &str) -> bool {
    let short_code = (5..=6).contains(&from.len()) && from.bytes().all(|b| b.is_ascii_digit());
    let alphanumeric = (1..=11).contains(&from.len())
        && from.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ')
        && from.bytes().any(|b| b.is_ascii_alphabetic());
    is_e164(from) || short_code || alphanumeric
}

/// Segments as Twilio bills them: GSM-7 160 (153 when split), else UCS-2 70 (67).
pub(super) fn segments(body: &str) -> u32 {
    const GSM: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
                       ¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
    let gsm = body.chars().all(|c| GSM.contains(c));
    let length = body.chars().count();
    let (single, multi) = if gsm { (160, 153) } else { (70, 67) };
    let count = if length <= single {
        1
    } else {
        length.div_ceil(multi)
    };
    u32::try_from(count).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_follow_gsm7_and_ucs2_limits() {
        let check = |body: &str, expected| {
            assert_eq!(segments(body), expected, "{} chars", body.chars().count())
        };
        check("", 1);
        check(&"a".repeat(160), 1);
        check(&"a".repeat(161), 2);
        check(&"a".repeat(306), 2);
        check(&"a".repeat(307), 3);
        check(&"é".repeat(160), 1); // é is in the GSM alphabet
        check(&"ł".repeat(70), 1);
        check(&"ł".repeat(71), 2);
        check("👍", 1);
    }
}
