//! End to end: the OpenAPI document served at `/v1/openapi.json` describes the admin
//! API as it answers. Every documented operation is driven through success and error
//! cases on a real daemon, and each answer's body is validated (JSON Schema 2020-12,
//! formats checked, no undocumented fields) against the schema the document declares
//! for that path, method and status; error codes must be named in that response's
//! description. The document must list exactly the routes of the router.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use common::*;
use fakeproviders::{FakeTwilio, Reply};
use reqwest::Method;
use serde_json::{json, Value};

const READER: &str = "reader-token-0123456789";
const OTHER: &str = "other-shop-token-012345";
const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TWILIO_TOKEN: &str = "test-twilio-auth-token";

/// Every `/v1` route of the router, as (method, path template). A route added to the
/// router must be documented and listed here.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/v1/openapi.json"),
    ("get", "/v1/shops/{shop}/members/lookup"),
    ("get", "/v1/shops/{shop}/members/{member_id}"),
    ("get", "/v1/shops/{shop}/members/{member_id}/ledger"),
    ("post", "/v1/shops/{shop}/members/{member_id}/redemptions"),
    ("post", "/v1/shops/{shop}/members/{member_id}/adjustments"),
    ("post", "/v1/shops/{shop}/members/{member_id}/referrals"),
    ("put", "/v1/shops/{shop}/members/{member_id}/consent"),
    ("get", "/v1/shops/{shop}/deadletters"),
    (
        "post",
        "/v1/shops/{shop}/deadletters/{message_id}/{channel}/retry",
    ),
    ("get", "/v1/shops/{shop}/reports/liability"),
    ("post", "/v1/shops/{shop}/simulate"),
    ("get", "/v1/shops/{shop}/members"),
    ("post", "/v1/shops/{shop}/members/merge"),
    ("patch", "/v1/shops/{shop}/members/{member_id}/profile"),
    ("get", "/v1/shops/{shop}/reports/activity"),
    ("get", "/v1/shops/{shop}/program"),
    ("get", "/v1/shops/{shop}/webhooks/deliveries"),
    ("post", "/v1/backup"),
];

/// Routes outside the admin API, documented in the README instead.
const NOT_ADMIN_API: &[&str] = &[
    "/healthz",
    "/readyz",
    "/metrics",
    "/webhooks/{shop}/{adapter}",
    "/webhooks/{shop}/twilio/inbound",
];

/// The test config with SMS through `twilio` (fast retries) and two more tokens.
fn setup(twilio: &FakeTwilio) -> Setup {
    let setup = Setup::new(1024 * 1024);
    let path = setup.config_path();
    let notify = format!(
        "[notify]\nretry_base_ms = 100\nretry_cap_secs = 1\n\n[notify.sms]\nbase_url = \"{}\"\n\
         account_sid = \"{SID}\"\nauth_token = \"{TWILIO_TOKEN}\"\nfrom = \"+15005550006\"\n\
         rate_per_sec = 200\n\n[[shops]]\nid = \"demo\"",
        twilio.base_url()
    );
    let mut text =
        std::fs::read_to_string(&path)
            .unwrap()
            .replacen("[[shops]]\nid = \"demo\"", &notify, 1);
    text.push_str(&format!(
        "\n[[tokens]]\nname = \"reports\"\ntoken = \"{READER}\"\nrole = \"read\"\nshops = [\"demo\"]\n\n\
         [[tokens]]\nname = \"other-staff\"\ntoken = \"{OTHER}\"\nrole = \"admin\"\nshops = [\"other\"]\n"
    ));
    std::fs::write(&path, text).unwrap();
    setup
}

/// The document, with a way to find and check the schema of an answer.
struct Doc {
    doc: Value,
    /// (method, template, status) exercised.
    seen: Mutex<BTreeSet<(String, String, u16)>>,
}

impl Doc {
    fn op(&self, method: &str, template: &str) -> &Value {
        let op = &self.doc["paths"][template][method];
        assert!(op.is_object(), "{method} {template} is not documented");
        op
    }

