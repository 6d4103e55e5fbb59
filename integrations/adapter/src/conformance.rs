//! A conformance kit: checks an [`Adapter`] against recorded webhook fixtures.
//!
//! Every adapter crate keeps a directory of raw webhook bodies, exactly as the sender
//! sends them, with a manifest (`cases.json`) that says which headers came with each body
//! and what the adapter must make of it. Its tests then call
//!
//! - [`check_fixtures`]: every case gives what the manifest expects (the event, byte for
//!   byte equal to a hand-written file; an ignored delivery; or a rejection), and
//! - [`check_generic`]: for every case that must verify, the properties no adapter may
//!   break — a body altered by one byte, a truncated body, an altered signature and a
//!   missing signature header are rejected, and the same delivery parsed twice gives the
//!   same event id (so a redelivery is recognised as a duplicate),
//!
//! or [`check_all`] for both. Each returns a [`Report`]; [`Report::assert_ok`] panics with
//! every failure, named by case, so one run shows all of them.
//!
//! ```no_run
//! use std::path::Path;
//! use loyaltyd_adapter::{conformance, Secret, ShopId};
//! # use loyaltyd_adapter::{Adapter, Parsed, ParseError, RawRequest, VerifyError};
//! # struct AcmeAdapter;
//! # impl AcmeAdapter { fn new(_: Vec<Secret>) -> Self { AcmeAdapter } }
//! # impl Adapter for AcmeAdapter {
//! #     fn name(&self) -> &'static str { "acme" }
//! #     fn verify(&self, _: &RawRequest) -> Result<(), VerifyError> { Ok(()) }
//! #     fn parse(&self, _: &RawRequest) -> Result<Parsed, ParseError> { unimplemented!() }
//! # }
//!
//! // In integrations/acme/tests/conformance.rs:
//! let adapter = AcmeAdapter::new(vec![Secret::new("demo-acme-secret")]);
//! let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
//! let shop = ShopId::new("demo").unwrap();
//! conformance::check_all(&adapter, &dir, &shop, "X-Acme-Signature").assert_ok();
//! ```
//!
//! # The manifest
//!
//! `cases.json` in the fixture directory (the name is [`MANIFEST`]):
//!
//! ```json
//! {
//!   "_why": "keys starting with _ are comments, anywhere in the manifest",
//!   "received_at": "2026-11-20T15:20:00Z",
//!   "cases": [
//!     {"name": "sale-pos",
//!      "body": "orders-paid-pos.json",
//!      "headers": {"X-Acme-Topic": "orders/paid", "X-Acme-Delivery": "d-1",
//!                  "X-Acme-Signature": "cwnp/jWJUVWZ9rDaWj7WwIBUcSfTn1odOG9qh7WI6uk="},
//!      "command": "openssl dgst -sha256 -hmac 'demo-acme-secret' -binary orders-paid-pos.json | base64",
//!      "expect": {"event": "expected/orders-paid-pos.json"}},
//!     {"name": "product-update", "body": "products-update.json", "headers": {"...": "..."},
//!      "expect": {"ignored": true}},
//!     {"name": "replayed", "body": "orders-paid-pos.json", "received_at": "2026-11-23T15:20:00Z",
//!      "headers": {"...": "..."}, "expect": {"rejected": "stale"}}
//!   ]
//! }
//! ```
//!
//! Top level:
//! - `cases` (required, at least one): the cases, each with a unique `name`.
//! - `received_at` (optional, RFC 3339): the default [`RawRequest::received_at`] of the
//!   cases; without it a case is received "now". Set it whenever the sender's timestamps
//!   are checked for staleness, or the fixtures go stale as time passes.
//!
//! A case:
//! - `name` (required): shown in every failure.
//! - `body` (required): the body file, relative to the fixture directory, sent byte for
//!   byte (keep git from touching it: `* -text` in a `.gitattributes`).
//! - `headers` (optional): header name → value, sent as given (names are
//!   case-insensitive). Include the signature header with its value as the sender would
//!   compute it — computed by a tool other than loyaltyd's own code, e.g. OpenSSL — and
//!   record the command in `command`.
//! - `command` (optional): how the signature was computed, for anyone recomputing it.
//! - `received_at` (optional, RFC 3339): overrides the top-level default.
//! - `expect` (required), exactly one of:
//!   - `{"event": "FILE"}`: verify succeeds and parse gives [`Parsed::Event`] equal to the
//!     [`EventEnvelope`] in FILE (relative to the fixture directory; keys starting with
//!     `_`, such as a `_why` explaining the arithmetic, are ignored; any other key the
//!     envelope does not have is reported, so a misspelt optional field cannot pass
//!     unnoticed). Money and quantities compare as numbers (`"0"` equals `"0.00"`).
//!   - `{"ignored": true}`: verify succeeds and parse gives [`Parsed::Ignored`] with a
//!     non-empty event id.
//!   - `{"rejected": "signature"}`: verify fails with [`VerifyError::Mismatch`],
//!     [`VerifyError::Malformed`] or [`VerifyError::MissingHeader`].
//!   - `{"rejected": "stale"}`: verify fails with [`VerifyError::Stale`].
//!   - `{"rejected": "malformed"}`: verify succeeds and parse fails with any
//!     [`ParseError`] (all of them answer 400).
//! - `needs_enrichment` (optional, bool): for `event` cases, what
//!   [`Adapter::needs_enrichment`] must say of the event; not checked when absent.
//!
//! Unknown keys (other than `_` comments) are errors, so a typo never silently skips a
//! check.
//!
//! # The generic checks
//!
//! [`check_generic`] runs on every case expected to verify (`event`, `ignored` and
//! `rejected: malformed`), after confirming that the unaltered request verifies:
//!
//! | Check | Altered request | Must |
//! |---|---|---|
//! | `tampered_body` | the first, middle and last byte of the body flipped, one at a time | fail verify |
//! | `truncated_body` | the body without its last byte; an empty body | fail verify |
//! | `altered_signature` | the first character of the signature header changed; the header empty | fail verify |
//! | `missing_signature_header` | the signature header removed | fail verify with [`VerifyError::MissingHeader`] |
//! | `duplicate_delivery` | none: the same request parsed twice (`event` and `ignored` cases) | give equal results with the same non-empty event id |

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::{HeaderMap, HeaderName, HeaderValue};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::Value;

