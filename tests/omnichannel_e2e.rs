//! End to end across POS systems: a Shopify customer buying in a Square store is one
//! member; Square sales are completed from a local Orders API that checks its bearer
//! token and Square-Version header, and are retried (not dropped, not scored without
//! their lines) while that API fails.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;
use common::*;
use serde_json::{json, Value};

#[derive(Default)]
struct OrdersApi {
    up: AtomicBool,
    calls: AtomicUsize,
    bad_auth: AtomicUsize,
}

async fn order(
    State(api): State<Arc<OrdersApi>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> (StatusCode, String) {
    api.calls.fetch_add(1, Ordering::SeqCst);
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    let version = headers.get("square-version").and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {SQUARE_TOKEN}")) || version.is_none_or(|v| v.len() != 10) {
        api.bad_auth.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::UNAUTHORIZED, "{}".into());
    }
    if !api.up.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "{}".into());
    }
    // 2 x Cold Brew 4.50 with 1.00 off, 0.64 additive tax: eligible 8.00.
    let body = json!({"order": {
        "id": id, "location_id": "L1", "state": "COMPLETED", "version": 3,
        "line_items": [{
            "uid": "li-1", "catalog_object_id": "CB-VAR", "name": "Cold Brew", "quantity": "2",
            "item_type": "ITEM",
            "base_price_money": {"amount": 450, "currency": "USD"},
            "gross_sales_money": {"amount": 900, "currency": "USD"},
            "total_discount_money": {"amount": 100, "currency": "USD"},
            "total_tax_money": {"amount": 64, "currency": "USD"},
            "total_money": {"amount": 864, "currency": "USD"}
        }],
        "taxes": [{"uid": "t1", "name": "Sales tax", "type": "ADDITIVE", "percentage": "8"}],
        "total_tax_money": {"amount": 64, "currency": "USD"},
        "total_discount_money": {"amount": 100, "currency": "USD"},
        "total_money": {"amount": 864, "currency": "USD"}
    }});
    (StatusCode::OK, body.to_string())
}

async fn start_orders_api() -> (String, Arc<OrdersApi>) {
    let api = Arc::new(OrdersApi::default());
    let app = Router::new()
        .route("/v2/orders/{id}", get(order))
        .with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{addr}"), api)
}

fn square_event(kind: &str, event_id: &str, object: Value) -> String {
    let data_type = kind.split('.').next().unwrap();
    json!({
        "merchant_id": "MLB4Q9TZ1XH7C", "type": kind, "event_id": event_id,
        "created_at": "2026-11-20T15:14:07.412Z",
        "data": {"type": data_type, "id": "x", "object": {data_type: object}}
    })
    .to_string()
}

