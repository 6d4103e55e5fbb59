//! The shipped definitions through the SDK's conformance kit: every case of each fixture
//! manifest gives what it expects, and the generic checks (tampered, truncated and
//! unsigned requests are rejected; a redelivery keeps its event id) hold.

use std::path::{Path, PathBuf};

use loyaltyd_adapter::conformance::{self, Expect, Manifest, Rejection};
use loyaltyd_adapter::{Secret, ShopId};
use loyaltyd_declarative::{DeclarativeAdapter, WOOCOMMERCE};

fn fixtures(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

fn shop() -> ShopId {
    ShopId::new("demo").unwrap()
}

fn woocommerce() -> DeclarativeAdapter {
    DeclarativeAdapter::from_toml(
        WOOCOMMERCE,
        vec![Secret::new("demo-woocommerce-secret")],
        None,
    )
    .unwrap()
}

#[test]
fn every_woocommerce_case_gives_what_the_manifest_expects() {
    let report = conformance::check_fixtures(&woocommerce(), &fixtures("woocommerce"), &shop());
    report.assert_ok();
    assert_eq!(report.cases, 12, "{report}");
}

#[test]
fn every_woocommerce_case_passes_the_generic_checks() {
    let report = conformance::check_generic(
        &woocommerce(),
        &fixtures("woocommerce"),
        &shop(),
        "X-WC-Webhook-Signature",
    );
    report.assert_ok();
    // All but the ping and the wrong-secret case are expected to verify.
    assert_eq!(report.cases, 10, "{report}");
}

#[test]
fn the_woocommerce_manifest_covers_every_topic_and_outcome() {
    let m = Manifest::load(&fixtures("woocommerce")).unwrap();
    let topics: std::collections::BTreeSet<&str> = m
        .cases
        .iter()
        .filter_map(|c| c.headers.get("X-WC-Webhook-Topic").map(String::as_str))
        .collect();
    for topic in [
        "order.created",
        "order.updated",
        "customer.created",
        "product.updated",
    ] {
        assert!(topics.contains(topic), "no case for {topic}");
    }
    for outcome in [
        Expect::Ignored,
        Expect::Rejected(Rejection::Signature),
        Expect::Rejected(Rejection::Malformed),
    ] {
        assert!(m.cases.iter().any(|c| c.expect == outcome), "{outcome:?}");
    }
    // Every signature says how OpenSSL computed it.
    for c in m
        .cases
        .iter()
        .filter(|c| c.headers.contains_key("X-WC-Webhook-Signature"))
    {
        let command = c.command.as_deref().unwrap_or_default();
        assert!(
            command.starts_with("openssl dgst -sha256 -hmac '") && command.contains(&c.body),
            "{}: {command}",
            c.name
        );
    }
}

#[test]
fn the_kit_catches_the_wrong_secret() {
    let adapter = DeclarativeAdapter::from_toml(WOOCOMMERCE, vec![Secret::new("x")], None).unwrap();
    let report = conformance::check_fixtures(&adapter, &fixtures("woocommerce"), &shop());
    assert!(!report.is_ok());
    assert!(report.failures_of("order-completed").count() > 0);
    assert_eq!(
        report.failures_of("order-completed-wrong-secret").count(),
        0
    );
}

fn acme() -> DeclarativeAdapter {
    let toml = std::fs::read_to_string(fixtures("acme").join("acme.toml")).unwrap();
    DeclarativeAdapter::from_toml(
        &toml,
        vec![Secret::new("demo-acme-secret")],
        Some("https://loyalty.example.com/webhooks/demo/acme-pos".into()),
    )
    .unwrap()
}

#[test]
fn a_second_definition_with_hex_sha1_over_url_and_body_passes_the_kit() {
    let report = conformance::check_all(&acme(), &fixtures("acme"), &shop(), "X-Acme-Signature");
    report.assert_ok();
    assert_eq!(report.cases, 6, "{report}");
}
