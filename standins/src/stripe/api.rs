//! The API itself: routing, authentication, idempotency and the
//! PaymentIntent and refund state machine, over the recorded state.

use super::*;

/// A failure a test asked for, answered before anything else.
#[derive(Debug, Clone)]
pub(super) struct Injected {
    pub(super) status: u16,
    pub(super) headers: Vec<(String, String)>,
}

/// An answer.
#[derive(Debug, Clone)]
pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: String,
}

/// The state machine behind the HTTP server. Pure: no IO.
pub(super) struct Stripe {
    pub(super) secret_key: String,
    pub(super) seed: u64,
    pub(super) counter: u64,
    pub(super) failures: VecDeque<Injected>,
    pub(super) requests: Vec<RecordedRequest>,
    pub(super) intents: HashMap<String, Intent>,
    pub(super) charges: HashMap<String, String>,
    pub(super) idempotency: HashMap<String, Saved>,
    pub(super) events: Vec<StandInEvent>,
}

impl Stripe {
    pub(super) fn new(secret_key: String, seed: u64) -> Self {
        Self {
            secret_key,
            seed,
            counter: 0,
            failures: VecDeque::new(),
            requests: Vec::new(),
            intents: HashMap::new(),
            charges: HashMap::new(),
            idempotency: HashMap::new(),
            events: Vec::new(),
        }
    }

