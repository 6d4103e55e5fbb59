//! The fakes reject what the providers reject, with the providers' statuses and bodies, and
//! record every request.

use std::time::{Duration, Instant};

use fakeproviders::{FakeMailgun, FakeSendGrid, FakeTwilio, Reply};
use serde_json::{json, Value};

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "token";

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

async fn twilio_post(fake: &FakeTwilio, form: &[(&str, &str)]) -> (u16, Value) {
    let resp = http()
        .post(format!(
            "{}/2010-04-01/Accounts/{SID}/Messages.json",
            fake.base_url()
        ))
        .basic_auth(SID, Some(TOKEN))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn twilio_accepts_a_valid_message_with_a_queued_message_resource() {
    let fake = FakeTwilio::start(SID, TOKEN).await;
    let (status, body) = twilio_post(
        &fake,
        &[
            ("To", "+15145550142"),
            ("From", "+15005550006"),
            ("Body", "Hi"),
        ],
    )
    .await;
    assert_eq!(status, 201);
    let sid = body["sid"].as_str().unwrap();
    assert!(sid.starts_with("SM") && sid.len() == 34);
    assert!(sid[2..].bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(body["status"], "queued");
    assert_eq!(body["num_segments"], "1");
    assert_eq!(body["account_sid"], SID);
    assert_eq!(body["direction"], "outbound-api");
    assert_eq!(body["error_code"], Value::Null);
}

#[tokio::test]
async fn twilio_messaging_service_sends_are_accepted_without_a_sender_yet() {
    let fake = FakeTwilio::start(SID, TOKEN).await;
    let service = "MG0123456789abcdef0123456789abcdef";
    let (status, body) = twilio_post(
        &fake,
        &[
            ("To", "+15145550142"),
            ("MessagingServiceSid", service),
            ("Body", "Hi"),
        ],
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(body["status"], "accepted");
    assert_eq!(body["num_segments"], "0");
    assert_eq!(body["messaging_service_sid"], service);
}

#[tokio::test]
async fn twilio_rejects_missing_or_invalid_fields_with_twilio_codes() {
    let fake = FakeTwilio::start(SID, TOKEN).await;
    let cases: [(&[(&str, &str)], u64); 5] = [
        (&[("From", "+15005550006"), ("Body", "Hi")], 21604),
        (
            &[
                ("To", "5145550142"),
                ("From", "+15005550006"),
                ("Body", "Hi"),
            ],
            21211,
        ),
        (&[("To", "+15145550142"), ("Body", "Hi")], 21603),
        (&[("To", "+15145550142"), ("From", "+15005550006")], 21602),
        (
            &[
                ("To", "+15145550142"),
                ("MessagingServiceSid", "MG1"),
                ("Body", "Hi"),
            ],
            21701,
        ),
    ];
    for (form, code) in cases {
        let (status, body) = twilio_post(&fake, form).await;
        assert_eq!((status, body["code"].as_u64()), (400, Some(code)), "{body}");
        assert_eq!(body["status"], 400);
        assert_eq!(
            body["more_info"],
            format!("https://www.twilio.com/docs/errors/{code}")
        );
    }
    // Rejected requests are recorded too, with what was answered.
    let seen = fake.requests();
    assert_eq!(seen.len(), 5);
    assert!(seen.iter().all(|r| r.status == 400));
}

#[tokio::test]
async fn twilio_refuses_unsubscribed_numbers_with_21610() {
    let fake = FakeTwilio::start(SID, TOKEN).await;
    fake.unsubscribe("+15145550142");
    let (status, body) = twilio_post(
        &fake,
        &[
            ("To", "+15145550142"),
            ("From", "+15005550006"),
            ("Body", "Hi"),
        ],
    )
    .await;
    assert_eq!((status, body["code"].as_u64()), (400, Some(21610)));
}

#[tokio::test]
async fn twilio_wants_basic_auth_for_the_account_in_the_path() {
    let fake = FakeTwilio::start(SID, TOKEN).await;
    let url = format!(
        "{}/2010-04-01/Accounts/{SID}/Messages.json",
        fake.base_url()
    );
    let form = [
        ("To", "+15145550142"),
        ("From", "+15005550006"),
        ("Body", "Hi"),
    ];
    for auth in [None, Some((SID, "wrong")), Some(("ACother", TOKEN))] {
        let mut req = http().post(&url).form(&form);
        if let Some((u, p)) = auth {
            req = req.basic_auth(u, Some(p));
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], 20003);
    }
    // Right credentials, other account in the path.
    let other = "ACffffffffffffffffffffffffffffffff";
    let resp = http()
        .post(format!(
            "{}/2010-04-01/Accounts/{other}/Messages.json",
            fake.base_url()
        ))
        .basic_auth(SID, Some(TOKEN))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    // An API key works once registered.
    fake.add_api_key("SKkey", "keysecret");
    let resp = http()
        .post(&url)
        .basic_auth("SKkey", Some("keysecret"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
}

#[tokio::test]
async fn twilio_ignores_json_bodies_like_the_real_api() {
    let fake = FakeTwilio::start(SID, TOKEN).await;
    let resp = http()
        .post(format!(
            "{}/2010-04-01/Accounts/{SID}/Messages.json",
            fake.base_url()
        ))
        .basic_auth(SID, Some(TOKEN))
        .json(&json!({"To": "+15145550142", "From": "+15005550006", "Body": "Hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], 21604);
}

#[tokio::test]
async fn scripted_replies_are_used_in_order_then_requests_succeed_again() {
    let fake = FakeTwilio::start(SID, TOKEN).await;
    fake.script(vec![
        Reply::Status(503),
        Reply::TooManyRequests {
            retry_after_secs: 7,
        },
        Reply::TwilioError {
            status: 400,
            code: 21611,
        },
    ]);
    let form = [
        ("To", "+15145550142"),
        ("From", "+15005550006"),
        ("Body", "Hi"),
    ];
    let url = format!(
        "{}/2010-04-01/Accounts/{SID}/Messages.json",
        fake.base_url()
    );
    let mut got = Vec::new();
    for _ in 0..4 {
        let resp = http()
            .post(&url)
            .basic_auth(SID, Some(TOKEN))
            .form(&form)
            .send()
            .await
            .unwrap();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        got.push((status, body["code"].as_u64(), retry_after));
    }
    assert_eq!(
        got,
        [
            (503, Some(20503), None),
            (429, Some(20429), Some("7".to_string())),
            (400, Some(21611), None),
            (201, None, None),
        ]
    );
}

#[tokio::test]
async fn slow_replies_and_delays_hold_the_answer_back() {
    let fake = FakeTwilio::start(SID, TOKEN).await;
    fake.script(vec![Reply::Slow(Duration::from_millis(300))]);
    let form = [
        ("To", "+15145550142"),
        ("From", "+15005550006"),
        ("Body", "Hi"),
    ];
    let started = Instant::now();
    let (status, _) = twilio_post(&fake, &form).await;
    assert_eq!(status, 201);
    assert!(started.elapsed() >= Duration::from_millis(300));

    fake.set_delay(Duration::from_millis(200));
    let started = Instant::now();
    twilio_post(&fake, &form).await;
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn wait_for_returns_once_enough_requests_arrived_or_the_time_is_up() {
    let fake = FakeTwilio::start(SID, TOKEN).await;
    let url = format!(
        "{}/2010-04-01/Accounts/{SID}/Messages.json",
        fake.base_url()
    );
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let _ = http()
            .post(url)
            .basic_auth(SID, Some(TOKEN))
            .form(&[("To", "+15145550142"), ("From", "+1500"), ("Body", "Hi")])
            .send()
            .await;
    });
    assert_eq!(fake.wait_for(1, Duration::from_secs(5)).await.len(), 1);
    let started = Instant::now();
    assert_eq!(fake.wait_for(2, Duration::from_millis(200)).await.len(), 1);
    assert!(started.elapsed() >= Duration::from_millis(200));
}

async fn sendgrid_post(fake: &FakeSendGrid, key: &str, body: &Value) -> reqwest::Response {
    http()
        .post(format!("{}/v3/mail/send", fake.base_url()))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap()
}

fn sendgrid_body() -> Value {
    json!({
        "personalizations": [{"to": [{"email": "ada@example.com"}]}],
        "from": {"email": "points@shop.example"},
        "subject": "Points",
        "content": [{"type": "text/plain", "value": "You have 10 points"}],
    })
}

#[tokio::test]
async fn sendgrid_accepts_with_202_an_empty_body_and_a_message_id() {
    let fake = FakeSendGrid::start("SG.key").await;
    let resp = sendgrid_post(&fake, "SG.key", &sendgrid_body()).await;
    assert_eq!(resp.status().as_u16(), 202);
    let id = resp.headers()["x-message-id"].to_str().unwrap().to_string();
    assert_eq!(id.len(), 22);
    assert!(resp.bytes().await.unwrap().is_empty());
    assert_eq!(fake.requests()[0].json.as_ref(), Some(&sendgrid_body()));
}

#[tokio::test]
async fn sendgrid_rejects_bad_keys_bodies_and_content_types() {
    let fake = FakeSendGrid::start("SG.key").await;
    let resp = sendgrid_post(&fake, "SG.other", &sendgrid_body()).await;
    assert_eq!(resp.status().as_u16(), 401);
    let body: Value = resp.json().await.unwrap();
    assert!(body["errors"][0]["message"].is_string());

    let mut bad = sendgrid_body();
    bad["from"] = json!({});
    bad["content"] = json!([]);
    let resp = sendgrid_post(&fake, "SG.key", &bad).await;
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = resp.json().await.unwrap();
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["from.email", "content"]);

    let resp = http()
        .post(format!("{}/v3/mail/send", fake.base_url()))
        .bearer_auth("SG.key")
        .form(&[("subject", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 415);

    let resp = http()
        .post(format!("{}/v3/mail/send", fake.base_url()))
        .bearer_auth("SG.key")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);

    let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [401, 400, 415, 400]);
}

#[tokio::test]
async fn sendgrid_rate_limit_carries_the_reset_time_not_retry_after() {
    let fake = FakeSendGrid::start("SG.key").await;
    fake.script(vec![Reply::TooManyRequests {
        retry_after_secs: 7,
    }]);
    let resp = sendgrid_post(&fake, "SG.key", &sendgrid_body()).await;
    assert_eq!(resp.status().as_u16(), 429);
    assert!(resp.headers().get("retry-after").is_none());
    let reset: u64 = resp.headers()["x-ratelimit-reset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!((now + 6..=now + 8).contains(&reset));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errors"][0]["message"], "too many requests");
}

fn mailgun_form() -> reqwest::multipart::Form {
    reqwest::multipart::Form::new()
        .text("from", "points@mg.example.test")
        .text("to", "Ada <ada@example.com>")
        .text("subject", "Points")
        .text("text", "You have 10 points")
        .text("v:notification_id", "demo-1")
}

#[tokio::test]
async fn mailgun_accepts_multipart_with_an_id_on_the_domain() {
    let fake = FakeMailgun::start("mg.example.test", "key").await;
    let resp = http()
        .post(format!("{}/v3/mg.example.test/messages", fake.base_url()))
        .basic_auth("api", Some("key"))
        .multipart(mailgun_form())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["message"], "Queued. Thank you.");
    let id = body["id"].as_str().unwrap();
    assert!(id.starts_with('<') && id.ends_with("@mg.example.test>"));
    let req = &fake.requests()[0];
    assert_eq!(req.field("v:notification_id"), Some("demo-1"));
    assert_eq!(req.field("to"), Some("Ada <ada@example.com>"));
}

#[tokio::test]
async fn mailgun_rejects_wrong_auth_domain_and_missing_fields() {
    let fake = FakeMailgun::start("mg.example.test", "key").await;
    let url = format!("{}/v3/mg.example.test/messages", fake.base_url());

    let resp = http()
        .post(&url)
        .basic_auth("api", Some("nope"))
        .multipart(mailgun_form())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(resp.text().await.unwrap(), "Forbidden");

    let resp = http()
        .post(format!("{}/v3/other.example/messages", fake.base_url()))
        .basic_auth("api", Some("key"))
        .multipart(mailgun_form())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);

    let without = |skip: &'static [&'static str]| {
        let all = [
            ("from", "points@mg.example.test"),
            ("to", "ada@example.com"),
            ("subject", "Points"),
            ("text", "Hi"),
        ];
        all.iter()
            .filter(|(n, _)| !skip.contains(n))
            .fold(reqwest::multipart::Form::new(), |f, (n, v)| f.text(*n, *v))
    };
    let cases: [(&'static [&'static str], &str); 4] = [
        (&["from"], "from parameter is missing"),
        (&["to"], "to parameter is missing"),
        (&["subject"], "subject parameter is missing"),
        (
            &["text"],
            "Need at least one of 'text', 'html', 'amp-html' or 'template' parameters specified",
        ),
    ];
    for (skip, message) in cases {
        let resp = http()
            .post(&url)
            .basic_auth("api", Some("key"))
            .multipart(without(skip))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["message"], message);
    }

    // A JSON body carries no form fields at all.
    let resp = http()
        .post(&url)
        .basic_auth("api", Some("key"))
        .json(&json!({"from": "a@b.example"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
}
