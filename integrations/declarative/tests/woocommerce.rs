//! The WooCommerce definition beyond the manifest: what each rejection and ignore says,
//! and the payload variations WooCommerce (or a plugin) may send.

use std::path::{Path, PathBuf};

use loyaltyd_adapter::conformance::Manifest;
use loyaltyd_adapter::{
    signature, Adapter, ParseError, Parsed, PosEvent, RawRequest, Secret, ShopId, VerifyError,
};
use loyaltyd_declarative::{DeclarativeAdapter, Definition, WOOCOMMERCE};
use rust_decimal::Decimal;

const SECRET: &str = "demo-woocommerce-secret";

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/woocommerce")
}

fn adapter() -> DeclarativeAdapter {
    DeclarativeAdapter::from_toml(WOOCOMMERCE, vec![Secret::new(SECRET)], None).unwrap()
}

/// The request of a manifest case.
fn case(name: &str) -> RawRequest {
    let m = Manifest::load(&dir()).unwrap();
    m.request(m.case(name).unwrap(), &ShopId::new("demo").unwrap())
        .unwrap()
}

/// A signed order.updated delivery of `body`.
fn signed(body: &[u8], topic: &str) -> RawRequest {
    let sig = signature::base64_encode(&signature::hmac_sha256(SECRET.as_bytes(), &[body]));
    let mut headers = http::HeaderMap::new();
    headers.insert("X-WC-Webhook-Signature", sig.parse().unwrap());
    headers.insert("X-WC-Webhook-Topic", topic.parse().unwrap());
    headers.insert("X-WC-Webhook-Delivery-ID", "d-test".parse().unwrap());
    RawRequest {
        shop: ShopId::new("demo").unwrap(),
        headers,
        body: body.to_vec().into(),
        received_at: chrono::Utc::now(),
    }
}

fn parse(body: &str) -> Result<Parsed, ParseError> {
    let a = adapter();
    let req = signed(body.as_bytes(), "order.updated");
    a.verify(&req).unwrap();
    a.parse(&req)
}

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

#[test]
fn the_adapter_is_named_after_the_definition_and_the_name_is_interned() {
    let a = adapter();
    let b = Definition::parse(WOOCOMMERCE)
        .unwrap()
        .adapter(vec![], None);
    assert_eq!(a.name(), "woocommerce");
    // Loading the definition again leaks nothing new: the same &'static str.
    assert!(std::ptr::eq(a.name(), b.name()));
}

#[test]
fn the_ping_sent_when_a_webhook_is_saved_is_unsigned_and_refused() {
    assert_eq!(
        adapter().verify(&case("ping")),
        Err(VerifyError::MissingHeader("X-WC-Webhook-Signature"))
    );
}

#[test]
fn tampered_truncated_and_unsigned_requests_are_rejected() {
    let a = adapter();
    let good = case("order-completed");
    assert_eq!(a.verify(&good), Ok(()));

    let mut tampered = good.clone();
    let mut body = tampered.body.to_vec();
    // "total":"42.82" -> "total":"92.82"
    let at = body
        .windows(7)
        .position(|w| w == b"\"42.82\"")
        .expect("the body has the total");
    body[at + 1] = b'9';
    tampered.body = body.into();
    assert_eq!(a.verify(&tampered), Err(VerifyError::Mismatch));

    let mut truncated = good.clone();
    truncated.body = good.body.slice(..good.body.len() - 1);
    assert_eq!(a.verify(&truncated), Err(VerifyError::Mismatch));

    let mut unsigned = good.clone();
    unsigned.headers.remove("X-WC-Webhook-Signature");
    assert_eq!(
        a.verify(&unsigned),
        Err(VerifyError::MissingHeader("X-WC-Webhook-Signature"))
    );

    let mut garbled = good.clone();
    garbled
        .headers
        .insert("X-WC-Webhook-Signature", "not base64!".parse().unwrap());
    assert_eq!(
        a.verify(&garbled),
        Err(VerifyError::Malformed("not base64"))
    );

    // Valid base64, but 21 bytes: not a SHA-256 MAC.
    let mut short = good;
    short.headers.insert(
        "X-WC-Webhook-Signature",
        "e9cf2f7aeacf3b5a49ed341b9652".parse().unwrap(),
    );
    assert_eq!(
        a.verify(&short),
        Err(VerifyError::Malformed("not a SHA-256 digest"))
    );
}

#[test]
fn an_old_secret_still_verifies_during_a_rotation_and_an_empty_one_never_does() {
    let rotated = DeclarativeAdapter::from_toml(
        WOOCOMMERCE,
        vec![Secret::new("new-secret"), Secret::new(SECRET)],
        None,
    )
    .unwrap();
    assert_eq!(rotated.verify(&case("order-completed")), Ok(()));

    let body = b"{}";
    let forged = signature::base64_encode(&signature::hmac_sha256(b"", &[body]));
    let mut req = signed(body, "order.updated");
    req.headers
        .insert("X-WC-Webhook-Signature", forged.parse().unwrap());
    let empty = DeclarativeAdapter::from_toml(WOOCOMMERCE, vec![Secret::new("")], None).unwrap();
    assert_eq!(empty.verify(&req), Err(VerifyError::Mismatch));
}

