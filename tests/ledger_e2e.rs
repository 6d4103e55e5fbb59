//! End to end: redemptions, adjustments, refunds, cancellations, the liability
//! report, and the offline verify / export / jobs commands, against the real binary.

mod common;

use common::*;
use serde_json::Value;

const ADA: &str = "/v1/shops/demo/members/lookup?email=ada@example.com";

async fn ada(d: &Daemon) -> Value {
    let (status, body) = admin_get(d, ADA).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn redemptions_are_idempotent_refuse_overdrafts_and_are_journaled() {
    let setup = Setup::new(1024 * 1024);
    let d = setup.start();
    let body = fixture("orders-paid-pos.json");
    let (s, _) = post_shopify(&d, "demo", "orders/paid", "wh-1", &body, SHOPIFY_SECRET).await;
    assert_eq!(s, 200);
    let id = ada(&d).await["id"].as_str().unwrap().to_string();
    let path = format!("/v1/shops/demo/members/{id}/redemptions");

    let (s, r, _) = admin_post(&d, &path, None, r#"{"points": 3}"#).await;
    assert_eq!(
        (s, r["error"]["code"].as_str()),
        (400, Some("idempotency_key_required"))
    );

    let (s, first, replayed) = admin_post(&d, &path, Some("k-1"), r#"{"points": 3}"#).await;
    assert_eq!(s, 201, "{first}");
    assert!(!replayed);
    assert_eq!(first["balance"]["available"], 8);

    // Same key, same body (other spacing): the first answer, nothing posted.
    let (s, again, replayed) = admin_post(&d, &path, Some("k-1"), r#"{ "points" : 3 }"#).await;
    assert_eq!((s, replayed), (201, true));
    assert_eq!(again, first);
    // Same key, other body: 409.
    let (s, r, _) = admin_post(&d, &path, Some("k-1"), r#"{"points": 4}"#).await;
    assert_eq!(
        (s, r["error"]["code"].as_str()),
        (409, Some("idempotency_key_reused"))
    );

    // Too few points: 422, nothing posted.
    let (s, r, _) = admin_post(&d, &path, Some("k-2"), r#"{"points": 9}"#).await;
    assert_eq!(
        (s, r["error"]["code"].as_str()),
        (422, Some("insufficient_points"))
    );
    assert_eq!(ada(&d).await["points"]["available"], 8);

    // A catalogue reward (5 points in the test rules) and an unknown one.
    let (s, r, _) = admin_post(&d, &path, Some("k-3"), r#"{"reward": "free-coffee"}"#).await;
    assert_eq!((s, r["points"].as_i64()), (201, Some(-5)), "{r}");
    let (s, r, _) = admin_post(&d, &path, Some("k-4"), r#"{"reward": "yacht"}"#).await;
    assert_eq!(
        (s, r["error"]["code"].as_str()),
        (422, Some("unknown_reward"))
    );
    let (s, _, _) = admin_post(
        &d,
        &path,
        Some("k-5"),
        r#"{"points": 1, "reward": "free-coffee"}"#,
    )
    .await;
    assert_eq!(s, 400);
    let (s, _, _) = admin_post(&d, &path, Some("k-6"), "not json").await;
    assert_eq!(s, 400);

    // Adjustments need a reason and are journaled with the actor.
    let adj = format!("/v1/shops/demo/members/{id}/adjustments");
    let (s, r, _) = admin_post(&d, &adj, None, r#"{"points": 10, "reason": " "}"#).await;
    assert_eq!(
        (s, r["error"]["code"].as_str()),
        (400, Some("reason_required"))
    );
    let (s, r, _) = admin_post(
        &d,
        &adj,
        None,
        r#"{"points": 10, "reason": "spilled coffee"}"#,
    )
    .await;
    assert_eq!(
        (s, r["balance"]["available"].as_i64()),
        (201, Some(13)),
        "{r}"
    );

    let (_, ledger) = admin_get(&d, &format!("/v1/shops/demo/members/{id}/ledger")).await;
    let entries = ledger["entries"].as_array().unwrap();
    let kinds: Vec<&str> = entries
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["adjust", "redeem", "redeem", "earn"]);
    assert_eq!(entries[0]["actor"], "admin");
    assert_eq!(entries[0]["reason"], "spilled coffee");
    assert_eq!(entries[1]["reward"], "free-coffee");
    // The member page shows its lots with their expiry dates.
    let m = ada(&d).await;
    assert!(m["lots"]
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l["expires_at"].is_string()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partial_refund_then_a_cancellation_reverse_exactly_what_the_sale_earned() {
    let setup = Setup::new(1024 * 1024);
    let d = setup.start();
    let paid = fixture("orders-paid-pos.json");
    post_shopify(&d, "demo", "orders/paid", "wh-1", &paid, SHOPIFY_SECRET).await;
    assert_eq!(ada(&d).await["points"]["available"], 11);

    // The muffin (2.92 of 11.00 eligible) comes back: floor(11 × 2.92 / 11) = 2.
    let refund = fixture("refunds-create-partial.json");
    let (s, r) = post_shopify(
        &d,
        "demo",
        "refunds/create",
        "wh-2",
        &refund,
        SHOPIFY_SECRET,
    )
    .await;
    assert_eq!(
        (s, r["status"].as_str(), r["points"].as_i64()),
        (200, Some("reversed"), Some(2)),
        "{r}"
    );
    // The same refund under another delivery id changes nothing.
    let (s, r) = post_shopify(
        &d,
        "demo",
        "refunds/create",
        "wh-3",
        &refund,
        SHOPIFY_SECRET,
    )
    .await;
    assert_eq!((s, r["status"].as_str()), (200, Some("already_scored")));
    assert_eq!(ada(&d).await["points"]["available"], 9);

    let cancel = fixture("orders-cancelled.json");
    let (s, r) = post_shopify(
        &d,
        "demo",
        "orders/cancelled",
        "wh-4",
        &cancel,
        SHOPIFY_SECRET,
    )
    .await;
    assert_eq!((s, r["points"].as_i64()), (200, Some(9)), "{r}");
    assert_eq!(ada(&d).await["points"]["available"], 0);
    assert_eq!(ada(&d).await["points"]["lifetime"], 11);

    // The liability report balances: 11 issued, 11 reversed, nothing outstanding.
    let (s, rep) = admin_get(&d, "/v1/shops/demo/reports/liability").await;
    assert_eq!(s, 200, "{rep}");
    assert_eq!(rep["opening_points"], 0);
    assert_eq!(rep["issued"], 11);
    assert_eq!(rep["reversed"], 11);
    assert_eq!(rep["closing_points"], 0);
    assert_eq!(rep["closing_liability"], "0.00");
    let (s, rep) = admin_get(&d, "/v1/shops/demo/reports/liability?from=yesterday").await;
    assert_eq!(
        (s, rep["error"]["code"].as_str()),
        (400, Some("invalid_period"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_liability_report_states_outstanding_points_in_money() {
    let setup = Setup::new(1024 * 1024);
    let d = setup.start();
    let paid = fixture("orders-paid-pos.json");
    post_shopify(&d, "demo", "orders/paid", "wh-1", &paid, SHOPIFY_SECRET).await;
    let (_, rep) = admin_get(&d, "/v1/shops/demo/reports/liability?from=2000-01-01").await;
    let n = |k: &str| rep[k].as_i64().unwrap();
    assert_eq!(n("closing_points"), 11);
    assert_eq!(
        n("closing_points"),
        n("opening_points") + n("issued") - n("redeemed") - n("expired") - n("reversed")
            + n("adjusted")
    );
    // Default point value 0.01 USD.
    assert_eq!(rep["closing_liability"], "0.11");
    assert_eq!(rep["currency"], "USD");
    assert_eq!(rep["ageing"]["181_365_days"], 11, "{rep}");
    assert_eq!(rep["cohorts"].as_array().unwrap().len(), 1);
    // A future period starts with everything outstanding.
    let (_, later) = admin_get(
        &d,
        "/v1/shops/demo/reports/liability?from=2999-01-01&to=2999-01-02",
    )
    .await;
    assert_eq!(later["opening_points"], 11);
    assert_eq!(later["issued"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_export_and_jobs_work_on_a_stopped_daemons_data() {
    let setup = Setup::new(1024 * 1024);
    let config = setup.config_path();
    let config = config.to_str().unwrap();
    let d = setup.start();
    post_shopify(
        &d,
        "demo",
        "orders/paid",
        "wh-1",
        &fixture("orders-paid-pos.json"),
        SHOPIFY_SECRET,
    )
    .await;
    let id = ada(&d).await["id"].as_str().unwrap().to_string();
    admin_post(
        &d,
        &format!("/v1/shops/demo/members/{id}/redemptions"),
        Some("k"),
        r#"{"points": 4}"#,
    )
    .await;

    // While the daemon holds the database, offline tools refuse clearly.
    let (ok, _, err) = run_cli(&["verify", "--config", config]);
    assert!(!ok);
    assert!(err.contains("daemon"), "{err}");
    assert!(d.terminate().success());

    let (ok, out, err) = run_cli(&["verify", "--config", config]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("shop demo: ok (2 postings)"), "{out}");

    let (ok, csv, err) = run_cli(&["export", "journal", "--format", "csv", "--config", config]);
    assert!(ok, "{err}");
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "seq,recorded_at,occurred_at,shop,kind,member_id,account,amount,idempotency_key,order_id,reward,actor,reason,rule_ids,shortfall"
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 4, "two postings of two entries each");
    for seq in ["1", "2"] {
        let sum: i64 = rows
            .iter()
            .filter(|r| r[0] == seq)
            .map(|r| r[7].parse::<i64>().unwrap())
            .sum();
        assert_eq!(sum, 0, "posting {seq} balances");
    }

    // Jobs a year and a day later expire the rest (365-day fixed expiry), once.
    let (ok, out, err) = jobs_at(config, "2028-01-01T00:00:00Z");
    assert!(ok, "{err}");
    assert!(out.contains("expired 7 points in 1 postings"), "{out}");
    let (_, out, _) = jobs_at(config, "2028-01-01T00:00:00Z");
    assert!(out.contains("expired 0 points in 0 postings"), "{out}");
    let (ok, out, _) = run_cli(&["verify", "--config", config]);
    assert!(ok && out.contains("(3 postings)"), "{out}");

    let (ok, out, err) = run_cli(&[
        "report",
        "liability",
        "--config",
        config,
        "--to",
        "2028-01-02",
    ]);
    assert!(ok, "{err}");
    let rep: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rep[0]["expired"], 7);
    assert_eq!(rep[0]["closing_points"], 0);
    assert_eq!(rep[0]["breakage_rate"], "0.6364");
}