use crate::adapter::{Adapter, ParseError, Parsed, RawRequest, VerifyError};
use crate::event::{EventEnvelope, ShopId};

/// The manifest's file name in a fixture directory.
pub const MANIFEST: &str = "cases.json";

/// A loaded manifest (see the module docs for the format).
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The fixture directory the manifest was read from; files are relative to it.
    pub dir: PathBuf,
    /// Default receive time of the cases.
    pub received_at: Option<DateTime<Utc>>,
    /// The cases, in manifest order.
    pub cases: Vec<Case>,
}

/// One recorded delivery and what the adapter must make of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// The case's name, unique in the manifest.
    pub name: String,
    /// The body file, relative to the fixture directory.
    pub body: String,
    /// Headers sent with the body.
    pub headers: BTreeMap<String, String>,
    /// What must happen.
    pub expect: Expect,
    /// When it is received, if not the manifest's default.
    pub received_at: Option<DateTime<Utc>>,
    /// What [`Adapter::needs_enrichment`] must say of the event, if checked.
    pub needs_enrichment: Option<bool>,
    /// How the signature was computed.
    pub command: Option<String>,
}

/// What a case expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// An event equal to the envelope in this file (relative to the fixture directory).
    Event(String),
    /// An ignored delivery.
    Ignored,
    /// A rejection of this kind.
    Rejected(Rejection),
}

/// Which rejection a case expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rejection {
    /// `verify` fails for a reason other than staleness.
    Signature,
    /// `verify` fails with [`VerifyError::Stale`].
    Stale,
    /// `verify` succeeds, `parse` fails.
    Malformed,
}

/// The manifest could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ManifestError {
    /// The file at fault.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

