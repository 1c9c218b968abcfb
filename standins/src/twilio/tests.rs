//! End-to-end tests of the Twilio stand-in over HTTP: what it accepts, each
//! error code in Twilio's order, injected failures, signatures and callbacks.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};

use serde_json::Value;

use super::*;

/// A raw answer: status and parsed JSON body.
struct Answer {
    status: u16,
    json: Value,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

fn messages_url(standin: &TwilioStandIn) -> String {
    format!(
        "{}/2010-04-01/Accounts/{}/Messages.json",
        standin.base_url(),
        standin.account_sid()
    )
}

fn read(mut response: ureq::http::Response<ureq::Body>) -> Answer {
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap();
    Answer {
        status,
        json: serde_json::from_str(&body).unwrap_or(Value::Null),
    }
}

fn post_as(standin: &TwilioStandIn, auth: Option<&str>, pairs: &[(&str, &str)]) -> Answer {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let mut request = agent().post(messages_url(standin));
    if let Some(auth) = auth {
        request = request.header("Authorization", auth);
    }
    read(
        request
            .content_type("application/x-www-form-urlencoded")
            .send(body)
            .unwrap(),
    )
}

fn post(standin: &TwilioStandIn, pairs: &[(&str, &str)]) -> Answer {
    let auth = basic(standin.account_sid(), standin.auth_token());
    post_as(standin, Some(&auth), pairs)
}

fn get(standin: &TwilioStandIn, path: &str) -> Answer {
    let auth = basic(standin.account_sid(), standin.auth_token());
    read(
        agent()
            .get(format!("{}{path}", standin.base_url()))
            .header("Authorization", auth)
            .call()
            .unwrap(),
    )
}

fn standin() -> TwilioStandIn {
    TwilioStandIn::start(TwilioStandInConfig::default()).unwrap()
}

/// Checks a Twilio error answer: status, code and the documented shape.
fn check_error(answer: &Answer, status: u16, code: u32) {
    assert_eq!(answer.status, status, "{}", answer.json);
    assert_eq!(answer.json["code"], code, "{}", answer.json);
    assert_eq!(answer.json["status"], status, "{}", answer.json);
    assert_eq!(
        answer.json["more_info"],
        format!("https://www.twilio.com/docs/errors/{code}")
    );
    assert!(answer.json["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
}

fn is_sid(value: &Value, prefix: &str) -> bool {
    value.as_str().is_some_and(|s| {
        s.len() == 34 && s.starts_with(prefix) && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
    })
}

#[test]
fn a_valid_message_is_created_and_can_be_fetched() {
    let standin = standin();
    let created = post(
        &standin,
        &[
            ("To", "+14155550100"),
            ("From", "+15005550006"),
            ("Body", "Link down"),
            ("StatusCallback", "http://127.0.0.1:9/cb"),
            ("MediaUrl", "https://a.example/1.png"),
            ("MediaUrl", "https://a.example/2.png"),
        ],
    );
    assert_eq!(created.status, 201, "{}", created.json);
    let json = &created.json;
    assert!(is_sid(&json["sid"], "SM"), "{json}");
    assert_eq!(json["status"], "queued");
    assert_eq!(json["num_segments"], "1");
    assert_eq!(json["num_media"], "2");
    assert_eq!(json["error_code"], Value::Null);
    assert_eq!(json["account_sid"], standin.account_sid());
    assert_eq!(json["direction"], "outbound-api");
    let date = json["date_created"].as_str().unwrap();
    assert!(date.ends_with(" +0000") && date.len() == 31, "{date}");

    let sid = json["sid"].as_str().unwrap();
    let fetched = get(&standin, json["uri"].as_str().unwrap());
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.json["sid"], sid);

    let sent = standin.sent_messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].media_urls,
        ["https://a.example/1.png", "https://a.example/2.png"]
    );
    assert_eq!(
        sent[0].status_callback.as_deref(),
        Some("http://127.0.0.1:9/cb")
    );
    assert_eq!(sent[0].auth_user, standin.account_sid());

    standin.set_status(sid, "undelivered", Some(30003)).unwrap();
    let fetched = get(&standin, json["uri"].as_str().unwrap());
    assert_eq!(fetched.json["status"], "undelivered");
    assert_eq!(fetched.json["error_code"], 30003);
}

