//! End to end: signed sales through the real daemon become SMS and e-mail requests at
//! local servers that speak Twilio's and SendGrid's APIs — with retries, dead letters,
//! consent, STOP replies, quiet hours and crash safety.

mod common;

use std::time::Duration;

use common::*;
use fakeproviders::{FakeSendGrid, FakeTwilio, Reply};

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "test-twilio-auth-token";
const FROM: &str = "+15005550006";
const PHONE: &str = "+15145550142";

/// A setup texting through `twilio` (and e-mailing through `sendgrid` when given),
/// with fast retries; `extra` goes into `[notify]`.
fn setup(twilio: &FakeTwilio, sendgrid: Option<&FakeSendGrid>, extra: &str) -> Setup {
    let setup = Setup::new(1024 * 1024);
    let path = setup.config_path();
    let email = sendgrid
        .map(|s| {
            format!(
                "[notify.email]\nprovider = \"sendgrid\"\nbase_url = \"{}\"\napi_key = \"SG.test-key\"\nfrom = \"points@demo.example\"\nfrom_name = \"Demo Coffee\"\n\n",
                s.base_url()
            )
        })
        .unwrap_or_default();
    let notify = format!(
        "[notify]\nretry_base_ms = 100\nretry_cap_secs = 1\n{extra}\n\n[notify.sms]\nbase_url = \"{}\"\naccount_sid = \"{SID}\"\nauth_token = \"{TOKEN}\"\nfrom = \"{FROM}\"\nrate_per_sec = 200\n\n{email}[[shops]]\nid = \"demo\"",
        twilio.base_url()
    );
    let text =
        std::fs::read_to_string(&path)
            .unwrap()
            .replacen("[[shops]]\nid = \"demo\"", &notify, 1);
    std::fs::write(&path, text).unwrap();
    setup
}

/// 1 point per unit and no rewards in reach: exactly one message per sale.
fn no_rewards(setup: &Setup) {
    std::fs::write(
        setup.dir.path().join("rules.toml"),
        "[earn]\npoints_per_unit = \"1\"\n",
    )
    .unwrap();
}

/// Ada's Shopify customer record, with SMS consent given.
fn ada_with_sms_consent() -> Vec<u8> {
    String::from_utf8(fixture("customers-update.json"))
        .unwrap()
        .replace(
            "\"sms_marketing_consent\": {\"state\": \"not_subscribed\"",
            "\"sms_marketing_consent\": {\"state\": \"subscribed\"",
        )
        .into_bytes()
}

async fn customer(d: &Daemon, id: &str, body: &[u8]) {
    let (s, r) = post_shopify(d, "demo", "customers/update", id, body, SHOPIFY_SECRET).await;
    assert_eq!(s, 200, "{r}");
}

async fn sale(d: &Daemon, n: u64) -> serde_json::Value {
    let (s, r) = post_shopify(
        d,
        "demo",
        "orders/paid",
        &format!("wh-{n}"),
        &order(n),
        SHOPIFY_SECRET,
    )
    .await;
    assert_eq!(s, 200, "{r}");
    r
}

