//! The Square adapter against recorded webhook bodies: canonical events written by hand
//! from the payloads (`fixtures/expected/`), and the events it must ignore.

mod common;

use common::{demo_adapter, expected, read, request};
use loyaltyd_adapter::{Adapter, Currency, ParseError, Parsed, PosEvent, Sale};
use loyaltyd_square::money_from_minor_units;
use rust_decimal::Decimal;

fn parse_bytes(body: Vec<u8>) -> Result<Parsed, ParseError> {
    demo_adapter(None).parse(&request(body, None))
}

fn parse_str(body: &str) -> Result<Parsed, ParseError> {
    parse_bytes(body.as_bytes().to_vec())
}

fn parse_fixture(file: &str) -> Parsed {
    parse_bytes(read(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn assert_parses_to_expected(file: &str) {
    assert_eq!(
        parse_fixture(file),
        Parsed::Event(Box::new(expected(file))),
        "{file}"
    );
}

fn assert_ignored(file: &str, event_id: &str, kind: &str, reason_contains: &str) {
    match parse_fixture(file) {
        Parsed::Ignored {
            event_id: id,
            kind: k,
            reason,
        } => {
            assert_eq!((id.as_str(), k.as_str()), (event_id, kind), "{file}");
            assert!(
                reason.contains(reason_contains),
                "{file}: reason {reason:?} lacks {reason_contains:?}"
            );
        }
        other => panic!("{file}: expected ignored, got {other:?}"),
    }
}

fn sale_of(parsed: Parsed) -> Sale {
    match parsed {
        Parsed::Event(env) => match env.event {
            PosEvent::Sale(s) => s,
            other => panic!("not a sale: {other:?}"),
        },
        other => panic!("not an event: {other:?}"),
    }
}

fn invalid_field(r: Result<Parsed, ParseError>) -> String {
    match r {
        Err(ParseError::InvalidField { field, .. }) => field,
        other => panic!("expected an invalid field, got {other:?}"),
    }
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// Every webhook fixture either parses to its expected event or is ignored; none is left out.
#[test]
fn every_webhook_fixture_has_a_checked_outcome() {
    let ignored = [
        "payment-created-approved.json",
        "payment-updated-failed.json",
        "refund-created-pending.json",
        "webhooks-test-notification.json",
        "order-updated.json",
    ];
    let rejected = [
        ("square-known-answer-minimal.json", "event_id"),
        (
            "payment-updated-unknown-currency.json",
            "data.object.payment.amount_money.currency",
        ),
    ];
    for entry in std::fs::read_dir(common::fixtures()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if !name.ends_with(".json") || common::NOT_BODIES.contains(&name.as_str()) {
            continue;
        }
        if ignored.contains(&name.as_str()) {
            assert!(
                matches!(parse_fixture(&name), Parsed::Ignored { .. }),
                "{name}"
            );
        } else if let Some((_, field)) = rejected.iter().find(|(f, _)| *f == name) {
            assert_eq!(invalid_field(parse_bytes(read(&name))), *field, "{name}");
        } else {
            assert_parses_to_expected(&name);
        }
    }
}

#[test]
fn the_reference_completed_payment_parses_to_a_sale_keyed_by_the_payment_id() {
    assert_parses_to_expected("payment-updated-completed.json");
}

#[test]
fn an_approved_payment_is_ignored_until_it_completes() {
    assert_ignored(
        "payment-created-approved.json",
        "5d2e8c1a-7b4f-4a90-8e3d-1c6f9a2b7e51",
        "payment.created",
        "payment APPROVED; earns when COMPLETED",
    );
}

#[test]
fn a_failed_payment_is_ignored() {
    assert_ignored(
        "payment-updated-failed.json",
        "7f3e2d1c-0b9a-4876-a5b4-c3d2e1f0a9b8",
        "payment.updated",
        "payment FAILED; earns when COMPLETED",
    );
}

#[test]
fn a_payment_created_already_completed_is_a_sale_whose_total_includes_the_tip() {
    assert_parses_to_expected("payment-created-completed.json");
    let sale = sale_of(parse_fixture("payment-created-completed.json"));
    assert_eq!(sale.lines[0].unit_price, dec("6.50"));
    assert_eq!(sale.total, dec("7.50"));
}

#[test]
fn created_and_updated_events_of_one_completed_payment_share_one_order_id() {
    let created = String::from_utf8(read("payment-created-completed.json")).unwrap();
    let updated = created
        .replace("\"payment.created\"", "\"payment.updated\"")
        .replace("b81f3c7e-2a94-4d56-9e0b-7c3d5f1a8e62", "another-event-id")
        .replacen(
            "\"updated_at\":\"2026-11-22T09:41:17.250Z\"",
            "\"updated_at\":\"2026-11-22T09:41:19.004Z\"",
            1,
        );
    let (Parsed::Event(a), Parsed::Event(b)) =
        (parse_str(&created).unwrap(), parse_str(&updated).unwrap())
    else {
        panic!("both must be events")
    };
    assert_ne!(a.event_id, b.event_id);
    assert_ne!(a.occurred_at, b.occurred_at);
    // Same business key and same sale: the ledger scores the payment once.
    assert_eq!(a.event, b.event);
    assert_eq!(
        sale_of(Parsed::Event(a)).order_id,
        "R4tY7uI9oP2aS5dF8gH1jK3lZ6xC"
    );
}

#[test]
fn a_yen_payment_keeps_whole_yen() {
    assert_parses_to_expected("payment-updated-jpy.json");
    let sale = sale_of(parse_fixture("payment-updated-jpy.json"));
    assert_eq!(sale.total, dec("1550"));
    assert_eq!(sale.total.scale(), 0);
}

#[test]
fn a_dinar_payment_has_three_decimals() {
    assert_parses_to_expected("payment-updated-kwd.json");
    let sale = sale_of(parse_fixture("payment-updated-kwd.json"));
    assert_eq!(sale.lines[0].unit_price.to_string(), "18.490");
    assert_eq!(sale.total.to_string(), "18.990");
}

#[test]
fn a_guest_cash_payment_has_no_customer() {
    assert_parses_to_expected("payment-created-guest-cash.json");
    assert_eq!(
        sale_of(parse_fixture("payment-created-guest-cash.json")).customer,
        None
    );
}

#[test]
fn a_guest_online_payment_names_its_buyer_by_email() {
    assert_parses_to_expected("payment-updated-guest-online.json");
}

#[test]
fn a_pending_refund_is_ignored_until_it_completes() {
    assert_ignored(
        "refund-created-pending.json",
        "1e2d3c4b-5a69-4877-8695-a4b3c2d1e0f9",
        "refund.created",
        "refund PENDING; applies when COMPLETED",
    );
}

#[test]
fn the_reference_completed_refund_names_the_sale_by_its_payment_id() {
    assert_parses_to_expected("refund-updated-completed.json");
    let sale = sale_of(parse_fixture("payment-updated-completed.json"));
    let Parsed::Event(env) = parse_fixture("refund-updated-completed.json") else {
        panic!("not an event")
    };
    let PosEvent::Refund(refund) = env.event else {
        panic!("not a refund")
    };
    assert_eq!(refund.order_id, sale.order_id);
    assert!(refund.lines.is_empty());
}

#[test]
fn a_new_customer_parses_with_email_consent_from_the_unsubscribed_flag() {
    assert_parses_to_expected("customer-created.json");
}

#[test]
fn an_updated_customer_brings_a_birthday_and_withdrawn_email_consent() {
    assert_parses_to_expected("customer-updated.json");
}

#[test]
fn a_birthday_without_a_year_is_kept_as_year_zero_even_on_29_february() {
    assert_parses_to_expected("customer-updated-birthday-without-year.json");
}

#[test]
fn a_birthday_in_the_older_rfc3339_form_is_read_by_its_date() {
    let body = r#"{"type":"customer.updated","event_id":"e","created_at":"2026-11-25T09:00:00Z",
        "data":{"type":"customer","id":"C","object":{"customer":{"id":"C",
        "birthday":"1998-09-21T00:00:00-00:00"}}}}"#;
    let Parsed::Event(env) = parse_str(body).unwrap() else {
        panic!("not an event")
    };
    let PosEvent::CustomerUpsert(c) = env.event else {
        panic!("not a customer")
    };
    assert_eq!(c.birthday, chrono::NaiveDate::from_ymd_opt(1998, 9, 21));
}

#[test]
fn a_birthday_that_is_not_a_date_is_an_invalid_field() {
    let body = r#"{"type":"customer.created","event_id":"e","created_at":"2026-11-25T09:00:00Z",
        "data":{"type":"customer","id":"C","object":{"customer":{"id":"C","birthday":"21/09/1998"}}}}"#;
    assert_eq!(
        invalid_field(parse_str(body)),
        "data.object.customer.birthday"
    );
}

#[test]
fn the_square_test_notification_is_ignored() {
    assert_ignored(
        "webhooks-test-notification.json",
        "ac3ac95b-f97d-458c-a6e6-18981597e05f",
        "webhooks.test_notification",
        "test notification",
    );
}

#[test]
fn order_events_are_ignored_because_payments_drive_earning() {
    assert_ignored(
        "order-updated.json",
        "4f5e6d7c-8b9a-4a0b-8c1d-2e3f4a5b6c7e",
        "order.updated",
        "payment events",
    );
}

#[test]
fn event_types_not_used_are_ignored_not_rejected() {
    for kind in [
        "customer.deleted",
        "loyalty.account.created",
        "invoice.payment_made",
    ] {
        let body = format!(
            r#"{{"merchant_id":"M","type":"{kind}","event_id":"e-{kind}","created_at":"2026-11-25T09:00:00Z","data":{{"type":"x","id":"y"}}}}"#
        );
        assert!(
            matches!(parse_str(&body), Ok(Parsed::Ignored { kind: ref k, .. }) if k == kind),
            "{kind}"
        );
    }
}

#[test]
fn minor_units_convert_exactly_for_yen_dollars_and_dinars() {
    let convert = |amount: i64, code: &str| {
        money_from_minor_units(amount, code.parse::<Currency>().unwrap()).unwrap()
    };
    assert_eq!(convert(1550, "JPY"), dec("1550"));
    assert_eq!(convert(1188, "USD"), dec("11.88"));
    assert_eq!(convert(1, "USD"), dec("0.01"));
    assert_eq!(convert(18490, "KWD"), dec("18.490"));
    assert_eq!(convert(1, "KWD"), dec("0.001"));
    // Far beyond f64's 15-16 significant digits, still exact.
    assert_eq!(convert(i64::MAX, "USD").to_string(), "92233720368547758.07");
    assert_eq!(money_from_minor_units(100, "XYZ".parse().unwrap()), None);
}

fn payment_body(amount_money: &str, total_money: &str) -> String {
    format!(
        r#"{{"merchant_id":"M","type":"payment.updated","event_id":"e","created_at":"2026-11-20T15:14:07Z",
        "data":{{"type":"payment","id":"P","object":{{"payment":{{"id":"P","status":"COMPLETED",
        "amount_money":{amount_money},"total_money":{total_money}}}}}}}}}"#
    )
}

