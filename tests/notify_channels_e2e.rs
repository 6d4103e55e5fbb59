//! A member reachable by SMS and e-mail: both channels of one message go out in the same
//! pass of the worker, and each exactly once (neither channel's outcome may overwrite the
//! other's and have it sent again).

mod common;

use std::time::Duration;

use common::*;
use fakeproviders::{FakeSendGrid, FakeTwilio};

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "test-twilio-auth-token";

#[tokio::test(flavor = "multi_thread")]
async fn a_sale_for_a_member_with_both_consents_is_one_text_and_one_email() {
    let twilio = FakeTwilio::start(SID, TOKEN).await;
    let sendgrid = FakeSendGrid::start("SG.test-key").await;
    let setup = Setup::new(1024 * 1024);
    let notify = format!(
        "[notify]\nretry_base_ms = 100\nretry_cap_secs = 1\n\n\
         [notify.sms]\nbase_url = \"{}\"\naccount_sid = \"{SID}\"\nauth_token = \"{TOKEN}\"\n\
         from = \"+15005550006\"\nrate_per_sec = 200\n\n\
         [notify.email]\nprovider = \"sendgrid\"\nbase_url = \"{}\"\napi_key = \"SG.test-key\"\n\
         from = \"points@demo.example\"",
        twilio.base_url(),
        sendgrid.base_url()
    );
    setup.add_config(&notify);
    // No reward in reach: one message per sale.
    setup.base_rules_only();
    let d = setup.start();
    // Ada as Shopify sent her (e-mail consent), with SMS consent given too.
    let ada = String::from_utf8(fixture("customers-update.json"))
        .unwrap()
        .replace(
            "\"sms_marketing_consent\": {\"state\": \"not_subscribed\"",
            "\"sms_marketing_consent\": {\"state\": \"subscribed\"",
        );
    let (s, r) = post_shopify(
        &d,
        "demo",
        "customers/update",
        "wh-c",
        ada.as_bytes(),
        SHOPIFY_SECRET,
    )
    .await;
    assert_eq!(s, 200, "{r}");
    for n in 1..=3 {
        let (s, r) = post_shopify(
            &d,
            "demo",
            "orders/paid",
            &format!("wh-{n}"),
            &order(n),
            SHOPIFY_SECRET,
        )
        .await;
        assert_eq!(s, 200, "{r}");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let m = metrics_text(&d).await;
        if metric(&m, "loyaltyd_outbox_depth") == Some(0.0) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not delivered: {m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Anything sent twice would follow within the retry delay.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let texts: Vec<_> = twilio
        .requests()
        .into_iter()
        .filter(|r| r.status == 201)
        .collect();
    let mails: Vec<_> = sendgrid
        .requests()
        .into_iter()
        .filter(|r| r.status == 202)
        .collect();
    assert_eq!(texts.len(), 3, "one text per sale: {texts:#?}");
    assert_eq!(mails.len(), 3, "one e-mail per sale: {mails:#?}");
    assert!(d.terminate().success());
}
