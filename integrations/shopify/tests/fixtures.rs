//! The Shopify adapter against recorded fixtures: signatures computed by OpenSSL, and
//! canonical events written by hand from the payloads.

use std::path::{Path, PathBuf};

use loyaltyd_adapter::{
    Adapter, EventEnvelope, ParseError, Parsed, PosEvent, RawRequest, Refund, Secret, ShopId,
    VerifyError,
};
use loyaltyd_shopify::ShopifyAdapter;
use rust_decimal::Decimal;
use serde::Deserialize;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

#[derive(Deserialize)]
struct Vector {
    file: String,
    secret: String,
    signature: String,
}

fn vectors() -> Vec<Vector> {
    let raw = std::fs::read(fixtures().join("signature-vectors.json")).unwrap();
    serde_json::from_slice(&raw).unwrap()
}

fn request(body: Vec<u8>, signature: &str, topic: &str, webhook_id: &str) -> RawRequest {
    let mut headers = http::HeaderMap::new();
    headers.insert("X-Shopify-Hmac-Sha256", signature.parse().unwrap());
    headers.insert("X-Shopify-Topic", topic.parse().unwrap());
    headers.insert("X-Shopify-Webhook-Id", webhook_id.parse().unwrap());
    RawRequest {
        shop: ShopId::new("demo").unwrap(),
        headers,
        body: body.into(),
        received_at: chrono::Utc::now(),
    }
}

#[test]
fn every_openssl_vector_verifies_with_its_secret() {
    let vs = vectors();
    assert!(vs.len() >= 3);
    for v in vs {
        let body = std::fs::read(fixtures().join(&v.file)).unwrap();
        let adapter = ShopifyAdapter::new(vec![Secret::new(v.secret.clone())]);
        let req = request(body, &v.signature, "orders/paid", "wh");
        assert_eq!(adapter.verify(&req), Ok(()), "vector for {}", v.file);
    }
}

#[test]
fn every_vector_fails_under_another_secret() {
    for v in vectors() {
        let body = std::fs::read(fixtures().join(&v.file)).unwrap();
        let adapter = ShopifyAdapter::new(vec![Secret::new(format!("{}x", v.secret))]);
        let req = request(body, &v.signature, "orders/paid", "wh");
        assert_eq!(
            adapter.verify(&req),
            Err(VerifyError::Mismatch),
            "{}",
            v.file
        );
    }
}

#[test]
fn a_body_changed_by_one_byte_is_rejected() {
    for v in vectors() {
        let mut body = std::fs::read(fixtures().join(&v.file)).unwrap();
        let last = body.len() - 2;
        body[last] ^= 0x01;
        let adapter = ShopifyAdapter::new(vec![Secret::new(v.secret.clone())]);
        let req = request(body, &v.signature, "orders/paid", "wh");
        assert_eq!(
            adapter.verify(&req),
            Err(VerifyError::Mismatch),
            "{}",
            v.file
        );
    }
}

#[test]
fn an_old_secret_still_verifies_during_rotation() {
    let v = &vectors()[1];
    let body = std::fs::read(fixtures().join(&v.file)).unwrap();
    let adapter = ShopifyAdapter::new(vec![
        Secret::new("new-secret"),
        Secret::new(v.secret.clone()),
    ]);
    assert_eq!(
        adapter.verify(&request(body, &v.signature, "orders/paid", "wh")),
        Ok(())
    );
}

#[test]
fn a_request_without_the_signature_header_is_rejected() {
    let adapter = ShopifyAdapter::new(vec![Secret::new("s")]);
    let mut req = request(b"{}".to_vec(), "x", "orders/paid", "wh");
    req.headers.remove("X-Shopify-Hmac-Sha256");
    assert_eq!(
        adapter.verify(&req),
        Err(VerifyError::MissingHeader("X-Shopify-Hmac-Sha256"))
    );
}

fn assert_parses_to_expected(body_file: &str, topic: &str, webhook_id: &str) {
    let body = std::fs::read(fixtures().join(body_file)).unwrap();
    let expected: EventEnvelope = serde_json::from_slice(
        &std::fs::read(fixtures().join("expected").join(body_file)).unwrap(),
    )
    .unwrap();
    let adapter = ShopifyAdapter::new(vec![]);
    let parsed = adapter
        .parse(&request(body, "unused", topic, webhook_id))
        .unwrap();
    assert_eq!(parsed, Parsed::Event(Box::new(expected)));
}