#[derive(Deserialize)]
struct RawManifest {
    #[serde(default)]
    received_at: Option<String>,
    cases: Vec<RawCase>,
    #[serde(flatten)]
    other: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
struct RawCase {
    name: String,
    body: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    expect: RawExpect,
    #[serde(default)]
    received_at: Option<String>,
    #[serde(default)]
    needs_enrichment: Option<bool>,
    #[serde(default)]
    command: Option<String>,
    #[serde(flatten)]
    other: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum RawExpect {
    Event(String),
    Ignored(bool),
    Rejected(Rejection),
}

impl Manifest {
    /// Read and check `dir/cases.json` (that its keys are known, names unique, times
    /// RFC 3339; the files it names are read only when a case runs).
    pub fn load(dir: &Path) -> Result<Manifest, ManifestError> {
        let path = dir.join(MANIFEST);
        let err = |message: String| ManifestError {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read(&path).map_err(|e| err(e.to_string()))?;
        let raw: RawManifest = serde_json::from_slice(&text).map_err(|e| err(e.to_string()))?;
        unknown_keys("", &raw.other).map_err(err)?;
        let received_at = raw
            .received_at
            .as_deref()
            .map(|t| rfc3339(t, "received_at"))
            .transpose()
            .map_err(err)?;
        if raw.cases.is_empty() {
            return Err(err("the manifest lists no cases".into()));
        }
        let mut names = BTreeSet::new();
        let mut cases = Vec::with_capacity(raw.cases.len());
        for (i, c) in raw.cases.into_iter().enumerate() {
            let at = format!("cases[{i}] ({:?})", c.name);
            if c.name.trim().is_empty() {
                return Err(err(format!("cases[{i}]: empty name")));
            }
            if !names.insert(c.name.clone()) {
                return Err(err(format!("{at}: duplicate name")));
            }
            unknown_keys(&format!("{at}."), &c.other).map_err(err)?;
            let expect = match c.expect {
                RawExpect::Event(file) => Expect::Event(file),
                RawExpect::Ignored(true) => Expect::Ignored,
                RawExpect::Ignored(false) => {
                    return Err(err(format!(
                        "{at}: \"ignored\": false expects nothing; say what is expected"
                    )))
                }
                RawExpect::Rejected(r) => Expect::Rejected(r),
            };
            if c.needs_enrichment.is_some() && !matches!(expect, Expect::Event(_)) {
                return Err(err(format!(
                    "{at}: needs_enrichment applies to event cases only"
                )));
            }
            let received_at = c
                .received_at
                .as_deref()
                .map(|t| rfc3339(t, &format!("{at}.received_at")))
                .transpose()
                .map_err(err)?;
            cases.push(Case {
                name: c.name,
                body: c.body,
                headers: c.headers,
                expect,
                received_at,
                needs_enrichment: c.needs_enrichment,
                command: c.command,
            });
        }
        Ok(Manifest {
            dir: dir.to_path_buf(),
            received_at,
            cases,
        })
    }

    /// The case called `name`.
    pub fn case(&self, name: &str) -> Option<&Case> {
        self.cases.iter().find(|c| c.name == name)
    }

    /// The request a case sends to `shop`: its body file, its headers, received at the
    /// case's time (else the manifest's, else now).
    pub fn request(&self, case: &Case, shop: &ShopId) -> Result<RawRequest, ManifestError> {
        let body_path = self.dir.join(&case.body);
        let body = std::fs::read(&body_path).map_err(|e| ManifestError {
            path: body_path.display().to_string(),
            message: format!("body of case {:?}: {e}", case.name),
        })?;
        let err = |message: String| ManifestError {
            path: self.dir.join(MANIFEST).display().to_string(),
            message: format!("case {:?}: {message}", case.name),
        };
        let mut headers = HeaderMap::new();
        for (name, value) in &case.headers {
            let n = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| err(format!("header name {name:?}: {e}")))?;
            let v = HeaderValue::from_str(value)
                .map_err(|e| err(format!("header {name} value {value:?}: {e}")))?;
            headers.append(n, v);
        }
        Ok(RawRequest {
            shop: shop.clone(),
            headers,
            body: Bytes::from(body),
            received_at: case
                .received_at
                .or(self.received_at)
                .unwrap_or_else(Utc::now),
        })
    }

