//! ShopifySettings: the replay tolerance on `X-Shopify-Triggered-At` and the earn trigger.

use chrono::{DateTime, Duration, Utc};
use loyaltyd_adapter::{
    signature, Adapter, Parsed, PosEvent, RawRequest, Secret, ShopId, VerifyError,
};
use loyaltyd_shopify::{EarnOn, ShopifyAdapter, ShopifySettings, DEFAULT_REPLAY_TOLERANCE_HOURS};

const SECRET: &str = "demo-shopify-secret";
const TRIGGERED: &str = "2026-11-20T15:14:05.318204551Z";

fn pos_order() -> Vec<u8> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    std::fs::read(dir.join("orders-paid-pos.json")).unwrap()
}

fn at(t: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc)
}

fn signed(
    body: Vec<u8>,
    topic: &str,
    triggered_at: Option<&str>,
    received_at: DateTime<Utc>,
) -> RawRequest {
    let sig = signature::base64_encode(&signature::hmac_sha256(SECRET.as_bytes(), &[&body]));
    let mut headers = http::HeaderMap::new();
    headers.insert("X-Shopify-Hmac-Sha256", sig.parse().unwrap());
    headers.insert("X-Shopify-Topic", topic.parse().unwrap());
    headers.insert("X-Shopify-Webhook-Id", "wh-1".parse().unwrap());
    if let Some(t) = triggered_at {
        headers.insert("X-Shopify-Triggered-At", t.parse().unwrap());
    }
    RawRequest {
        shop: ShopId::new("demo").unwrap(),
        headers,
        body: body.into(),
        received_at,
    }
}

fn adapter() -> ShopifyAdapter {
    ShopifyAdapter::new(vec![Secret::new(SECRET)])
}

#[test]
fn the_defaults_earn_on_paid_with_a_six_hour_tolerance() {
    let s = ShopifySettings::default();
    assert_eq!(s.earn_on, EarnOn::Paid);
    assert_eq!(DEFAULT_REPLAY_TOLERANCE_HOURS, 6);
    assert_eq!(s.replay_tolerance, Duration::hours(6));
    // Longer than Shopify's retry window of 4 hours.
    assert!(s.replay_tolerance > Duration::hours(4));
    let a = ShopifyAdapter::new(vec![Secret::new("x")]);
    assert_eq!(
        a.settings(),
        ShopifyAdapter::with_secrets(vec![Secret::new("x")]).settings()
    );
    assert_eq!(a.settings().secrets, vec![Secret::new("x")]);
}

#[test]
fn a_delivery_is_accepted_up_to_the_tolerance_and_stale_after_it() {
    let triggered = at(TRIGGERED);
    let adapter = adapter();
    for (received, ok) in [
        (triggered, true),
        (triggered + Duration::hours(4), true),
        (triggered + Duration::hours(6), true),
        (
            triggered + Duration::hours(6) + Duration::milliseconds(1),
            false,
        ),
        (triggered + Duration::days(3), false),
        // Shopify's clock ahead of ours: not stale.
        (triggered - Duration::minutes(5), true),
    ] {
        let r = adapter.verify(&signed(
            pos_order(),
            "orders/paid",
            Some(TRIGGERED),
            received,
        ));
        assert_eq!(r.is_ok(), ok, "received {received}: {r:?}");
        if !ok {
            assert!(matches!(r, Err(VerifyError::Stale(_))), "{r:?}");
        }
    }
}

#[test]
fn the_stale_error_says_how_old_the_delivery_was() {
    let r = adapter().verify(&signed(
        pos_order(),
        "orders/paid",
        Some(TRIGGERED),
        at(TRIGGERED) + Duration::days(3),
    ));
    let Err(VerifyError::Stale(why)) = r else {
        panic!("{r:?}")
    };
    assert!(why.contains("72h00m"), "{why}");
    assert!(why.contains("6h00m"), "{why}");
}

#[test]
fn the_tolerance_is_configurable() {
    let adapter = ShopifyAdapter::with_settings(ShopifySettings {
        secrets: vec![Secret::new(SECRET)],
        replay_tolerance: Duration::minutes(10),
        ..ShopifySettings::default()
    });
    let req = |late| {
        signed(
            pos_order(),
            "orders/paid",
            Some(TRIGGERED),
            at(TRIGGERED) + late,
        )
    };
    assert_eq!(adapter.verify(&req(Duration::minutes(10))), Ok(()));
    assert!(matches!(
        adapter.verify(&req(Duration::minutes(11))),
        Err(VerifyError::Stale(_))
    ));
}

