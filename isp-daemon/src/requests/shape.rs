//! The JSON shape of a flow request body, checked before it is decoded so
//! that one answer names every missing, mistyped or unknown field together
//! with the expected shape (serde stops at the first).

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{DeviceAlertRequest, NewCustomer, TierChangeRequest};

/// One field of a request body: its name, the JSON type it must have, and
/// whether it may be left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldShape {
    /// The field's name.
    pub name: &'static str,
    /// Its JSON type: `"string"` or `"integer"`.
    pub kind: &'static str,
    /// Whether the body must carry it.
    pub required: bool,
    /// What the value means, for the expected-shape text.
    pub about: &'static str,
}

impl FieldShape {
    const fn required(name: &'static str, kind: &'static str, about: &'static str) -> Self {
        Self {
            name,
            kind,
            required: true,
            about,
        }
    }

    const fn optional(name: &'static str, kind: &'static str, about: &'static str) -> Self {
        Self {
            name,
            kind,
            required: false,
            about,
        }
    }

    fn accepts(&self, value: &Value) -> bool {
        match self.kind {
            "integer" => value.is_i64(),
            _ => value.is_string() || (!self.required && value.is_null()),
        }
    }
}

/// A flow request with a declared JSON shape.
pub trait RequestShape: DeserializeOwned {
    /// What the body is, for messages: `"device alert"`.
    const WHAT: &'static str;
    /// Its fields, in the order the expected-shape text lists them.
    const FIELDS: &'static [FieldShape];
}

impl RequestShape for DeviceAlertRequest {
    const WHAT: &'static str = "device alert";
    const FIELDS: &'static [FieldShape] = &[
        FieldShape::required("tenant", "string", "the tenant's id"),
        FieldShape::required("device", "string", "host:port or a name"),
        FieldShape::required(
            "severity",
            "string",
            "\"info\", \"warning\" or \"critical\"",
        ),
        FieldShape::required("message", "string", "what happened"),
    ];
}

impl RequestShape for TierChangeRequest {
    const WHAT: &'static str = "tier change";
    const FIELDS: &'static [FieldShape] = &[
        FieldShape::required("tenant", "string", "the tenant's id"),
        FieldShape::required("tier", "string", "the new tier's name"),
    ];
}

impl RequestShape for NewCustomer {
    const WHAT: &'static str = "new customer";
    const FIELDS: &'static [FieldShape] = &[
        FieldShape::required("tenant", "string", "the tenant's id"),
        FieldShape::required("customer_id", "string", "1 to 64 of A-Z a-z 0-9 . _ -"),
        FieldShape::required("name", "string", "display name"),
        FieldShape::optional("phone", "string", "E.164, e.g. \"+14155550123\""),
        FieldShape::optional("email", "string", "e-mail address"),
        FieldShape::required("plan", "string", "service plan"),
        FieldShape::required(
            "monthly_price_minor",
            "integer",
            "minor units, e.g. 4999 for 49.99",
        ),
        FieldShape::required("currency", "string", "ISO 4217, e.g. \"usd\""),
        FieldShape::optional("device_address", "string", "host:port or \"demo:snmpd\""),
        FieldShape::optional("device_ssh", "string", "host:port or \"demo:sshd\""),
        FieldShape::optional("payment_method", "string", "default \"pm_card_visa\""),
    ];
}

/// Decodes a flow request body. Errors: one message naming every missing,
/// mistyped or unknown field (joined by `; `) followed by the expected
/// shape, e.g. `the body is not a valid device alert: `device` is missing;
/// `severity` is missing. Expected {"tenant": string (the tenant's id), ...}`.
pub fn parse_request<T: RequestShape>(body: &[u8]) -> Result<T, String> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| failure::<T>(&[format!("it is not JSON ({e})")]))?;
    let Value::Object(fields) = &value else {
        return Err(failure::<T>(&["it must be a JSON object".to_owned()]));
    };
    let mut problems = Vec::new();
    for field in T::FIELDS {
        match fields.get(field.name) {
            None if field.required => problems.push(format!("`{}` is missing", field.name)),
            Some(v) if !field.accepts(v) => problems.push(format!(
                "`{}` must be {} {}, not {}",
                field.name,
                if field.kind == "integer" { "an" } else { "a" },
                field.kind,
                json_type(v)
            )),
            _ => {}
        }
    }
    for name in fields.keys() {
        if !T::FIELDS.iter().any(|f| f.name == name) {
            problems.push(format!("`{name}` is not a field of a {}", T::WHAT));
        }
    }
    if !problems.is_empty() {
        return Err(failure::<T>(&problems));
    }
    serde_json::from_value(value).map_err(|e| failure::<T>(&[e.to_string()]))
}

fn failure<T: RequestShape>(problems: &[String]) -> String {
    let shape = T::FIELDS
        .iter()
        .map(|f| {
            format!(
                "\"{}\"{}: {} ({})",
                f.name,
                if f.required { "" } else { "?" },
                f.kind,
                f.about
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "the body is not a valid {}: {}. Expected {{{shape}}} (`?`: optional)",
        T::WHAT,
        problems.join("; ")
    )
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_alert_missing_three_fields_names_all_three_and_the_shape() {
        let error = parse_request::<DeviceAlertRequest>(br#"{"tenant": "acme-fiber"}"#)
            .expect_err("three fields are missing");
        for field in [
            "`device` is missing",
            "`severity` is missing",
            "`message` is missing",
        ] {
            assert!(error.contains(field), "{field} not in {error}");
        }
        assert!(error.contains("\"severity\": string (\"info\""), "{error}");
    }

    #[test]
    fn mistyped_and_unknown_fields_are_named_with_the_missing_ones() {
        let error = parse_request::<NewCustomer>(
            br#"{"tenant": "t", "customer_id": 7, "name": "A", "plan": "p",
                "monthly_price_minor": "49.99", "currency": "usd", "colour": "red"}"#,
        )
        .expect_err("two fields are mistyped and one unknown");
        assert!(
            error.contains("`customer_id` must be a string, not an integer"),
            "{error}"
        );
        assert!(
            error.contains("`monthly_price_minor` must be an integer, not a string"),
            "{error}"
        );
        assert!(
            error.contains("`colour` is not a field of a new customer"),
            "{error}"
        );
    }

    #[test]
    fn a_complete_body_decodes_and_optional_fields_may_be_null() {
        let alert = parse_request::<DeviceAlertRequest>(
            br#"{"tenant": "t", "device": "d", "severity": "info", "message": "m"}"#,
        )
        .expect("complete");
        assert_eq!(alert.device, "d");
        let customer = parse_request::<NewCustomer>(
            br#"{"tenant": "t", "customer_id": "c", "name": "A", "plan": "p",
                "monthly_price_minor": 4999, "currency": "usd", "phone": null}"#,
        )
        .expect("complete");
        assert_eq!(customer.phone, None);
    }

    #[test]
    fn a_device_alert_with_every_value_wrong_names_every_field() {
        let alert = DeviceAlertRequest {
            tenant: "t".to_owned(),
            device: " ".to_owned(),
            severity: "loud".to_owned(),
            message: String::new(),
        };
        let error = alert.validate().expect_err("all three are wrong");
        for field in ["`device`", "`severity`", "`message`"] {
            assert!(error.contains(field), "{field} not in {error}");
        }
    }
}