    /// The expected envelope of an `event` case, with any key of the file that the
    /// envelope does not have (other than `_` comments) reported as an error.
    pub fn expected_event(&self, file: &str) -> Result<EventEnvelope, ManifestError> {
        let path = self.dir.join(file);
        let err = |message: String| ManifestError {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read(&path).map_err(|e| err(e.to_string()))?;
        let value: Value = serde_json::from_slice(&text).map_err(|e| err(e.to_string()))?;
        let envelope: EventEnvelope =
            serde_json::from_value(value.clone()).map_err(|e| err(e.to_string()))?;
        let canonical = serde_json::to_value(&envelope).map_err(|e| err(e.to_string()))?;
        let mut stray = Vec::new();
        stray_keys("", &value, &canonical, &mut stray);
        if stray.is_empty() {
            Ok(envelope)
        } else {
            Err(err(format!(
                "keys an event envelope does not have: {}",
                stray.join(", ")
            )))
        }
    }
}

/// One failed check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The case's name (`<manifest>` when the manifest itself is at fault).
    pub case: String,
    /// The check that failed (`event`, `ignored`, `rejected`, `tampered_body`, ...).
    pub check: String,
    /// What went wrong.
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}: {}", self.case, self.check, self.message)
    }
}

/// The outcome of a conformance run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The adapter's name.
    pub adapter: String,
    /// Cases run.
    pub cases: usize,
    /// Checks run (passed or failed).
    pub checks: usize,
    /// Every failed check.
    pub failures: Vec<Failure>,
}

impl Report {
    fn new(adapter: &dyn Adapter) -> Report {
        Report {
            adapter: adapter.name().to_string(),
            ..Report::default()
        }
    }

    /// Whether every check passed (and at least one ran).
    pub fn is_ok(&self) -> bool {
        self.failures.is_empty() && self.checks > 0
    }

    /// Panic with every failure if any check failed, or if no check ran at all.
    #[track_caller]
    pub fn assert_ok(&self) {
        if !self.is_ok() {
            panic!("{self}");
        }
    }

    /// Add another run's cases, checks and failures to this one (for reports of the
    /// same adapter, e.g. [`check_fixtures`] and [`check_generic`]).
    pub fn merge(&mut self, other: Report) {
        if self.adapter.is_empty() {
            self.adapter = other.adapter;
        }
        self.cases = self.cases.max(other.cases);
        self.checks += other.checks;
        self.failures.extend(other.failures);
    }

    /// Failures of one case.
    pub fn failures_of<'a>(&'a self, case: &'a str) -> impl Iterator<Item = &'a Failure> + 'a {
        self.failures.iter().filter(move |f| f.case == case)
    }

    fn check(&mut self, case: &str, check: &str, outcome: Result<(), String>) {
        self.checks += 1;
        if let Err(message) = outcome {
            self.failures.push(Failure {
                case: case.to_string(),
                check: check.to_string(),
                message,
            });
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "conformance of adapter {:?}: {} cases, {} checks, {} failed",
            self.adapter,
            self.cases,
            self.checks,
            self.failures.len()
        )?;
        if self.checks == 0 {
            write!(f, " (no check ran)")?;
        }
        for failure in &self.failures {
            write!(f, "\n  - {failure}")?;
        }
        Ok(())
    }
}