#[test]
fn a_messaging_service_message_is_accepted_without_a_from() {
    let standin = TwilioStandIn::start(TwilioStandInConfig {
        messaging_service_sids: vec!["MG0123456789abcdef0123456789abcdef".to_owned()],
        ..TwilioStandInConfig::default()
    })
    .unwrap();
    let created = post(
        &standin,
        &[
            ("To", "+14155550100"),
            ("MessagingServiceSid", "MG0123456789abcdef0123456789abcdef"),
            ("Body", "hi"),
        ],
    );
    assert_eq!(created.status, 201, "{}", created.json);
    assert_eq!(created.json["status"], "accepted");
    assert_eq!(created.json["from"], Value::Null);
    let unknown = post(
        &standin,
        &[
            ("To", "+14155550100"),
            ("MessagingServiceSid", "MGffffffffffffffffffffffffffffffff"),
            ("Body", "hi"),
        ],
    );
    check_error(&unknown, 400, 21701);
}

#[test]
fn credentials_are_checked_like_twilio() {
    let standin = TwilioStandIn::start(TwilioStandInConfig {
        api_keys: vec![(
            "SK0123456789abcdef0123456789abcdef".to_owned(),
            "keysecret".to_owned(),
        )],
        ..TwilioStandInConfig::default()
    })
    .unwrap();
    let message = [
        ("To", "+14155550100"),
        ("From", "+15005550006"),
        ("Body", "hi"),
    ];
    check_error(&post_as(&standin, None, &message), 401, 20003);
    let wrong = basic(standin.account_sid(), "nope");
    check_error(&post_as(&standin, Some(&wrong), &message), 401, 20003);
    let stranger = basic("AC99999999999999999999999999999999", standin.auth_token());
    check_error(&post_as(&standin, Some(&stranger), &message), 401, 20003);
    check_error(&post_as(&standin, Some("Bearer x"), &message), 401, 20003);

    let key = basic("SK0123456789abcdef0123456789abcdef", "keysecret");
    let created = post_as(&standin, Some(&key), &message);
    assert_eq!(created.status, 201, "{}", created.json);
    assert_eq!(
        standin.sent_messages()[0].auth_user,
        "SK0123456789abcdef0123456789abcdef"
    );

    // Good credentials, another account's path.
    let other = agent()
        .post(format!(
            "{}/2010-04-01/Accounts/AC99999999999999999999999999999999/Messages.json",
            standin.base_url()
        ))
        .header("Authorization", &key)
        .content_type("application/x-www-form-urlencoded")
        .send("To=%2B14155550100&From=%2B15005550006&Body=hi")
        .unwrap();
    check_error(&read(other), 401, 20003);
}

#[test]
fn required_parameters_and_encoding_are_enforced() {
    let standin = standin();
    check_error(
        &post(&standin, &[("From", "+15005550006"), ("Body", "x")]),
        400,
        21604,
    );
    check_error(
        &post(&standin, &[("To", "+14155550100"), ("Body", "x")]),
        400,
        21603,
    );
    check_error(
        &post(
            &standin,
            &[("To", "+14155550100"), ("From", "+15005550006")],
        ),
        400,
        21602,
    );
    let long = "x".repeat(1601);
    check_error(
        &post(
            &standin,
            &[
                ("To", "+14155550100"),
                ("From", "+15005550006"),
                ("Body", &long),
            ],
        ),
        400,
        21617,
    );
    check_error(
        &post(
            &standin,
            &[
                ("To", "+14155550100"),
                ("From", "+15005550006"),
                ("Body", "x"),
                ("StatusCallback", "ftp://x"),
            ],
        ),
        400,
        21609,
    );
    // A JSON body is not a form: Twilio sees no parameters at all.
    let json = agent()
        .post(messages_url(&standin))
        .header(
            "Authorization",
            basic(standin.account_sid(), standin.auth_token()),
        )
        .content_type("application/json")
        .send(r#"{"To": "+14155550100", "From": "+15005550006", "Body": "x"}"#)
        .unwrap();
    check_error(&read(json), 400, 21604);
    // A literal `+` in a form decodes to a space, so an unescaped number is invalid.
    let raw = agent()
        .post(messages_url(&standin))
        .header(
            "Authorization",
            basic(standin.account_sid(), standin.auth_token()),
        )
        .content_type("application/x-www-form-urlencoded")
        .send("To=+14155550100&From=%2B15005550006&Body=x")
        .unwrap();
    check_error(&read(raw), 400, 21211);
    assert!(standin.sent_messages().is_empty());
}

#[test]
fn magic_numbers_answer_their_error_codes() {
    let standin = standin();
    let cases = [
        ("+15005550006", "not-a-number", 21211),
        ("+15005550006", "+15005550001", 21211),
        ("+15005550001", "+14155550100", 21212),
        ("not a sender!", "+14155550100", 21212),
        ("+15005550007", "+14155550100", 21606),
        ("+14155550199", "+14155550100", 21606),
        ("+15005550006", "+15005550002", 21612),
        ("+15005550006", "+15005550003", 21408),
        ("+15005550006", "+15005550004", 21610),
        ("+15005550006", "+15005550009", 21614),
    ];
    for (from, to, code) in cases {
        let answer = post(&standin, &[("To", to), ("From", from), ("Body", "x")]);
        check_error(&answer, 400, code);
    }
    let codes: Vec<Option<u32>> = standin.requests().iter().map(|r| r.error_code).collect();
    let expected: Vec<Option<u32>> = cases.iter().map(|(_, _, c)| Some(*c)).collect();
    assert_eq!(codes, expected);
}

#[test]
fn unknown_messages_and_paths_are_twilio_404s() {
    let standin = standin();
    let account = standin.account_sid().to_owned();
    let missing = get(
        &standin,
        &format!("/2010-04-01/Accounts/{account}/Messages/SM00000000000000000000000000000000.json"),
    );
    check_error(&missing, 404, 20404);
    check_error(&get(&standin, "/v1/Services"), 404, 20404);
    check_error(
        &get(
            &standin,
            &format!("/2010-04-01/Accounts/{account}/Messages.json"),
        ),
        405,
        20004,
    );
}

#[test]
fn injected_failures_come_first_then_normal_service_resumes() {
    let standin = standin();
    standin.fail_next(1, 429);
    standin.fail_next(2, 500);
    let message = [
        ("To", "+14155550100"),
        ("From", "+15005550006"),
        ("Body", "x"),
    ];
    check_error(&post(&standin, &message), 429, 20429);
    check_error(&post(&standin, &message), 500, 20500);
    check_error(&post(&standin, &message), 500, 20500);
    assert_eq!(post(&standin, &message).status, 201);
    let statuses: Vec<u16> = standin.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 500, 500, 201]);
    assert_eq!(standin.sent_messages().len(), 1);
}

