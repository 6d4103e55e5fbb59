//! The Shopify adapter against recorded fixtures: signatures computed by OpenSSL, and
//! canonical events written by hand from the payloads.

use std::path::{Path, PathBuf};

use loyaltyd_adapter::{Adapter, EventEnvelope, Parsed, RawRequest, Secret, ShopId, VerifyError};
use loyaltyd_shopify::ShopifyAdapter;
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

fn assert_parses_to_expected(body_file: &str, webhook_id: &str) {
    let body = std::fs::read(fixtures().join(body_file)).unwrap();
    let expected: EventEnvelope = serde_json::from_slice(
        &std::fs::read(fixtures().join("expected").join(body_file)).unwrap(),
    )
    .unwrap();
    let adapter = ShopifyAdapter::new(vec![]);
    let parsed = adapter
        .parse(&request(body, "unused", "orders/paid", webhook_id))
        .unwrap();
    assert_eq!(parsed, Parsed::Event(Box::new(expected)));
}

#[test]
fn a_pos_order_with_a_discount_code_parses_to_the_expected_sale() {
    assert_parses_to_expected("orders-paid-pos.json", "wh-pos-1");
}

#[test]
fn a_guest_web_order_with_a_gift_card_parses_to_the_expected_sale() {
    assert_parses_to_expected("orders-paid-online-guest.json", "wh-guest-1");
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