/// Successful message requests (201) the fake saw.
fn accepted(t: &FakeTwilio) -> Vec<fakeproviders::Received> {
    t.requests()
        .into_iter()
        .filter(|r| r.status == 201)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_sale_becomes_one_sms_at_twilio_with_the_balance_and_next_reward() {
    let twilio = FakeTwilio::start(SID, TOKEN).await;
    let setup = setup(&twilio, None, "");
    let d = setup.start();
    customer(&d, "wh-c", &ada_with_sms_consent()).await;
    let r = sale(&d, 1).await;
    assert_eq!(r["points"], 11, "{r}");
    let got = twilio.wait_for(2, Duration::from_secs(10)).await;
    let got: Vec<_> = got.into_iter().filter(|r| r.status == 201).collect();
    // The earning, then "reward unlocked" (free coffee costs 5).
    assert_eq!(got.len(), 2, "{got:#?}");
    // Sent side by side, so in either order.
    let earned = got
        .iter()
        .find(|r| {
            r.field("Body")
                .is_some_and(|b| b.contains("earned 11 points"))
        })
        .unwrap_or_else(|| panic!("no earning text: {got:#?}"));
    assert_eq!(earned.method, "POST");
    assert_eq!(
        earned.path,
        format!("/2010-04-01/Accounts/{SID}/Messages.json")
    );
    assert_eq!(earned.field("To"), Some(PHONE));
    assert_eq!(earned.field("From"), Some(FROM));
    assert!(earned.field("Body").unwrap().contains("Balance 11"));
    assert!(
        got.iter()
            .any(|r| r.field("Body").is_some_and(|b| b.contains("Free coffee"))),
        "{got:#?}"
    );
    // Nothing more: each message once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(accepted(&twilio).len(), 2);
    assert!(d.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn three_503s_then_success_deliver_the_message_once_on_the_fourth_attempt() {
    let twilio = FakeTwilio::start(SID, TOKEN).await;
    let setup = setup(&twilio, None, "");
    // No reward in reach: exactly one message per sale.
    no_rewards(&setup);
    let d = setup.start();
    customer(&d, "wh-c", &ada_with_sms_consent()).await;
    twilio.script(vec![
        Reply::Status(503),
        Reply::Status(503),
        Reply::Status(503),
    ]);
    sale(&d, 1).await;
    let got = twilio.wait_for(4, Duration::from_secs(20)).await;
    let statuses: Vec<u16> = got.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![503, 503, 503, 201]);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(twilio.requests().len(), 4, "no attempt after the success");
    let (_, m) = admin_get(&d, "/v1/shops/demo/deadletters").await;
    assert_eq!(m["dead_letters"], serde_json::json!([]));
    let metrics = reqwest::get(d.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l == "loyaltyd_provider_failures_total{provider=\"twilio\",code=\"20503\"} 3"),
        "{metrics}"
    );
    assert!(d.terminate().success());
}

/// Twilio requests time out after 1 s.
fn sms_timeout_of_one_second(setup: &Setup) {
    let path = setup.config_path();
    let text = std::fs::read_to_string(&path).unwrap().replacen(
        "rate_per_sec = 200",
        "rate_per_sec = 200\ntimeout_secs = 1",
        1,
    );
    std::fs::write(&path, text).unwrap();
}

/// A daemon texting Ada (SMS consent given) through `twilio`, one text per sale, with
/// Twilio requests timing out after 1 s when `one_second` (else the default 10 s).
async fn texting_ada(twilio: &FakeTwilio, one_second: bool) -> (Setup, Daemon) {
    let setup = setup(twilio, None, "");
    no_rewards(&setup);
    if one_second {
        sms_timeout_of_one_second(&setup);
    }
    let d = setup.start();
    customer(&d, "wh-c", &ada_with_sms_consent()).await;
    (setup, d)
}

/// The `result` count of `loyaltyd_notify_reconciled_total` for Twilio, once it is at
/// least `want` or after 20 s.
async fn reconciled(d: &Daemon, result: &str, want: f64) -> f64 {
    let series =
        format!("loyaltyd_notify_reconciled_total{{provider=\"twilio\",result=\"{result}\"}}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let n = metric(&metrics_text(d).await, &series).unwrap_or(0.0);
        if n >= want || std::time::Instant::now() >= deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_text_twilio_took_after_the_daemon_timed_out_is_not_sent_again() {
    let twilio = FakeTwilio::start(SID, TOKEN).await;
    let (_setup, d) = texting_ada(&twilio, true).await;
    // Twilio takes the text, but answers after the daemon gave up.
    twilio.script(vec![Reply::Slow(Duration::from_millis(1500))]);
    sale(&d, 1).await;

    assert_eq!(reconciled(&d, "found", 1.0).await, 1.0);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let requests = twilio.requests();
    let posts: Vec<_> = requests.iter().filter(|r| r.method == "POST").collect();
    assert_eq!(posts.len(), 1, "one text, not two: {requests:#?}");
    assert_eq!(posts[0].status, 201);
    assert!(
        requests
            .iter()
            .any(|r| r.method == "GET" && r.status == 200),
        "{requests:#?}"
    );
    let m = metrics_text(&d).await;
    assert_eq!(
        metric(
            &m,
            "loyaltyd_notifications_total{channel=\"sms\",provider=\"twilio\",outcome=\"sent\"}"
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(metric(&m, "loyaltyd_outbox_depth"), Some(0.0));
    assert!(d.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_text_in_flight_when_the_daemon_is_killed_is_not_sent_again_after_restart() {
    let twilio = FakeTwilio::start(SID, TOKEN).await;
    let (setup, d) = texting_ada(&twilio, false).await;
    // Twilio holds the request 3 s, then takes the text: the daemon is killed meanwhile.
    twilio.script(vec![Reply::Slow(Duration::from_millis(3000))]);
    sale(&d, 1).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(twilio.requests().is_empty(), "still in Twilio's hands");
    drop(d); // SIGKILL
    let got = twilio.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].status, 201, "Twilio took it after the daemon died");

    let d = setup.start();
    assert_eq!(reconciled(&d, "found", 1.0).await, 1.0);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let posts = twilio
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!(posts, 1, "one text, not two");
    assert!(d.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_500_that_twilio_did_not_act_on_is_checked_then_sent_once() {
    let twilio = FakeTwilio::start(SID, TOKEN).await;
    let (_setup, d) = texting_ada(&twilio, true).await;
    twilio.script(vec![Reply::Status(500)]);
    sale(&d, 1).await;

    assert_eq!(reconciled(&d, "not_found", 1.0).await, 1.0);
    twilio.wait_for(3, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let calls: Vec<(String, u16)> = twilio
        .requests()
        .into_iter()
        .map(|r| (r.method, r.status))
        .collect();
    let expected = [("POST", 500), ("GET", 200), ("POST", 201)]
        .map(|(m, s)| (m.to_string(), s))
        .to_vec();
    assert_eq!(calls, expected);
    assert_eq!(reconciled(&d, "found", 0.0).await, 0.0);
    assert!(d.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_queued_when_the_daemon_is_killed_are_each_delivered_once_after_restart() {
    let twilio = FakeTwilio::start(SID, TOKEN).await;
    let setup = setup(&twilio, None, "");
    no_rewards(&setup);
    let d = setup.start();
    customer(&d, "wh-c", &ada_with_sms_consent()).await;
    // Twilio is down while five sales come in.
    twilio.script(vec![Reply::Status(503); 1000]);
    for n in 1..=5 {
        sale(&d, n).await;
    }
    twilio.wait_for(5, Duration::from_secs(10)).await;
    drop(d); // SIGKILL
    twilio.clear_script();
    twilio.clear();
    let d = setup.start();
    // A text whose 503 was not yet on disk at the kill is still marked as possibly out:
    // it is looked up in Twilio's list (a GET) before it is sent. Only sends count here.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while accepted(&twilio).len() < 5 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        accepted(&twilio).len(),
        5,
        "each message exactly once: {:#?}",
        twilio.requests()
    );
    // And again after a clean restart: nothing re-sent.
    assert!(d.terminate().success());
    let d = setup.start();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(accepted(&twilio).len(), 5);
    assert!(d.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn twilio_21610_dead_letters_the_message_withdraws_consent_and_staff_can_retry() {
    let twilio = FakeTwilio::start(SID, TOKEN).await;
    let setup = setup(&twilio, None, "");
    no_rewards(&setup);
    let d = setup.start();
    customer(&d, "wh-c", &ada_with_sms_consent()).await;
    twilio.unsubscribe(PHONE);
    sale(&d, 1).await;
    let got = twilio.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].status, 400);
    let mut letters = serde_json::Value::Null;
    for _ in 0..100 {
        let (_, l) = admin_get(&d, "/v1/shops/demo/deadletters").await;
        if l["dead_letters"].as_array().is_some_and(|a| !a.is_empty()) {
            letters = l;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let letter = &letters["dead_letters"][0];
    assert_eq!(letter["code"], "21610", "{letters}");
    assert_eq!(letter["channel"], "sms");
    assert_eq!(letter["kind"], "earned");
    assert!(
        !letters.to_string().contains(PHONE),
        "no phone numbers in the list"
    );
    let (_, m) = admin_get(&d, "/v1/shops/demo/members/lookup?email=ada@example.com").await;
    assert_eq!(m["consent"]["sms"], false, "{m}");
    // The next sale is not texted at all.
    sale(&d, 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(twilio.requests().len(), 1);

    // Ada texts START at the till; staff retry the dead letter: it goes out.
    let id = m["id"].as_str().unwrap().to_string();
    let (s, r) = admin_put(
        &d,
        &format!("/v1/shops/demo/members/{id}/consent"),
        serde_json::json!({"sms": true}),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    twilio.resubscribe(PHONE);
    let path = format!(
        "/v1/shops/demo/deadletters/{}/sms/retry",
        letter["message_id"]
    );
    let (s, r, _) = admin_post(&d, &path, None, "{}").await;
    assert_eq!(s, 202, "{r}");
    let got = twilio.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(got.last().map(|r| r.status), Some(201), "{got:#?}");
    let (_, l) = admin_get(&d, "/v1/shops/demo/deadletters").await;
    assert_eq!(l["dead_letters"], serde_json::json!([]));
    let (s, _, _) = admin_post(&d, &path, None, "{}").await;
    assert_eq!(s, 404, "a retried letter is gone");
    assert!(d.terminate().success());
}

/// Twilio's signature over URL + sorted form parameters (HMAC-SHA1, base64).
fn twilio_signature(url: &str, params: &[(&str, &str)]) -> String {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let mut sorted = params.to_vec();
    sorted.sort();
    let mut s = url.to_string();
    for (k, v) in sorted {
        s.push_str(k);
        s.push_str(v);
    }
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(TOKEN.as_bytes()).unwrap();
    mac.update(s.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

async fn inbound(d: &Daemon, params: &[(&str, &str)], signature: &str) -> (u16, String) {
    let url = format!("{}/webhooks/demo/twilio/inbound", d.base);
    let body: String = params
        .iter()
        .map(|(k, v)| format!("{k}={}", v.replace('+', "%2B")))
        .collect::<Vec<_>>()
        .join("&");
    let r = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stop_reply_verified_by_signature_withdraws_consent_and_start_restores_it() {
    let twilio = FakeTwilio::start(SID, TOKEN).await;
    let setup = setup(&twilio, None, "");
    no_rewards(&setup);
    let d = setup.start();
    customer(&d, "wh-c", &ada_with_sms_consent()).await;
    let url = format!("{}/webhooks/demo/twilio/inbound", d.base);
    let stop = [
        ("MessageSid", "SM00000000000000000000000000000001"),
        ("From", PHONE),
        ("To", FROM),
        ("Body", "stop"),
        ("AccountSid", SID),
    ];
    // A forged request changes nothing.
    let (s, _) = inbound(&d, &stop, "bm90IGEgc2lnbmF0dXJl").await;
    assert_eq!(s, 403);
    let (_, m) = admin_get(&d, "/v1/shops/demo/members/lookup?email=ada@example.com").await;
    assert_eq!(m["consent"]["sms"], true);
    // The signed STOP withdraws consent; the sale after it is not texted.
    let (s, body) = inbound(&d, &stop, &twilio_signature(&url, &stop)).await;
    assert_eq!(s, 200);
    assert!(body.contains("<Response/>"), "{body}");
    let (_, m) = admin_get(&d, "/v1/shops/demo/members/lookup?email=ada@example.com").await;
    assert_eq!(m["consent"]["sms"], false, "{m}");
    sale(&d, 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(twilio.requests().is_empty());
    // START brings texts back.
    let start = [
        ("MessageSid", "SM00000000000000000000000000000002"),
        ("From", PHONE),
        ("To", FROM),
        ("Body", "START"),
        ("AccountSid", SID),
    ];
    let (s, _) = inbound(&d, &start, &twilio_signature(&url, &start)).await;
    assert_eq!(s, 200);
    // Twilio retrying the old STOP delivery does not undo the START.
    let (s, _) = inbound(&d, &stop, &twilio_signature(&url, &stop)).await;
    assert_eq!(s, 200);
    let (_, m) = admin_get(&d, "/v1/shops/demo/members/lookup?email=ada@example.com").await;
    assert_eq!(m["consent"]["sms"], true, "{m}");
    sale(&d, 2).await;
    let got = twilio.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    assert!(d.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn quiet_hours_defer_messages_instead_of_dropping_them() {
    let twilio = FakeTwilio::start(SID, TOKEN).await;
    // Quiet around the clock but for one minute: the message is held, not dropped.
    let now = chrono::Utc::now().with_timezone(&chrono_tz::America::New_York);
    let start = (now - chrono::Duration::minutes(1)).format("%H:%M");
    let end = (now + chrono::Duration::minutes(2)).format("%H:%M");
    let setup = setup(&twilio, None, &format!("quiet_hours = \"{start}-{end}\""));
    no_rewards(&setup);
    let d = setup.start();
    customer(&d, "wh-c", &ada_with_sms_consent()).await;
    sale(&d, 1).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(twilio.requests().is_empty(), "held during quiet hours");
    // Still queued, not dead: it survives a restart and is not a dead letter.
    let (_, l) = admin_get(&d, "/v1/shops/demo/deadletters").await;
    assert_eq!(l["dead_letters"], serde_json::json!([]));
    let metrics = reqwest::get(format!("{}/metrics", d.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.lines().any(|l| l == "loyaltyd_outbox_depth 1"),
        "{metrics}"
    );
    assert!(d.terminate().success());

    // After a restart the count comes from the start-up scan plus what arrives since.
    let d = setup.start();
    assert_eq!(outbox_depth(&d, 1).await, (1, 1));
    sale(&d, 2).await;
    assert_eq!(outbox_depth(&d, 2).await, (2, 2));
    assert!(twilio.requests().is_empty(), "still held");
    assert!(d.terminate().success());
}

/// The outbox depth as `/readyz` and `/metrics` give it, once both say `want` or after
/// 5 s (the count follows the outbox's subscription, a moment behind the commit).
async fn outbox_depth(d: &Daemon, want: u64) -> (u64, u64) {
    let mut last = (0, 0);
    for _ in 0..50 {
        let ready: serde_json::Value = reqwest::get(format!("{}/readyz", d.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let from_ready = ready["outbox"]["depth"].as_u64().unwrap_or(u64::MAX);
        let from_metrics =
            metric(&metrics_text(d).await, "loyaltyd_outbox_depth").map_or(u64::MAX, |v| v as u64);
        last = (from_ready, from_metrics);
        if last == (want, want) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    last
}

#[tokio::test(flavor = "multi_thread")]
async fn email_goes_to_sendgrid_only_with_email_consent() {
    let twilio = FakeTwilio::start(SID, TOKEN).await;
    let sendgrid = FakeSendGrid::start("SG.test-key").await;
    let setup = setup(&twilio, Some(&sendgrid), "");
    no_rewards(&setup);
    let d = setup.start();
    // Ada: e-mail consent yes, SMS consent no (the fixture as Shopify sent it).
    customer(&d, "wh-c", &fixture("customers-update.json")).await;
    sale(&d, 1).await;
    let got = sendgrid.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    let mail = &got[0];
    assert_eq!(mail.status, 202);
    assert_eq!(mail.header("authorization"), Some("Bearer SG.test-key"));
    let json = mail.json.as_ref().unwrap();
    assert_eq!(
        json["personalizations"][0]["to"][0]["email"],
        "ada@example.com"
    );
    assert_eq!(json["from"]["email"], "points@demo.example");
    assert!(
        json["content"][0]["value"].as_str().unwrap().contains("11"),
        "{json}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(twilio.requests().is_empty(), "no SMS without SMS consent");
    assert!(d.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_members_messages_within_the_coalescing_window_go_out_as_one() {
    let twilio = FakeTwilio::start(SID, TOKEN).await;
    let setup = setup(&twilio, None, "coalesce_secs = 2");
    no_rewards(&setup);
    let d = setup.start();
    customer(&d, "wh-c", &ada_with_sms_consent()).await;
    for n in 1..=3 {
        sale(&d, n).await;
    }
    let got = twilio.wait_for(1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let got_all = accepted(&twilio);
    assert_eq!(got_all.len(), 1, "{got_all:#?}");
    let body = got[0].field("Body").unwrap();
    assert!(
        body.contains("earned 33 points"),
        "three sales of 11 in one text: {body}"
    );
    assert!(body.contains("Balance 33"), "{body}");
    assert!(d.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_lists_and_requeues_dead_letters_of_a_stopped_daemon() {
    let twilio = FakeTwilio::start(SID, TOKEN).await;
    let setup = setup(&twilio, None, "");
    no_rewards(&setup);
    let d = setup.start();
    customer(&d, "wh-c", &ada_with_sms_consent()).await;
    // An invalid-number answer is permanent: straight to the dead letters.
    twilio.script(vec![Reply::TwilioError {
        status: 400,
        code: 21211,
    }]);
    sale(&d, 1).await;
    twilio.wait_for(1, Duration::from_secs(10)).await;
    // Wait until the worker has recorded it (the provider's answer comes first).
    for _ in 0..200 {
        let (_, l) = admin_get(&d, "/v1/shops/demo/deadletters").await;
        if l["dead_letters"].as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(d.terminate().success());
    let config = setup.config_path();
    let config = config.to_str().unwrap();
    let (ok, out, err) = run_cli(&["deadletters", "list", "--config", config, "--shop", "demo"]);
    assert!(ok, "{err}");
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list[0]["code"], "21211", "{list}");
    assert_eq!(list[0]["status"], 400);
    let id = list[0]["message_id"].as_u64().unwrap().to_string();
    let (ok, _, err) = run_cli(&[
        "deadletters",
        "retry",
        "--config",
        config,
        "--shop",
        "demo",
        "--id",
        &id,
        "--channel",
        "sms",
    ]);
    assert!(ok, "{err}");
    let (_, out, _) = run_cli(&["deadletters", "list", "--config", config, "--shop", "demo"]);
    assert_eq!(out.trim(), "[]");
    // The next start sends it.
    let d = setup.start();
    let got = twilio.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(got.last().map(|r| r.status), Some(201), "{got:#?}");
    assert!(d.terminate().success());
}