/// Check every case of the manifest in `dir` against what it expects (see the module
/// docs). Requests are addressed to `shop`.
pub fn check_fixtures(adapter: &dyn Adapter, dir: &Path, shop: &ShopId) -> Report {
    let mut report = Report::new(adapter);
    let manifest = match Manifest::load(dir) {
        Ok(m) => m,
        Err(e) => {
            report.check("<manifest>", "manifest", Err(e.to_string()));
            return report;
        }
    };
    for case in &manifest.cases {
        report.cases += 1;
        let req = match manifest.request(case, shop) {
            Ok(r) => r,
            Err(e) => {
                report.check(&case.name, "request", Err(e.to_string()));
                continue;
            }
        };
        let verified = adapter.verify(&req);
        match &case.expect {
            Expect::Rejected(Rejection::Signature) => {
                let outcome = match verified {
                    Err(VerifyError::Stale(why)) => Err(format!(
                        "rejected as stale ({why}), expected a signature failure"
                    )),
                    Err(_) => Ok(()),
                    Ok(()) => Err(format!(
                        "verify accepted it (parse would give {})",
                        describe(&adapter.parse(&req))
                    )),
                };
                report.check(&case.name, "rejected", outcome);
            }
            Expect::Rejected(Rejection::Stale) => {
                let outcome = match verified {
                    Err(VerifyError::Stale(_)) => Ok(()),
                    Err(e) => Err(format!("rejected with {e:?}, expected VerifyError::Stale")),
                    Ok(()) => Err("verify accepted it, expected VerifyError::Stale".into()),
                };
                report.check(&case.name, "rejected", outcome);
            }
            expect => {
                if let Err(e) = verified {
                    report.check(
                        &case.name,
                        "verify",
                        Err(format!("verify failed: {e:?} ({e})")),
                    );
                    continue;
                }
                let parsed = adapter.parse(&req);
                match expect {
                    Expect::Event(file) => {
                        let expected = match manifest.expected_event(file) {
                            Ok(e) => e,
                            Err(e) => {
                                report.check(&case.name, "expected", Err(e.to_string()));
                                continue;
                            }
                        };
                        let outcome = match &parsed {
                            Ok(Parsed::Event(actual)) => compare_events(&expected, actual),
                            other => Err(format!("expected an event, got {}", describe(other))),
                        };
                        report.check(&case.name, "event", outcome);
                        if let (Some(want), Ok(Parsed::Event(actual))) =
                            (case.needs_enrichment, &parsed)
                        {
                            let got = adapter.needs_enrichment(actual);
                            report.check(
                                &case.name,
                                "needs_enrichment",
                                if got == want {
                                    Ok(())
                                } else {
                                    Err(format!("needs_enrichment is {got}, expected {want}"))
                                },
                            );
                        }
                    }
                    Expect::Ignored => {
                        let outcome = match &parsed {
                            Ok(Parsed::Ignored { event_id, .. }) if event_id.trim().is_empty() => {
                                Err("ignored, but with an empty event id".into())
                            }
                            Ok(Parsed::Ignored { .. }) => Ok(()),
                            other => Err(format!("expected ignored, got {}", describe(other))),
                        };
                        report.check(&case.name, "ignored", outcome);
                    }
                    _ => {
                        let outcome = match &parsed {
                            Err(_) => Ok(()),
                            other => {
                                Err(format!("expected a parse error, got {}", describe(other)))
                            }
                        };
                        report.check(&case.name, "rejected", outcome);
                    }
                }
            }
        }
    }
    report
}