#[test]
fn a_pos_order_with_a_discount_code_parses_to_the_expected_sale() {
    assert_parses_to_expected("orders-paid-pos.json", "orders/paid", "wh-pos-1");
}

#[test]
fn a_guest_web_order_with_a_gift_card_parses_to_the_expected_sale() {
    assert_parses_to_expected("orders-paid-online-guest.json", "orders/paid", "wh-guest-1");
}

#[test]
fn topics_not_used_yet_are_ignored_not_rejected() {
    let adapter = ShopifyAdapter::new(vec![]);
    let parsed = adapter
        .parse(&request(
            b"{\"id\": 5}".to_vec(),
            "x",
            "products/update",
            "wh-9",
        ))
        .unwrap();
    assert!(matches!(parsed, Parsed::Ignored { ref kind, .. } if kind == "products/update"));
}

#[test]
fn malformed_json_is_a_parse_error() {
    let adapter = ShopifyAdapter::new(vec![]);
    let r = adapter.parse(&request(b"{\"id\": ".to_vec(), "x", "orders/paid", "wh"));
    assert!(matches!(r, Err(loyaltyd_adapter::ParseError::Malformed(_))));
}

#[test]
fn a_negative_price_is_an_invalid_field() {
    let body = br#"{"id": 1, "currency": "USD", "processed_at": "2026-11-20T10:00:00Z",
        "line_items": [{"id": 2, "quantity": 1, "price": "-5.00"}]}"#;
    let adapter = ShopifyAdapter::new(vec![]);
    let r = adapter.parse(&request(body.to_vec(), "x", "orders/paid", "wh"));
    assert!(
        matches!(r, Err(loyaltyd_adapter::ParseError::InvalidField { ref field, .. }) if field == "line_items[0].price"),
        "{r:?}"
    );
}

#[test]
fn a_missing_webhook_id_is_a_parse_error() {
    let adapter = ShopifyAdapter::new(vec![]);
    let mut req = request(b"{}".to_vec(), "x", "orders/paid", "wh");
    req.headers.remove("X-Shopify-Webhook-Id");
    assert_eq!(
        adapter.parse(&req),
        Err(loyaltyd_adapter::ParseError::MissingHeader(
            "X-Shopify-Webhook-Id"
        ))
    );
}

#[test]
fn a_cancelled_pos_order_parses_to_a_cancel_with_the_customer_reason() {
    assert_parses_to_expected("orders-cancelled.json", "orders/cancelled", "wh-cancel-1");
}

#[test]
fn a_returned_muffin_parses_to_a_refund_of_its_line_with_tax_and_the_money_paid_back() {
    assert_parses_to_expected(
        "refunds-create-partial.json",
        "refunds/create",
        "wh-refund-1",
    );
}

#[test]
fn a_refund_without_lines_still_reports_the_money_paid_back() {
    assert_parses_to_expected(
        "refunds-create-amount-only.json",
        "refunds/create",
        "wh-refund-2",
    );
}

fn parse(body: &str, topic: &str) -> Result<Parsed, ParseError> {
    ShopifyAdapter::new(vec![]).parse(&request(body.as_bytes().to_vec(), "x", topic, "wh"))
}

fn parse_refund(body: &str) -> Refund {
    match parse(body, "refunds/create") {
        Ok(Parsed::Event(env)) => match env.event {
            PosEvent::Refund(r) => r,
            other => panic!("not a refund: {other:?}"),
        },
        other => panic!("not an event: {other:?}"),
    }
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn invalid_field(r: Result<Parsed, ParseError>) -> String {
    match r {
        Err(ParseError::InvalidField { field, .. }) => field,
        other => panic!("expected an invalid field, got {other:?}"),
    }
}

/// A refund of one line given by its bare JSON numbers only, as older payloads do.
fn numeric_only_refund(subtotal: &str) -> String {
    format!(
        r#"{{"id": 1, "order_id": 2, "processed_at": "2026-11-21T15:02:44-05:00",
        "refund_line_items": [{{"line_item_id": 3, "quantity": 1,
            "subtotal": {subtotal}, "total_tax": 0.23}}],
        "transactions": [{{"kind": "refund", "status": "success", "amount": "3.15", "currency": "USD"}}]}}"#
    )
}