#[test]
fn an_unknown_currency_is_an_invalid_field_not_a_guess() {
    let m = r#"{"amount":100,"currency":"XYZ"}"#;
    assert_eq!(
        invalid_field(parse_str(&payment_body(m, m))),
        "data.object.payment.amount_money.currency"
    );
    let lower = r#"{"amount":100,"currency":"usd"}"#;
    assert_eq!(
        invalid_field(parse_str(&payment_body(lower, lower))),
        "data.object.payment.amount_money.currency"
    );
}

#[test]
fn a_fractional_or_negative_amount_is_an_invalid_field() {
    let total = r#"{"amount":1188,"currency":"USD"}"#;
    for amount in [
        r#"{"amount":11.88,"currency":"USD"}"#,
        r#"{"amount":-1188,"currency":"USD"}"#,
        r#"{"amount":"1188","currency":"USD"}"#,
        r#"{"currency":"USD"}"#,
    ] {
        assert_eq!(
            invalid_field(parse_str(&payment_body(amount, total))),
            "data.object.payment.amount_money.amount",
            "{amount}"
        );
    }
}

#[test]
fn a_total_in_another_currency_than_the_amount_is_an_invalid_field() {
    let r = parse_str(&payment_body(
        r#"{"amount":1188,"currency":"USD"}"#,
        r#"{"amount":1188,"currency":"CAD"}"#,
    ));
    assert_eq!(invalid_field(r), "data.object.payment.total_money.currency");
}

