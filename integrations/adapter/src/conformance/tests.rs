//! The kit against a toy adapter, correct and with planted bugs: every bug must show up
//! as a failure named by case and check, and the correct adapter must pass.

use std::sync::atomic::{AtomicU64, Ordering};

use super::*;
use crate::event::{Cancel, PosEvent};
use crate::signature::Scheme;
use crate::Secret;

const SECRET: &str = "toy-secret";
const SIG: &str = "X-Toy-Signature";

/// Bugs a toy adapter can be built with.
#[derive(Default)]
struct Bugs {
    /// `verify` accepts anything.
    accept_any_signature: bool,
    /// Only the first half of the body is signed.
    sign_half_body: bool,
    /// A missing signature header reads as a mismatch.
    missing_header_is_mismatch: bool,
    /// Each parse appends a counter to the event id.
    counter_ids: bool,
}

/// Signature: hex HMAC-SHA256 of the body in `X-Toy-Signature`; delivery id in
/// `X-Toy-Delivery`; `X-Toy-Sent-At` older than an hour is stale. Bodies:
/// `{"kind": "cancel", "order": ..., "reason": ...}` → Cancel; `{"kind": "ping"}` → ignored.
#[derive(Default)]
struct Toy {
    bugs: Bugs,
    counter: AtomicU64,
}

#[derive(Deserialize)]
struct ToyBody {
    kind: String,
    #[serde(default)]
    order: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

impl Adapter for Toy {
    fn name(&self) -> &'static str {
        "toy"
    }

    fn verify(&self, req: &RawRequest) -> Result<(), VerifyError> {
        if self.bugs.accept_any_signature {
            return Ok(());
        }
        let sig = match req.header("x-toy-signature") {
            Some(s) => s,
            None if self.bugs.missing_header_is_mismatch => return Err(VerifyError::Mismatch),
            None => return Err(VerifyError::MissingHeader("X-Toy-Signature")),
        };
        let signed = if self.bugs.sign_half_body {
            &req.body[..req.body.len() / 2]
        } else {
            &req.body[..]
        };
        Scheme::HMAC_SHA256_HEX.verify(&[Secret::new(SECRET)], &[signed], sig)?;
        if let Some(sent) = req
            .header("x-toy-sent-at")
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        {
            if req.received_at - sent.with_timezone(&Utc) > chrono::Duration::hours(1) {
                return Err(VerifyError::Stale(format!("sent at {sent}")));
            }
        }
        Ok(())
    }

    fn parse(&self, req: &RawRequest) -> Result<Parsed, ParseError> {
        let mut id = req
            .header("x-toy-delivery")
            .ok_or(ParseError::MissingHeader("X-Toy-Delivery"))?
            .to_string();
        if self.bugs.counter_ids {
            id.push_str(&format!(
                "#{}",
                self.counter.fetch_add(1, Ordering::Relaxed)
            ));
        }
        let body: ToyBody =
            serde_json::from_slice(&req.body).map_err(|e| ParseError::Malformed(e.to_string()))?;
        match body.kind.as_str() {
            "cancel" => Ok(Parsed::Event(Box::new(EventEnvelope {
                shop: req.shop.clone(),
                adapter: "toy".into(),
                event_id: id,
                occurred_at: req
                    .header("x-toy-sent-at")
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.with_timezone(&Utc))
                    .ok_or(ParseError::MissingHeader("X-Toy-Sent-At"))?,
                event: PosEvent::Cancel(Cancel {
                    order_id: body.order.unwrap_or_default(),
                    reason: body.reason,
                }),
            }))),
            other => Ok(Parsed::ignored(id, other, "toy ignores it")),
        }
    }
}

const CANCEL: &str = r#"{"kind": "cancel", "order": "o-1", "reason": "customer"}"#;
const PING: &str = r#"{"kind": "ping"}"#;
const GARBLED: &str = r#"{"kind": "#;