#[test]
fn the_numeric_subtotal_fallback_keeps_every_digit_instead_of_rounding_through_f64() {
    let r = parse_refund(&numeric_only_refund("2.9200000000000000001"));
    // As an f64 this would be 2.92: the 1 in the 19th decimal place must survive.
    assert_eq!(r.lines[0].subtotal.to_string(), "2.9200000000000000001");
    assert_ne!(r.lines[0].subtotal, dec("2.92"));
    assert_eq!(r.lines[0].tax.to_string(), "0.23");
}

#[test]
fn the_numeric_subtotal_fallback_reads_2_92_as_exactly_2_92() {
    let r = parse_refund(&numeric_only_refund("2.92"));
    assert_eq!(r.lines[0].subtotal.to_string(), "2.92");
    // No line names a currency, so the refund's currency is the transaction's.
    assert_eq!(r.currency.as_str(), "USD");
}

#[test]
fn shop_money_wins_over_the_numeric_subtotal_and_the_presentment_money() {
    let r = parse_refund(
        r#"{"id": 1, "order_id": 2, "processed_at": "2026-11-21T15:02:44+01:00",
        "refund_line_items": [{"line_item_id": 3, "quantity": 2, "subtotal": 9.99, "total_tax": 1.11,
          "subtotal_set": {"shop_money": {"amount": "10.00", "currency_code": "EUR"},
                           "presentment_money": {"amount": "10.80", "currency_code": "USD"}},
          "total_tax_set": {"shop_money": {"amount": "1.90", "currency_code": "EUR"},
                            "presentment_money": {"amount": "2.05", "currency_code": "USD"}}}],
        "transactions": []}"#,
    );
    assert_eq!(r.currency.as_str(), "EUR");
    assert_eq!(r.lines[0].quantity, dec("2"));
    assert_eq!(r.lines[0].subtotal, dec("10.00"));
    assert_eq!(r.lines[0].tax, dec("1.90"));
}

#[test]
fn only_successful_refund_transactions_count_as_money_returned() {
    let r = parse_refund(
        r#"{"id": 1, "order_id": 2, "processed_at": "2026-11-21T15:02:44Z",
        "refund_line_items": [],
        "transactions": [
          {"kind": "refund", "status": "failure", "amount": "100.00", "currency": "USD"},
          {"kind": "refund", "status": "pending", "amount": "50.00", "currency": "USD"},
          {"kind": "capture", "status": "success", "amount": "20.00", "currency": "USD"},
          {"kind": "refund", "status": "success", "amount": "3.00", "currency": "USD"},
          {"kind": "refund", "status": "success", "amount": "1.15", "currency": "USD"}]}"#,
    );
    let amount = r.amount.expect("money moved");
    assert_eq!(amount.amount, dec("4.15"));
    assert_eq!(amount.currency.as_str(), "USD");
    assert!(r.lines.is_empty());
}

#[test]
fn a_refund_whose_transaction_failed_returns_the_line_but_no_amount() {
    let r = parse_refund(
        r#"{"id": 1, "order_id": 2, "created_at": "2026-11-21T15:02:44Z",
        "refund_line_items": [{"line_item_id": 3, "quantity": 1,
          "subtotal_set": {"shop_money": {"amount": "2.92", "currency_code": "USD"}},
          "total_tax_set": {"shop_money": {"amount": "0.23", "currency_code": "USD"}}}],
        "transactions": [{"kind": "refund", "status": "failure", "amount": "3.15", "currency": "USD"}]}"#,
    );
    assert_eq!(r.amount, None);
    assert_eq!(r.lines.len(), 1);
    assert_eq!(r.lines[0].line_id, "3");
}

#[test]
fn a_refund_with_neither_lines_nor_money_moved_is_ignored() {
    let r = parse(
        r#"{"id": 1, "order_id": 2, "processed_at": "2026-11-21T15:02:44Z",
        "refund_line_items": [], "transactions": []}"#,
        "refunds/create",
    );
    assert!(
        matches!(r, Ok(Parsed::Ignored { ref kind, .. }) if kind == "refunds/create"),
        "{r:?}"
    );
}