#[test]
fn a_payment_without_any_time_is_an_invalid_field() {
    let body = payment_body(
        r#"{"amount":1,"currency":"USD"}"#,
        r#"{"amount":1,"currency":"USD"}"#,
    )
    .replace(r#","created_at":"2026-11-20T15:14:07Z""#, "");
    assert_eq!(
        invalid_field(parse_str(&body)),
        "data.object.payment.updated_at"
    );
}

#[test]
fn a_payment_dated_only_by_the_envelope_takes_the_envelope_time() {
    let m = r#"{"amount":1,"currency":"USD"}"#;
    let Parsed::Event(env) = parse_str(&payment_body(m, m)).unwrap() else {
        panic!("not an event")
    };
    assert_eq!(env.occurred_at.to_rfc3339(), "2026-11-20T15:14:07+00:00");
}

#[test]
fn a_payment_without_a_status_is_an_invalid_field() {
    let body = payment_body(
        r#"{"amount":1,"currency":"USD"}"#,
        r#"{"amount":1,"currency":"USD"}"#,
    )
    .replace(r#""status":"COMPLETED","#, "");
    assert_eq!(
        invalid_field(parse_str(&body)),
        "data.object.payment.status"
    );
}

#[test]
fn a_completed_refund_without_a_payment_id_is_an_invalid_field() {
    let body = String::from_utf8(read("refund-updated-completed.json"))
        .unwrap()
        .replace("\"payment_id\"", "\"paymentid\"");
    assert_eq!(
        invalid_field(parse_str(&body)),
        "data.object.refund.payment_id"
    );
}

#[test]
fn a_body_without_event_id_is_an_invalid_field() {
    // Square's second known-answer vector is only a fragment of an envelope.
    assert_eq!(
        invalid_field(parse_bytes(read("square-known-answer-minimal.json"))),
        "event_id"
    );
}

#[test]
fn malformed_json_is_a_parse_error() {
    assert!(matches!(
        parse_str(r#"{"type": "payment.updated", "#),
        Err(ParseError::Malformed(_))
    ));
    assert!(matches!(parse_str("[1, 2]"), Err(ParseError::Malformed(_))));
}

#[test]
fn a_currency_whose_exponent_is_unknown_is_refused_rather_than_guessed() {
    // XAU (gold) has no minor unit in ISO 4217: 5000 could be 5000 or 50.00.
    assert_eq!(
        invalid_field(parse_bytes(read("payment-updated-unknown-currency.json"))),
        "data.object.payment.amount_money.currency"
    );
}

/// `cases.json` (for the SDK's conformance kit) repeats the OpenSSL signatures; it must
/// not drift from `signature-vectors.json`.
#[test]
fn the_conformance_manifest_agrees_with_the_openssl_vectors() {
    let manifest: serde_json::Value = serde_json::from_slice(&read("cases.json")).unwrap();
    let cases = manifest["cases"].as_array().unwrap();
    let vectors = common::vectors();
    let mut covered = 0;
    for v in vectors.iter().filter(|v| v.url == common::DEMO_URL) {
        let case = cases
            .iter()
            .find(|c| c["body"] == v.file.as_str() && c["expect"]["rejected"] != "signature")
            .unwrap_or_else(|| panic!("{} has no case", v.file));
        assert_eq!(
            case["headers"]["x-square-hmacsha256-signature"],
            v.signature.as_str(),
            "{}",
            v.file
        );
        assert_eq!(case["command"], v.command.as_str(), "{}", v.file);
        if let Some(event) = case["expect"]["event"].as_str() {
            assert_eq!(event, format!("expected/{}", v.file));
        }
        covered += 1;
    }
    assert_eq!(covered, 15);
}
