//! End to end: the real binary on loopback, signed Shopify webhooks over HTTP.

mod common;

use std::io::{Read, Write};

use common::*;
use serde_json::Value;

const ADA_LOOKUP: &str = "/v1/shops/demo/members/lookup?email=ada@example.com";

async fn ada_available(d: &Daemon) -> Option<i64> {
    let (status, body) = admin_get(d, ADA_LOOKUP).await;
    (status == 200).then(|| body["points"]["available"].as_i64().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_sale_sent_twice_is_counted_once_and_survives_a_restart() {
    let setup = Setup::new(1024 * 1024);
    let d = setup.start();
    let body = fixture("orders-paid-pos.json");

    let (s1, r1) = post_shopify(&d, "demo", "orders/paid", "wh-1", &body, SHOPIFY_SECRET).await;
    assert_eq!(s1, 200, "{r1}");
    assert_eq!(r1["status"], "applied");
    assert_eq!(r1["points"], 11);
    assert_eq!(r1["duplicate"], false);

    let (s2, r2) = post_shopify(&d, "demo", "orders/paid", "wh-1", &body, SHOPIFY_SECRET).await;
    assert_eq!(s2, 200);
    assert_eq!(r2["duplicate"], true);
    assert_eq!(r2["member_id"], r1["member_id"]);

    // The same order under a new delivery id is not scored again.
    let (s3, r3) = post_shopify(&d, "demo", "orders/paid", "wh-2", &body, SHOPIFY_SECRET).await;
    assert_eq!(s3, 200);
    assert_eq!(r3["status"], "already_scored");

    let (status, member) = admin_get(&d, ADA_LOOKUP).await;
    assert_eq!(status, 200, "{member}");
    assert_eq!(member["points"]["available"], 11);
    assert_eq!(member["points"]["lifetime"], 11);
    assert_eq!(member["points"]["pending"], 0);
    assert_eq!(member["phone"], "+15145550142");
    let id = member["id"].as_str().unwrap().to_string();

    // One ledger entry, explained by the base rule.
    let (status, ledger) = admin_get(&d, &format!("/v1/shops/demo/members/{id}/ledger")).await;
    assert_eq!(status, 200);
    let entries = ledger["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{ledger}");
    assert_eq!(entries[0]["points"], 11);
    assert_eq!(entries[0]["rule_ids"], serde_json::json!(["earn.base"]));
    assert_eq!(entries[0]["order_id"], "5812403339301");

    // Metrics count what happened.
    let metrics = client()
        .get(d.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"loyaltyd_webhooks_total{adapter="shopify",outcome="applied"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"loyaltyd_webhooks_total{adapter="shopify",outcome="duplicate"} 1"#));
    assert!(metrics.contains("loyaltyd_storage_flushes_total"));

    // The member is told, once.
    let line = format!("member {id} earned 11 points, balance 11");
    assert!(d.wait_for_line(|l| l.contains(&line)).is_some());

    // Graceful stop exits 0; the balance is still there after a restart.
    let status = d.terminate();
    assert!(status.success(), "exit status {status:?}");
    let earned_lines = |d: &Daemon| {
        d.stdout_lines()
            .iter()
            .filter(|l| l.contains("earned"))
            .count()
    };
    let d = setup.start();
    assert_eq!(ada_available(&d).await, Some(11));
    let (s4, r4) = post_shopify(&d, "demo", "orders/paid", "wh-1", &body, SHOPIFY_SECRET).await;
    assert_eq!((s4, r4["duplicate"].clone()), (200, Value::Bool(true)));
    assert_eq!(ada_available(&d).await, Some(11));
    // Nothing is re-sent after the restart.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(earned_lines(&d), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_or_missing_signature_gets_401_and_changes_nothing() {
    let setup = Setup::new(1024 * 1024);
    let d = setup.start();
    let body = fixture("orders-paid-pos.json");

    let (s, r) = post_shopify(&d, "demo", "orders/paid", "wh-x", &body, "not-the-secret").await;
    assert_eq!(s, 401);
    assert_eq!(r["error"]["code"], "invalid_signature");

    let resp = client()
        .post(d.url("/webhooks/demo/shopify"))
        .header("X-Shopify-Topic", "orders/paid")
        .header("X-Shopify-Webhook-Id", "wh-y")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);

    // Neither request created the member...
    assert_eq!(ada_available(&d).await, None);
    // ...nor burned the delivery id: the genuine delivery still applies.
    let (s, r) = post_shopify(&d, "demo", "orders/paid", "wh-x", &body, SHOPIFY_SECRET).await;
    assert_eq!((s, r["status"].as_str()), (200, Some("applied")));
    assert_eq!(ada_available(&d).await, Some(11));

    // A tampered body with the original signature is refused; the balance stays.
    let mut tampered = fixture("orders-paid-online-guest.json");
    let sig = shopify_signature(SHOPIFY_SECRET, &tampered);
    tampered[10] ^= 1;
    let resp = client()
        .post(d.url("/webhooks/demo/shopify"))
        .header("X-Shopify-Topic", "orders/paid")
        .header("X-Shopify-Webhook-Id", "wh-z")
        .header("X-Shopify-Hmac-Sha256", sig)
        .body(tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let (status, _) = admin_get(
        &d,
        "/v1/shops/demo/members/lookup?email=guest.buyer@example.com",
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(ada_available(&d).await, Some(11));
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_shops_and_adapters_get_404() {
    let setup = Setup::new(1024 * 1024);
    let d = setup.start();
    let body = fixture("orders-paid-pos.json");
    let (s, r) = post_shopify(&d, "nope", "orders/paid", "w", &body, SHOPIFY_SECRET).await;
    assert_eq!(
        (s, r["error"]["code"].as_str()),
        (404, Some("unknown_shop"))
    );
    // Shop "other" exists but has no Shopify adapter configured.
    let (s, r) = post_shopify(&d, "other", "orders/paid", "w", &body, SHOPIFY_SECRET).await;
    assert_eq!(
        (s, r["error"]["code"].as_str()),
        (404, Some("unknown_adapter"))
    );
    let resp = client()
        .post(d.url("/webhooks/..%2F..%2Fetc/shopify"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_over_the_limit_gets_413_declared_or_chunked() {
    let setup = Setup::new(4096);
    let d = setup.start();
    let big = vec![b' '; 10_000];
    let (s, r) = post_shopify(&d, "demo", "orders/paid", "w", &big, SHOPIFY_SECRET).await;
    assert_eq!(
        (s, r["error"]["code"].as_str()),
        (413, Some("payload_too_large"))
    );

    // Chunked, with no Content-Length: the limit applies while reading.
    let addr = d.base.trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut req = format!(
        "POST /webhooks/demo/shopify HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\n\
         X-Shopify-Topic: orders/paid\r\nX-Shopify-Webhook-Id: w2\r\nX-Shopify-Hmac-Sha256: {}\r\n\
         Connection: close\r\n\r\n",
        shopify_signature(SHOPIFY_SECRET, &big)
    )
    .into_bytes();
    for chunk in big.chunks(1000) {
        req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend_from_slice(chunk);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    // The server may answer and close before reading everything; ignore write errors.
    let _ = stream.write_all(&req);
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(response.contains("payload_too_large"), "{response}");
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_json_after_a_valid_signature_gets_400() {
    let setup = Setup::new(1024 * 1024);
    let d = setup.start();
    let (s, r) = post_shopify(
        &d,
        "demo",
        "orders/paid",
        "w",
        b"{\"id\": 12",
        SHOPIFY_SECRET,
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(r["error"]["code"], "malformed_event");
    assert!(r["error"]["message"]
        .as_str()
        .unwrap()
        .contains("malformed"));
}

#[tokio::test(flavor = "multi_thread")]
async fn topics_not_used_yet_are_recorded_as_ignored() {
    let setup = Setup::new(1024 * 1024);
    let d = setup.start();
    let body = br#"{"id": 1, "title": "Beans"}"#;
    let (s, r) = post_shopify(&d, "demo", "products/update", "w-p", body, SHOPIFY_SECRET).await;
    assert_eq!((s, r["status"].as_str()), (200, Some("ignored")));
    assert_eq!(r["duplicate"], false);
    let (s, r) = post_shopify(&d, "demo", "products/update", "w-p", body, SHOPIFY_SECRET).await;
    assert_eq!((s, r["duplicate"].as_bool()), (200, Some(true)));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_web_order_credits_the_order_email_net_of_included_tax() {
    let setup = Setup::new(1024 * 1024);
    let d = setup.start();
    let body = fixture("orders-paid-online-guest.json");
    // The fixture is in EUR; the "demo" test shop is USD, so it is ignored, not mis-scored.
    let (s, r) = post_shopify(&d, "demo", "orders/paid", "w-g", &body, SHOPIFY_SECRET).await;
    assert_eq!((s, r["status"].as_str()), (200, Some("ignored")), "{r}");
    assert!(r["reason"].as_str().unwrap().contains("EUR"));

    let usd = String::from_utf8(body)
        .unwrap()
        .replace("\"EUR\"", "\"USD\"");
    let (s, r) = post_shopify(
        &d,
        "demo",
        "orders/paid",
        "w-g2",
        usd.as_bytes(),
        SHOPIFY_SECRET,
    )
    .await;
    assert_eq!((s, r["points"].as_i64()), (200, Some(25)), "{r}");
    let (status, m) = admin_get(
        &d,
        "/v1/shops/demo/members/lookup?email=GUEST.buyer@example.com",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(m["points"]["available"], 25);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_api_needs_the_bearer_token() {
    let setup = Setup::new(1024 * 1024);
    let d = setup.start();
    let resp = client().get(d.url(ADA_LOOKUP)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    let resp = client()
        .get(d.url(ADA_LOOKUP))
        .bearer_auth("test-admin-tokeX")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let (status, body) = admin_get(&d, ADA_LOOKUP).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_member"))
    );
    let (status, _) = admin_get(&d, "/v1/shops/demo/members/lookup").await;
    assert_eq!(status, 400);
    let (status, _) = admin_get(&d, "/v1/shops/demo/members/m_0000").await;
    assert_eq!(status, 404);
    let resp = client().get(d.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}

#[test]
fn a_bad_config_exits_non_zero_naming_the_file_and_key() {
    let setup = Setup::new(1024 * 1024);
    let path = setup.config_path();
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "timezone = \"America/New_York\"",
        "timezone = \"Mars/Olympus\"",
    );
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_loyaltyd"))
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:", path.display())), "{err}");
    assert!(err.contains("shops[0].timezone"), "{err}");
    assert!(err.contains("Mars/Olympus"), "{err}");
}
