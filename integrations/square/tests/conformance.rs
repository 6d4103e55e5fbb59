//! The Square adapter through the SDK's conformance kit: every case of
//! `fixtures/cases.json`, and the generic checks (tampered, truncated and unsigned
//! requests rejected, redeliveries keep their event id) on each.

mod common;

use common::{demo_adapter, fixtures};
use loyaltyd_adapter::{conformance, ShopId};
use loyaltyd_square::SIGNATURE_HEADER;

fn shop() -> ShopId {
    ShopId::new("demo").unwrap()
}

#[test]
fn every_fixture_case_gives_what_the_manifest_expects() {
    let report = conformance::check_fixtures(&demo_adapter(None), &fixtures(), &shop());
    report.assert_ok();
    assert_eq!(report.cases, 17, "{report}");
}

#[test]
fn every_fixture_case_passes_the_generic_checks() {
    let report =
        conformance::check_generic(&demo_adapter(None), &fixtures(), &shop(), SIGNATURE_HEADER);
    report.assert_ok();
    // All but the two signature rejections are expected to verify.
    assert_eq!(report.cases, 15, "{report}");
}
