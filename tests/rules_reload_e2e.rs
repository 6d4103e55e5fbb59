//! End to end: rules are versioned on every earning and reloaded on SIGHUP; a broken
//! rules file is refused and the rules in force stay.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

async fn metric(d: &Daemon, needle: &str) -> bool {
    let text = client()
        .get(d.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines().any(|l| l.starts_with(needle))
}

async fn wait_metric(d: &Daemon, needle: &str) {
    for _ in 0..100 {
        if metric(d, needle).await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("metric {needle} never appeared");
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_the_rules_and_a_broken_file_leaves_them_in_force() {
    let setup = Setup::new(1024 * 1024);
    let rules_path = setup.dir.path().join("rules.toml");
    let d = setup.start();

    let (_, r) = post_shopify(&d, "demo", "orders/paid", "wh-1", &order(1), SHOPIFY_SECRET).await;
    assert_eq!(r["points"], 11);
    let member = r["member_id"].as_str().unwrap().to_string();

    let doubled = std::fs::read_to_string(&rules_path)
        .unwrap()
        .replace("points_per_unit = \"1\"", "points_per_unit = \"2\"");
    std::fs::write(&rules_path, doubled).unwrap();
    d.signal(libc::SIGHUP);
    wait_metric(
        &d,
        r#"loyaltyd_rules_reloads_total{shop="demo",outcome="ok"}"#,
    )
    .await;

    let (_, r) = post_shopify(&d, "demo", "orders/paid", "wh-2", &order(2), SHOPIFY_SECRET).await;
    assert_eq!(r["points"], 22, "{r}");

    // Each earning records the version of the rules that scored it.
    let (_, ledger) = admin_get(&d, &format!("/v1/shops/demo/members/{member}/ledger")).await;
    let versions: Vec<&Value> = ledger["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["rules_version"])
        .collect();
    assert_eq!(versions.len(), 2);
    assert!(versions[0].is_string() && versions[1].is_string());
    assert_ne!(versions[0], versions[1]);

    // A broken file (a float rate) is refused; the doubled rules stay.
    std::fs::write(&rules_path, "[earn]\npoints_per_unit = 1.5\n").unwrap();
    d.signal(libc::SIGHUP);
    wait_metric(
        &d,
        r#"loyaltyd_rules_reloads_total{shop="demo",outcome="rejected"}"#,
    )
    .await;
    let (_, r) = post_shopify(&d, "demo", "orders/paid", "wh-3", &order(3), SHOPIFY_SECRET).await;
    assert_eq!(r["points"], 22, "{r}");
}

#[tokio::test(flavor = "multi_thread")]
async fn simulate_scores_a_canonical_sale_without_posting_anything() {
    let setup = Setup::new(1024 * 1024);
    let d = setup.start();
    let expected: Value = serde_json::from_slice(
        &std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("integrations/shopify/fixtures/expected/orders-paid-pos.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let sale = expected["event"].to_string();
    let (s, r, _) = admin_post(&d, "/v1/shops/demo/simulate", None, &sale).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["points"], 11);
    assert_eq!(r["eligible_spend"], "11.00");
    assert_eq!(r["rule_ids"], serde_json::json!(["earn.base"]));
    assert!(r["explanation"][0]["detail"]
        .as_str()
        .unwrap()
        .contains("11.00 USD"));
    // Nothing was posted: the buyer is still unknown.
    let (status, _) = admin_get(&d, "/v1/shops/demo/members/lookup?email=ada@example.com").await;
    assert_eq!(status, 404);
    // Bad input is refused clearly.
    let (s, r, _) = admin_post(&d, "/v1/shops/demo/simulate", None, "{}").await;
    assert_eq!(
        (s, r["error"]["code"].as_str()),
        (400, Some("invalid_sale"))
    );
    let eur = sale.replace("\"USD\"", "\"EUR\"");
    let (s, r, _) = admin_post(&d, "/v1/shops/demo/simulate", None, &eur).await;
    assert_eq!(
        (s, r["error"]["code"].as_str()),
        (422, Some("currency_mismatch"))
    );

    // The CLI gives the same award from a raw Shopify order and a rules file.
    let (ok, out, err) = run_cli(&[
        "simulate",
        "--rules",
        setup.dir.path().join("rules.toml").to_str().unwrap(),
        "--order",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/integrations/shopify/fixtures/orders-paid-pos.json"
        ),
    ]);
    assert!(ok, "{err}");
    let cli: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(cli["points"], r_points(&d).await);
}

async fn r_points(d: &Daemon) -> Value {
    let expected: Value = serde_json::from_slice(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/integrations/shopify/fixtures/expected/orders-paid-pos.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let (_, r, _) = admin_post(
        d,
        "/v1/shops/demo/simulate",
        None,
        &expected["event"].to_string(),
    )
    .await;
    r["points"].clone()
}
