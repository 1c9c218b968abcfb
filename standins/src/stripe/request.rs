//! The incoming request and its checks: API version, form decoding into
//! nested parameters, required, unknown and typed parameters.

use super::*;

/// A request as the state machine sees it.
#[derive(Debug, Clone)]
pub(super) struct Incoming {
    pub(super) method: String,
    pub(super) path: String,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
}

impl Incoming {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

pub(super) fn check_version(request: &Incoming) -> Result<String, ApiError> {
    let Some(version) = request.header("stripe-version") else {
        return Err(ApiError::invalid(
            None,
            "Stripe stand-in: every request must pin a Stripe-Version header (a plugkit rule; Stripe itself falls back to the \
             account's default version).",
            None,
        ));
    };
    if !is_api_version(version) {
        return Err(ApiError::invalid(
            None,
            format!("Invalid Stripe API version: {version}"),
            None,
        ));
    }
    Ok(version.to_owned())
}

/// `YYYY-MM-DD` with an optional lower-case `.release` suffix.
pub(super) fn is_api_version(version: &str) -> bool {
    let (date, release) = match version.split_once('.') {
        Some((date, release)) => (date, Some(release)),
        None => (version, None),
    };
    let bytes = date.as_bytes();
    let shape = bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        });
    let month = date
        .get(5..7)
        .and_then(|m| m.parse::<u8>().ok())
        .unwrap_or(0);
    let day = date
        .get(8..10)
        .and_then(|d| d.parse::<u8>().ok())
        .unwrap_or(0);
    let release_ok =
        release.is_none_or(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_lowercase()));
    shape && (1..=12).contains(&month) && (1..=31).contains(&day) && release_ok
}

/// Decodes the form body into a JSON tree: `a[b]=1` → `{"a":{"b":"1"}}`,
/// `a[]=x` appends to a list; `a[0]=x` is a map with key `0` until a
/// parameter that is a list reads it.
pub(super) fn parse_form(request: &Incoming) -> Result<Value, ApiError> {
    let content_type = request.header("content-type").unwrap_or_default();
    if !request.body.is_empty() && !content_type.starts_with("application/x-www-form-urlencoded") {
        return Err(ApiError::invalid(
            None,
            "Invalid request (check that your POST content type is application/x-www-form-urlencoded). If you have any \
             questions, we can help at https://support.stripe.com/.",
            None,
        ));
    }
    let mut root = Value::Object(Map::new());
    for (key, value) in form_urlencoded::parse(&request.body) {
        let segments = key_segments(&key).ok_or_else(|| {
            ApiError::invalid(None, format!("Invalid parameter name: {key}"), None)
        })?;
        insert(&mut root, &segments, value.into_owned()).map_err(|problem| {
            ApiError::invalid(
                None,
                format!("Invalid parameter {key}: {problem}"),
                Some(segments[0]),
            )
        })?;
    }
    Ok(root)
}

/// `a[b][]` → `["a", "b", ""]`.
pub(super) fn key_segments(key: &str) -> Option<Vec<&str>> {
    let (root, mut rest) = match key.find('[') {
        Some(at) => (&key[..at], &key[at..]),
        None => (key, ""),
    };
    if root.is_empty() || root.contains(']') {
        return None;
    }
    let mut segments = vec![root];
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[')?;
        let end = inner.find(']')?;
        let segment = &inner[..end];
        if segment.contains('[') {
            return None;
        }
        segments.push(segment);
        rest = &inner[end + 1..];
    }
    Some(segments)
}

pub(super) fn insert(
    target: &mut Value,
    segments: &[&str],
    value: String,
) -> Result<(), &'static str> {
    let Some((first, rest)) = segments.split_first() else {
        if !target.is_null() {
            return Err("given more than once");
        }
        *target = Value::String(value);
        return Ok(());
    };
    if first.is_empty() {
        if target.is_null() {
            *target = Value::Array(Vec::new());
        }
        let Value::Array(items) = target else {
            return Err("mixes list and map forms");
        };
        items.push(Value::Null);
        let Some(last) = items.last_mut() else {
            return Err("mixes list and map forms");
        };
        return insert(last, rest, value);
    }
    if target.is_null() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(map) = target else {
        return Err("is both a value and a map");
    };
    let slot = map.entry((*first).to_owned()).or_insert(Value::Null);
    insert(slot, rest, value)
}

pub(super) fn check_known(params: &Value, known: &[&str]) -> Result<(), ApiError> {
    let Some(map) = params.as_object() else {
        return Ok(());
    };
    if let Some(unknown) = map.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(ApiError::invalid(
            Some("parameter_unknown"),
            format!("Received unknown parameter: {unknown}"),
            Some(unknown),
        ));
    }
    Ok(())
}