#[test]
fn ignored_deliveries_say_why() {
    let a = adapter();
    match a.parse(&case("order-processing")).unwrap() {
        Parsed::Ignored {
            event_id,
            kind,
            reason,
        } => {
            assert_eq!(event_id, "9a8b7c6d5e4f30211203f4e5d6c7b8a9");
            assert_eq!(kind, "order.created");
            assert!(reason.contains("not completed"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    match a.parse(&case("product-updated")).unwrap() {
        Parsed::Ignored { kind, reason, .. } => {
            assert_eq!(kind, "product.updated");
            assert!(reason.contains("no rule"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_signed_body_that_is_not_json_is_malformed() {
    let a = adapter();
    let req = case("malformed-truncated");
    assert_eq!(a.verify(&req), Ok(()));
    assert!(matches!(a.parse(&req), Err(ParseError::Malformed(_))));
}

#[test]
fn a_delivery_without_its_id_or_topic_header_cannot_be_parsed() {
    let a = adapter();
    let mut req = case("order-completed");
    req.headers.remove("X-WC-Webhook-Delivery-ID");
    assert_eq!(
        a.parse(&req),
        Err(ParseError::MissingHeader("X-WC-Webhook-Delivery-ID"))
    );
    let mut req = case("order-completed");
    req.headers.remove("X-WC-Webhook-Topic");
    assert_eq!(
        a.parse(&req),
        Err(ParseError::MissingHeader("X-WC-Webhook-Topic"))
    );
}

const MINIMAL_ORDER: &str = r#"{"id": ID, "status": "completed", "currency": "USD",
    "date_paid_gmt": "2026-11-20T15:02:14", "total": TOTAL, "total_tax": "0.80",
    "shipping_total": "0.00", "customer_id": 0, "billing": {"email": "a@example.com"},
    "line_items": [{"id": 1, "name": "Mug", "product_id": 93, "variation_id": 0,
                    "quantity": 1, "subtotal": SUB, "total": "10.00", "total_tax": "0.80",
                    "sku": "", "price": 10.0}],
    "refunds": []}"#;

fn order(id: &str, total: &str, sub: &str) -> String {
    MINIMAL_ORDER
        .replace("ID", id)
        .replace("TOTAL", total)
        .replace("SUB", sub)
}

fn sale(p: Parsed) -> loyaltyd_adapter::Sale {
    match p {
        Parsed::Event(e) => match e.event {
            PosEvent::Sale(s) => s,
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

#[test]
fn ids_and_money_may_be_strings_or_json_numbers_and_are_read_exactly() {
    let as_strings = sale(parse(&order("\"727\"", "\"10.80\"", "\"10.00\"")).unwrap());
    let as_numbers = sale(parse(&order("727", "10.80", "10.00")).unwrap());
    assert_eq!(as_strings, as_numbers);
    assert_eq!(as_numbers.order_id, "727");
    assert_eq!(as_numbers.total, d("10.80"));
    assert_eq!(as_numbers.total.to_string(), "10.80");
    // A number with more digits than an f64 holds survives digit for digit.
    let precise = sale(parse(&order("727", "10.800000000000000000001", "10.00")).unwrap());
    assert_eq!(precise.total.to_string(), "10.800000000000000000001");
}

#[test]
fn empty_strings_and_zero_ids_read_as_absent() {
    let s = sale(parse(&order("727", "\"10.80\"", "\"10.00\"")).unwrap());
    let line = &s.lines[0];
    assert_eq!(line.sku, None, "sku \"\"");
    assert_eq!(line.variant_id, None, "variation_id 0");
    assert_eq!(line.product_id.as_deref(), Some("93"));
    let customer = s.customer.unwrap();
    assert_eq!(customer.external_id, None, "customer_id 0 is a guest");
    assert_eq!(customer.email.as_deref(), Some("a@example.com"));
}

#[test]
fn bad_values_are_invalid_fields_named_by_their_json_pointer() {
    let negative = parse(&order("727", "\"10.80\"", "\"-10.00\""));
    assert!(
        matches!(negative, Err(ParseError::InvalidField { ref field, .. }) if field == "/line_items/0/subtotal"),
        "{negative:?}"
    );
    let not_money = parse(&order("727", "\"ten\"", "\"10.00\""));
    assert!(
        matches!(not_money, Err(ParseError::InvalidField { ref field, .. }) if field == "/total"),
        "{not_money:?}"
    );
    let no_currency =
        parse(&order("727", "\"10.80\"", "\"10.00\"").replace("\"currency\": \"USD\",", ""));
    assert!(
        matches!(no_currency, Err(ParseError::InvalidField { ref field, ref message }) if field == "/currency" && message.contains("sale.currency")),
        "{no_currency:?}"
    );
    let float_id = parse(&order("true", "\"10.80\"", "\"10.00\""));
    assert!(
        matches!(float_id, Err(ParseError::InvalidField { ref field, .. }) if field == "/id"),
        "{float_id:?}"
    );
}

#[test]
fn the_sale_time_falls_back_when_date_paid_is_null() {
    let body = order("727", "\"10.80\"", "\"10.00\"").replace(
        "\"date_paid_gmt\": \"2026-11-20T15:02:14\"",
        "\"date_paid_gmt\": null, \"date_completed_gmt\": \"2026-11-21T09:30:45\"",
    );
    match parse(&body).unwrap() {
        Parsed::Event(e) => assert_eq!(e.occurred_at.to_rfc3339(), "2026-11-21T09:30:45+00:00"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_completed_fixture_earns_on_what_was_charged_after_the_coupon() {
    let s = sale(adapter().parse(&case("order-completed")).unwrap());
    let nets: Vec<Decimal> = s.lines.iter().map(|l| l.net()).collect();
    assert_eq!(nets, vec![d("21.60"), d("13.05")]);
    let tax: Decimal = s.lines.iter().map(|l| l.tax).sum();
    assert_eq!(
        nets.iter().sum::<Decimal>() + tax + s.shipping + d("0.40"),
        s.total
    );
    let guest = sale(adapter().parse(&case("order-completed-guest")).unwrap());
    assert_eq!(guest.lines[0].net(), d("10.00"), "3 for 10.00 stays 10.00");
}