const EXPECTED_CANCEL: &str = r#"{"_why": "order o-1 cancelled by the customer",
 "shop": "demo", "adapter": "toy", "event_id": "d-1", "occurred_at": "2026-11-20T15:00:00Z",
 "event": {"type": "cancel", "order_id": "o-1", "reason": "customer"}}"#;

fn sign(body: &str) -> String {
    Scheme::HMAC_SHA256_HEX.sign(SECRET.as_bytes(), &[body.as_bytes()])
}

thread_local! {
    /// Sign only the first half of each body, as a sender would that agrees with the
    /// `sign_half_body` bug (so the baseline verifies and only the generic checks can
    /// tell).
    static HALF: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn headers(body: &str, delivery: &str, sent_at: &str) -> Value {
    let signed = if HALF.get() {
        &body[..body.len() / 2]
    } else {
        body
    };
    serde_json::json!({
        "X-Toy-Signature": sign(signed),
        "X-Toy-Delivery": delivery,
        "X-Toy-Sent-At": sent_at,
    })
}

/// The standard toy manifest: 5 cases, 3 of which must verify.
fn manifest() -> Value {
    let mut wrong = headers(CANCEL, "d-4", "2026-11-20T15:00:00Z");
    wrong["X-Toy-Signature"] = Value::String(sign("something else"));
    serde_json::json!({
        "_why": "toy fixtures",
        "received_at": "2026-11-20T15:05:00Z",
        "cases": [
            {"name": "cancel", "body": "cancel.json",
             "headers": headers(CANCEL, "d-1", "2026-11-20T15:00:00Z"),
             "command": "openssl dgst -sha256 -hmac 'toy-secret' cancel.json",
             "_why": "a cancellation",
             "expect": {"event": "expected/cancel.json"}, "needs_enrichment": false},
            {"name": "ping", "body": "ping.json",
             "headers": headers(PING, "d-2", "2026-11-20T15:00:00Z"),
             "expect": {"ignored": true}},
            {"name": "garbled", "body": "garbled.json",
             "headers": headers(GARBLED, "d-3", "2026-11-20T15:00:00Z"),
             "expect": {"rejected": "malformed"}},
            {"name": "wrong-signature", "body": "cancel.json", "headers": wrong,
             "expect": {"rejected": "signature"}},
            {"name": "stale", "body": "cancel.json",
             "headers": headers(CANCEL, "d-5", "2026-11-20T15:00:00Z"),
             "received_at": "2026-11-23T15:00:00+00:00",
             "expect": {"rejected": "stale"}}
        ]
    })
}

fn fixture_dir(manifest: &Value, expected_cancel: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::create_dir(p.join("expected")).unwrap();
    std::fs::write(p.join("cancel.json"), CANCEL).unwrap();
    std::fs::write(p.join("ping.json"), PING).unwrap();
    std::fs::write(p.join("garbled.json"), GARBLED).unwrap();
    std::fs::write(p.join("expected/cancel.json"), expected_cancel).unwrap();
    std::fs::write(
        p.join(MANIFEST),
        serde_json::to_string_pretty(manifest).unwrap(),
    )
    .unwrap();
    dir
}

fn shop() -> ShopId {
    ShopId::new("demo").unwrap()
}

fn run(toy: &Toy, dir: &tempfile::TempDir) -> Report {
    check_all(toy, dir.path(), &shop(), SIG)
}

/// The failed checks as `case/check`, sorted and deduplicated.
fn failed(report: &Report) -> Vec<String> {
    let set: BTreeSet<String> = report
        .failures
        .iter()
        .map(|f| format!("{}/{}", f.case, f.check))
        .collect();
    set.into_iter().collect()
}

#[test]
fn a_correct_adapter_passes_every_check() {
    let dir = fixture_dir(&manifest(), EXPECTED_CANCEL);
    let report = run(&Toy::default(), &dir);
    report.assert_ok();
    assert_eq!(report.adapter, "toy");
    assert_eq!(report.cases, 5);
    // fixtures: 5 expectations + needs_enrichment; generic on cancel, ping, garbled:
    // 3 tampered + 2 truncated + 2 altered + 1 missing each, plus duplicate for 2.
    assert_eq!(report.checks, 6 + 3 * 8 + 2);
}

#[test]
fn an_adapter_that_accepts_any_signature_fails_the_signature_checks() {
    let dir = fixture_dir(&manifest(), EXPECTED_CANCEL);
    let toy = Toy {
        bugs: Bugs {
            accept_any_signature: true,
            ..Bugs::default()
        },
        ..Toy::default()
    };
    let report = run(&toy, &dir);
    let mut want = vec![
        "stale/rejected".to_string(),
        "wrong-signature/rejected".to_string(),
    ];
    for case in ["cancel", "garbled", "ping"] {
        for check in [
            "altered_signature",
            "missing_signature_header",
            "tampered_body",
            "truncated_body",
        ] {
            want.push(format!("{case}/{check}"));
        }
    }
    want.sort();
    assert_eq!(failed(&report), want, "{report}");
    let text = report.to_string();
    assert!(text.contains("[wrong-signature] rejected: verify accepted it (parse would give an event (cancel, id \"d-4\"))"), "{text}");
}

#[test]
fn a_signature_over_half_the_body_is_caught_by_tampering_and_truncation() {
    HALF.set(true);
    let m = manifest();
    HALF.set(false);
    let dir = fixture_dir(&m, EXPECTED_CANCEL);
    let toy = Toy {
        bugs: Bugs {
            sign_half_body: true,
            ..Bugs::default()
        },
        ..Toy::default()
    };
    let report = run(&toy, &dir);
    // Flipping the first byte is still caught; the middle-or-later and last ones are not.
    let tampered: Vec<&Failure> = report
        .failures
        .iter()
        .filter(|f| f.check == "tampered_body")
        .collect();
    assert_eq!(tampered.len(), 6, "{report}");
    assert!(tampered.iter().all(|f| !f.message.contains("byte 0 ")));
    // 9 bytes: the body without its last byte still has the same first half.
    assert!(failed(&report).contains(&"garbled/truncated_body".to_string()));
}

#[test]
fn a_missing_header_must_say_so_not_mismatch() {
    let dir = fixture_dir(&manifest(), EXPECTED_CANCEL);
    let toy = Toy {
        bugs: Bugs {
            missing_header_is_mismatch: true,
            ..Bugs::default()
        },
        ..Toy::default()
    };
    let report = run(&toy, &dir);
    assert_eq!(
        failed(&report),
        [
            "cancel/missing_signature_header",
            "garbled/missing_signature_header",
            "ping/missing_signature_header"
        ]
    );
    assert!(report.failures[0].message.contains("Mismatch"), "{report}");
}

#[test]
fn event_ids_that_change_between_parses_fail_the_duplicate_check() {
    let dir = fixture_dir(&manifest(), EXPECTED_CANCEL);
    let toy = Toy {
        bugs: Bugs {
            counter_ids: true,
            ..Bugs::default()
        },
        ..Toy::default()
    };
    let report = run(&toy, &dir);
    assert_eq!(
        failed(&report),
        [
            "cancel/duplicate_delivery",
            "cancel/event",
            "ping/duplicate_delivery"
        ],
        "{report}"
    );
    assert!(report
        .failures_of("ping")
        .any(|f| f.message.contains("gave event ids")));
}

#[test]
fn a_wrong_event_is_reported_field_by_field() {
    let expected = EXPECTED_CANCEL
        .replace("\"o-1\"", "\"o-2\"")
        .replace("\"2026-11-20T15:00:00Z\"", "\"2026-11-20T16:00:00+01:00\"");
    let dir = fixture_dir(&manifest(), &expected);
    let report = check_fixtures(&Toy::default(), dir.path(), &shop());
    assert_eq!(failed(&report), ["cancel/event"]);
    let message = &report.failures[0].message;
    // The same instant in another offset is equal; the order id is not.
    assert!(
        message.contains("event.order_id: expected \"o-2\", got \"o-1\""),
        "{message}"
    );
    assert!(!message.contains("occurred_at"), "{message}");
}

#[test]
fn a_misspelt_key_in_an_expected_file_is_reported() {
    let expected = EXPECTED_CANCEL.replace("\"reason\"", "\"reasn\"");
    let dir = fixture_dir(&manifest(), &expected);
    let report = check_fixtures(&Toy::default(), dir.path(), &shop());
    assert_eq!(failed(&report), ["cancel/expected"]);
    assert!(
        report.failures[0].message.contains("event.reasn"),
        "{report}"
    );
}

#[test]
fn an_expectation_the_adapter_does_not_meet_names_what_it_did() {
    let mut m = manifest();
    m["cases"][1]["expect"] = serde_json::json!({"event": "expected/cancel.json"});
    m["cases"][0]["expect"] = serde_json::json!({"rejected": "stale"});
    m["cases"][0]
        .as_object_mut()
        .unwrap()
        .remove("needs_enrichment");
    m["cases"][2]["expect"] = serde_json::json!({"ignored": true});
    let dir = fixture_dir(&m, EXPECTED_CANCEL);
    let report = check_fixtures(&Toy::default(), dir.path(), &shop());
    let messages: Vec<String> = report.failures.iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        [
            "[cancel] rejected: verify accepted it, expected VerifyError::Stale",
            "[ping] event: expected an event, got ignored (ping, id \"d-2\": toy ignores it)",
        ]
        .iter()
        .map(ToString::to_string)
        .chain(std::iter::once(format!(
            "[garbled] ignored: expected ignored, got a parse error ({:?})",
            serde_json::from_str::<ToyBody>(GARBLED)
                .map(|_| ())
                .map_err(|e| ParseError::Malformed(e.to_string()))
                .unwrap_err()
        )))
        .collect::<Vec<_>>()
    );
}