pub(super) fn scalar<'a>(params: &'a Value, name: &str) -> Result<Option<&'a str>, ApiError> {
    match params.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(ApiError::invalid(
            Some("parameter_invalid_string"),
            format!("Invalid string: {name} must be a single value, not a list or a hash"),
            Some(name),
        )),
    }
}

pub(super) fn required_string<'a>(params: &'a Value, name: &str) -> Result<&'a str, ApiError> {
    match scalar(params, name)? {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(ApiError::invalid(
            Some("parameter_missing"),
            format!("Missing required param: {name}."),
            Some(name),
        )),
    }
}

pub(super) fn optional_string<'a>(
    params: &'a Value,
    name: &str,
) -> Result<Option<&'a str>, ApiError> {
    Ok(scalar(params, name)?.filter(|s| !s.is_empty()))
}

pub(super) fn required_integer(params: &Value, name: &str) -> Result<i64, ApiError> {
    let text = required_string(params, name)?;
    parse_integer(text, name)
}

pub(super) fn optional_integer(params: &Value, name: &str) -> Result<Option<i64>, ApiError> {
    optional_string(params, name)?
        .map(|text| parse_integer(text, name))
        .transpose()
}

pub(super) fn parse_integer(text: &str, name: &str) -> Result<i64, ApiError> {
    text.parse::<i64>().map_err(|_| {
        ApiError::invalid(
            Some("parameter_invalid_integer"),
            format!("Invalid integer: {text}"),
            Some(name),
        )
    })
}

pub(super) fn optional_bool(params: &Value, name: &str) -> Result<Option<bool>, ApiError> {
    match optional_string(params, name)? {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(other) => Err(ApiError::invalid(
            Some("parameter_invalid_boolean"),
            format!("Invalid boolean: {other}"),
            Some(name),
        )),
    }
}

/// A list parameter, sent as `name[]=a` or `name[0]=a`.
pub(super) fn optional_list(params: &Value, name: &str) -> Result<Option<Vec<String>>, ApiError> {
    let invalid = || ApiError::invalid(None, "Invalid array", Some(name));
    let items: Vec<&Value> = match params.get(name) {
        None => return Ok(None),
        Some(Value::Array(items)) => items.iter().collect(),
        Some(Value::Object(map)) => {
            let mut indexed: BTreeMap<usize, &Value> = BTreeMap::new();
            for (index, value) in map {
                indexed.insert(index.parse().map_err(|_| invalid())?, value);
            }
            indexed.into_values().collect()
        }
        Some(_) => return Err(invalid()),
    };
    items
        .into_iter()
        .map(|item| item.as_str().map(str::to_owned).ok_or_else(invalid))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

pub(super) fn metadata(params: &Value) -> Result<Map<String, Value>, ApiError> {
    let map = match params.get("metadata") {
        None => return Ok(Map::new()),
        Some(Value::String(s)) if s.is_empty() => return Ok(Map::new()),
        Some(Value::Object(map)) => map,
        Some(_) => return Err(ApiError::invalid(
            None,
            "Invalid hash: metadata must be a hash of keys to values, e.g. metadata[order_id]=6735",
            Some("metadata"),
        )),
    };
    if map.len() > 50 {
        return Err(ApiError::invalid(
            None,
            "Metadata can have up to 50 keys, but you passed in more.",
            Some("metadata"),
        ));
    }
    for (key, value) in map {
        let Some(value) = value.as_str() else {
            return Err(ApiError::invalid(
                None,
                format!("Invalid value for metadata[{key}]: metadata values must be strings."),
                Some(&format!("metadata[{key}]")),
            ));
        };
        if key.chars().count() > 40 {
            return Err(ApiError::invalid(
                None,
                format!(
                    "Metadata keys can have up to 40 characters, but you passed in a key that is {} characters long.",
                    key.chars().count()
                ),
                Some("metadata"),
            ));
        }
        if value.chars().count() > 500 {
            return Err(ApiError::invalid(
                None,
                format!(
                    "Metadata values can have up to 500 characters, but you passed in a value that is {} characters long.",
                    value.chars().count()
                ),
                Some(&format!("metadata[{key}]")),
            ));
        }
    }
    Ok(map.clone())
}

pub(super) fn check_payment_method(pm: &str) -> Result<(), ApiError> {
    if test_payment_method(pm).is_none() {
        return Err(ApiError::new(
            400,
            "invalid_request_error",
            Some("resource_missing"),
            format!("No such PaymentMethod: '{pm}'"),
            Some("payment_method"),
        ));
    }
    Ok(())
}