    /// `$ref`s replaced by their targets (siblings such as `description` kept), and
    /// every object with `properties` closed to other fields.
    fn resolve(&self, schema: &Value, depth: usize) -> Value {
        assert!(depth < 32, "schema nesting too deep: {schema}");
        match schema {
            Value::Object(map) => {
                let mut out = serde_json::Map::new();
                if let Some(r) = map.get("$ref").and_then(Value::as_str) {
                    let pointer = r.strip_prefix('#').expect("local $ref");
                    let target = self
                        .doc
                        .pointer(pointer)
                        .unwrap_or_else(|| panic!("dangling $ref {r}"));
                    if let Value::Object(t) = self.resolve(target, depth + 1) {
                        out.extend(t);
                    }
                }
                for (k, v) in map {
                    if k == "$ref" {
                        continue;
                    }
                    let v = match k.as_str() {
                        // Maps of name → schema.
                        "properties" | "patternProperties" | "$defs" => Value::Object(
                            v.as_object()
                                .unwrap()
                                .iter()
                                .map(|(n, s)| (n.clone(), self.resolve(s, depth + 1)))
                                .collect(),
                        ),
                        "example" | "examples" | "enum" | "const" | "required" | "default" => {
                            v.clone()
                        }
                        _ => self.resolve(v, depth + 1),
                    };
                    out.insert(k.clone(), v);
                }
                if out.contains_key("properties") && !out.contains_key("additionalProperties") {
                    out.insert("additionalProperties".into(), Value::Bool(false));
                }
                Value::Object(out)
            }
            Value::Array(items) => {
                Value::Array(items.iter().map(|s| self.resolve(s, depth + 1)).collect())
            }
            other => other.clone(),
        }
    }

    fn validate_against(&self, schema: &Value, body: &Value, what: &str) {
        let schema = self.resolve(schema, 0);
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&schema)
            .unwrap_or_else(|e| panic!("{what}: the declared schema does not compile: {e}"));
        let errors: Vec<String> = validator
            .iter_errors(body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{what}: the answer does not match the documented schema:\n{}\nbody: {body:#}\nschema: {schema:#}",
            errors.join("\n")
        );
    }

    /// Check an answer against the document.
    fn check(&self, method: &str, template: &str, status: u16, body: &Value) {
        let what = format!("{} {template} → {status}", method.to_uppercase());
        let response = &self.op(method, template)["responses"][status.to_string()];
        assert!(response.is_object(), "{what} is not documented: {body}");
        let response = self.resolve(response, 0);
        let schema = &response["content"]["application/json"]["schema"];
        assert!(schema.is_object(), "{what} has no JSON schema: {response}");
        self.validate_against(schema, body, &what);
        if status >= 400 {
            let code = body["error"]["code"].as_str().unwrap();
            let description = response["description"].as_str().unwrap_or_default();
            assert!(
                description.contains(&format!("`{code}`")),
                "{what}: error code {code:?} is not named in the response's description {description:?}"
            );
        }
        self.seen
            .lock()
            .unwrap()
            .insert((method.to_string(), template.to_string(), status));
    }

    /// An error answer outside any operation (404 fallback, 405) still has the
    /// documented error shape.
    fn check_error_shape(&self, body: &Value, what: &str) {
        self.validate_against(
            &json!({"$ref": "#/components/schemas/ErrorBody"}),
            body,
            what,
        );
    }
}

struct Call<'a> {
    method: &'a str,
    template: &'a str,
    path: String,
    token: Option<&'a str>,
    body: Option<String>,
    content_type: &'a str,
    key: Option<&'a str>,
}

fn call<'a>(method: &'a str, template: &'a str, path: impl Into<String>) -> Call<'a> {
    Call {
        method,
        template,
        path: path.into(),
        token: Some(ADMIN_TOKEN),
        body: None,
        content_type: "application/json",
        key: None,
    }
}

impl<'a> Call<'a> {
    fn token(mut self, t: Option<&'a str>) -> Self {
        self.token = t;
        self
    }
    fn body(mut self, b: impl Into<String>) -> Self {
        self.body = Some(b.into());
        self
    }
    fn content_type(mut self, c: &'a str) -> Self {
        self.content_type = c;
        self
    }
    fn key(mut self, k: &'a str) -> Self {
        self.key = Some(k);
        self
    }

    /// Send, expect `status` (and `code` for errors), check against the document.
    async fn expect(
        self,
        d: &Daemon,
        doc: &Doc,
        status: u16,
        code: Option<&str>,
    ) -> (Value, reqwest::header::HeaderMap) {
        let method = Method::from_bytes(self.method.to_uppercase().as_bytes()).unwrap();
        let mut req = client().request(method, d.url(&self.path));
        if let Some(t) = self.token {
            req = req.bearer_auth(t);
        }
        if let Some(k) = self.key {
            req = req.header("Idempotency-Key", k);
        }
        if let Some(b) = self.body {
            req = req.header("Content-Type", self.content_type).body(b);
        }
        let resp = req.send().await.unwrap();
        let got = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!(
                "{} {}: {got} answer is not JSON ({e}): {text:?}",
                self.method, self.path
            )
        });
        assert_eq!(got, status, "{} {}: {body}", self.method, self.path);
        if let Some(code) = code {
            assert_eq!(
                body["error"]["code"], code,
                "{} {}: {body}",
                self.method, self.path
            );
        }
        doc.check(self.method, self.template, got, &body);
        (body, headers)
    }
}

