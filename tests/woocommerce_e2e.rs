//! End to end: WooCommerce as a third POS through the declarative adapter (no Rust
//! code for it), with the recorded, OpenSSL-signed fixtures.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

fn case(name: &str) -> (Vec<(String, String)>, Vec<u8>) {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("integrations/declarative/fixtures/woocommerce");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("cases.json")).unwrap()).unwrap();
    let c = manifest["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no case {name}"))
        .clone();
    let headers = c["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    (
        headers,
        std::fs::read(dir.join(c["body"].as_str().unwrap())).unwrap(),
    )
}

async fn post_case(d: &Daemon, name: &str) -> (u16, Value) {
    let (headers, body) = case(name);
    let mut req = client()
        .post(d.url("/webhooks/demo/woocommerce"))
        .body(body);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_woocommerce_order_earns_on_the_same_member_and_its_refund_reverses() {
    let setup = Setup::new(1024 * 1024);
    let d = setup.start();
    // Shopify first: ada@example.com earns 11.
    post_shopify(
        &d,
        "demo",
        "orders/paid",
        "wh-1",
        &fixture("orders-paid-pos.json"),
        SHOPIFY_SECRET,
    )
    .await;

    // WooCommerce order #727 for the same e-mail: 21.60 + 13.05 eligible = 34 points.
    let (s, r) = post_case(&d, "order-completed").await;
    assert_eq!(
        (s, r["status"].as_str(), r["points"].as_i64()),
        (200, Some("applied"), Some(34)),
        "{r}"
    );
    let (_, m) = admin_get(&d, "/v1/shops/demo/members/lookup?email=ada@example.com").await;
    assert_eq!(m["points"]["available"], 45, "{m}");
    assert_eq!(m["id"], r["member_id"]);

    // Redelivered: nothing changes.
    let (s, r) = post_case(&d, "order-completed").await;
    assert_eq!((s, r["duplicate"].as_bool()), (200, Some(true)));

    // A partial refund reverses some of the 34, in proportion to the money returned.
    let (s, r) = post_case(&d, "order-refund-partial").await;
    assert_eq!((s, r["status"].as_str()), (200, Some("reversed")), "{r}");
    let reversed = r["points"].as_i64().unwrap();
    assert!(reversed > 0 && reversed < 34, "{r}");
    let (_, m) = admin_get(&d, "/v1/shops/demo/members/lookup?email=ada@example.com").await;
    assert_eq!(m["points"]["available"].as_i64(), Some(45 - reversed));

    // Wrong secret, unsigned ping, malformed body: rejected, nothing stored.
    let (s, r) = post_case(&d, "order-completed-wrong-secret").await;
    assert_eq!(
        (s, r["error"]["code"].as_str()),
        (401, Some("invalid_signature"))
    );
    let (s, _) = post_case(&d, "ping").await;
    assert_eq!(s, 401);
    let (s, r) = post_case(&d, "malformed-truncated").await;
    assert_eq!(
        (s, r["error"]["code"].as_str()),
        (400, Some("malformed_event"))
    );
    let (_, m) = admin_get(&d, "/v1/shops/demo/members/lookup?email=ada@example.com").await;
    assert_eq!(m["points"]["available"].as_i64(), Some(45 - reversed));
}