#[test]
fn without_a_readable_triggered_at_there_is_no_replay_check() {
    let long_after = at(TRIGGERED) + Duration::days(30);
    for header in [None, Some("yesterday"), Some("")] {
        let r = adapter().verify(&signed(pos_order(), "orders/paid", header, long_after));
        assert_eq!(r, Ok(()), "{header:?}");
    }
}

#[test]
fn the_signature_is_checked_before_staleness() {
    let mut req = signed(
        pos_order(),
        "orders/paid",
        Some(TRIGGERED),
        at(TRIGGERED) + Duration::days(3),
    );
    req.headers.insert(
        "X-Shopify-Hmac-Sha256",
        signature::base64_encode(&[0; 32]).parse().unwrap(),
    );
    assert_eq!(adapter().verify(&req), Err(VerifyError::Mismatch));
}

#[test]
fn the_unprefixed_triggered_at_header_counts_too() {
    let mut req = signed(
        pos_order(),
        "orders/paid",
        None,
        at(TRIGGERED) + Duration::days(3),
    );
    req.headers
        .insert("shopify-triggered-at", TRIGGERED.parse().unwrap());
    assert!(matches!(adapter().verify(&req), Err(VerifyError::Stale(_))));
}

fn parse(adapter: &ShopifyAdapter, topic: &str) -> Parsed {
    let req = signed(pos_order(), topic, Some(TRIGGERED), at(TRIGGERED));
    adapter.verify(&req).unwrap();
    adapter.parse(&req).unwrap()
}

#[test]
fn an_order_earns_on_exactly_one_of_its_two_topics() {
    let on_paid = adapter();
    let on_create = ShopifyAdapter::with_settings(ShopifySettings {
        secrets: vec![Secret::new(SECRET)],
        earn_on: EarnOn::Create,
        ..ShopifySettings::default()
    });
    let sale = |p: &Parsed| matches!(p, Parsed::Event(e) if matches!(e.event, PosEvent::Sale(_)));
    let ignored_because = |p: &Parsed, topic: &str| matches!(p, Parsed::Ignored { reason, .. } if reason == &format!("earning happens on {topic}"));

    let paid = parse(&on_paid, "orders/paid");
    let created = parse(&on_paid, "orders/create");
    assert!(sale(&paid), "{paid:?}");
    assert!(ignored_because(&created, "orders/paid"), "{created:?}");

    let paid = parse(&on_create, "orders/paid");
    let created = parse(&on_create, "orders/create");
    assert!(sale(&created), "{created:?}");
    assert!(ignored_because(&paid, "orders/create"), "{paid:?}");

    // Both settings give the same sale for the same order.
    assert_eq!(parse(&adapter(), "orders/paid"), created);
}

#[test]
fn the_ignored_order_topic_still_has_to_be_json() {
    let req = signed(b"{\"id\": ".to_vec(), "orders/create", None, Utc::now());
    assert!(matches!(
        adapter().parse(&req),
        Err(loyaltyd_adapter::ParseError::Malformed(_))
    ));
}

#[test]
fn earn_on_reads_from_configuration_text() {
    for (text, want) in [
        ("\"paid\"", EarnOn::Paid),
        ("\"create\"", EarnOn::Create),
        ("\"orders/paid\"", EarnOn::Paid),
        ("\"orders/create\"", EarnOn::Create),
    ] {
        assert_eq!(
            serde_json::from_str::<EarnOn>(text).unwrap(),
            want,
            "{text}"
        );
    }
    assert!(serde_json::from_str::<EarnOn>("\"fulfilled\"").is_err());
}

#[test]
fn a_customer_update_without_times_is_dated_by_the_triggered_at_header() {
    let req = signed(
        br#"{"id": 42, "email": "x@example.com"}"#.to_vec(),
        "customers/update",
        Some(TRIGGERED),
        at(TRIGGERED),
    );
    let Parsed::Event(env) = adapter().parse(&req).unwrap() else {
        panic!("not an event")
    };
    assert_eq!(env.occurred_at, at(TRIGGERED));
    let PosEvent::CustomerUpsert(c) = env.event else {
        panic!("not a customer")
    };
    assert_eq!(c.customer.external_id.as_deref(), Some("42"));
    assert_eq!(c.birthday, None);
}

#[test]
fn a_customer_without_an_id_is_malformed() {
    let req = signed(
        br#"{"email": "x@example.com"}"#.to_vec(),
        "customers/create",
        None,
        Utc::now(),
    );
    assert!(matches!(
        adapter().parse(&req),
        Err(loyaltyd_adapter::ParseError::Malformed(_))
    ));
}