/// Run the generic checks (see the module docs) on every case of the manifest in `dir`
/// that is expected to verify. `signature_header` is the header carrying the signature
/// (case-insensitive), e.g. `X-Shopify-Hmac-Sha256`.
pub fn check_generic(
    adapter: &dyn Adapter,
    dir: &Path,
    shop: &ShopId,
    signature_header: &str,
) -> Report {
    let mut report = Report::new(adapter);
    let manifest = match Manifest::load(dir) {
        Ok(m) => m,
        Err(e) => {
            report.check("<manifest>", "manifest", Err(e.to_string()));
            return report;
        }
    };
    let header = match HeaderName::from_bytes(signature_header.as_bytes()) {
        Ok(h) => h,
        Err(e) => {
            report.check(
                "<manifest>",
                "signature_header",
                Err(format!("{signature_header:?} is not a header name: {e}")),
            );
            return report;
        }
    };
    for case in &manifest.cases {
        if matches!(
            case.expect,
            Expect::Rejected(Rejection::Signature | Rejection::Stale)
        ) {
            continue;
        }
        report.cases += 1;
        let name = case.name.as_str();
        let req = match manifest.request(case, shop) {
            Ok(r) => r,
            Err(e) => {
                report.check(name, "request", Err(e.to_string()));
                continue;
            }
        };
        let Some(signature) = req.header(header.as_str()).map(str::to_string) else {
            report.check(
                name,
                "signature_header",
                Err(format!("the case has no {signature_header} header")),
            );
            continue;
        };
        if let Err(e) = adapter.verify(&req) {
            report.check(
                name,
                "baseline",
                Err(format!(
                    "the unaltered request does not verify ({e:?}); generic checks skipped"
                )),
            );
            continue;
        }
        let must_fail = |altered: RawRequest, what: &str| match adapter.verify(&altered) {
            Ok(()) => Err(format!("verify accepted {what}")),
            Err(_) => Ok(()),
        };

        // tampered_body
        let body = req.body.to_vec();
        let mut positions = vec![0, body.len() / 2, body.len().saturating_sub(1)];
        positions.dedup();
        for &at in positions.iter().filter(|&&at| at < body.len()) {
            let mut tampered = body.clone();
            tampered[at] ^= 0x01;
            let what = format!(
                "the body with byte {at} flipped ({:#04x} -> {:#04x})",
                body[at], tampered[at]
            );
            report.check(
                name,
                "tampered_body",
                must_fail(with_body(&req, tampered), &what),
            );
        }

        // truncated_body
        if !body.is_empty() {
            let truncated = body[..body.len() - 1].to_vec();
            report.check(
                name,
                "truncated_body",
                must_fail(with_body(&req, truncated), "the body without its last byte"),
            );
            report.check(
                name,
                "truncated_body",
                must_fail(with_body(&req, Vec::new()), "an empty body"),
            );
        }

        // altered_signature
        let mut altered = signature.clone();
        let first = if altered.starts_with('A') { "B" } else { "A" };
        altered.replace_range(..altered.chars().next().map_or(0, char::len_utf8), first);
        for (value, what) in [
            (
                altered.as_str(),
                "a signature with its first character changed",
            ),
            ("", "an empty signature header"),
        ] {
            let mut req2 = req.clone();
            match HeaderValue::from_str(value) {
                Ok(v) => {
                    req2.headers.insert(header.clone(), v);
                    report.check(name, "altered_signature", must_fail(req2, what));
                }
                Err(e) => report.check(name, "altered_signature", Err(e.to_string())),
            }
        }

        // missing_signature_header
        let mut req2 = req.clone();
        req2.headers.remove(&header);
        let outcome = match adapter.verify(&req2) {
            Err(VerifyError::MissingHeader(_)) => Ok(()),
            Err(e) => Err(format!(
                "without {signature_header}: {e:?}, expected VerifyError::MissingHeader"
            )),
            Ok(()) => Err(format!(
                "verify accepted the request without {signature_header}"
            )),
        };
        report.check(name, "missing_signature_header", outcome);

        // duplicate_delivery
        if matches!(case.expect, Expect::Event(_) | Expect::Ignored) {
            let first = adapter.parse(&req);
            let second = adapter.parse(&req);
            let outcome = match (&first, &second) {
                (Ok(a), Ok(b)) => {
                    let (ida, idb) = (event_id(a), event_id(b));
                    if ida.trim().is_empty() {
                        Err("the event id is empty".to_string())
                    } else if ida != idb {
                        Err(format!(
                            "the same delivery parsed twice gave event ids {ida:?} and {idb:?}"
                        ))
                    } else if a != b {
                        Err(format!(
                            "the same delivery parsed twice gave different results: {} / {}",
                            describe(&first),
                            describe(&second)
                        ))
                    } else {
                        Ok(())
                    }
                }
                _ => Err(format!(
                    "parse failed: {} / {}",
                    describe(&first),
                    describe(&second)
                )),
            };
            report.check(name, "duplicate_delivery", outcome);
        }
    }
    report
}

/// [`check_fixtures`] and [`check_generic`] in one report.
pub fn check_all(
    adapter: &dyn Adapter,
    dir: &Path,
    shop: &ShopId,
    signature_header: &str,
) -> Report {
    let mut report = check_fixtures(adapter, dir, shop);
    report.merge(check_generic(adapter, dir, shop, signature_header));
    report
}

fn with_body(req: &RawRequest, body: Vec<u8>) -> RawRequest {
    let mut r = req.clone();
    r.body = Bytes::from(body);
    r
}

fn event_id(p: &Parsed) -> &str {
    match p {
        Parsed::Event(e) => &e.event_id,
        Parsed::Ignored { event_id, .. } => event_id,
    }
}