#[test]
fn needs_enrichment_is_checked_when_the_case_says() {
    let mut m = manifest();
    m["cases"][0]["needs_enrichment"] = Value::Bool(true);
    let dir = fixture_dir(&m, EXPECTED_CANCEL);
    let report = check_fixtures(&Toy::default(), dir.path(), &shop());
    assert_eq!(failed(&report), ["cancel/needs_enrichment"]);
}

fn manifest_failure(m: &Value) -> String {
    let dir = fixture_dir(m, EXPECTED_CANCEL);
    let report = check_all(&Toy::default(), dir.path(), &shop(), SIG);
    assert!(!report.is_ok());
    assert!(
        report.failures.iter().all(|f| f.case == "<manifest>"),
        "{report}"
    );
    report.failures[0].message.clone()
}

#[test]
fn manifest_mistakes_fail_loudly_instead_of_skipping_checks() {
    let mut m = manifest();
    m["cases"][0]["expct"] = Value::Bool(true);
    assert!(manifest_failure(&m).contains("unknown key(s) expct"));

    let mut m = manifest();
    m["recieved_at"] = Value::String("2026-11-20T15:05:00Z".into());
    assert!(manifest_failure(&m).contains("unknown key(s) recieved_at"));

    let mut m = manifest();
    m["cases"][1]["expect"] = serde_json::json!({"ignored": false});
    assert!(manifest_failure(&m).contains("\"ignored\": false"));

    let mut m = manifest();
    m["cases"][1]["expect"] = serde_json::json!({"rejected": "tampered"});
    assert!(manifest_failure(&m).contains("unknown variant `tampered`"));

    let mut m = manifest();
    m["cases"][1]["name"] = Value::String("cancel".into());
    assert!(manifest_failure(&m).contains("duplicate name"));

    let mut m = manifest();
    m["cases"][1]["received_at"] = Value::String("yesterday".into());
    assert!(manifest_failure(&m).contains("not an RFC 3339 time"));

    let mut m = manifest();
    m["cases"] = serde_json::json!([]);
    assert!(manifest_failure(&m).contains("no cases"));

    let mut m = manifest();
    m["cases"][1]["needs_enrichment"] = Value::Bool(false);
    assert!(manifest_failure(&m).contains("event cases only"));
}

