//! `application/x-www-form-urlencoded` encoding and decoding, as Twilio's
//! SDKs send it and as Twilio posts its webhooks. Pure: no IO.

/// Encodes `pairs` in order; a repeated name (`MediaUrl`) stays repeated.
pub(crate) fn encode(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        encode_component(name, &mut out);
        out.push('=');
        encode_component(value, &mut out);
    }
    out
}

/// The WHATWG urlencoded serializer: `*-._` and alphanumerics stay, space
/// becomes `+`, every other byte of the UTF-8 text is `%XX`. A literal `+`
/// in an E.164 number therefore travels as `%2B`.
fn encode_component(text: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &byte in text.as_bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(byte));
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(HEX[usize::from(byte >> 4)]));
                out.push(char::from(HEX[usize::from(byte & 0x0f)]));
            }
        }
    }
}

/// Decodes a urlencoded body or query string into pairs, in order.
/// Malformed escapes are kept literally, as browsers and Twilio's SDKs do.
pub(crate) fn decode(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|part| !part.is_empty())
        .map(|part| match part.split_once('=') {
            Some((name, value)) => (decode_component(name), decode_component(value)),
            None => (decode_component(part), String::new()),
        })
        .collect()
}

fn decode_component(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => match (
                bytes.get(i + 1).and_then(hex),
                bytes.get(i + 2).and_then(hex),
            ) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn hex(byte: &u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_encode(pairs: &[(&str, &str)], expected: &str) {
        assert_eq!(encode(pairs), expected, "encoding {pairs:?}");
    }

    fn check_decode(text: &str, expected: &[(&str, &str)]) {
        let decoded = decode(text);
        let decoded: Vec<(&str, &str)> = decoded
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        assert_eq!(decoded, expected, "decoding {text:?}");
    }

    #[test]
    fn plus_in_e164_numbers_is_escaped() {
        check_encode(&[("To", "+14155550100")], "To=%2B14155550100");
    }

    #[test]
    fn spaces_become_plus_and_unicode_is_utf8_escaped() {
        check_encode(&[("Body", "Hi there")], "Body=Hi+there");
        check_encode(&[("Body", "Grüße 👍")], "Body=Gr%C3%BC%C3%9Fe+%F0%9F%91%8D");
    }

    #[test]
    fn reserved_characters_are_escaped_and_unreserved_kept() {
        check_encode(&[("Body", "a&b=c/d?e%f")], "Body=a%26b%3Dc%2Fd%3Fe%25f");
        check_encode(&[("Body", "*-._~")], "Body=*-._%7E");
    }

    #[test]
    fn repeated_names_keep_their_order() {
        check_encode(
            &[
                ("MediaUrl", "https://a.example/1.png"),
                ("MediaUrl", "https://a.example/2.png"),
            ],
            "MediaUrl=https%3A%2F%2Fa.example%2F1.png&MediaUrl=https%3A%2F%2Fa.example%2F2.png",
        );
    }

    #[test]
    fn empty_input_encodes_to_empty_string() {
        check_encode(&[], "");
    }

    #[test]
    fn decode_reverses_encode() {
        let pairs = [("Body", "a&b=c+d é"), ("To", "+15005550006"), ("Empty", "")];
        check_decode(&encode(&pairs), &pairs);
    }

    #[test]
    fn decode_handles_plus_bare_names_and_bad_escapes() {
        check_decode(
            "a=1+2&flag&b=%2",
            &[("a", "1 2"), ("flag", ""), ("b", "%2")],
        );
        check_decode("&&x=%41%zz", &[("x", "A%zz")]);
        check_decode("", &[]);
    }
}
