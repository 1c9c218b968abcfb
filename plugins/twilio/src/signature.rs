//! `X-Twilio-Signature` validation for inbound webhooks, as Twilio's own SDKs
//! do it. Pure: no IO.
//!
//! The signed text is the full URL (with its query string) followed by every
//! POST parameter sorted by name, each name written once per distinct value,
//! values sorted too. It is signed with HMAC-SHA1 keyed with the account's
//! auth token and sent base64-encoded.
//!
//! The URL a handler sees is not always the one Twilio signed, in two ways
//! Twilio's own helper libraries allow for: Twilio signs with or without
//! the scheme's default port depending on the product, and it signs some
//! query characters literally (`'` in `ToState=Trezzo Sull'Adda`, `:` and
//! `@` in a SIP `Caller`) that it then delivers percent-escaped. So four
//! forms of the received URL are tried: {as delivered, query as signed} ×
//! {without port, with the default port}. Every form means the same request
//! as the one received (only escapes of characters that carry no query
//! syntax are undone), so no form accepts a request Twilio did not sign.
//! JSON bodies carry no parameters: the URL's `bodySHA256` query parameter
//! holds the hex SHA-256 of the body, and the URL alone is signed.

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::form;

/// What a webhook delivered, borrowed from the request.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Content<'a> {
    /// A form POST (or a GET with no body): the decoded parameters.
    Form(&'a [(&'a str, &'a str)]),
    /// A raw body, validated through the URL's `bodySHA256`.
    Json(&'a [u8]),
}

/// The signature Twilio computes for `url` and form `params`; `None` only
/// if HMAC refused the key, which it does for no length.
pub(crate) fn compute(auth_token: &str, url: &str, params: &[(&str, &str)]) -> Option<String> {
    let mut sorted: Vec<(&str, &str)> = params.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(auth_token.as_bytes()).ok()?;
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    Some(base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

/// Whether `signature` is what Twilio sends for this request.
pub(crate) fn is_valid(auth_token: &str, url: &str, content: Content<'_>, signature: &str) -> bool {
    let params: &[(&str, &str)] = match content {
        Content::Form(params) => params,
        Content::Json(body) => {
            let Some(expected) = query_param(url, "bodySHA256") else {
                return false;
            };
            let actual = hex_lower(&Sha256::digest(body));
            if !bool::from(actual.as_bytes().ct_eq(expected.as_bytes())) {
                return false;
            }
            &[]
        }
    };
    // Every form is computed and compared, so the time taken depends only
    // on the (public) URL, not on which form matched.
    let query_forms = [url.to_owned(), query_as_signed(url)];
    query_forms
        .iter()
        .flat_map(|form| [without_port(form), with_port(form)])
        .fold(false, |matched, candidate| {
            matched | equal(compute(auth_token, &candidate, params), signature)
        })
}

/// Whether `url` asks for JSON-body validation.
pub(crate) fn has_body_hash(url: &str) -> bool {
    query_param(url, "bodySHA256").is_some()
}

fn equal(computed: Option<String>, received: &str) -> bool {
    computed.is_some_and(|c| bool::from(c.as_bytes().ct_eq(received.trim().as_bytes())))
}

fn hex_lower(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    let query = query.split_once('#').map_or(query, |(q, _)| q);
    form::decode(query)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
}

/// `url` with the percent-escapes in its query undone for the characters
/// that may stand literally in a query and mean nothing to a form parser
/// (RFC 3986 `pchar` minus `&`, `=` and `+`), the way Twilio signs them.
/// `%26`, `%3D`, `%2B`, `%25`, `%23`, spaces and non-ASCII stay escaped:
/// unescaping those would change which parameters the query carries.
fn query_as_signed(url: &str) -> String {
    let Some((before, after)) = url.split_once('?') else {
        return url.to_owned();
    };
    let (query, fragment) = match after.split_once('#') {
        Some((query, fragment)) => (query, Some(fragment)),
        None => (after, None),
    };
    let mut out = String::with_capacity(url.len());
    out.push_str(before);
    out.push('?');
    let bytes = query.as_bytes();
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let literal = (bytes[i] == b'%')
            .then(|| Some(form::hex(bytes.get(i + 1)?)? << 4 | form::hex(bytes.get(i + 2)?)?))
            .flatten()
            .filter(|&byte| signed_literally(byte));
        match literal {
            Some(byte) => {
                out.push_str(&query[copied..i]);
                out.push(char::from(byte));
                i += 3;
                copied = i;
            }
            None => i += 1,
        }
    }
    out.push_str(&query[copied..]);
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

/// Whether Twilio may sign `byte` literally in a query: RFC 3986 allows it
/// unescaped there and `application/x-www-form-urlencoded` gives it no
/// meaning.
fn signed_literally(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-._~!$'()*,;:@/?".contains(&byte)
}

/// A URL split around its authority's port: `(before host, host, port, rest)`.
struct Parts<'a> {
    scheme: &'a str,
    /// `scheme://` and any `user:pass@`.
    prefix: &'a str,
    host: &'a str,
    port: Option<&'a str>,
    /// Path, query and fragment.
    rest: &'a str,
}

fn split(url: &str) -> Option<Parts<'_>> {
    let scheme_end = url.find("://")?;
    let authority_start = scheme_end + 3;
    let authority_len = url[authority_start..]
        .find(['/', '?', '#'])
        .unwrap_or(url.len() - authority_start);
    let authority_end = authority_start + authority_len;
    let authority = &url[authority_start..authority_end];
    let host_start = authority_start + authority.rfind('@').map_or(0, |at| at + 1);
    let host_port = &url[host_start..authority_end];
    // An IPv6 literal has colons inside its brackets.
    let search_from = host_port.rfind(']').unwrap_or(0);
    let (host, port) = match host_port[search_from..].rfind(':') {
        Some(colon) => {
            let colon = search_from + colon;
            (&host_port[..colon], Some(&host_port[colon + 1..]))
        }
        None => (host_port, None),
    };
    Some(Parts {
        scheme: &url[..scheme_end],
        prefix: &url[..host_start],
        host,
        port: port.filter(|p| !p.is_empty()),
        rest: &url[authority_end..],
    })
}

/// The URL without any port.
fn without_port(url: &str) -> String {
    match split(url) {
        Some(parts) if parts.port.is_some() => {
            format!("{}{}{}", parts.prefix, parts.host, parts.rest)
        }
        _ => url.to_owned(),
    }
}

/// The URL with the scheme's default port when it has none.
fn with_port(url: &str) -> String {
    match split(url) {
        Some(parts) if parts.port.is_none() => {
            let port = if parts.scheme.eq_ignore_ascii_case("https") {
                443
            } else {
                80
            };
            format!("{}{}:{port}{}", parts.prefix, parts.host, parts.rest)
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The cases of twilio-python's `tests/unit/test_request_validator.py`.
    const TOKEN: &str = "12345";
    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    const PARAMS: &[(&str, &str)] = &[
        ("CallSid", "CA1234567890ABCDE"),
        ("Digits", "1234"),
        ("From", "+14158675309"),
        ("To", "+18005551212"),
        ("Caller", "+14158675309"),
    ];
    const EXPECTED: &str = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";
    const BODY: &str = r#"{"property": "value", "boolean": true}"#;
    const BODY_HASH: &str = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";

    fn check_compute(url: &str, params: &[(&str, &str)], expected: &str) {
        let signature = compute(TOKEN, url, params).unwrap();
        assert_eq!(signature, expected, "signing {url} {params:?}");
    }

    fn check_valid(url: &str, content: Content<'_>, signature: &str, expected: bool) {
        assert_eq!(
            is_valid(TOKEN, url, content, signature),
            expected,
            "validating {signature} for {url} {content:?}"
        );
    }

    #[test]
    fn sdk_vector_signs_url_and_sorted_params() {
        check_compute(URL, PARAMS, EXPECTED);
        check_valid(URL, Content::Form(PARAMS), EXPECTED, true);
    }

    #[test]
    fn parameter_order_does_not_matter() {
        let mut reversed = PARAMS.to_vec();
        reversed.reverse();
        check_compute(URL, &reversed, EXPECTED);
    }

    #[test]
    fn repeated_names_are_signed_with_sorted_distinct_values() {
        let expected = "IK+Dwps556ElfBT0I3Rgjkr1wJU=";
        let repeated = [
            ("Sid", "CA123"),
            ("SidAccount", "AC123"),
            ("Digits", "5678"),
            ("Digits", "1234"),
        ];
        check_compute(URL, &repeated, expected);
        // twilio-php's variant of the case sends one value twice.
        let duplicated = [
            ("Sid", "CA123"),
            ("SidAccount", "AC123"),
            ("Digits", "5678"),
            ("Digits", "1234"),
            ("Digits", "1234"),
        ];
        check_compute(URL, &duplicated, expected);
        check_valid(URL, Content::Form(&duplicated), expected, true);
    }

    #[test]
    fn https_url_with_a_port_matches_a_signature_made_without_it() {
        let url = URL.replace(".com", ".com:1234");
        check_valid(&url, Content::Form(PARAMS), EXPECTED, true);
    }

    #[test]
    fn http_url_with_a_port_matches_a_signature_made_with_it() {
        let url = URL.replace(".com", ".com:1234").replace("https", "http");
        check_valid(
            &url,
            Content::Form(PARAMS),
            "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=",
            true,
        );
    }

    #[test]
    fn url_without_a_port_matches_a_signature_made_with_the_default_port() {
        check_valid(
            URL,
            Content::Form(PARAMS),
            "kvajT1Ptam85bY51eRf/AJRuM3w=",
            true,
        );
        let http = URL.replace("https", "http");
        check_valid(
            &http,
            Content::Form(PARAMS),
            "0ZXoZLH/DfblKGATFgpif+LLRf4=",
            true,
        );
    }

    #[test]
    fn json_body_is_validated_through_body_sha256() {
        assert_eq!(hex_lower(&Sha256::digest(BODY.as_bytes())), BODY_HASH);
        let url = format!("{URL}&bodySHA256={BODY_HASH}");
        let signature = "a9nBmqA0ju/hNViExpshrM61xv4=";
        check_valid(&url, Content::Json(BODY.as_bytes()), signature, true);
        check_valid(
            &url,
            Content::Json(b"{\"property\": \"other\"}"),
            signature,
            false,
        );
        // Without the hash in the URL there is nothing to check the body against.
        check_valid(URL, Content::Json(BODY.as_bytes()), signature, false);
        assert!(has_body_hash(&url) && !has_body_hash(URL));
    }

    #[test]
    fn tampering_is_rejected() {
        check_valid(
            URL,
            Content::Form(PARAMS),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8",
            false,
        );
        check_valid(URL, Content::Form(PARAMS), "", false);
        check_valid(
            &format!("{URL}&extra=1"),
            Content::Form(PARAMS),
            EXPECTED,
            false,
        );
        check_valid(URL, Content::Form(&PARAMS[1..]), EXPECTED, false);
        let mut changed = PARAMS.to_vec();
        changed[1] = ("Digits", "1235");
        check_valid(URL, Content::Form(&changed), EXPECTED, false);
        assert!(!is_valid("54321", URL, Content::Form(PARAMS), EXPECTED));
    }

    // The port cases of twilio-node's `spec/unit/webhooks/webhooks.spec.js`:
    // a signature made with `:443` validates without it and the reverse.
    #[test]
    fn default_port_is_optional_in_either_direction() {
        let token = "s3cr3t";
        let with = "https://example.com:443/path?test=param";
        let without = "https://example.com/path?test=param";
        for (signed, target) in [
            (with, with),
            (with, without),
            (without, without),
            (without, with),
        ] {
            let signature = compute(token, signed, &[]).unwrap();
            assert!(
                is_valid(token, target, Content::Form(&[]), &signature),
                "signed {signed}, received {target}"
            );
        }
        let signature = compute(token, without, &[]).unwrap();
        assert!(!is_valid(
            token,
            "https://example.com/path?test=param2",
            Content::Form(&[]),
            &signature
        ));
    }

    /// Signs `signed` and checks whether the request as received at
    /// `received` validates, with and without form parameters.
    fn check_signed_received(signed: &str, received: &str, expected: bool) {
        for params in [PARAMS, &[]] {
            let signature = compute(TOKEN, signed, params).unwrap();
            assert_eq!(
                is_valid(TOKEN, received, Content::Form(params), &signature),
                expected,
                "signed {signed}, received {received}, {} params",
                params.len()
            );
        }
    }

    // Issue 14, item 4: Twilio signs `:` and `@` of a SIP `Caller` and the
    // `'` of `ToState=Trezzo Sull'Adda` literally, and delivers them escaped.
    #[test]
    fn query_characters_signed_literally_and_delivered_escaped_validate() {
        check_signed_received(
            "https://isp.example/voice?Caller=sip:1234567890@209.182.172.181&Digits=1",
            "https://isp.example/voice?Caller=sip%3A1234567890%40209.182.172.181&Digits=1",
            true,
        );
        check_signed_received(
            "https://isp.example/hangup?ToState=Trezzo+Sull'Adda",
            "https://isp.example/hangup?ToState=Trezzo+Sull%27Adda",
            true,
        );
        // Lower-case escapes are the same characters.
        check_signed_received(
            "https://isp.example/voice?Caller=sip:1@h",
            "https://isp.example/voice?Caller=sip%3a1%40h",
            true,
        );
        // Both differences at once: the default port and the escapes.
        check_signed_received(
            "https://isp.example/hangup?ToState=Forli'",
            "https://isp.example:443/hangup?ToState=Forli%27",
            true,
        );
        check_signed_received(
            "http://isp.example:80/hangup?ToState=Forli'",
            "http://isp.example/hangup?ToState=Forli%27",
            true,
        );
    }

    // What the handler's own action URL carried escaped, Twilio signs escaped.
    #[test]
    fn query_escapes_signed_as_delivered_still_validate() {
        check_signed_received(
            "https://isp.example/gather?RetryMessage=Couldn%27t+find+it&Digits=1",
            "https://isp.example/gather?RetryMessage=Couldn%27t+find+it&Digits=1",
            true,
        );
        check_signed_received(
            "https://isp.example/voice?Caller=sip%3A1%40h",
            "https://isp.example/voice?Caller=sip%3A1%40h",
            true,
        );
    }

    // An escape that changes which parameters the query carries is never
    // undone: no form of the signed URL produced these requests.
    #[test]
    fn escapes_that_change_the_query_meaning_are_not_undone() {
        for (signed, received) in [
            // `%2B` is a literal plus; `+` is a space.
            (
                "https://isp.example/cb?To=+14155550100",
                "https://isp.example/cb?To=%2B14155550100",
            ),
            // `%26` and `%3D` are data; `&` and `=` are separators.
            (
                "https://isp.example/cb?a=1&b=2",
                "https://isp.example/cb?a=1%26b=2",
            ),
            (
                "https://isp.example/cb?a=1&b=2",
                "https://isp.example/cb?a=1&b%3D2",
            ),
            // `%25` is a percent sign, `%23` not a fragment.
            (
                "https://isp.example/cb?a=%41",
                "https://isp.example/cb?a=%2541",
            ),
            (
                "https://isp.example/cb?a=1#b",
                "https://isp.example/cb?a=1%23b",
            ),
            // Spaces and non-ASCII are not characters a query carries literally.
            (
                "https://isp.example/cb?a=x y",
                "https://isp.example/cb?a=x%20y",
            ),
            (
                "https://isp.example/cb?city=Forlì",
                "https://isp.example/cb?city=Forl%C3%AC",
            ),
            // Only the query: the path is delivered as it was signed.
            (
                "https://isp.example/a:b?x=1",
                "https://isp.example/a%3Ab?x=1",
            ),
            // The reverse direction: signed escaped, delivered literally.
            (
                "https://isp.example/cb?Caller=sip%3A1%40h",
                "https://isp.example/cb?Caller=sip:1@h",
            ),
            // A different value, however escaped.
            (
                "https://isp.example/cb?ToState=Forli'",
                "https://isp.example/cb?ToState=Forla%27",
            ),
        ] {
            check_signed_received(signed, received, false);
        }
    }

    fn check_query_as_signed(received: &str, expected: &str) {
        assert_eq!(
            query_as_signed(received),
            expected,
            "query as signed: {received}"
        );
    }

    #[test]
    fn query_as_signed_undoes_only_escapes_of_literal_query_characters() {
        check_query_as_signed(
            "https://h.example/p%3Aq?a=%27%3a%40%2F%3F%21%24%28%29%2A%2C%3B%7E%41&b=c#f%27",
            "https://h.example/p%3Aq?a=':@/?!$()*,;~A&b=c#f%27",
        );
        check_query_as_signed(
            "https://h.example/?a=%26%3D%2B%25%23%20%C3%AC%0A",
            "https://h.example/?a=%26%3D%2B%25%23%20%C3%AC%0A",
        );
        // Malformed escapes stay as they are.
        check_query_as_signed(
            "https://h.example/?a=%4&b=%zz%",
            "https://h.example/?a=%4&b=%zz%",
        );
        check_query_as_signed("https://h.example/no-query", "https://h.example/no-query");
    }

    fn check_ports(url: &str, expected_without: &str, expected_with: &str) {
        assert_eq!(without_port(url), expected_without, "without port: {url}");
        assert_eq!(with_port(url), expected_with, "with port: {url}");
    }

    #[test]
    fn ports_are_added_and_removed_in_the_authority_only() {
        check_ports(
            "https://a.example/x:1",
            "https://a.example/x:1",
            "https://a.example:443/x:1",
        );
        check_ports(
            "http://a.example:8080?q=:9",
            "http://a.example?q=:9",
            "http://a.example:8080?q=:9",
        );
        check_ports(
            "https://u:p@a.example/",
            "https://u:p@a.example/",
            "https://u:p@a.example:443/",
        );
        check_ports(
            "http://[::1]:80/cb",
            "http://[::1]/cb",
            "http://[::1]:80/cb",
        );
        check_ports("http://[::1]/cb", "http://[::1]/cb", "http://[::1]:80/cb");
        check_ports("not a url", "not a url", "not a url");
    }
}
