//! What each fuzz target does with its input, shared by the cargo-fuzz targets
//! (`fuzz/fuzz_targets/*.rs`, one line each) and by the root crate's
//! `tests/fuzz_regressions.rs`, which compiles this very file (`#[path]`) and replays
//! every saved crash through the same function under `cargo test`. So this file may only
//! use crates the root package already depends on: no `arbitrary`; inputs are decoded by
//! the small readers below instead.
//!
//! # Input formats (see docs/fuzzing.md)
//! - Webhook targets: one flags byte, then HTTP-style `Name: value` header lines, an
//!   empty line, and the body bytes. Flags bit 0: sign the body correctly with the test
//!   secret (replacing the signature header), so verification succeeds; bit 1 (Shopify):
//!   earn on `orders/create` instead of `orders/paid`.
//! - `declarative_definition`: the definition's TOML text, a NUL byte, then a webhook
//!   input as above (signed, with bit 0, under the definition's own `[signature]`).
//! - `rules_file`: the rules file's text.
//! - `config_file`: the config file's text, then optionally a NUL byte and environment
//!   lines `KEY=VALUE`.
//!
//! Every function panics only when an invariant fails; libFuzzer reports that as a crash.

use std::path::PathBuf;
use std::sync::OnceLock;

use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use http::{HeaderMap, HeaderName, HeaderValue};
use loyaltyd::rules::{score, MemberSnapshot, RuleSet, SaleContext};
use loyaltyd_adapter::signature::{Algorithm, Encoding, Scheme};
use loyaltyd_adapter::{
    Adapter, EventEnvelope, Parsed, PosEvent, RawRequest, Sale, SaleLine, Secret, ShopId,
    VerifyError,
};
use loyaltyd_declarative::{DeclarativeAdapter, Definition};
use loyaltyd_shopify::{EarnOn, ShopifyAdapter, ShopifySettings};
use loyaltyd_square::{SquareAdapter, SquareSettings};
use rust_decimal::Decimal;

/// The secrets and URL the fixtures are signed with (`integrations/*/fixtures/cases.json`).
pub const SHOPIFY_SECRET: &str = "demo-shopify-secret";
pub const SQUARE_KEY: &str = "demo-square-signature-key";
pub const SQUARE_URL: &str = "https://loyalty.example.com/webhooks/demo/square";
pub const WOOCOMMERCE_SECRET: &str = "demo-woocommerce-secret";
pub const DECLARATIVE_SECRET: &str = "demo-acme-secret";
pub const DECLARATIVE_URL: &str = "https://loyalty.example.com/webhooks/demo/acme-pos";

/// The function a fuzz target runs on one input.
pub type Target = fn(&[u8]);

/// Every fuzz target, by name, with the function that runs one input.
pub const TARGETS: &[(&str, Target)] = &[
    ("shopify_webhook", shopify_webhook),
    ("square_webhook", square_webhook),
    ("woocommerce_webhook", woocommerce_webhook),
    ("declarative_definition", declarative_definition),
    ("rules_file", rules_file),
    ("config_file", config_file),
];

// ---------------------------------------------------------------------------------------
// Webhook targets

/// A webhook input: flags, headers and body (see the module docs).
struct Webhook {
    flags: u8,
    headers: HeaderMap,
    body: Bytes,
}

impl Webhook {
    fn decode(data: &[u8]) -> Webhook {
        let (flags, mut rest) = match data.split_first() {
            Some((f, rest)) => (*f, rest),
            None => (0, data),
        };
        let mut headers = HeaderMap::new();
        let body = loop {
            let (line, next) = match rest.iter().position(|b| *b == b'\n') {
                Some(i) => (&rest[..i], Some(&rest[i + 1..])),
                None => (rest, None),
            };
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                break next.unwrap_or_default();
            }
            if let Some(colon) = line.iter().position(|b| *b == b':') {
                let name = HeaderName::from_bytes(line[..colon].trim_ascii());
                let value = HeaderValue::from_bytes(line[colon + 1..].trim_ascii());
                if let (Ok(name), Ok(value)) = (name, value) {
                    headers.append(name, value);
                }
            }
            match next {
                Some(next) => rest = next,
                None => break &[][..],
            }
        };
        Webhook {
            flags,
            headers,
            body: Bytes::copy_from_slice(body),
        }
    }

    fn signed(&self) -> bool {
        self.flags & 1 != 0
    }

    /// Set `header` to `value` (a freshly computed signature), replacing any others.
    fn set(&mut self, header: &str, value: &str) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(header.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            self.headers.insert(name, value);
        }
    }

    fn request(self) -> RawRequest {
        RawRequest {
            shop: ShopId::new("demo").expect("valid shop id"),
            headers: self.headers,
            body: self.body,
            received_at: received_at(),
        }
    }
}

