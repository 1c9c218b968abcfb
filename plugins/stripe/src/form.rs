//! Form encoding of nested request parameters, byte for byte as Stripe's
//! official SDKs put them on the wire. Pure: no IO.
//!
//! stripe-python (`stripe/_encode.py::_api_encode`, then `urlencode` and the
//! `%5B`/`%5D` → `[`/`]` substitution in `_api_requestor.py`) is the
//! reference, and `tests/stripe_python.rs` checks this module against it:
//! - maps nest as `metadata[order]=42`;
//! - lists are **indexed**, `payment_method_types[0]=card` (not `[]`), and
//!   maps inside lists become `items[0][price]=p_1`;
//! - booleans are `true`/`false`; absent values are left out;
//! - everything else is escaped like Python's `quote_plus` (space → `+`,
//!   only `A-Z a-z 0-9 _ . - ~` kept), except that square brackets are kept
//!   literal everywhere, in values too, as the SDK does.

/// One parameter value. Maps and lists keep the order they were built in,
/// which is the order they are sent in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A string.
    Str(String),
    /// An integer, e.g. an amount in minor units.
    Int(i64),
    /// `true` or `false`.
    Bool(bool),
    /// A list, sent with indexes: `key[0]`, `key[1]`, ...
    List(Vec<Value>),
    /// A map, sent as `key[name]`.
    Map(Vec<(String, Value)>),
    /// Left out of the request, like Python's `None`.
    Absent,
}

impl Value {
    /// A string value.
    pub fn str(value: impl Into<String>) -> Self {
        Self::Str(value.into())
    }

    /// A string value when present, else [`Value::Absent`].
    pub fn opt_str(value: Option<impl Into<String>>) -> Self {
        value.map_or(Self::Absent, |v| Self::Str(v.into()))
    }
}

/// An ordered list of top-level parameters.
pub type Params = Vec<(String, Value)>;

/// Encodes `params` as an `application/x-www-form-urlencoded` body.
pub fn encode(params: &[(String, Value)]) -> String {
    let mut pairs = Vec::new();
    for (key, value) in params {
        flatten(key.clone(), value, &mut pairs);
    }
    let mut out = String::new();
    for (i, (key, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        escape_into(key, &mut out);
        out.push('=');
        escape_into(value, &mut out);
    }
    out
}

fn flatten(key: String, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Absent => {}
        Value::Str(s) => out.push((key, s.clone())),
        Value::Int(n) => out.push((key, n.to_string())),
        Value::Bool(b) => out.push((key, b.to_string())),
        Value::List(items) => {
            for (i, item) in items.iter().enumerate() {
                flatten(format!("{key}[{i}]"), item, out);
            }
        }
        Value::Map(entries) => {
            for (name, item) in entries {
                flatten(format!("{key}[{name}]"), item, out);
            }
        }
    }
}

/// Python's `quote_plus`, but with `[` and `]` left literal.
fn escape_into(text: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &byte in text.as_bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' | b'[' | b']' => {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn check(params: Params, expected: &str) {
        assert_eq!(encode(&params), expected);
    }

    fn p(key: &str, value: Value) -> (String, Value) {
        (key.to_owned(), value)
    }

    #[test]
    fn scalars_are_sent_as_text() {
        check(vec![p("amount", Value::Int(1999))], "amount=1999");
        check(vec![p("amount", Value::Int(-5))], "amount=-5");
        check(vec![p("confirm", Value::Bool(true))], "confirm=true");
        check(vec![p("confirm", Value::Bool(false))], "confirm=false");
        check(
            vec![p("amount", Value::Int(1)), p("currency", Value::str("usd"))],
            "amount=1&currency=usd",
        );
    }

    #[test]
    fn absent_values_are_left_out() {
        check(vec![p("customer", Value::Absent)], "");
        check(
            vec![
                p("a", Value::Absent),
                p("b", Value::str("x")),
                p("c", Value::opt_str(None::<String>)),
            ],
            "b=x",
        );
    }

    #[test]
    fn maps_nest_with_brackets() {
        check(
            vec![p(
                "metadata",
                Value::Map(vec![
                    ("order".into(), Value::str("42")),
                    ("tier".into(), Value::str("pro")),
                ]),
            )],
            "metadata[order]=42&metadata[tier]=pro",
        );
        check(
            vec![p(
                "a",
                Value::Map(vec![(
                    "b".into(),
                    Value::Map(vec![("c".into(), Value::Int(1))]),
                )]),
            )],
            "a[b][c]=1",
        );
        check(vec![p("metadata", Value::Map(vec![]))], "");
    }

    #[test]
    fn lists_are_indexed_not_bracketed() {
        check(
            vec![p(
                "payment_method_types",
                Value::List(vec![Value::str("card")]),
            )],
            "payment_method_types[0]=card",
        );
        check(
            vec![p(
                "expand",
                Value::List(vec![Value::str("latest_charge"), Value::str("customer")]),
            )],
            "expand[0]=latest_charge&expand[1]=customer",
        );
        check(
            vec![p(
                "items",
                Value::List(vec![Value::Map(vec![
                    ("price".into(), Value::str("p_1")),
                    ("qty".into(), Value::Int(2)),
                ])]),
            )],
            "items[0][price]=p_1&items[0][qty]=2",
        );
        check(
            vec![p(
                "m",
                Value::List(vec![Value::List(vec![Value::Int(1), Value::Int(2)])]),
            )],
            "m[0][0]=1&m[0][1]=2",
        );
    }

    #[test]
    fn text_is_escaped_like_quote_plus_with_literal_brackets() {
        check(vec![p("d", Value::str("a b"))], "d=a+b");
        check(vec![p("d", Value::str("a+b&c=d"))], "d=a%2Bb%26c%3Dd");
        check(vec![p("d", Value::str("x/y?z#"))], "d=x%2Fy%3Fz%23");
        check(vec![p("d", Value::str("_.-~"))], "d=_.-~");
        check(vec![p("d", Value::str("café"))], "d=caf%C3%A9");
        check(vec![p("d", Value::str("[x]"))], "d=[x]");
        check(
            vec![p(
                "metadata",
                Value::Map(vec![("a key".into(), Value::str("v"))]),
            )],
            "metadata[a+key]=v",
        );
    }
}