    pub(super) fn now() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
    }

    /// A fresh id with Stripe's prefix and 24 base-62 characters.
    pub(super) fn id(&mut self, prefix: &str) -> String {
        const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        self.counter += 1;
        let mut x = self.seed ^ self.counter.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut out = format!("{prefix}_");
        for _ in 0..24 {
            // splitmix64
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            out.push(char::from(ALPHABET[(z % 62) as usize]));
        }
        out
    }

    pub(super) fn handle(&mut self, request: &Incoming) -> Reply {
        let request_id = self.id("req");
        let injected = self.failures.pop_front();
        let answer = match injected {
            Some(Injected { status, headers }) => Err((injected_failure(status), headers)),
            None => self
                .process(request, &request_id)
                .map_err(|error| (error, Vec::new())),
        };
        let (mut reply, replayed) = match answer {
            Ok(answer) => answer,
            Err((error, headers)) => (
                Reply {
                    status: error.status,
                    headers,
                    body: pretty(&error.body),
                },
                false,
            ),
        };
        reply.headers.push(("request-id".into(), request_id));
        reply
            .headers
            .push(("content-type".into(), "application/json".into()));
        if reply.status == 401 {
            reply
                .headers
                .push(("www-authenticate".into(), "Basic realm=\"Stripe\"".into()));
        }
        self.requests.push(RecordedRequest {
            method: request.method.clone(),
            path: request.path.clone(),
            headers: request.headers.clone(),
            body: String::from_utf8_lossy(&request.body).into_owned(),
            status: reply.status,
            replayed,
        });
        reply
    }

    pub(super) fn process(
        &mut self,
        request: &Incoming,
        request_id: &str,
    ) -> Result<(Reply, bool), ApiError> {
        let endpoint = Endpoint::route(&request.method, &request.path).ok_or_else(|| {
            ApiError::new(
                404,
                "invalid_request_error",
                None,
                format!(
                    "Unrecognized request URL ({}: {}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.",
                    request.method, request.path
                ),
                None,
            )
        })?;
        self.authenticate(request)?;
        let version = check_version(request)?;
        let key = request
            .header("idempotency-key")
            .map(str::to_owned)
            .ok_or_else(|| {
                ApiError::invalid(
                    None,
                    "Stripe stand-in: every POST must carry an Idempotency-Key header (a plugkit rule; Stripe itself only recommends it).",
                    None,
                )
            })?;
        if key.is_empty() || key.len() > 255 {
            return Err(ApiError::invalid(
                None,
                "Idempotency-Key must be between 1 and 255 characters long.",
                None,
            ));
        }
        let params = parse_form(request)?;

        let endpoint_text = format!("{} {}", request.method, request.path);
        if let Some(saved) = self.idempotency.get(&key) {
            if saved.endpoint != endpoint_text {
                return Err(ApiError::new(
                    400,
                    "idempotency_error",
                    None,
                    format!(
                        "Keys for idempotent requests can only be used for the same endpoint they were first used for ('{}' vs '{}'). \
                         Try using a key other than '{key}' if you meant to execute a different request.",
                        saved.endpoint, endpoint_text
                    ),
                    None,
                ));
            }
            if saved.params != params {
                return Err(ApiError::new(
                    400,
                    "idempotency_error",
                    None,
                    format!(
                        "Keys for idempotent requests can only be used with the same parameters they were first used with. \
                         Try using a key other than '{key}' if you meant to execute a different request."
                    ),
                    None,
                ));
            }
            let reply = Reply {
                status: saved.status,
                headers: vec![
                    ("idempotent-replayed".into(), "true".into()),
                    ("original-request".into(), saved.request_id.clone()),
                ],
                body: saved.body.clone(),
            };
            return Ok((reply, true));
        }

        let context = CallContext {
            version: &version,
            request_id,
            idempotency_key: &key,
        };
        let outcome = match &endpoint {
            Endpoint::CreateIntent => self.create_intent(&params, &context),
            Endpoint::ConfirmIntent(id) => self.confirm_intent(id, &params, &context),
            Endpoint::CaptureIntent(id) => self.capture_intent(id, &params, &context),
            Endpoint::CreateRefund => self.create_refund(&params, &context),
        };
        let (status, body, saved) = match outcome {
            Ok((status, body)) => (status, pretty(&body), true),
            Err(error) => (error.status, pretty(&error.body), error.saved),
        };
        if saved {
            self.idempotency.insert(
                key,
                Saved {
                    endpoint: endpoint_text,
                    params,
                    status,
                    body: body.clone(),
                    request_id: request_id.to_owned(),
                },
            );
        }
        Ok((
            Reply {
                status,
                headers: Vec::new(),
                body,
            },
            false,
        ))
    }

    pub(super) fn authenticate(&self, request: &Incoming) -> Result<(), ApiError> {
        let missing = || {
            ApiError::new(
                401,
                "invalid_request_error",
                None,
                "You did not provide an API key. You need to provide your API key in the Authorization header, \
                 using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication \
                 for details, or we can help at https://support.stripe.com/.",
                None,
            )
        };
        let header = request.header("authorization").ok_or_else(missing)?;
        let key = if let Some(token) = header.strip_prefix("Bearer ") {
            token.trim().to_owned()
        } else if let Some(basic) = header.strip_prefix("Basic ") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(basic.trim())
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .unwrap_or_default();
            decoded.split(':').next().unwrap_or_default().to_owned()
        } else {
            return Err(ApiError::new(
                401,
                "invalid_request_error",
                None,
                "Invalid Authorization header: use Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
                None,
            ));
        };
        if key.is_empty() {
            return Err(missing());
        }
        if key != self.secret_key {
            return Err(ApiError::new(
                401,
                "invalid_request_error",
                None,
                format!("Invalid API Key provided: {}", mask_key(&key)),
                None,
            ));
        }
        Ok(())
    }

    pub(super) fn event(&mut self, event_type: &str, object: Value, context: &CallContext<'_>) {
        let id = self.id("evt");
        let body = json!({
            "id": id,
            "object": "event",
            "api_version": context.version,
            "created": Self::now(),
            "data": { "object": object },
            "livemode": false,
            "pending_webhooks": 1,
            "request": { "id": context.request_id, "idempotency_key": context.idempotency_key },
            "type": event_type,
        });
        self.events.push(StandInEvent {
            id,
            event_type: event_type.to_owned(),
            body: pretty(&body),
        });
    }

    pub(super) fn create_intent(&mut self, params: &Value, context: &CallContext<'_>) -> Outcome {
        check_known(
            params,
            &[
                "amount",
                "automatic_payment_methods",
                "capture_method",
                "confirm",
                "currency",
                "customer",
                "description",
                "expand",
                "metadata",
                "payment_method",
                "payment_method_types",
                "receipt_email",
                "return_url",
                "statement_descriptor",
            ],
        )?;
        let amount = required_integer(params, "amount")?;
        let currency = required_string(params, "currency")?.to_ascii_lowercase();
        if !CURRENCIES.contains(&currency.as_str()) {
            return Err(ApiError::invalid(
                None,
                format!(
                    "Invalid currency: {currency}. Stripe currently supports these currencies: {}",
                    CURRENCIES.join(", ")
                ),
                Some("currency"),
            ));
        }
        if amount < 1 {
            return Err(ApiError::invalid(
                Some("parameter_invalid_integer"),
                "This value must be greater than or equal to 1.",
                Some("amount"),
            ));
        }
        if amount < 50 {
            return Err(ApiError::invalid(
                Some("amount_too_small"),
                format!("Amount must be at least {}", format_amount(50, &currency)),
                Some("amount"),
            ));
        }
        if amount > 99_999_999 {
            return Err(ApiError::invalid(
                Some("amount_too_large"),
                format!(
                    "Amount must be no more than {}",
                    format_amount(99_999_999, &currency)
                ),
                Some("amount"),
            ));
        }
        let capture_method = optional_string(params, "capture_method")?.unwrap_or("automatic");
        if !["automatic", "automatic_async", "manual"].contains(&capture_method) {
            return Err(ApiError::invalid(
                None,
                "Invalid capture_method: must be one of automatic, automatic_async, or manual",
                Some("capture_method"),
            ));
        }
        let confirm = optional_bool(params, "confirm")?.unwrap_or(false);
        let metadata = metadata(params)?;
        let payment_method = optional_string(params, "payment_method")?.map(str::to_owned);
        if let Some(pm) = &payment_method {
            check_payment_method(pm)?;
        }
        let customer = optional_string(params, "customer")?.map(str::to_owned);
        if let Some(customer) = &customer {
            if !customer.starts_with("cus_") {
                return Err(ApiError::new(
                    400,
                    "invalid_request_error",
                    Some("resource_missing"),
                    format!("No such customer: '{customer}'"),
                    Some("customer"),
                ));
            }
        }
        let types = optional_list(params, "payment_method_types")?;
        let automatic = params.get("automatic_payment_methods");
        if types.is_some() && automatic.is_some() {
            return Err(ApiError::invalid(
                None,
                "You may only specify one of these parameters: automatic_payment_methods, payment_method_types.",
                Some("payment_method_types"),
            ));
        }
        if let Some(types) = &types {
            if types.is_empty() {
                return Err(ApiError::invalid(
                    None,
                    "Invalid array",
                    Some("payment_method_types"),
                ));
            }
            if let Some(unknown) = types.iter().find(|t| t.as_str() != "card") {
                return Err(ApiError::invalid(
                    None,
                    format!(
                        "The payment method type \"{unknown}\" is invalid. Please ensure the provided type is activated in your \
                         dashboard (https://dashboard.stripe.com/account/payments/settings) and your account is enabled for \
                         any preview features that you are trying to use."
                    ),
                    Some("payment_method_types"),
                ));
            }
        }
        // Since 2023-08-16, an intent without explicit types takes the
        // Dashboard's payment methods, redirect-based ones included.
        let automatic_payment_methods = types.is_none() && context.version.as_str() >= "2023-08-16";
        let id = self.id("pi");
        let intent = Intent {
            id: id.clone(),
            amount,
            currency,
            status: if payment_method.is_some() {
                "requires_confirmation"
            } else {
                "requires_payment_method"
            },
            capture_method: capture_method.to_owned(),
            payment_method,
            payment_method_types: types.unwrap_or_else(|| vec!["card".to_owned()]),
            automatic_payment_methods,
            customer,
            description: optional_string(params, "description")?.map(str::to_owned),
            metadata,
            amount_capturable: 0,
            amount_received: 0,
            amount_refunded: 0,
            latest_charge: None,
            last_payment_error: None,
            created: Self::now(),
        };
        self.intents.insert(id.clone(), intent);
        let created = self
            .intents
            .get(&id)
            .map(Intent::to_json)
            .unwrap_or(Value::Null);
        self.event("payment_intent.created", created, context);
        if confirm {
            let return_url = optional_string(params, "return_url")?;
            return self.confirm(&id, None, return_url, context);
        }
        self.intent_reply(&id)
    }

    pub(super) fn confirm_intent(
        &mut self,
        id: &str,
        params: &Value,
        context: &CallContext<'_>,
    ) -> Outcome {
        check_known(
            params,
            &["expand", "payment_method", "return_url", "capture_method"],
        )?;
        let payment_method = optional_string(params, "payment_method")?.map(str::to_owned);
        if let Some(pm) = &payment_method {
            check_payment_method(pm)?;
        }
        self.find_intent(id, "intent")?;
        let return_url = optional_string(params, "return_url")?;
        self.confirm(id, payment_method, return_url, context)
    }

    pub(super) fn confirm(
        &mut self,
        id: &str,
        payment_method: Option<String>,
        return_url: Option<&str>,
        context: &CallContext<'_>,
    ) -> Outcome {
        let charge_id = self.id("ch");
        let intent = self.find_intent(id, "intent")?;
        match intent.status {
            "requires_payment_method" | "requires_confirmation" | "requires_action" => {}
            "succeeded" => {
                return Err(ApiError::invalid(
                    Some("payment_intent_unexpected_state"),
                    "You cannot confirm this PaymentIntent because it has already succeeded after being previously confirmed.",
                    None,
                )
                .with("payment_intent", intent.to_json())
                .executed())
            }
            status => {
                return Err(ApiError::invalid(
                    Some("payment_intent_unexpected_state"),
                    format!("You cannot confirm this PaymentIntent because it has a status of {status}."),
                    None,
                )
                .with("payment_intent", intent.to_json())
                .executed())
            }
        }
        if let Some(pm) = payment_method {
            intent.payment_method = Some(pm);
        }
        let Some(pm) = intent.payment_method.clone() else {
            return Err(ApiError::invalid(
                Some("payment_intent_unexpected_state"),
                "You cannot confirm this PaymentIntent because it's missing a payment method. You can either update the \
                 PaymentIntent with a payment method and then confirm it again, or confirm it again directly with a payment method.",
                None,
            )
            .with("payment_intent", intent.to_json())
            .executed());
        };
        if intent.automatic_payment_methods && return_url.is_none() {
            return Err(ApiError::invalid(
                None,
                "This PaymentIntent is configured to accept payment methods enabled in your Dashboard. Because some of these \
                 payment methods might redirect your customer off of your website, you must provide a `return_url`. If you \
                 don't want to accept redirect-based payment methods, set `automatic_payment_methods[enabled]` to `true` and \
                 `automatic_payment_methods[allow_redirects]` to `never` when creating Setup Intents and Payment Intents.",
                None,
            )
            .executed());
        }
        intent.latest_charge = Some(charge_id.clone());
        let decline = test_payment_method(&pm).flatten();
        if let Some((code, decline_code, message)) = decline {
            intent.status = "requires_payment_method";
            intent.last_payment_error = Some(json!({
                "charge": charge_id,
                "code": code,
                "decline_code": decline_code,
                "doc_url": format!("https://stripe.com/docs/error-codes/{}", code.replace('_', "-")),
                "message": message,
                "payment_method": { "id": pm, "object": "payment_method", "type": "card" },
                "type": "card_error",
            }));
            let snapshot = intent.to_json();
            self.charges.insert(charge_id.clone(), id.to_owned());
            self.event("payment_intent.payment_failed", snapshot.clone(), context);
            return Err(ApiError::new(402, "card_error", Some(code), message, None)
                .with("decline_code", json!(decline_code))
                .with("charge", json!(charge_id))
                .with("payment_intent", snapshot)
                .executed());
        }
        intent.last_payment_error = None;
        if intent.capture_method == "manual" {
            intent.status = "requires_capture";
            intent.amount_capturable = intent.amount;
        } else {
            intent.status = "succeeded";
            intent.amount_received = intent.amount;
        }
        let snapshot = intent.to_json();
        let succeeded = intent.status == "succeeded";
        self.charges.insert(charge_id, id.to_owned());
        if succeeded {
            self.event("payment_intent.succeeded", snapshot.clone(), context);
        }
        Ok((200, snapshot))
    }

    pub(super) fn capture_intent(
        &mut self,
        id: &str,
        params: &Value,
        context: &CallContext<'_>,
    ) -> Outcome {
        check_known(params, &["amount_to_capture", "expand", "metadata"])?;
        let requested = optional_integer(params, "amount_to_capture")?;
        if requested.is_some_and(|a| a < 1) {
            return Err(ApiError::invalid(
                Some("parameter_invalid_integer"),
                "This value must be greater than or equal to 1.",
                Some("amount_to_capture"),
            ));
        }
        let intent = self.find_intent(id, "intent")?;
        if intent.status != "requires_capture" {
            return Err(ApiError::invalid(
                Some("payment_intent_unexpected_state"),
                format!(
                    "This PaymentIntent could not be captured because it has a status of {}. Only a PaymentIntent with one of \
                     the following statuses may be captured: requires_capture.",
                    intent.status
                ),
                None,
            )
            .with("payment_intent", intent.to_json())
            .executed());
        }
        let amount = requested.unwrap_or(intent.amount_capturable);
        if amount > intent.amount_capturable {
            return Err(ApiError::invalid(
                Some("amount_too_large"),
                format!(
                    "The amount to capture ({}) is greater than the amount capturable on this PaymentIntent ({}).",
                    format_amount(amount, &intent.currency),
                    format_amount(intent.amount_capturable, &intent.currency)
                ),
                Some("amount_to_capture"),
            )
            .executed());
        }
        intent.amount_received = amount;
        intent.amount_capturable = 0;
        intent.status = "succeeded";
        let snapshot = intent.to_json();
        self.event("payment_intent.succeeded", snapshot.clone(), context);
        Ok((200, snapshot))
    }

    pub(super) fn create_refund(&mut self, params: &Value, context: &CallContext<'_>) -> Outcome {
        check_known(
            params,
            &[
                "amount",
                "charge",
                "expand",
                "instructions_email",
                "metadata",
                "payment_intent",
                "reason",
            ],
        )?;
        let amount = optional_integer(params, "amount")?;
        if amount.is_some_and(|a| a < 1) {
            return Err(ApiError::invalid(
                Some("parameter_invalid_integer"),
                "This value must be greater than or equal to 1.",
                Some("amount"),
            ));
        }
        let reason = optional_string(params, "reason")?.map(str::to_owned);
        if let Some(reason) = &reason {
            if !["duplicate", "fraudulent", "requested_by_customer"].contains(&reason.as_str()) {
                return Err(ApiError::invalid(
                    None,
                    "Invalid reason: must be one of duplicate, fraudulent, or requested_by_customer",
                    Some("reason"),
                ));
            }
        }
        let metadata = metadata(params)?;
        let id = match (optional_string(params, "payment_intent")?, optional_string(params, "charge")?) {
            (Some(pi), _) => {
                self.find_intent(pi, "payment_intent")?;
                pi.to_owned()
            }
            (None, Some(charge)) => self.charges.get(charge).cloned().ok_or_else(|| {
                ApiError::new(
                    404,
                    "invalid_request_error",
                    Some("resource_missing"),
                    format!("No such charge: '{charge}'"),
                    Some("charge"),
                )
            })?,
            (None, None) => {
                return Err(ApiError::invalid(
                    Some("parameter_missing"),
                    "One of the following params should be provided for this request: payment_intent or charge.",
                    None,
                ))
            }
        };
        let refund_id = self.id("re");
        let intent = self.find_intent(&id, "payment_intent")?;
        if intent.status != "succeeded" {
            return Err(ApiError::invalid(
                None,
                format!("This PaymentIntent ({id}) does not have a successful charge to refund."),
                Some("payment_intent"),
            )
            .executed());
        }
        let charge = intent.latest_charge.clone().unwrap_or_default();
        let remaining = intent.amount_received - intent.amount_refunded;
        if remaining == 0 {
            return Err(ApiError::invalid(
                Some("charge_already_refunded"),
                format!("Charge {charge} has already been refunded."),
                None,
            )
            .with("charge", json!(charge))
            .executed());
        }
        let amount = amount.unwrap_or(remaining);
        if amount > remaining {
            return Err(ApiError::invalid(
                Some("amount_too_large"),
                format!(
                    "Refund amount ({}) is greater than unrefunded amount on charge ({})",
                    format_amount(amount, &intent.currency),
                    format_amount(remaining, &intent.currency)
                ),
                Some("amount"),
            )
            .executed());
        }
        intent.amount_refunded += amount;
        let charge_json = intent.charge_json();
        let refund = json!({
            "id": refund_id,
            "object": "refund",
            "amount": amount,
            "charge": charge,
            "created": Self::now(),
            "currency": intent.currency,
            "metadata": metadata,
            "payment_intent": id,
            "reason": reason,
            "status": "succeeded",
        });
        self.event("charge.refunded", charge_json, context);
        Ok((200, refund))
    }

    pub(super) fn find_intent(&mut self, id: &str, param: &str) -> Result<&mut Intent, ApiError> {
        self.intents.get_mut(id).ok_or_else(|| {
            ApiError::new(
                404,
                "invalid_request_error",
                Some("resource_missing"),
                format!("No such payment_intent: '{id}'"),
                Some(param),
            )
        })
    }

    pub(super) fn intent_reply(&mut self, id: &str) -> Outcome {
        let intent = self.find_intent(id, "intent")?;
        Ok((200, intent.to_json()))
    }
}

pub(super) struct CallContext<'a> {
    pub(super) version: &'a String,
    pub(super) request_id: &'a str,
    pub(super) idempotency_key: &'a str,
}

pub(super) enum Endpoint {
    CreateIntent,
    ConfirmIntent(String),
    CaptureIntent(String),
    CreateRefund,
}

impl Endpoint {
    pub(super) fn route(method: &str, path: &str) -> Option<Self> {
        if method != "POST" {
            return None;
        }
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        match segments.as_slice() {
            ["", "v1", "payment_intents"] => Some(Self::CreateIntent),
            ["", "v1", "payment_intents", id, "confirm"] => {
                Some(Self::ConfirmIntent((*id).to_owned()))
            }
            ["", "v1", "payment_intents", id, "capture"] => {
                Some(Self::CaptureIntent((*id).to_owned()))
            }
            ["", "v1", "refunds"] => Some(Self::CreateRefund),
            _ => None,
        }
    }
}