#[test]
fn a_missing_manifest_or_body_is_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let report = check_fixtures(&Toy::default(), dir.path(), &shop());
    assert_eq!(failed(&report), ["<manifest>/manifest"]);

    let mut m = manifest();
    m["cases"][1]["body"] = Value::String("nope.json".into());
    let dir = fixture_dir(&m, EXPECTED_CANCEL);
    let report = run(&Toy::default(), &dir);
    assert_eq!(failed(&report), ["ping/request"], "{report}");
}

#[test]
fn a_case_without_the_signature_header_cannot_run_the_generic_checks() {
    let mut m = manifest();
    m["cases"][1]["headers"]
        .as_object_mut()
        .unwrap()
        .remove("X-Toy-Signature");
    m["cases"][1]["expect"] = serde_json::json!({"rejected": "signature"});
    m["cases"][2]["headers"]
        .as_object_mut()
        .unwrap()
        .remove("X-Toy-Signature");
    let dir = fixture_dir(&m, EXPECTED_CANCEL);
    let report = run(&Toy::default(), &dir);
    assert_eq!(
        failed(&report),
        ["garbled/signature_header", "garbled/verify"],
        "{report}"
    );
}

#[test]
#[should_panic(expected = "[wrong-signature] rejected: verify accepted it")]
fn assert_ok_panics_with_the_failures() {
    let dir = fixture_dir(&manifest(), EXPECTED_CANCEL);
    let toy = Toy {
        bugs: Bugs {
            accept_any_signature: true,
            ..Bugs::default()
        },
        ..Toy::default()
    };
    run(&toy, &dir).assert_ok();
}