/// Route path literals in the router sources: `(file, literal)`.
fn router_literals() -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let file = path.file_name().unwrap().to_str().unwrap().to_string();
        let mut rest = text.as_str();
        while let Some(i) = rest.find(".route(") {
            rest = rest[i + ".route(".len()..].trim_start();
            if let Some(lit) = rest.strip_prefix('"') {
                let end = lit.find('"').unwrap();
                out.push((file.clone(), lit[..end].to_string()));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn the_openapi_document_lists_every_route_and_matches_live_answers() {
    let twilio = FakeTwilio::start(SID, TWILIO_TOKEN).await;
    let setup = setup(&twilio);
    let d = setup.start();

    // The document needs no token.
    let resp = client()
        .get(d.url("/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let raw: Value = resp.json().await.unwrap();
    let doc = Doc {
        doc: raw.clone(),
        seen: Mutex::default(),
    };
    assert!(raw["openapi"].as_str().unwrap().starts_with("3."), "{raw}");
    assert_eq!(raw["servers"][0]["url"], "/");
    let bearer = &raw["components"]["securitySchemes"]["bearer"];
    assert_eq!(
        (&bearer["type"], &bearer["scheme"]),
        (&json!("http"), &json!("bearer"))
    );
    doc.check("get", "/v1/openapi.json", 200, &raw);
    // And is itself valid: a POST gets a JSON 405.
    call("post", "/v1/openapi.json", "/v1/openapi.json")
        .token(None)
        .body("{}")
        .expect_raw(&d, 405, "method_not_allowed", &doc)
        .await;

    // Exactly the routes of the router, each with bearer security (except the document).
    let documented: BTreeSet<(String, String)> = raw["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(p, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .filter(|m| {
                    ["get", "put", "post", "delete", "patch", "head", "options"]
                        .contains(&m.as_str())
                })
                .map(move |m| (m.clone(), p.clone()))
        })
        .collect();
    let listed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        documented, listed,
        "the document and the route list of this test differ"
    );
    for (m, p) in &documented {
        let security = &raw["paths"][p][m]["security"];
        if p == "/v1/openapi.json" {
            assert_eq!(security, &json!([{}]), "{m} {p}");
        } else {
            assert_eq!(security, &json!([{"bearer": []}]), "{m} {p}");
            for status in ["401", "403"] {
                assert!(
                    raw["paths"][p][m]["responses"][status].is_object(),
                    "{m} {p} does not document {status}"
                );
            }
        }
    }
    // Every route in the router's sources is documented (or is not the admin API);
    // reported at the end, after the live checks.
    let documented_paths: BTreeSet<&str> = ROUTES.iter().map(|(_, p)| *p).collect();
    let undocumented: Vec<String> = router_literals()
        .into_iter()
        .filter_map(|(file, lit)| {
            let full = if file == "mod.rs" || lit.starts_with("/v1") {
                lit
            } else {
                format!("/v1{lit}")
            };
            (!documented_paths.contains(full.as_str()) && !NOT_ADMIN_API.contains(&full.as_str()))
                .then(|| format!("{full} (src/http/{file})"))
        })
        .collect();
    // Every documented route answers (an unknown shop: the handler's 404, not the
    // router's).
    for (m, p) in ROUTES.iter().filter(|(_, p)| p.contains("{shop}")) {
        let path = p
            .replace("{shop}", "nope")
            .replace("{member_id}", "m_00000000000000000000")
            .replace("{message_id}", "1")
            .replace("{channel}", "sms");
        let c = call(m, p, path);
        // A body of the right shape where one is required (a malformed body is
        // refused before the shop is looked up).
        let body = match *p {
            "/v1/shops/{shop}/members/merge" => {
                r#"{"into": "m_00000000000000000000", "from": "m_00000000000000000001", "reason": "x"}"#
            }
            "/v1/shops/{shop}/members/{member_id}/profile" => r#"{"tags": ["x"]}"#,
            _ => "{}",
        };
        let c = if *m == "get" { c } else { c.body(body) };
        c.expect(&d, &doc, 404, Some("unknown_shop")).await;
    }

    // A member to work with, who agreed to texts: the POS fixture order earns Ada 11
    // points, and Twilio refuses the first text for good (a dead letter).
    let consent = String::from_utf8(fixture("customers-update.json"))
        .unwrap()
        .replace(
            "\"sms_marketing_consent\": {\"state\": \"not_subscribed\"",
            "\"sms_marketing_consent\": {\"state\": \"subscribed\"",
        );
    let (s, r) = post_shopify(
        &d,
        "demo",
        "customers/update",
        "wh-c",
        consent.as_bytes(),
        SHOPIFY_SECRET,
    )
    .await;
    assert_eq!(s, 200, "{r}");
    twilio.script(vec![Reply::TwilioError {
        status: 400,
        code: 21211,
    }]);
    let (s, r) = post_shopify(&d, "demo", "orders/paid", "wh-1", &order(1), SHOPIFY_SECRET).await;
    assert_eq!(s, 200, "{r}");

    // Lookup.
    let t = "/v1/shops/{shop}/members/lookup";
    let p = "/v1/shops/demo/members/lookup";
    let (ada, _) = call("get", t, format!("{p}?email=ada@example.com"))
        .expect(&d, &doc, 200, None)
        .await;
    let id = ada["id"].as_str().unwrap().to_string();
    assert_eq!(ada["points"]["available"], 11, "{ada}");
    assert!(!ada["identities"].as_array().unwrap().is_empty(), "{ada}");
    assert!(!ada["lots"].as_array().unwrap().is_empty(), "{ada}");
    call("get", t, format!("{p}?email=ada@example.com"))
        .token(None)
        .expect(&d, &doc, 401, Some("unauthorized"))
        .await;
    call("get", t, format!("{p}?email=ada@example.com"))
        .token(Some("not-a-token-at-all-xx"))
        .expect(&d, &doc, 401, Some("unauthorized"))
        .await;
    call("get", t, format!("{p}?email=ada@example.com"))
        .token(Some(OTHER))
        .expect(&d, &doc, 403, Some("forbidden_shop"))
        .await;
    call("get", t, format!("{p}?colour=blue"))
        .expect(&d, &doc, 400, Some("unknown_parameter"))
        .await;
    call("get", t, p)
        .expect(&d, &doc, 400, Some("one_identity_required"))
        .await;
    call("get", t, format!("{p}?email=not-an-address"))
        .expect(&d, &doc, 400, Some("invalid_identity"))
        .await;
    call("get", t, format!("{p}?email=nobody@example.com"))
        .expect(&d, &doc, 404, Some("unknown_member"))
        .await;
    call("get", t, format!("{p}?email=ada@example.com"))
        .token(Some(OTHER))
        .expect(&d, &doc, 403, Some("forbidden_shop"))
        .await;

    // Member.
    let t = "/v1/shops/{shop}/members/{member_id}";
    let (m, _) = call("get", t, format!("/v1/shops/demo/members/{id}"))
        .token(Some(READER))
        .expect(&d, &doc, 200, None)
        .await;
    assert_eq!(m["id"], id.as_str());
    call("get", t, "/v1/shops/demo/members/m_00000000000000000000")
        .expect(&d, &doc, 404, Some("unknown_member"))
        .await;
    call("get", t, "/v1/shops/demo/members/%FF")
        .expect(&d, &doc, 400, Some("invalid_path"))
        .await;
    call("get", t, format!("/v1/shops/demo/members/{id}"))
        .token(None)
        .expect(&d, &doc, 401, Some("unauthorized"))
        .await;

    // Redemptions.
    let t = "/v1/shops/{shop}/members/{member_id}/redemptions";
    let p = format!("/v1/shops/demo/members/{id}/redemptions");
    let (first, h) = call("post", t, &p)
        .key("r-1")
        .body(r#"{"points": 3, "order_id": "1001"}"#)
        .expect(&d, &doc, 201, None)
        .await;
    assert!(h.get("idempotent-replayed").is_none());
    let (again, h) = call("post", t, &p)
        .key("r-1")
        .body(r#"{ "order_id": "1001", "points": 3 }"#)
        .expect(&d, &doc, 201, None)
        .await;
    assert_eq!(
        (again, h["idempotent-replayed"].to_str().unwrap()),
        (first, "true")
    );
    call("post", t, &p)
        .key("r-1")
        .body(r#"{"points": 4}"#)
        .expect(&d, &doc, 409, Some("idempotency_key_reused"))
        .await;
    call("post", t, &p)
        .body(r#"{"points": 3}"#)
        .expect(&d, &doc, 400, Some("idempotency_key_required"))
        .await;
    call("post", t, &p)
        .key("r-2")
        .body("not json")
        .expect(&d, &doc, 400, Some("malformed_json"))
        .await;
    call("post", t, &p)
        .key("r-2")
        .body(r#"{"points": "three"}"#)
        .expect(&d, &doc, 400, Some("invalid_body"))
        .await;
    call("post", t, &p)
        .key("r-2")
        .body(r#"{"points": 1, "tip": 2}"#)
        .expect(&d, &doc, 400, Some("invalid_body"))
        .await;
    call("post", t, &p)
        .key("r-2")
        .body(r#"{"points": 1, "reward": "free-coffee"}"#)
        .expect(&d, &doc, 400, Some("points_or_reward"))
        .await;
    call("post", t, &p)
        .key("r-2")
        .body(r#"{"points": 0}"#)
        .expect(&d, &doc, 400, Some("invalid_points"))
        .await;
    call("post", t, &p)
        .key("r-2")
        .body(r#"{"points": 1}"#)
        .content_type("text/plain")
        .expect(&d, &doc, 415, Some("unsupported_media_type"))
        .await;
    call("post", t, &p)
        .key("r-3")
        .body(r#"{"points": 1000}"#)
        .expect(&d, &doc, 422, Some("insufficient_points"))
        .await;
    call("post", t, &p)
        .key("r-4")
        .body(r#"{"reward": "yacht"}"#)
        .expect(&d, &doc, 422, Some("unknown_reward"))
        .await;
    call("post", t, &p)
        .key("r-5")
        .body(r#"{"points": 1}"#)
        .token(Some(READER))
        .expect(&d, &doc, 403, Some("forbidden_role"))
        .await;
    call(
        "post",
        t,
        "/v1/shops/demo/members/m_00000000000000000000/redemptions",
    )
    .key("r-6")
    .body(r#"{"points": 1}"#)
    .expect(&d, &doc, 404, Some("unknown_member"))
    .await;
    call("post", t, &p)
        .key("r-7")
        .body(r#"{"points": 1}"#)
        .token(None)
        .expect(&d, &doc, 401, Some("unauthorized"))
        .await;

    // Adjustments.
    let t = "/v1/shops/{shop}/members/{member_id}/adjustments";
    let p = format!("/v1/shops/demo/members/{id}/adjustments");
    let (r, _) = call("post", t, &p)
        .body(r#"{"points": 4, "reason": "goodwill"}"#)
        .expect(&d, &doc, 201, None)
        .await;
    assert_eq!(r["balance"]["available"], 12, "{r}");
    call("post", t, &p)
        .body(r#"{"points": 4, "reason": " "}"#)
        .expect(&d, &doc, 400, Some("reason_required"))
        .await;
    call("post", t, &p)
        .body(r#"{"points": 0, "reason": "nothing"}"#)
        .expect(&d, &doc, 400, Some("invalid_points"))
        .await;
    call("post", t, &p)
        .body(r#"{"points": 4}"#)
        .expect(&d, &doc, 400, Some("invalid_body"))
        .await;
    call("post", t, &p)
        .body(r#"{"points": -1000, "reason": "too much"}"#)
        .expect(&d, &doc, 422, Some("insufficient_points"))
        .await;
    call("post", t, &p)
        .key("")
        .body(r#"{"points": 1, "reason": "x"}"#)
        .expect(&d, &doc, 400, Some("invalid_idempotency_key"))
        .await;
    call("post", t, &p)
        .body(r#"{"points": 1, "reason": "x"}"#)
        .token(Some(READER))
        .expect(&d, &doc, 403, Some("forbidden_role"))
        .await;

    // Ledger: earning, redemption and adjustment postings, newest first.
    let t = "/v1/shops/{shop}/members/{member_id}/ledger";
    let (l, _) = call("get", t, format!("/v1/shops/demo/members/{id}/ledger"))
        .expect(&d, &doc, 200, None)
        .await;
    let kinds: Vec<&str> = l["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["adjust", "redeem", "earn"], "{l}");
    call(
        "get",
        t,
        format!("/v1/shops/demo/members/{id}/ledger?limit=1"),
    )
    .expect(&d, &doc, 200, None)
    .await;
    call(
        "get",
        t,
        format!("/v1/shops/demo/members/{id}/ledger?limit=0"),
    )
    .expect(&d, &doc, 400, Some("invalid_limit"))
    .await;
    call("get", t, "/v1/shops/demo/members/m_1/ledger")
        .expect(&d, &doc, 404, Some("unknown_member"))
        .await;

    // Referrals.
    let t = "/v1/shops/{shop}/members/{member_id}/referrals";
    let p = format!("/v1/shops/demo/members/{id}/referrals");
    call("post", t, &p)
        .body(r#"{"email": "Bob@Example.com"}"#)
        .expect(&d, &doc, 201, None)
        .await;
    call("post", t, &p)
        .body(r#"{"email": "ada@example.com"}"#)
        .expect(&d, &doc, 409, Some("already_a_member"))
        .await;
    call("post", t, &p)
        .body(r#"{"email": "a@example.com", "phone": "+12125550142"}"#)
        .expect(&d, &doc, 400, Some("one_identity_required"))
        .await;
    call("post", t, &p)
        .body(r#"{"phone": "12"}"#)
        .expect(&d, &doc, 400, Some("invalid_identity"))
        .await;
    call("post", t, &p)
        .body(r#"{"email": 7}"#)
        .expect(&d, &doc, 400, Some("invalid_body"))
        .await;
    call("post", t, &p)
        .body("email=bob@example.com")
        .content_type("application/x-www-form-urlencoded")
        .expect(&d, &doc, 415, Some("unsupported_media_type"))
        .await;

    // Consent.
    let t = "/v1/shops/{shop}/members/{member_id}/consent";
    let p = format!("/v1/shops/demo/members/{id}/consent");
    let (c, _) = call("put", t, &p)
        .body(r#"{"sms": true, "email": false}"#)
        .expect(&d, &doc, 200, None)
        .await;
    assert_eq!(c["consent"], json!({"sms": true, "email": false}));
    call("put", t, &p)
        .body("{}")
        .expect(&d, &doc, 400, Some("invalid_body"))
        .await;
    call("put", t, &p)
        .body("{")
        .expect(&d, &doc, 400, Some("malformed_json"))
        .await;
    call(
        "put",
        t,
        "/v1/shops/demo/members/m_00000000000000000000/consent",
    )
    .body(r#"{"sms": false}"#)
    .expect(&d, &doc, 404, Some("unknown_member"))
    .await;
    call("put", t, &p)
        .body(r#"{"sms": false}"#)
        .token(Some(READER))
        .expect(&d, &doc, 403, Some("forbidden_role"))
        .await;

    // Dead letters: the refused text.
    let t = "/v1/shops/{shop}/deadletters";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let letter = loop {
        let (l, _) = call("get", t, "/v1/shops/demo/deadletters")
            .token(Some(READER))
            .expect(&d, &doc, 200, None)
            .await;
        if let Some(first) = l["dead_letters"].as_array().and_then(|a| a.first()) {
            break first.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no dead letter: {l}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(
        (&letter["code"], &letter["status"]),
        (&json!("21211"), &json!(400)),
        "{letter}"
    );
    call("get", t, "/v1/shops/other/deadletters")
        .token(Some(READER))
        .expect(&d, &doc, 403, Some("forbidden_shop"))
        .await;
    let t = "/v1/shops/{shop}/deadletters/{message_id}/{channel}/retry";
    call("post", t, "/v1/shops/demo/deadletters/99/sms/retry")
        .expect(&d, &doc, 404, Some("unknown_dead_letter"))
        .await;
    call("post", t, "/v1/shops/demo/deadletters/99/pigeon/retry")
        .expect(&d, &doc, 404, Some("unknown_dead_letter"))
        .await;
    call("post", t, "/v1/shops/demo/deadletters/99/sms/retry")
        .token(Some(READER))
        .expect(&d, &doc, 403, Some("forbidden_role"))
        .await;
    let retry = format!(
        "/v1/shops/demo/deadletters/{}/{}/retry",
        letter["message_id"],
        letter["channel"].as_str().unwrap()
    );
    let (r, _) = call("post", t, retry).expect(&d, &doc, 202, None).await;
    assert_eq!(r["status"], "queued");

    // Liability report.
    let t = "/v1/shops/{shop}/reports/liability";
    let (rep, _) = call("get", t, "/v1/shops/demo/reports/liability")
        .token(Some(READER))
        .expect(&d, &doc, 200, None)
        .await;
    assert_eq!(rep["closing_points"], 12, "{rep}");
    call(
        "get",
        t,
        "/v1/shops/demo/reports/liability?from=2020-01-01&to=2099-12-31T00:00:00Z",
    )
    .expect(&d, &doc, 200, None)
    .await;
    call("get", t, "/v1/shops/demo/reports/liability?from=yesterday")
        .expect(&d, &doc, 400, Some("invalid_period"))
        .await;
    call(
        "get",
        t,
        "/v1/shops/demo/reports/liability?from=2030-01-01&to=2020-01-01",
    )
    .expect(&d, &doc, 400, Some("invalid_period"))
    .await;

    // Simulate.
    let t = "/v1/shops/{shop}/simulate";
    let expected: Value = serde_json::from_slice(
        &std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("integrations/shopify/fixtures/expected/orders-paid-pos.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut sale = expected["event"].clone();
    sale.as_object_mut().unwrap().remove("type");
    // The documented request schema accepts the canonical sale.
    let request_schema = &doc.op("post", t)["requestBody"]["content"]["application/json"]["schema"];
    doc.validate_against(request_schema, &sale, "POST simulate request body");
    let (sim, _) = call("post", t, "/v1/shops/demo/simulate")
        .token(Some(READER))
        .body(sale.to_string())
        .expect(&d, &doc, 200, None)
        .await;
    assert_eq!(sim["points"], 11, "{sim}");
    call("post", t, "/v1/shops/demo/simulate")
        .body("{}")
        .expect(&d, &doc, 400, Some("invalid_sale"))
        .await;
    call("post", t, "/v1/shops/demo/simulate")
        .body("[1,")
        .expect(&d, &doc, 400, Some("malformed_json"))
        .await;
    call("post", t, "/v1/shops/demo/simulate")
        .body(sale.to_string().replace("\"USD\"", "\"EUR\""))
        .expect(&d, &doc, 422, Some("currency_mismatch"))
        .await;
    call("post", t, "/v1/shops/demo/simulate")
        .body(sale.to_string())
        .content_type("text/plain")
        .expect(&d, &doc, 415, Some("unsupported_media_type"))
        .await;

    // Member list.
    let t = "/v1/shops/{shop}/members";
    let (page, _) = call("get", t, "/v1/shops/demo/members?q=ada&limit=10")
        .token(Some(READER))
        .expect(&d, &doc, 200, None)
        .await;
    assert_eq!(page["members"][0]["id"], id.as_str(), "{page}");
    call("get", t, "/v1/shops/demo/members?limit=0")
        .expect(&d, &doc, 400, Some("invalid_limit"))
        .await;
    call("get", t, "/v1/shops/demo/members?after=nobody")
        .expect(&d, &doc, 400, Some("invalid_cursor"))
        .await;

    // Merge (admin): a member into itself is refused; Bob (a second member) merges.
    let t = "/v1/shops/{shop}/members/merge";
    let p = "/v1/shops/demo/members/merge";
    call("post", t, p)
        .body(json!({"into": id, "from": id, "reason": "same"}).to_string())
        .expect(&d, &doc, 409, Some("merge_refused"))
        .await;
    call("post", t, p)
        .body(json!({"into": id, "from": "m_00000000000000000000", "reason": "x"}).to_string())
        .expect(&d, &doc, 404, Some("unknown_member"))
        .await;
    call("post", t, p)
        .body(json!({"into": id, "from": id, "reason": " "}).to_string())
        .expect(&d, &doc, 400, Some("invalid_body"))
        .await;
    call("post", t, p)
        .body(json!({"into": id, "from": id, "reason": "x"}).to_string())
        .token(Some(READER))
        .expect(&d, &doc, 403, Some("forbidden_role"))
        .await;
    let bob = String::from_utf8(order(2))
        .unwrap()
        .replace("ada@example.com", "bob@example.com")
        .replace("+15145550142", "+15145550199")
        .replace("7391022153765", "7391022150000");
    let (s, r) = post_shopify(
        &d,
        "demo",
        "orders/paid",
        "wh-2",
        bob.as_bytes(),
        SHOPIFY_SECRET,
    )
    .await;
    assert_eq!(s, 200, "{r}");
    let bob_id = r["member_id"].as_str().unwrap().to_string();
    assert_ne!(bob_id, id, "{r}");
    let (merged, _) = call("post", t, p)
        .body(json!({"into": id, "from": bob_id, "reason": "same person"}).to_string())
        .expect(&d, &doc, 200, None)
        .await;
    assert_eq!(merged["merged"], bob_id.as_str(), "{merged}");

    // Profile.
    let t = "/v1/shops/{shop}/members/{member_id}/profile";
    let p = format!("/v1/shops/demo/members/{id}/profile");
    let (prof, _) = call("patch", t, &p)
        .body(r#"{"birthday": "1990-03-12", "tags": ["Card"]}"#)
        .expect(&d, &doc, 200, None)
        .await;
    assert_eq!(prof["tags"], json!(["card"]), "{prof}");
    call("patch", t, &p)
        .body("{}")
        .expect(&d, &doc, 400, Some("invalid_body"))
        .await;
    call(
        "patch",
        t,
        "/v1/shops/demo/members/m_00000000000000000000/profile",
    )
    .body(r#"{"tags": []}"#)
    .expect(&d, &doc, 404, Some("unknown_member"))
    .await;
    call("patch", t, &p)
        .body(r#"{"tags": []}"#)
        .token(Some(READER))
        .expect(&d, &doc, 403, Some("forbidden_role"))
        .await;

    // The program in force.
    let t = "/v1/shops/{shop}/program";
    let (prog, _) = call("get", t, "/v1/shops/demo/program")
        .token(Some(READER))
        .expect(&d, &doc, 200, None)
        .await;
    assert_eq!(prog["rewards"][0]["id"], "free-coffee", "{prog}");
    call("get", t, "/v1/shops/demo/program")
        .token(None)
        .expect(&d, &doc, 401, Some("unauthorized"))
        .await;

    // Activity report.
    let t = "/v1/shops/{shop}/reports/activity";
    let (act, _) = call("get", t, "/v1/shops/demo/reports/activity")
        .token(Some(READER))
        .expect(&d, &doc, 200, None)
        .await;
    assert!(!act["days"].as_array().unwrap().is_empty(), "{act}");
    call("get", t, "/v1/shops/demo/reports/activity?to=soon")
        .expect(&d, &doc, 400, Some("invalid_period"))
        .await;

    // Webhook deliveries (the customer record and the order above).
    let t = "/v1/shops/{shop}/webhooks/deliveries";
    let (del, _) = call("get", t, "/v1/shops/demo/webhooks/deliveries")
        .token(Some(READER))
        .expect(&d, &doc, 200, None)
        .await;
    assert!(!del["deliveries"].as_array().unwrap().is_empty(), "{del}");
    call("get", t, "/v1/shops/demo/webhooks/deliveries?class=weird")
        .expect(&d, &doc, 400, Some("invalid_class"))
        .await;

    // Backup: not JSON, but the documented media type; admin only.
    let t = "/v1/backup";
    let resp = client()
        .post(d.url(t))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let media = resp.headers()["content-type"].to_str().unwrap().to_string();
    let declared = &doc.op("post", t)["responses"]["200"]["content"];
    assert!(declared.get(&media).is_some(), "{media} not in {declared}");
    let text = resp.text().await.unwrap();
    for line in text.lines() {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
    doc.seen
        .lock()
        .unwrap()
        .insert(("post".into(), t.into(), 200));
    call("post", t, t)
        .token(Some(READER))
        .expect(&d, &doc, 403, Some("forbidden_role"))
        .await;
    call("post", t, t)
        .token(None)
        .expect(&d, &doc, 401, Some("unauthorized"))
        .await;

    // Outside any operation: unknown endpoints and methods still answer the error shape.
    call("get", "", "/v1/no-such-thing")
        .expect_raw(&d, 404, "not_found", &doc)
        .await;
    let (_, h) = call("delete", "", "/v1/shops/demo/reports/liability")
        .expect_raw(&d, 405, "method_not_allowed", &doc)
        .await;
    assert!(h["allow"].to_str().unwrap().contains("GET"), "{h:?}");

    // Every operation was seen answering a success and an error.
    let seen = doc.seen.lock().unwrap().clone();
    for (m, p) in ROUTES {
        let statuses: Vec<u16> = seen
            .iter()
            .filter(|(sm, sp, _)| sm == m && sp == p)
            .map(|(_, _, s)| *s)
            .collect();
        assert!(
            statuses.iter().any(|s| *s < 300),
            "{m} {p}: no success checked ({statuses:?})"
        );
        if *p != "/v1/openapi.json" {
            assert!(
                statuses.iter().any(|s| *s >= 400),
                "{m} {p}: no error checked ({statuses:?})"
            );
        }
    }
    let by_status: BTreeMap<u16, usize> = seen.iter().fold(BTreeMap::new(), |mut acc, s| {
        *acc.entry(s.2).or_default() += 1;
        acc
    });
    for status in [200, 201, 400, 401, 403, 404, 409, 415, 422] {
        assert!(by_status.contains_key(&status), "{status} never checked");
    }
    assert!(
        undocumented.is_empty(),
        "routes of the router missing from the OpenAPI document: {undocumented:?}"
    );
    assert!(d.terminate().success());
}

impl Call<'_> {
    /// For answers outside any documented operation: status, code and the error shape.
    async fn expect_raw(
        self,
        d: &Daemon,
        status: u16,
        code: &str,
        doc: &Doc,
    ) -> (Value, reqwest::header::HeaderMap) {
        let method = Method::from_bytes(self.method.to_uppercase().as_bytes()).unwrap();
        let mut req = client().request(method, d.url(&self.path));
        if let Some(t) = self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = self.body {
            req = req.header("Content-Type", self.content_type).body(b);
        }
        let resp = req.send().await.unwrap();
        let got = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{} {}: {body}",
            self.method,
            self.path
        );
        doc.check_error_shape(&body, &format!("{} {}", self.method, self.path));
        (body, headers)
    }
}

/// The checker itself: an undocumented field, a wrong type or a missing field fails.
#[test]
fn the_checker_refuses_answers_the_schema_does_not_describe() {
    let doc = Doc {
        doc: json!({
            "components": {"schemas": {
                "Thing": {"type": "object", "required": ["n"], "properties": {
                    "n": {"type": "integer"},
                    "at": {"type": "string", "format": "date-time"},
                    "inner": {"$ref": "#/components/schemas/Inner"}
                }},
                "Inner": {"type": "object", "properties": {"x": {"type": "string"}}}
            }}
        }),
        seen: Mutex::default(),
    };
    let thing = json!({"$ref": "#/components/schemas/Thing"});
    doc.validate_against(&thing, &json!({"n": 1, "inner": {"x": "a"}}), "good");
    for bad in [
        json!({"n": 1, "extra": true}),
        json!({"n": "1"}),
        json!({}),
        json!({"n": 1, "inner": {"y": "a"}}),
        json!({"n": 1, "at": "yesterday"}),
    ] {
        let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            doc.validate_against(&thing, &bad, "bad")
        }))
        .is_err();
        assert!(refused, "{bad} passed");
    }
}
