//! Definitions that cannot work are refused when loaded, with an error naming the key.

use loyaltyd_adapter::{
    Adapter, ParseError, Parsed, PosEvent, RawRequest, Secret, ShopId, VerifyError,
};
use loyaltyd_declarative::{DeclarativeAdapter, Definition, DefinitionError, WOOCOMMERCE};

/// WOOCOMMERCE with `from` replaced by `to` (which must occur).
fn woo_with(from: &str, to: &str) -> String {
    assert!(
        WOOCOMMERCE.contains(from),
        "woocommerce.toml has no {from:?}"
    );
    WOOCOMMERCE.replacen(from, to, 1)
}

fn error(text: &str) -> DefinitionError {
    Definition::parse(text)
        .map(|_| ())
        .expect_err(&format!("the definition should be refused:\n{text}"))
}

fn assert_refused(text: &str, key: &str, message_has: &str) {
    let e = error(text);
    assert_eq!(e.key, key, "{e}");
    assert!(e.message.contains(message_has), "{e}");
    assert!(e.to_string().contains(key), "{e}");
}

#[test]
fn the_shipped_definition_loads() {
    let d = Definition::parse(WOOCOMMERCE).unwrap();
    assert_eq!(d.name(), "woocommerce");
    assert!(d.description().is_some());
    assert!(!d.requires_notification_url());
    for text in loyaltyd_declarative::BUILTIN {
        Definition::parse(text).unwrap();
    }
}

#[test]
fn text_that_is_not_toml() {
    let e = error("name = \"x\"\n[signature\n");
    assert_eq!(e.key, "");
    assert!(e.message.contains("not valid TOML"), "{e}");
    assert!(e.message.contains("line 2"), "{e}");
}

#[test]
fn the_name_must_be_a_url_segment() {
    assert_refused(
        &woo_with("name = \"woocommerce\"", ""),
        "name",
        "is required",
    );
    assert_refused(
        &woo_with("name = \"woocommerce\"", "name = \"Woo Commerce\""),
        "name",
        "URL segment",
    );
}

#[test]
fn the_signature_scheme_is_checked() {
    assert_refused(
        &woo_with("algorithm = \"hmac-sha256\"", "algorithm = \"md5\""),
        "signature.algorithm",
        "unknown algorithm \"md5\"",
    );
    assert_refused(
        &woo_with("encoding = \"base64\"", "encoding = \"base32\""),
        "signature.encoding",
        "expected \"base64\" or \"hex\"",
    );
    assert_refused(
        &woo_with("message = \"body\"", "message = \"body+url\""),
        "signature.message",
        "\"url+body\"",
    );
    assert_refused(
        &woo_with(
            "header = \"X-WC-Webhook-Signature\"",
            "header = \"X WC Signature\"",
        ),
        "signature.header",
        "not a valid HTTP header name",
    );
    assert_refused(
        &woo_with("[signature]", "[signatures]"),
        "signatures",
        "unknown key",
    );
}

#[test]
fn pointers_are_checked_when_loaded() {
    assert_refused(
        &woo_with("order_id = \"/id\"", "order_id = \"id\""),
        "sale.order_id",
        "must start with '/'",
    );
    assert_refused(
        &woo_with("quantity = \"/quantity\"", "quantity = \"/qu~antity\""),
        "sale.line.quantity",
        "'~' must be followed by 0 or 1",
    );
    assert_refused(
        &woo_with(
            "time = [\"/date_paid_gmt\",",
            "time = [\"/date_paid_gmt\", 5,",
        ),
        "sale.time[1]",
        "expected a JSON pointer",
    );
    assert_refused(
        &woo_with(
            "id = { pointer = \"/customer_id\", none_if = [\"0\"] }",
            "id = { pointer = \"/customer_id\", header = \"X-Id\" }",
        ),
        "sale.customer.id",
        "exactly one of pointer, header or value",
    );
}

#[test]
fn unknown_and_contradictory_keys_are_refused() {
    assert_refused(
        &woo_with("total = \"/total\"", "totl = \"/total\""),
        "sale.totl",
        "unknown key",
    );
    assert_refused(
        &woo_with(
            "subtotal = \"/subtotal\"",
            "subtotal = \"/subtotal\"\nunit_price = \"/price\"",
        ),
        "sale.line.subtotal",
        "either unit_price or subtotal",
    );
    assert_refused(
        &woo_with("money = \"decimal\"", "money = \"float\""),
        "money",
        "unknown money format",
    );
    assert_refused(
        &woo_with("amount = \"/refunds/0/total\"", ""),
        "refund.amount",
        "needs an amount, lines, or both",
    );
}

#[test]
fn rules_are_checked() {
    assert_refused(
        &woo_with("emit = \"customer\"", "emit = \"member\""),
        "rules[4].emit",
        "unknown event \"member\"",
    );
    assert_refused(
        &woo_with(
            "when = [{ pointer = \"/status\", in = [\"completed\"] }]",
            "when = [{ pointer = \"/status\", in = [\"completed\"], equals = \"x\" }]",
        ),
        "rules[2].when[0]",
        "exactly one test",
    );
    assert_refused(
        &woo_with("present = true", "present = \"yes\""),
        "rules[1].when[0].present",
        "expected true or false",
    );
    assert_refused(
        &woo_with("type = { header = \"X-WC-Webhook-Topic\" }", ""),
        "rules[0].types",
        "needs [event] type",
    );
    // A rule that emits a kind the definition does not map.
    let no_cancel =
        WOOCOMMERCE.split("[cancel]").next().unwrap().to_string() + "[customer]\nid = \"/id\"\n";
    assert_refused(&no_cancel, "rules[0].emit", "no [cancel] table");
    let no_rules = URL_BODY.replace("[[rules]]\nemit = \"cancel\"\n", "");
    assert_refused(&no_rules, "rules", "at least one [[rules]]");
    assert_refused(
        &format!("rules = 5\n{no_rules}"),
        "rules",
        "expected [[rules]]",
    );
}