#[test]
fn a_report_in_which_nothing_ran_is_not_ok() {
    let report = Report::default();
    assert!(!report.is_ok());
    assert!(report.to_string().contains("no check ran"));
}

#[test]
fn requests_are_built_from_the_manifest_for_adapter_specific_tests() {
    let dir = fixture_dir(&manifest(), EXPECTED_CANCEL);
    let m = Manifest::load(dir.path()).unwrap();
    let stale = m.case("stale").unwrap();
    let req = m.request(stale, &shop()).unwrap();
    assert_eq!(req.body, CANCEL.as_bytes());
    assert_eq!(req.header("x-toy-delivery"), Some("d-5"));
    assert_eq!(req.received_at.to_rfc3339(), "2026-11-23T15:00:00+00:00");
    let ping = m.request(m.case("ping").unwrap(), &shop()).unwrap();
    assert_eq!(ping.received_at.to_rfc3339(), "2026-11-20T15:05:00+00:00");
    assert_eq!(
        m.case("cancel").unwrap().command.as_deref(),
        Some("openssl dgst -sha256 -hmac 'toy-secret' cancel.json")
    );
}

#[test]
fn decimal_strings_compare_as_numbers_in_diffs() {
    let mut out = Vec::new();
    json_diff(
        "",
        &serde_json::json!({"a": "0", "b": ["1.50", "x"], "c": 1}),
        &serde_json::json!({"a": "0.00", "b": ["1.5", "y"], "c": 2, "d": null}),
        &mut out,
    );
    assert_eq!(
        out,
        [
            "b[1]: expected \"x\", got \"y\"",
            "c: expected 1, got 2",
            "d: not expected, got null"
        ]
    );
}
