//! End to end: per-shop API tokens with roles.

mod common;

use common::*;

const READER: &str = "reader-token-0123456789";
const TILL: &str = "till-token-0123456789ab";
const OTHER: &str = "other-shop-token-012345";

fn setup() -> Setup {
    let setup = Setup::new(1024 * 1024);
    let path = setup.config_path();
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!(
        "\n[[tokens]]\nname = \"reports\"\ntoken = \"{READER}\"\nrole = \"read\"\nshops = [\"demo\"]\n\n\
         [[tokens]]\nname = \"till-1\"\ntoken = \"{TILL}\"\nrole = \"write\"\nshops = [\"demo\"]\n\n\
         [[tokens]]\nname = \"other-staff\"\ntoken = \"{OTHER}\"\nrole = \"admin\"\nshops = [\"other\"]\n"
    ));
    std::fs::write(&path, text).unwrap();
    setup
}

async fn call(
    d: &Daemon,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut req = reqwest::Client::new()
        .request(method, d.url(path))
        .bearer_auth(token)
        .header("Idempotency-Key", format!("k-{token}"));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_are_limited_to_their_shops_and_roles_and_the_journal_names_the_actor() {
    let setup = setup();
    let d = setup.start();
    post_shopify(&d, "demo", "orders/paid", "wh-1", &order(1), SHOPIFY_SECRET).await;
    let lookup = "/v1/shops/demo/members/lookup?email=ada@example.com";
    let (s, m) = call(&d, reqwest::Method::GET, lookup, READER, None).await;
    assert_eq!(s, 200, "{m}");
    let id = m["id"].as_str().unwrap().to_string();
    let adjust = format!("/v1/shops/demo/members/{id}/adjustments");
    let body = serde_json::json!({"points": 5, "reason": "goodwill"});

    // A read token cannot change points.
    let (s, e) = call(
        &d,
        reqwest::Method::POST,
        &adjust,
        READER,
        Some(body.clone()),
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (403, Some("forbidden_role")),
        "{e}"
    );
    // A token of another shop gets 403 on this one, even as admin.
    let (s, e) = call(&d, reqwest::Method::GET, lookup, OTHER, None).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (403, Some("forbidden_shop")),
        "{e}"
    );
    // ... and works on its own shop (an unknown member there: 404, not 403).
    let (s, _) = call(
        &d,
        reqwest::Method::GET,
        "/v1/shops/other/members/lookup?email=ada@example.com",
        OTHER,
        None,
    )
    .await;
    assert_eq!(s, 404);
    // A wrong token: 401.
    let (s, e) = call(
        &d,
        reqwest::Method::GET,
        lookup,
        "not-a-token-at-all-xx",
        None,
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );

    // The till's write token adjusts, and the journal records it by name.
    let (s, r) = call(&d, reqwest::Method::POST, &adjust, TILL, Some(body)).await;
    assert_eq!(s, 201, "{r}");
    let (_, ledger) = call(
        &d,
        reqwest::Method::GET,
        &format!("/v1/shops/demo/members/{id}/ledger"),
        READER,
        None,
    )
    .await;
    assert_eq!(ledger["entries"][0]["actor"], "till-1", "{ledger}");
    assert!(d.terminate().success());
}

#[test]
fn a_token_for_an_unknown_shop_is_a_config_error_naming_the_key() {
    let setup = Setup::new(1024 * 1024);
    let path = setup.config_path();
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(
        "\n[[tokens]]\nname = \"x\"\ntoken = \"0123456789abcdefgh\"\nshops = [\"nowhere\"]\n",
    );
    std::fs::write(&path, text).unwrap();
    let (ok, out, err) = run_cli(&["check-config", "--config", path.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(
        err.contains("tokens[0].shops") && err.contains("nowhere"),
        "{err}"
    );
}