#[test]
fn every_emitted_kind_needs_a_time() {
    let text = woo_with("time = [\"/date_modified_gmt\", \"/date_created_gmt\"]", "");
    // The sale has its own time; the first kind without one is the cancel.
    assert_refused(&text, "cancel.time", "needs a time");
}

const URL_BODY: &str = r#"
name = "acme"
[signature]
header = "X-Acme-Signature"
algorithm = "sha1"
encoding = "hex"
message = "url+body"
[event]
id = "/id"
time = "/at"
[[rules]]
emit = "cancel"
[cancel]
order_id = "/order"
"#;

#[test]
fn a_url_plus_body_definition_needs_the_shops_notification_url() {
    let e = DeclarativeAdapter::from_toml(URL_BODY, vec![Secret::new("k")], None).unwrap_err();
    assert_eq!(e.key, "signature.message");
    assert!(e.message.contains("[shops.acme] notification_url"), "{e}");

    // Built without one anyway, it verifies nothing.
    let d = Definition::parse(URL_BODY).unwrap();
    assert!(d.requires_notification_url());
    let adapter = d.adapter(vec![Secret::new("k")], None);
    let mut headers = http::HeaderMap::new();
    headers.insert("X-Acme-Signature", "00".repeat(20).parse().unwrap());
    let req = RawRequest {
        shop: ShopId::new("demo").unwrap(),
        headers,
        body: b"{}".to_vec().into(),
        received_at: chrono::Utc::now(),
    };
    assert!(matches!(
        adapter.verify(&req),
        Err(VerifyError::Malformed(_))
    ));
}

#[test]
fn a_minimal_definition_without_types_maps_every_delivery() {
    let adapter =
        DeclarativeAdapter::from_toml(URL_BODY, vec![], Some("https://x.example/".into())).unwrap();
    assert_eq!(adapter.name(), "acme");
    let req = RawRequest {
        shop: ShopId::new("demo").unwrap(),
        headers: http::HeaderMap::new(),
        body: br#"{"id": 9, "at": 1795339200, "order": 77}"#.to_vec().into(),
        received_at: chrono::Utc::now(),
    };
    match adapter.parse(&req).unwrap() {
        Parsed::Event(e) => {
            assert_eq!(e.event_id, "9");
            assert_eq!(e.adapter, "acme");
            assert!(matches!(e.event, PosEvent::Cancel(ref c) if c.order_id == "77"));
        }
        other => panic!("{other:?}"),
    }
    let no_time = RawRequest {
        body: br#"{"id": 9, "order": 77}"#.to_vec().into(),
        ..req
    };
    assert!(matches!(
        adapter.parse(&no_time),
        Err(ParseError::InvalidField { ref field, .. }) if field == "/at"
    ));
}

const MINOR_UNITS: &str = r#"
name = "minor"
money = "minor_units"
[signature]
header = "X-Sig"
algorithm = "hmac-sha256"
encoding = "hex"
[event]
id = { header = "X-Id" }
time = "/at"
[[rules]]
emit = "sale"
[sale]
order_id = "/id"
currency = "/cur"
total = "/total"
lines = "/lines"
line = { id = "/id", quantity = "/q", unit_price = "/p" }
"#;

#[test]
fn minor_units_use_the_currencys_exponent() {
    let adapter = DeclarativeAdapter::from_toml(MINOR_UNITS, vec![], None).unwrap();
    let request = |body: &str| {
        let mut headers = http::HeaderMap::new();
        headers.insert("X-Id", "d-1".parse().unwrap());
        RawRequest {
            shop: ShopId::new("demo").unwrap(),
            headers,
            body: body.as_bytes().to_vec().into(),
            received_at: chrono::Utc::now(),
        }
    };
    let total = |body: &str| match adapter.parse(&request(body)) {
        Ok(Parsed::Event(e)) => match e.event {
            PosEvent::Sale(s) => Ok((s.total.to_string(), s.lines[0].unit_price.to_string())),
            other => panic!("{other:?}"),
        },
        Ok(other) => panic!("{other:?}"),
        Err(e) => Err(e),
    };
    let body = |cur: &str, total: &str| {
        format!(
            r#"{{"id": 1, "at": "2026-11-20T10:00:00Z", "cur": "{cur}", "total": {total},
                "lines": [{{"id": 1, "q": 1, "p": "1999"}}]}}"#
        )
    };
    assert_eq!(
        total(&body("USD", "1999")),
        Ok(("19.99".into(), "19.99".into()))
    );
    assert_eq!(
        total(&body("JPY", "\"1999\"")),
        Ok(("1999".into(), "1999".into()))
    );
    assert_eq!(
        total(&body("KWD", "1999")),
        Ok(("1.999".into(), "1.999".into()))
    );
    assert!(matches!(
        total(&body("USD", "19.99")),
        Err(ParseError::InvalidField { ref field, ref message }) if field == "/total" && message.contains("minor units")
    ));
    assert!(matches!(
        total(&body("XBT", "1")),
        Err(ParseError::InvalidField { ref message, .. }) if message.contains("money = \"decimal\"")
    ));
}

#[test]
fn the_error_quoted_in_the_integrators_readme_is_the_real_one() {
    let e = error(&woo_with(
        "quantity = \"/quantity\"",
        "quantity = \"quantity\"",
    ));
    let readme = include_str!("../../README.md");
    assert!(readme.contains(&e.to_string()), "{e}");
}