async fn ada(d: &Daemon) -> Value {
    let (status, body) = admin_get(d, "/v1/shops/demo/members/lookup?email=ada@example.com").await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn one_member_across_shopify_and_square_with_orders_api_retries_and_refunds() {
    let (orders_url, api) = start_orders_api().await;
    let setup = Setup::with_square(&orders_url);
    let d = setup.start();

    // Online: a Shopify sale for ada@example.com (11 points).
    let (s, _) = post_shopify(
        &d,
        "demo",
        "orders/paid",
        "wh-1",
        &fixture("orders-paid-pos.json"),
        SHOPIFY_SECRET,
    )
    .await;
    assert_eq!(s, 200);
    let member_id = ada(&d).await["id"].as_str().unwrap().to_string();

    // In store: Square knows her as customer SQ-ADA with the same e-mail.
    let customer = square_event(
        "customer.created",
        "ev-cust-1",
        json!({
            "id": "SQ-ADA", "email_address": "Ada@Example.com", "given_name": "Ada", "family_name": "Byrne",
            "created_at": "2026-11-20T15:00:00Z", "updated_at": "2026-11-20T15:00:00Z"
        }),
    );
    let (s, r) = post_square(&d, &customer).await;
    assert_eq!(
        (s, r["status"].as_str()),
        (200, Some("customer_updated")),
        "{r}"
    );
    assert_eq!(r["member_id"], member_id.as_str());
    let m = ada(&d).await;
    let square_link = m["identities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["kind"] == "square_customer_id")
        .cloned()
        .unwrap_or_default();
    assert_eq!(square_link["value"], "SQ-ADA", "{m}");
    assert_eq!(square_link["source"], "square");

    // A completed Square payment while the Orders API is down: accepted, queued, not
    // scored without its lines.
    let payment = square_event(
        "payment.updated",
        "ev-pay-1",
        json!({
            "id": "PAY-1", "status": "COMPLETED", "created_at": "2026-11-20T15:14:03.118Z",
            "updated_at": "2026-11-20T15:14:06.902Z",
            "amount_money": {"amount": 864, "currency": "USD"}, "total_money": {"amount": 864, "currency": "USD"},
            "location_id": "L1", "order_id": "ORD-1", "customer_id": "SQ-ADA", "source_type": "CARD"
        }),
    );
    let (s, r) = post_square(&d, &payment).await;
    assert_eq!((s, r["status"].as_str()), (200, Some("queued")), "{r}");
    assert_eq!(ada(&d).await["points"]["available"], 11);
    // A redelivery while waiting is recognised.
    let (s, r) = post_square(&d, &payment).await;
    assert_eq!((s, r["status"].as_str()), (200, Some("queued")), "{r}");

    // The API comes back: the retry worker scores it from its lines (8.00 eligible).
    api.up.store(true, Ordering::SeqCst);
    let mut balance = 11;
    for _ in 0..100 {
        balance = ada(&d).await["points"]["available"].as_i64().unwrap();
        if balance != 11 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if balance != 19 {
        let (_, l) = admin_get(&d, &format!("/v1/shops/demo/members/{member_id}/ledger")).await;
        panic!("balance {balance}, expected 19; ledger {l:#}");
    }
    assert_eq!(
        api.bad_auth.load(Ordering::SeqCst),
        0,
        "bearer token and Square-Version were sent"
    );
    assert!(api.calls.load(Ordering::SeqCst) >= 2);

    // Exactly once: the same event again, and the same payment as payment.created.
    let (s, r) = post_square(&d, &payment).await;
    assert_eq!((s, r["duplicate"].as_bool()), (200, Some(true)), "{r}");
    let created = payment
        .replace("payment.updated", "payment.created")
        .replace("ev-pay-1", "ev-pay-0");
    let (s, r) = post_square(&d, &created).await;
    assert_eq!(
        (s, r["status"].as_str()),
        (200, Some("already_scored")),
        "{r}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(ada(&d).await["points"]["available"], 19);

    // A Square refund of 4.32 of the 8.64 paid reverses half the 8 points.
    let refund = square_event(
        "refund.updated",
        "ev-ref-1",
        json!({
            "id": "REF-1", "status": "COMPLETED", "amount_money": {"amount": 432, "currency": "USD"},
            "payment_id": "PAY-1", "order_id": "ORD-REFUND", "location_id": "L1",
            "created_at": "2026-11-21T20:02:44.530Z", "updated_at": "2026-11-21T20:02:50.981Z"
        }),
    );
    let (s, r) = post_square(&d, &refund).await;
    assert_eq!(
        (s, r["status"].as_str(), r["points"].as_i64()),
        (200, Some("reversed"), Some(4)),
        "{r}"
    );
    assert_eq!(ada(&d).await["points"]["available"], 15);

    // A wrong signature changes nothing.
    let resp = client()
        .post(d.url("/webhooks/demo/square"))
        .header("x-square-hmacsha256-signature", "AAAA")
        .body(
            refund
                .replace("ev-ref-1", "ev-ref-2")
                .replace("REF-1", "REF-2"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(ada(&d).await["points"]["available"], 15);
}
