//! Fault injection end to end: the real daemon texts through a fake Twilio that fails in
//! every way a provider does — a 5xx storm, 429s with `Retry-After`, requests that hang
//! past the client's timeout, connections dropped without an answer — while signed sales
//! keep arriving. Ingest keeps answering 200, the backlog waits in the outbox with the
//! daemon's memory bounded, and once the provider is back every message goes out exactly
//! once, with nothing dead-lettered.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use fakeproviders::FakeTwilio;
use serde_json::json;

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "test-twilio-auth-token";
const FROM: &str = "+15005550006";

/// Members texted; sales go to them round robin.
const MEMBERS: u64 = 40;
/// Sales per storm phase.
const PER_PHASE: u64 = 150;
/// Webhooks in flight at once.
const SENDERS: u64 = 8;
/// Requests the daemon keeps in flight to the provider; a pass takes at most 16x this.
const CONCURRENCY: u64 = 16;
/// The bound on the daemon's resident memory while the backlog grows (it runs at a few
/// tens of MiB; sled's cache alone may take 64 MiB with data).
const RSS_LIMIT_KIB: u64 = 256 * 1024;

/// Texting through `twilio` with a 1 s client timeout, fast retries, and 1 point per
/// unit with no reward in reach: exactly one message per sale.
fn setup(twilio: &FakeTwilio) -> Setup {
    let setup = Setup::new(1024 * 1024);
    let notify = format!(
        "[notify]\nretry_base_ms = 100\nretry_cap_secs = 1\nconcurrency = {CONCURRENCY}\n\n\
         [notify.sms]\nbase_url = \"{}\"\naccount_sid = \"{SID}\"\nauth_token = \"{TOKEN}\"\n\
         from = \"{FROM}\"\nrate_per_sec = 1000\ntimeout_secs = 1",
        twilio.base_url()
    );
    setup.add_config(&notify);
    setup.base_rules_only();
    setup
}

fn phone(member: u64) -> String {
    format!("+1514555{:04}", 1000 + member)
}

/// The fixture's customer, e-mail and phone turned into member `m`'s.
fn as_member(fixture_text: &str, m: u64) -> String {
    fixture_text
        .replace("7391022153765", &(7_391_022_200_000 + m).to_string())
        .replace("ada@example.com", &format!("m{m}@example.com"))
        .replace("+15145550142", &phone(m))
}

/// Member `m`'s `customers/update`, with SMS consent given.
fn customer(m: u64) -> Vec<u8> {
    let text = String::from_utf8(fixture("customers-update.json")).unwrap();
    as_member(&text, m)
        .replace(
            "\"sms_marketing_consent\": {\"state\": \"not_subscribed\"",
            "\"sms_marketing_consent\": {\"state\": \"subscribed\"",
        )
        .into_bytes()
}

/// Sale `n` (11 points), for member `n % MEMBERS`.
fn sale(n: u64) -> Vec<u8> {
    let text = String::from_utf8(order(9_000_000 + n)).unwrap();
    as_member(&text, n % MEMBERS).into_bytes()
}

async fn post(base: &str, topic: &str, id: &str, body: Vec<u8>) -> u16 {
    client()
        .post(format!("{base}/webhooks/demo/shopify"))
        .header("X-Shopify-Topic", topic)
        .header("X-Shopify-Webhook-Id", id)
        .header(
            "X-Shopify-Hmac-Sha256",
            shopify_signature(SHOPIFY_SECRET, &body),
        )
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// Send sales `from..to` with `SENDERS` in flight; the statuses that were not 200.
async fn sales(base: &str, from: u64, to: u64) -> Vec<(u64, u16)> {
    let next = Arc::new(AtomicU64::new(from));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..SENDERS {
        let (next, base) = (next.clone(), base.to_string());
        tasks.spawn(async move {
            let mut failed = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= to {
                    return failed;
                }
                let s = post(&base, "orders/paid", &format!("storm-{n}"), sale(n)).await;
                if s != 200 {
                    failed.push((n, s));
                }
            }
        });
    }
    let mut failed = Vec::new();
    while let Some(r) = tasks.join_next().await {
        failed.extend(r.unwrap());
    }
    failed
}

async fn set_mode(twilio: &FakeTwilio, mode: serde_json::Value) {
    let r = client()
        .post(format!("{}/__mode", twilio.base_url()))
        .json(&mode)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{mode}");
}