/// A fixed reception time (the fixtures' deliveries are from November 2026).
fn received_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 15, 14, 7).unwrap()
}

/// `verify` then `parse`, as the daemon's webhook route does, and what the daemon does
/// next with the result. `parse` runs even when verification failed: the signature
/// covers only the body, and the sender (who holds the secret) can sign any body with
/// any headers, so every input here is one `parse` can meet in production.
fn verify_and_parse(adapter: &dyn Adapter, req: &RawRequest, signed: bool) {
    let verified = adapter.verify(req);
    if signed {
        assert!(
            matches!(verified, Ok(()) | Err(VerifyError::Stale(_))),
            "a correctly signed request failed verification: {verified:?}"
        );
    }
    let parsed = adapter.parse(req);
    // Deterministic: a redelivery gives the same result (and event id).
    assert_eq!(parsed, adapter.parse(req), "parse is not deterministic");
    if let Ok(Parsed::Event(envelope)) = parsed {
        check_envelope(adapter, req, &envelope);
    }
}

/// What the daemon relies on in a parsed event: it belongs to the request's shop and
/// adapter, it survives the JSON round trip of the durable inbox, and a sale can be
/// scored under the shipped rules files.
fn check_envelope(adapter: &dyn Adapter, req: &RawRequest, envelope: &EventEnvelope) {
    assert_eq!(envelope.shop, req.shop);
    assert_eq!(envelope.adapter, adapter.name());
    let json = serde_json::to_string(envelope).expect("an event serialises");
    let back: EventEnvelope = serde_json::from_str(&json)
        .unwrap_or_else(|e| panic!("a parsed event does not read back ({e}): {json}"));
    assert_eq!(&back, envelope, "the event changed through JSON: {json}");
    if let PosEvent::Sale(sale) = &envelope.event {
        for rules in shipped_rules() {
            score_one(sale, adapter.name(), envelope.occurred_at, rules);
        }
    }
}

/// `config/rules.toml` and the example programs.
fn shipped_rules() -> &'static [RuleSet] {
    static RULES: OnceLock<Vec<RuleSet>> = OnceLock::new();
    RULES.get_or_init(|| {
        [
            ("rules.toml", include_str!("../../config/rules.toml")),
            (
                "cashback.toml",
                include_str!("../../config/examples/cashback.toml"),
            ),
            (
                "coffee.toml",
                include_str!("../../config/examples/coffee.toml"),
            ),
            (
                "fashion.toml",
                include_str!("../../config/examples/fashion.toml"),
            ),
        ]
        .iter()
        .map(|(file, text)| RuleSet::parse(text, file).expect("shipped rules parse"))
        .collect()
    })
}

fn score_one(sale: &Sale, adapter: &str, occurred_at: DateTime<Utc>, rules: &RuleSet) {
    let member = MemberSnapshot {
        tier: rules
            .tiers
            .as_ref()
            .and_then(|t| t.levels.last())
            .map(|l| l.name.clone()),
        tags: vec!["card".into(), "staff".into()],
        first_purchase: true,
        ..MemberSnapshot::default()
    };
    for timezone in [
        chrono_tz::UTC,
        chrono_tz::America::New_York,
        chrono_tz::Pacific::Kiritimati,
    ] {
        let ctx = SaleContext {
            sale,
            adapter,
            occurred_at,
            timezone,
        };
        let award = score(&ctx, &member, rules);
        std::hint::black_box(award);
        std::hint::black_box(score(&ctx, &MemberSnapshot::default(), rules));
    }
}

/// Shopify: `ShopifyAdapter` with the fixtures' secret.
pub fn shopify_webhook(data: &[u8]) {
    let mut w = Webhook::decode(data);
    let adapter = ShopifyAdapter::with_settings(ShopifySettings {
        secrets: vec![Secret::new(SHOPIFY_SECRET)],
        earn_on: if w.flags & 2 != 0 {
            EarnOn::Create
        } else {
            EarnOn::Paid
        },
        ..ShopifySettings::default()
    });
    let signed = w.signed();
    if signed {
        let sig = Scheme::HMAC_SHA256_BASE64.sign(SHOPIFY_SECRET.as_bytes(), &[&w.body]);
        w.set("x-shopify-hmac-sha256", &sig);
    }
    verify_and_parse(&adapter, &w.request(), signed);
}