fn describe(p: &Result<Parsed, ParseError>) -> String {
    match p {
        Ok(Parsed::Event(e)) => format!(
            "an event ({}, id {:?})",
            serde_json::to_value(&e.event)
                .ok()
                .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_default(),
            e.event_id
        ),
        Ok(Parsed::Ignored {
            event_id,
            kind,
            reason,
        }) => format!("ignored ({kind}, id {event_id:?}: {reason})"),
        Err(e) => format!("a parse error ({e:?})"),
    }
}

fn compare_events(expected: &EventEnvelope, actual: &EventEnvelope) -> Result<(), String> {
    if expected == actual {
        return Ok(());
    }
    let (Ok(e), Ok(a)) = (serde_json::to_value(expected), serde_json::to_value(actual)) else {
        return Err(format!(
            "events differ:\n    expected {expected:?}\n    got      {actual:?}"
        ));
    };
    let mut diffs = Vec::new();
    json_diff("", &e, &a, &mut diffs);
    if diffs.is_empty() {
        // Equal as JSON but not as values: can only be a float-like difference.
        diffs.push(format!("expected {expected:?}, got {actual:?}"));
    }
    const SHOWN: usize = 20;
    let more = diffs.len().saturating_sub(SHOWN);
    diffs.truncate(SHOWN);
    let mut message = format!(
        "the event differs from the expected file:\n      {}",
        diffs.join("\n      ")
    );
    if more > 0 {
        message.push_str(&format!("\n      ... and {more} more"));
    }
    Err(message)
}

/// Differences between two JSON values, by path; decimal strings that are equal as
/// numbers (`"0"`, `"0.00"`) count as equal.
fn json_diff(path: &str, expected: &Value, actual: &Value, out: &mut Vec<String>) {
    let at = |p: &str| {
        if p.is_empty() {
            "(root)".to_string()
        } else {
            p.to_string()
        }
    };
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            let keys: BTreeSet<&String> = e.keys().chain(a.keys()).collect();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match (e.get(k), a.get(k)) {
                    (Some(ev), Some(av)) => json_diff(&p, ev, av, out),
                    (Some(ev), None) => out.push(format!("{p}: expected {ev}, missing")),
                    (None, Some(av)) => out.push(format!("{p}: not expected, got {av}")),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                out.push(format!(
                    "{}: expected {} elements, got {}",
                    at(path),
                    e.len(),
                    a.len()
                ));
            }
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                json_diff(&format!("{path}[{i}]"), ev, av, out);
            }
        }
        (Value::String(e), Value::String(a)) if e != a => {
            let same_number = matches!(
                (e.parse::<Decimal>(), a.parse::<Decimal>()),
                (Ok(x), Ok(y)) if x == y
            );
            if !same_number {
                out.push(format!("{}: expected {expected}, got {actual}", at(path)));
            }
        }
        (e, a) if e != a => out.push(format!("{}: expected {e}, got {a}", at(path))),
        _ => {}
    }
}

/// Keys of `file` (an expected-event file) that its canonical re-serialisation lacks,
/// other than `_` comments: misspelt or invented fields.
fn stray_keys(path: &str, file: &Value, canonical: &Value, out: &mut Vec<String>) {
    match (file, canonical) {
        (Value::Object(f), Value::Object(c)) => {
            for (k, v) in f {
                if k.starts_with('_') {
                    continue;
                }
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match c.get(k) {
                    Some(cv) => stray_keys(&p, v, cv, out),
                    None => out.push(p),
                }
            }
        }
        (Value::Array(f), Value::Array(c)) => {
            for (i, (fv, cv)) in f.iter().zip(c).enumerate() {
                stray_keys(&format!("{path}[{i}]"), fv, cv, out);
            }
        }
        _ => {}
    }
}

fn unknown_keys(at: &str, other: &BTreeMap<String, Value>) -> Result<(), String> {
    let unknown: Vec<&str> = other
        .keys()
        .filter(|k| !k.starts_with('_'))
        .map(String::as_str)
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{at}unknown key(s) {} (comments start with _)",
            unknown.join(", ")
        ))
    }
}

fn rfc3339(text: &str, field: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{field}: {text:?} is not an RFC 3339 time: {e}"))
}

#[cfg(test)]
mod tests;