#[test]
fn a_negative_refund_transaction_is_an_invalid_field() {
    let r = parse(
        r#"{"id": 1, "order_id": 2, "processed_at": "2026-11-21T15:02:44Z",
        "transactions": [{"kind": "refund", "status": "success", "amount": "-3.15", "currency": "USD"}]}"#,
        "refunds/create",
    );
    assert_eq!(invalid_field(r), "transactions[0].amount");
}

#[test]
fn malformed_line_money_is_an_invalid_field_named_by_its_path() {
    let r = parse(
        r#"{"id": 1, "order_id": 2, "processed_at": "2026-11-21T15:02:44Z",
        "refund_line_items": [{"line_item_id": 3, "quantity": 1,
          "subtotal_set": {"shop_money": {"amount": "2.92", "currency_code": "USD"}},
          "total_tax_set": {"shop_money": {"amount": "zero", "currency_code": "USD"}}}]}"#,
        "refunds/create",
    );
    assert_eq!(
        invalid_field(r),
        "refund_line_items[0].total_tax_set.shop_money.amount"
    );
}

#[test]
fn a_negative_numeric_subtotal_is_an_invalid_field() {
    let r = parse(&numeric_only_refund("-2.92"), "refunds/create");
    assert_eq!(invalid_field(r), "refund_line_items[0].subtotal");
}

#[test]
fn a_refund_line_without_any_subtotal_is_an_invalid_field() {
    let r = parse(
        r#"{"id": 1, "order_id": 2, "processed_at": "2026-11-21T15:02:44Z",
        "refund_line_items": [{"line_item_id": 3, "quantity": 1}],
        "transactions": [{"kind": "refund", "status": "success", "amount": "1.00", "currency": "USD"}]}"#,
        "refunds/create",
    );
    assert_eq!(invalid_field(r), "refund_line_items[0].subtotal_set");
}

#[test]
fn refund_lines_in_two_shop_currencies_are_an_invalid_field() {
    let r = parse(
        r#"{"id": 1, "order_id": 2, "processed_at": "2026-11-21T15:02:44Z",
        "refund_line_items": [
          {"line_item_id": 3, "quantity": 1,
           "subtotal_set": {"shop_money": {"amount": "1.00", "currency_code": "USD"}}},
          {"line_item_id": 4, "quantity": 1,
           "subtotal_set": {"shop_money": {"amount": "1.00", "currency_code": "EUR"}}}]}"#,
        "refunds/create",
    );
    assert_eq!(
        invalid_field(r),
        "refund_line_items[1].subtotal_set.shop_money.currency_code"
    );
}

#[test]
fn a_cancellation_without_cancelled_at_is_dated_by_the_triggered_at_header() {
    let mut req = request(
        br#"{"id": 5812403339301, "cancelled_at": null, "cancel_reason": ""}"#.to_vec(),
        "x",
        "orders/cancelled",
        "wh",
    );
    req.headers.insert(
        "X-Shopify-Triggered-At",
        "2026-11-20T15:31:48.123Z".parse().unwrap(),
    );
    let Parsed::Event(env) = ShopifyAdapter::new(vec![]).parse(&req).unwrap() else {
        panic!("not an event")
    };
    assert_eq!(
        env.occurred_at.to_rfc3339(),
        "2026-11-20T15:31:48.123+00:00"
    );
    match env.event {
        PosEvent::Cancel(c) => {
            assert_eq!(c.order_id, "5812403339301");
            // An empty reason is no reason.
            assert_eq!(c.reason, None);
        }
        other => panic!("not a cancel: {other:?}"),
    }
}

#[test]
fn a_refund_with_no_time_anywhere_is_an_invalid_field() {
    let r = parse(
        r#"{"id": 1, "order_id": 2, "refund_line_items": [],
        "transactions": [{"kind": "refund", "status": "success", "amount": "1.00", "currency": "USD"}]}"#,
        "refunds/create",
    );
    assert_eq!(invalid_field(r), "processed_at");
}