/// Square: `SquareAdapter` with the fixtures' key and notification URL, no Orders API.
pub fn square_webhook(data: &[u8]) {
    static ADAPTER: OnceLock<SquareAdapter> = OnceLock::new();
    let adapter = ADAPTER.get_or_init(|| {
        SquareAdapter::new(SquareSettings {
            signature_keys: vec![Secret::new(SQUARE_KEY)],
            notification_url: SQUARE_URL.into(),
            orders: None,
        })
        .expect("valid Square settings")
    });
    let mut w = Webhook::decode(data);
    let signed = w.signed();
    if signed {
        let sig = Scheme::HMAC_SHA256_BASE64
            .sign(SQUARE_KEY.as_bytes(), &[SQUARE_URL.as_bytes(), &w.body]);
        w.set(loyaltyd_square::SIGNATURE_HEADER, &sig);
    }
    let req = w.request();
    verify_and_parse(adapter, &req, signed);
    // The check the daemon makes before enriching is pure; it must not panic either.
    if let Ok(Parsed::Event(envelope)) = adapter.parse(&req) {
        assert!(
            !adapter.needs_enrichment(&envelope),
            "no Orders API configured"
        );
    }
}

/// WooCommerce: the shipped declarative definition with the fixtures' secret.
pub fn woocommerce_webhook(data: &[u8]) {
    static ADAPTER: OnceLock<DeclarativeAdapter> = OnceLock::new();
    let adapter = ADAPTER.get_or_init(|| {
        DeclarativeAdapter::from_toml(
            loyaltyd_declarative::WOOCOMMERCE,
            vec![Secret::new(WOOCOMMERCE_SECRET)],
            None,
        )
        .expect("the shipped definition loads")
    });
    let mut w = Webhook::decode(data);
    let signed = w.signed();
    if signed {
        let sig = Scheme::HMAC_SHA256_BASE64.sign(WOOCOMMERCE_SECRET.as_bytes(), &[&w.body]);
        w.set("X-WC-Webhook-Signature", &sig);
    }
    verify_and_parse(adapter, &w.request(), signed);
}

// ---------------------------------------------------------------------------------------
// Declarative definitions

/// `Definition::parse` on arbitrary TOML; a definition that loads then maps an
/// arbitrary request through its own signature check and mapper.
pub fn declarative_definition(data: &[u8]) {
    let (text, request) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let Ok(definition) = Definition::parse(text) else {
        return;
    };
    let adapter = definition.adapter(
        vec![Secret::new(DECLARATIVE_SECRET)],
        Some(DECLARATIVE_URL.into()),
    );
    let mut w = Webhook::decode(request);
    let mut signed = false;
    if w.signed() {
        // The definition parsed, so its [signature] table is well-formed: sign as it says.
        if let Some((header, scheme, url, prefix)) = signature_of(text) {
            let parts: [&[u8]; 2] = [if url { DECLARATIVE_URL.as_bytes() } else { b"" }, &w.body];
            let sig = format!(
                "{prefix}{}",
                scheme.sign(DECLARATIVE_SECRET.as_bytes(), &parts)
            );
            // Only a signature a sender could send verifies: visible ASCII (all that
            // `RawRequest::header` reads) with no surrounding spaces (which `verify`
            // trims). A definition may load with a prefix that cannot be sent (e.g. a
            // non-ASCII one); its requests then fail verification, as they must.
            signed = sig.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
                && sig.trim() == sig
                && HeaderName::from_bytes(header.as_bytes()).is_ok();
            w.set(&header, &sig);
        }
    }
    verify_and_parse(&adapter, &w.request(), signed);
}

/// The `[signature]` table of a definition that parsed: header, scheme, whether the URL
/// is signed, and the prefix.
fn signature_of(text: &str) -> Option<(String, Scheme, bool, String)> {
    let table: toml::Table = text.parse().ok()?;
    let sig = table.get("signature")?.as_table()?;
    let header = sig.get("header")?.as_str()?.to_string();
    let algorithm = match sig.get("algorithm")?.as_str()? {
        "hmac-sha1" => Algorithm::Sha1,
        _ => Algorithm::Sha256,
    };
    let encoding = match sig.get("encoding")?.as_str()? {
        "hex" => Encoding::Hex,
        _ => Encoding::Base64,
    };
    let url = sig.get("message").and_then(|m| m.as_str()) == Some("url+body");
    let prefix = sig
        .get("prefix")
        .and_then(|p| p.as_str())
        .unwrap_or_default()
        .to_string();
    Some((
        header,
        Scheme {
            algorithm,
            encoding,
        },
        url,
        prefix,
    ))
}

// ---------------------------------------------------------------------------------------
// Rules files