#[test]
fn signatures_match_twilios_sdk_vector() {
    let params: Vec<(String, String)> = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Digits", "1234"),
        ("From", "+14158675309"),
        ("To", "+18005551212"),
        ("Caller", "+14158675309"),
    ]
    .iter()
    .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
    .collect();
    let signature = sign(
        "12345",
        "https://mycompany.com/myapp.php?foo=1&bar=2",
        &params,
    )
    .unwrap();
    assert_eq!(signature, "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
}

/// The headers (lower-case names) and body of a received request.
type Received = (HashMap<String, String>, String);

/// Accepts one HTTP request on a free port; returns its URL and a handle
/// yielding the request.
fn one_shot_receiver() -> (String, std::thread::JoinHandle<Received>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/hooks/twilio/status?tenant=t1",
        listener.local_addr().unwrap()
    );
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream);
        let mut headers = HashMap::new();
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            let Some((name, value)) = line.trim_end().split_once(':') else {
                break;
            };
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
        let length: usize = headers["content-length"].parse().unwrap();
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        reader
            .get_mut()
            .write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
            .unwrap();
        (headers, String::from_utf8(body).unwrap())
    });
    (url, handle)
}

#[test]
fn status_callbacks_are_posted_signed() {
    let standin = standin();
    let (url, receiver) = one_shot_receiver();
    let created = post(
        &standin,
        &[
            ("To", "+14155550100"),
            ("From", "+15005550006"),
            ("Body", "x"),
            ("StatusCallback", &url),
        ],
    );
    let sid = created.json["sid"].as_str().unwrap().to_owned();
    assert_eq!(
        standin
            .send_status_callback(&sid, "undelivered", Some(30003))
            .unwrap(),
        204
    );
    let (headers, body) = receiver.join().unwrap();
    assert_eq!(headers["content-type"], "application/x-www-form-urlencoded");
    let params: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let get = |name: &str| {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("MessageSid"), Some(sid.as_str()));
    assert_eq!(get("MessageStatus"), Some("undelivered"));
    assert_eq!(get("ErrorCode"), Some("30003"));
    assert_eq!(get("AccountSid"), Some(standin.account_sid()));
    assert_eq!(
        headers["x-twilio-signature"],
        sign(standin.auth_token(), &url, &params).unwrap()
    );
    assert_eq!(standin.sent_messages()[0].status, "undelivered");
}

#[test]
fn a_callback_needs_a_known_message_with_a_callback_url() {
    let standin = standin();
    assert!(standin
        .status_callback("SM00000000000000000000000000000000", "sent", None)
        .is_err());
    let created = post(
        &standin,
        &[
            ("To", "+14155550100"),
            ("From", "+15005550006"),
            ("Body", "x"),
        ],
    );
    let sid = created.json["sid"].as_str().unwrap();
    let error = standin.status_callback(sid, "sent", None).unwrap_err();
    assert!(
        error.to_string().contains("without a StatusCallback"),
        "{error}"
    );
}

#[test]
fn drop_frees_the_port() {
    let standin = standin();
    let addr = standin.addr;
    drop(standin);
    std::net::TcpListener::bind(addr).unwrap();
}
