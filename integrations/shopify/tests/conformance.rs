//! The Shopify adapter through the SDK's conformance kit: every case of
//! `fixtures/cases.json` (default settings) and `fixtures/earn-on-create/cases.json`
//! (earning on `orders/create`), and the generic checks on each.

use std::path::{Path, PathBuf};

use loyaltyd_adapter::conformance::{self, Expect, Manifest, Rejection};
use loyaltyd_adapter::{Secret, ShopId};
use loyaltyd_shopify::{EarnOn, ShopifyAdapter, ShopifySettings};

const SIGNATURE_HEADER: &str = "X-Shopify-Hmac-Sha256";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn shop() -> ShopId {
    ShopId::new("demo").unwrap()
}

fn secrets() -> Vec<Secret> {
    vec![Secret::new("demo-shopify-secret")]
}

#[test]
fn every_fixture_case_gives_what_the_manifest_expects() {
    let adapter = ShopifyAdapter::new(secrets());
    let report = conformance::check_fixtures(&adapter, &fixtures(), &shop());
    report.assert_ok();
    assert_eq!(report.cases, 14, "{report}");
}

#[test]
fn every_fixture_case_passes_the_generic_checks() {
    let adapter = ShopifyAdapter::new(secrets());
    let report = conformance::check_generic(&adapter, &fixtures(), &shop(), SIGNATURE_HEADER);
    report.assert_ok();
    // All but the stale and wrong-secret cases are expected to verify.
    assert_eq!(report.cases, 12, "{report}");
}

#[test]
fn earning_on_orders_create_passes_its_own_manifest() {
    let adapter = ShopifyAdapter::with_settings(ShopifySettings {
        secrets: secrets(),
        earn_on: EarnOn::Create,
        ..ShopifySettings::default()
    });
    let report = conformance::check_all(
        &adapter,
        &fixtures().join("earn-on-create"),
        &shop(),
        SIGNATURE_HEADER,
    );
    report.assert_ok();
    assert_eq!(report.cases, 2, "{report}");
}

#[test]
fn the_manifest_covers_every_topic_and_every_outcome() {
    let m = Manifest::load(&fixtures()).unwrap();
    assert!(m.cases.len() >= 12);
    let topics: std::collections::BTreeSet<&str> = m
        .cases
        .iter()
        .filter_map(|c| c.headers.get("X-Shopify-Topic").map(String::as_str))
        .collect();
    for topic in [
        "orders/paid",
        "orders/create",
        "orders/cancelled",
        "refunds/create",
        "customers/create",
        "customers/update",
        "products/update",
    ] {
        assert!(topics.contains(topic), "no case for {topic}");
    }
    for outcome in [
        Expect::Ignored,
        Expect::Rejected(Rejection::Signature),
        Expect::Rejected(Rejection::Stale),
        Expect::Rejected(Rejection::Malformed),
    ] {
        assert!(m.cases.iter().any(|c| c.expect == outcome), "{outcome:?}");
    }
    // Every signature says how OpenSSL computed it.
    for c in &m.cases {
        let command = c.command.as_deref().unwrap_or_default();
        assert!(
            command.starts_with("openssl dgst -sha256 -hmac '") && command.contains(&c.body),
            "{}: {command}",
            c.name
        );
    }
}

#[test]
fn the_kit_catches_an_adapter_with_the_wrong_secret() {
    // A sanity check of the wiring: with another secret nothing verifies.
    let adapter = ShopifyAdapter::new(vec![Secret::new("another-secret")]);
    let report = conformance::check_all(&adapter, &fixtures(), &shop(), SIGNATURE_HEADER);
    assert!(!report.is_ok());
    // The wrong-secret case still passes: it is rejected either way. Every other case
    // fails its expectation and its baseline (stale is reported as a mismatch now).
    assert_eq!(
        report.failures_of("orders-paid-pos-wrong-secret").count(),
        0
    );
    assert!(report
        .failures_of("orders-paid-pos")
        .any(|f| f.check == "verify"));
    assert!(report
        .failures_of("orders-paid-pos")
        .any(|f| f.check == "baseline"));
}

#[test]
fn the_manifest_and_signature_vectors_json_agree_on_every_shared_body() {
    #[derive(serde::Deserialize)]
    struct Vector {
        file: String,
        secret: String,
        signature: String,
    }
    let vectors: Vec<Vector> =
        serde_json::from_slice(&std::fs::read(fixtures().join("signature-vectors.json")).unwrap())
            .unwrap();
    let m = Manifest::load(&fixtures()).unwrap();
    let mut compared = 0;
    for c in &m.cases {
        let command = c.command.as_deref().unwrap_or_default();
        for v in vectors.iter().filter(|v| v.file == c.body) {
            if command.contains(&format!("-hmac '{}'", v.secret)) {
                assert_eq!(c.headers[SIGNATURE_HEADER], v.signature, "{}", c.name);
                compared += 1;
            }
        }
    }
    // Every case but the wrong-secret one has a vector.
    assert_eq!(compared, m.cases.len() - 1);
}