/// `RuleSet::parse` on arbitrary text; a rule set that parses then scores one fixed
/// sale for a few members, times and zones, and answers tier and reward look-ups.
pub fn rules_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(rules) = RuleSet::parse(text, "fuzz.toml") else {
        return;
    };
    let sale = fixed_sale();
    for (adapter, occurred_at) in [
        (
            "shopify",
            Utc.with_ymd_and_hms(2026, 6, 13, 18, 30, 0).unwrap(),
        ),
        (
            "square",
            Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 59).unwrap(),
        ),
        ("", DateTime::<Utc>::UNIX_EPOCH),
    ] {
        score_one(&sale, adapter, occurred_at, &rules);
    }
    if let Some(tiers) = &rules.tiers {
        for level in &tiers.levels {
            let member = MemberSnapshot {
                tier: Some(level.name.clone()),
                ..MemberSnapshot::default()
            };
            let ctx = SaleContext {
                sale: &sale,
                adapter: "shopify",
                occurred_at: Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap(),
                timezone: chrono_tz::Europe::London,
            };
            std::hint::black_box(score(&ctx, &member, &rules));
            std::hint::black_box(tiers.rank(Some(&level.name)));
        }
        for q in [
            Decimal::ZERO,
            Decimal::new(12345, 2),
            Decimal::MAX,
            Decimal::MIN,
        ] {
            std::hint::black_box(tiers.tier_for(q));
        }
    }
    for reward in &rules.rewards {
        assert!(
            rules.reward(&reward.id).is_some(),
            "reward {} not found",
            reward.id
        );
    }
}

/// A sale with something for every kind of condition: SKUs, products, vendors, types,
/// collections, a gift card, a discount, shipping, a location and a channel.
fn fixed_sale() -> Sale {
    let line = |i: i64, sku: &str, vendor: &str, qty: i64, price: i64, discount: i64| SaleLine {
        line_id: format!("line-{i}"),
        sku: Some(sku.into()),
        product_id: Some(format!("p{i}")),
        variant_id: Some(format!("v{i}")),
        title: format!("Item {i}"),
        vendor: Some(vendor.into()),
        quantity: Decimal::from(qty),
        unit_price: Decimal::new(price, 2),
        discount: Decimal::new(discount, 2),
        tax: Decimal::new(price / 10, 2),
        product_type: Some("Coffee".into()),
        categories: vec!["beans".into(), "sale".into()],
        gift_card: false,
    };
    let mut lines = vec![
        line(1, "SKU-1", "Roastery", 2, 1250, 0),
        line(2, "BEANS-250", "vendor-1", 1, 1899, 190),
        line(3, "DEPOSIT", "vendor-2", 3, 50, 0),
        line(4, "SKU-99", "Acme", 1, 100_000, 2_500),
    ];
    let mut gift = line(5, "GIFT", "Roastery", 1, 5000, 0);
    gift.gift_card = true;
    gift.product_type = None;
    gift.categories.clear();
    lines.push(gift);
    Sale {
        order_id: "fuzz-1".into(),
        source_order_id: None,
        customer: None,
        currency: "USD".parse().expect("USD"),
        lines,
        shipping: Decimal::new(750, 2),
        tax: Decimal::new(900, 2),
        taxes_included: false,
        total: Decimal::new(120_000, 2),
        location_id: Some("loc-1".into()),
        channel: Some("pos".into()),
    }
}

// ---------------------------------------------------------------------------------------
// Config files

/// `Config::load_with_env` on arbitrary TOML written to `loyaltyd.toml` in a scratch
/// directory that also holds a valid `rules.toml`, with environment overrides from the
/// input.
pub fn config_file(data: &[u8]) {
    let (text, env) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let env: Vec<(String, String)> = String::from_utf8_lossy(env)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    // The config names files to read (`rules`, `<key>_file` secrets), as the operator
    // wishes; `/dev/zero` or `/dev/stdin` would never finish reading. Not inputs to try.
    let names_a_device = |b: &[u8]| {
        [&b"dev/"[..], b"proc/", b"sys/"]
            .iter()
            .any(|d| b.windows(d.len()).any(|w| w == *d))
    };
    if names_a_device(data) {
        return;
    }
    let path = config_dir().join("loyaltyd.toml");
    std::fs::write(&path, text).expect("write the config");
    if let Ok(config) = loyaltyd::config::Config::load_with_env(&path, env) {
        std::hint::black_box(config);
    }
}

/// A scratch directory per thread (the regression test replays in parallel), with a
/// valid rules file and a secret file beside the config; removed when the thread ends.
fn config_dir() -> PathBuf {
    thread_local! {
        static DIR: tempfile::TempDir = {
            let dir = tempfile::Builder::new()
                .prefix("loyaltyd-fuzz-config")
                .tempdir()
                .expect("a temporary directory");
            std::fs::write(dir.path().join("rules.toml"), include_str!("../../config/rules.toml"))
                .expect("write rules.toml");
            std::fs::write(dir.path().join("admin.secret"), "admin-token-from-a-file\n")
                .expect("write admin.secret");
            dir
        };
    }
    DIR.with(|d| d.path().to_path_buf())
}
