//! Modes switched at run time (over HTTP, as scripts do, or through the API): a 5xx storm,
//! 429s, hangs and dropped connections, then back to accepting; and the counts kept with
//! recording off.

use std::time::Duration;

use fakeproviders::{FakeSendGrid, FakeTwilio, Mode, Reply, Stats};
use serde_json::{json, Value};

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "token";

/// Send one SMS to `to` with a client giving up after `timeout`; the status, or the error.
async fn send(
    fake: &FakeTwilio,
    to: &str,
    timeout: Duration,
) -> Result<(u16, Option<String>), reqwest::Error> {
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/2010-04-01/Accounts/{SID}/Messages.json",
            fake.base_url()
        ))
        .basic_auth(SID, Some(TOKEN))
        .form(&[("To", to), ("From", "+15005550006"), ("Body", "hi")])
        .timeout(timeout)
        .send()
        .await?;
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Ok((resp.status().as_u16(), retry_after))
}

async fn set_mode(fake: &FakeTwilio, mode: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/__mode", fake.base_url()))
        .json(&mode)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn a_storm_set_over_http_fails_every_request_until_the_mode_is_ok_again() {
    let fake = FakeTwilio::start(SID, TOKEN).await;
    let (s, body) = set_mode(&fake, json!({"mode": "status", "status": 503})).await;
    assert_eq!((s, body), (200, json!({"mode": "status", "status": 503})));
    for _ in 0..3 {
        assert_eq!(send(&fake, "+15145550001", SECOND).await.unwrap().0, 503);
    }
    set_mode(
        &fake,
        json!({"mode": "too_many_requests", "retry_after_secs": 2}),
    )
    .await;
    assert_eq!(
        send(&fake, "+15145550001", SECOND).await.unwrap(),
        (429, Some("2".into()))
    );
    set_mode(&fake, json!({"mode": "ok"})).await;
    assert_eq!(send(&fake, "+15145550001", SECOND).await.unwrap().0, 201);
    assert_eq!(fake.mode(), Mode::Ok);
    let current: Value = reqwest::get(format!("{}/__mode", fake.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(current, json!({"mode": "ok"}));
    let (s, _) = set_mode(&fake, json!({"mode": "sideways"})).await;
    assert_eq!(s, 400, "an unknown mode is refused");
}

#[tokio::test]
async fn a_hang_outlasts_the_client_and_then_answers_503_so_nothing_is_accepted() {
    let fake = FakeTwilio::start(SID, TOKEN).await;
    fake.set_mode(Mode::Hang { hang_ms: 600 });
    let err = send(&fake, "+15145550001", Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    // The fake finishes the request after the client gave up, and refuses it.
    let got = fake.wait_for(1, 5 * SECOND).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].status, 503);
    assert_eq!(fake.stats().accepted, 0);
}

#[tokio::test]
async fn a_reset_closes_the_connection_without_an_answer() {
    let fake = FakeTwilio::start(SID, TOKEN).await;
    fake.set_mode(Mode::Reset);
    let err = send(&fake, "+15145550001", 5 * SECOND).await.unwrap_err();
    assert!(!err.is_timeout(), "{err}");
    assert_eq!(fake.requests()[0].status, 0);
    // The server itself is unharmed.
    fake.set_mode(Mode::Ok);
    assert_eq!(send(&fake, "+15145550001", SECOND).await.unwrap().0, 201);
}

#[tokio::test]
async fn scripted_replies_come_before_the_mode() {
    let fake = FakeTwilio::start(SID, TOKEN).await;
    fake.set_mode(Mode::Status { status: 500 });
    fake.script(vec![Reply::Status(502)]);
    assert_eq!(send(&fake, "+15145550001", SECOND).await.unwrap().0, 502);
    assert_eq!(send(&fake, "+15145550001", SECOND).await.unwrap().0, 500);
}

#[tokio::test]
async fn stats_count_statuses_recipients_and_repeats_with_recording_off() {
    let fake = FakeTwilio::start(SID, TOKEN).await;
    fake.set_recording(false);
    fake.set_mode(Mode::Status { status: 500 });
    send(&fake, "+15145550001", SECOND).await.unwrap();
    fake.set_mode(Mode::Ok);
    for to in ["+15145550001", "+15145550002", "+15145550001"] {
        send(&fake, to, SECOND).await.unwrap();
    }
    assert!(fake.requests().is_empty());
    let want = Stats {
        requests: 4,
        by_status: [(500, 1), (201, 3)].into_iter().collect(),
        accepted: 3,
        recipients: 2,
        repeats: 1,
        lookups: 0,
    };
    assert_eq!(fake.stats(), want);
    let over_http: Stats = reqwest::get(format!("{}/__stats", fake.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(over_http, want);
    fake.clear();
    assert_eq!(fake.stats(), Stats::default());
}

#[tokio::test]
async fn sendgrid_counts_its_first_recipient() {
    let fake = FakeSendGrid::start("SG.key").await;
    let body = json!({
        "personalizations": [{"to": [{"email": "ada@example.com"}]}],
        "from": {"email": "points@example.com"},
        "subject": "Points",
        "content": [{"type": "text/plain", "value": "You earned 11 points"}],
    });
    for _ in 0..2 {
        let r = reqwest::Client::new()
            .post(format!("{}/v3/mail/send", fake.base_url()))
            .bearer_auth("SG.key")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 202);
    }
    let stats = fake.stats();
    assert_eq!((stats.recipients, stats.repeats), (1, 1));
}