fn sms_sent(metrics: &str) -> f64 {
    metric(
        metrics,
        "loyaltyd_notifications_total{channel=\"sms\",provider=\"twilio\",outcome=\"sent\"}",
    )
    .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_storm_grows_the_backlog_in_bounded_memory_and_every_message_goes_out_once_after_it(
) {
    let twilio = FakeTwilio::start(SID, TOKEN).await;
    let setup = setup(&twilio);
    let d = setup.start();
    let pid = d.pid();
    for m in 0..MEMBERS {
        let s = post(&d.base, "customers/update", &format!("c-{m}"), customer(m)).await;
        assert_eq!(s, 200, "member {m}");
    }
    assert_eq!(
        metric(&metrics_text(&d).await, "loyaltyd_outbox_depth"),
        Some(0.0),
        "enrolling queues nothing"
    );

    // RSS sampled all through the storm.
    let storming = Arc::new(AtomicBool::new(true));
    let sampler = {
        let storming = storming.clone();
        tokio::spawn(async move {
            let mut peak = 0;
            while storming.load(Ordering::Relaxed) {
                peak = peak.max(rss_kib(pid).unwrap_or(0));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            peak
        })
    };

    // Each mode, and the status the fake records for it (0: connection dropped).
    let phases = [
        (json!({"mode": "status", "status": 503}), 503),
        (json!({"mode": "status", "status": 500}), 500),
        (
            json!({"mode": "too_many_requests", "retry_after_secs": 1}),
            429,
        ),
        // Longer than the daemon's 1 s timeout: every attempt times out (the fake answers
        // 503 once it has held the request 3 s).
        (json!({"mode": "hang", "hang_ms": 3000}), 503),
        (json!({"mode": "reset"}), 0),
    ];
    let mut sent = 0;
    let mut depths = Vec::new();
    for (mode, status) in &phases {
        let tried =
            |twilio: &FakeTwilio| twilio.stats().by_status.get(status).copied().unwrap_or(0);
        let before = tried(&twilio);
        set_mode(&twilio, mode.clone()).await;
        let failed = sales(&d.base, sent, sent + PER_PHASE).await;
        assert!(
            failed.is_empty(),
            "webhooks not answered 200 during {mode}: {failed:?}"
        );
        sent += PER_PHASE;
        // The daemon meets this failure (at least twice: its probes go on) before the
        // storm changes.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while tried(&twilio) < before + 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "the provider was not tried during {mode}: {:?}",
                twilio.stats()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let m = metrics_text(&d).await;
        // Nothing can be delivered, so every sale so far waits in the outbox.
        depths.push(metric(&m, "loyaltyd_outbox_depth"));
        assert_eq!(sms_sent(&m), 0.0, "nothing accepted during {mode}");
    }
    let expected: Vec<_> = (1..=phases.len() as u64)
        .map(|k| Some((k * PER_PHASE) as f64))
        .collect();
    assert_eq!(depths, expected, "the outbox grows with every sale");
    let m = metrics_text(&d).await;
    assert_eq!(
        metric(&m, "loyaltyd_notify_circuit_open{channel=\"sms\"}"),
        Some(1.0),
        "the SMS channel pauses instead of hammering the provider"
    );
    storming.store(false, Ordering::Relaxed);
    let peak_rss = sampler.await.unwrap();
    assert!(peak_rss > 0, "RSS was sampled");
    assert!(
        peak_rss < RSS_LIMIT_KIB,
        "peak RSS {peak_rss} KiB during the storm (limit {RSS_LIMIT_KIB} KiB)"
    );
    // The provider recovers: the backlog drains.
    set_mode(&twilio, json!({"mode": "ok"})).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let m = metrics_text(&d).await;
        if sms_sent(&m) >= sent as f64 && metric(&m, "loyaltyd_outbox_depth") == Some(0.0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the backlog did not drain: {} of {sent} sent, depth {:?}",
            sms_sent(&m),
            metric(&m, "loyaltyd_outbox_depth")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Requests that hung are still answered (503) after the recovery; let them land.
    tokio::time::sleep(Duration::from_secs(4)).await;

    let accepted: Vec<_> = twilio
        .requests()
        .into_iter()
        .filter(|r| r.status == 201)
        .collect();
    assert_eq!(accepted.len() as u64, sent, "each message exactly once");
    let mut per_member: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &accepted {
        per_member
            .entry(r.field("To").unwrap_or("-").to_string())
            .or_default()
            .push(r.field("Body").unwrap_or("").to_string());
    }
    assert_eq!(per_member.len() as u64, MEMBERS);
    for m in 0..MEMBERS {
        let bodies = per_member.get(&phone(m)).cloned().unwrap_or_default();
        let sales = (0..sent).filter(|n| n % MEMBERS == m).count();
        assert_eq!(bodies.len(), sales, "member {m}: {bodies:#?}");
        // Every balance once: no message twice, none lost.
        let mut distinct = bodies.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), sales, "member {m}: {bodies:#?}");
        let latest = format!("Balance {}", 11 * sales);
        assert!(
            bodies.iter().any(|b| b.contains(&latest)),
            "member {m} heard of the final balance: {bodies:#?}"
        );
    }
    let stats = twilio.stats();
    eprintln!("fake twilio: {stats:?}; peak RSS {peak_rss} KiB");
    assert_eq!((stats.accepted, stats.recipients), (sent, MEMBERS));

    let (_, letters) = admin_get(&d, "/v1/shops/demo/deadletters").await;
    assert_eq!(
        letters["dead_letters"],
        json!([]),
        "retryable failures are retried, not dead-lettered"
    );
    let m = metrics_text(&d).await;
    assert_eq!(metric(&m, "loyaltyd_outbox_depth"), Some(0.0));
    assert_eq!(sms_sent(&m), sent as f64);
    assert_eq!(
        metric(&m, "loyaltyd_notify_circuit_open{channel=\"sms\"}"),
        Some(0.0)
    );
    // Each pass read at most one batch: the work of a wake-up follows what is due, not the
    // size of the backlog.
    let passes = metric(&m, "loyaltyd_notify_passes_total").unwrap_or(0.0);
    let examined = metric(&m, "loyaltyd_notify_examined_total").unwrap_or(f64::MAX);
    assert!(passes > 0.0);
    assert!(
        examined <= passes * (16 * CONCURRENCY).max(64) as f64,
        "{examined} messages read in {passes} passes"
    );
    assert!(d.terminate().success());
}
