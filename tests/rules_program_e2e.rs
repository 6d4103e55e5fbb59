//! End to end: a rules program through the running daemon — first-purchase bonus,
//! cash back into store credit — scored from the member's stored state.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_first_purchase_bonus_fires_once_and_cash_back_becomes_store_credit() {
    let setup = Setup::new(1024 * 1024);
    std::fs::write(
        setup.dir.path().join("rules.toml"),
        r#"[earn]
points_per_unit = "1"

[[rules]]
id = "first-visit"
when = { first_purchase = true }
effect = { bonus = 25 }

[[rules]]
id = "cash-back"
effect = { cash_back_percent = "2" }
"#,
    )
    .unwrap();
    let d = setup.start();

    // 11.00 eligible: 11 base + 25 first visit; 2 % of 11.00 = 0.22 store credit.
    let (s, r) = post_shopify(&d, "demo", "orders/paid", "wh-1", &order(1), SHOPIFY_SECRET).await;
    assert_eq!((s, r["points"].as_i64()), (200, Some(36)), "{r}");
    // The second sale is not a first purchase any more.
    let (_, r) = post_shopify(&d, "demo", "orders/paid", "wh-2", &order(2), SHOPIFY_SECRET).await;
    assert_eq!(r["points"], 11, "{r}");

    let (_, m) = admin_get(&d, "/v1/shops/demo/members/lookup?email=ada@example.com").await;
    assert_eq!(m["points"]["available"], 47);
    assert_eq!(m["store_credit"], "0.44");
    let id = m["id"].as_str().unwrap();
    let (_, ledger) = admin_get(&d, &format!("/v1/shops/demo/members/{id}/ledger")).await;
    let first = &ledger["entries"][1];
    let rules: Vec<&str> = first["rule_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        rules.contains(&"first-visit") && rules.contains(&"earn.base"),
        "{first}"
    );
    assert!(!ledger["entries"][0]["rule_ids"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v == "first-visit"));

    // Cancelling the first order takes back its 36 points and its 0.22 cash back.
    let cancelled = String::from_utf8(fixture("orders-cancelled.json"))
        .unwrap()
        .replace("5812403339301", "1");
    let (s, r) = post_shopify(
        &d,
        "demo",
        "orders/cancelled",
        "wh-x",
        cancelled.as_bytes(),
        SHOPIFY_SECRET,
    )
    .await;
    assert_eq!((s, r["points"].as_i64()), (200, Some(36)), "{r}");
    let (_, m) = admin_get(&d, "/v1/shops/demo/members/lookup?email=ada@example.com").await;
    assert_eq!(m["points"]["available"], 11);
    assert_eq!(m["store_credit"], "0.22");

    // The books still balance, store credit included.
    assert!(d.terminate().success());
    let (ok, out, err) = run_cli(&["verify", "--config", setup.config_path().to_str().unwrap()]);
    assert!(ok, "{out}{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_moves_up_a_tier_after_the_crossing_sale_and_down_at_review_once_refunds_take_the_qualification_away(
) {
    let setup = Setup::new(1024 * 1024);
    std::fs::write(
        setup.dir.path().join("rules.toml"),
        r#"[earn]
points_per_unit = "1"

[tiers]
basis = "points"
window = "rolling_12_months"

[[tiers.levels]]
name = "silver"
threshold = 30

[[rules]]
id = "silver-double"
when = { tiers = ["silver"] }
effect = { multiplier = "2" }
"#,
    )
    .unwrap();
    let d = setup.start();
    let mut earned = Vec::new();
    for i in 1..=4u64 {
        let (s, r) = post_shopify(
            &d,
            "demo",
            "orders/paid",
            &format!("wh-{i}"),
            &order(i),
            SHOPIFY_SECRET,
        )
        .await;
        assert_eq!(s, 200, "{r}");
        earned.push(r["points"].as_i64().unwrap());
    }
    // 11 + 11 + 11 crosses 30 on the third sale, which still earns at the old tier;
    // the fourth earns double.
    assert_eq!(earned, vec![11, 11, 11, 22]);
    let (_, m) = admin_get(&d, "/v1/shops/demo/members/lookup?email=ada@example.com").await;
    assert_eq!(m["tier"], "silver", "{m}");
    let id = m["id"].as_str().unwrap().to_string();
    let (_, ledger) = admin_get(&d, &format!("/v1/shops/demo/members/{id}/ledger")).await;
    let change = ledger["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "tier_change")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        change["reason"], "tier none -> silver: threshold reached",
        "{ledger}"
    );
    assert!(d
        .wait_for_line(|l| l.contains(&format!("member {id} moved from no tier to silver tier")))
        .is_some());

    // A review the next day keeps silver: 55 qualifying points.
    assert!(d.terminate().success());
    let config = setup.config_path();
    let config = config.to_str().unwrap();
    let (ok, out, err) = jobs_at(config, "2026-11-21T12:00:00Z");
    assert!(ok && out.contains(", 0 tier changes"), "{out}{err}");

    // Cancelling three of the four orders takes their points out of the qualification
    // too (11 left < 30): the next review moves the member down, once.
    let d = setup.start();
    for i in 2..=4u64 {
        let cancelled = String::from_utf8(fixture("orders-cancelled.json"))
            .unwrap()
            .replace("5812403339301", &i.to_string());
        let (s, r) = post_shopify(
            &d,
            "demo",
            "orders/cancelled",
            &format!("wh-c{i}"),
            cancelled.as_bytes(),
            SHOPIFY_SECRET,
        )
        .await;
        assert_eq!(s, 200, "{r}");
    }
    assert!(d.terminate().success());
    let (ok, out, err) = jobs_at(config, "2026-11-22T12:00:00Z");
    assert!(
        ok && out.contains("shop demo:") && out.contains(", 1 tier changes"),
        "{out}{err}"
    );
    let (_, out, _) = jobs_at(config, "2026-11-22T12:00:00Z");
    assert!(out.contains(", 0 tier changes"), "{out}");

    // Two years on, nothing is left to review either.
    let (ok, out, err) = jobs_at(config, "2029-01-01T00:00:00Z");
    assert!(ok, "{err}");
    assert!(ok && out.contains(", 0 tier changes"), "{out}{err}");
    let (ok, out, err) = run_cli(&["verify", "--config", config]);
    assert!(ok, "{out}{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_up_and_birthday_bonuses_fire_once_and_a_reward_unlock_is_announced() {
    let setup = Setup::new(1024 * 1024);
    std::fs::write(
        setup.dir.path().join("rules.toml"),
        r#"[earn]
points_per_unit = "1"

[bonuses]
signup = 10
birthday = 100

[[rewards]]
id = "free-coffee"
name = "Free coffee"
points = 50
"#,
    )
    .unwrap();
    let d = setup.start();

    // The Shopify customer record creates Ada (birthday 12 March): +10 welcome points.
    let (s, r) = post_shopify(
        &d,
        "demo",
        "customers/update",
        "wh-c",
        &fixture("customers-update.json"),
        SHOPIFY_SECRET,
    )
    .await;
    assert_eq!(
        (s, r["status"].as_str()),
        (200, Some("customer_updated")),
        "{r}"
    );
    let (_, m) = admin_get(&d, "/v1/shops/demo/members/lookup?email=ada@example.com").await;
    assert_eq!(m["points"]["available"], 10, "{m}");
    assert_eq!(m["birthday"], "1990-03-12");
    let id = m["id"].as_str().unwrap().to_string();

    // Her sale (11) is not a new member: no second welcome.
    post_shopify(&d, "demo", "orders/paid", "wh-1", &order(1), SHOPIFY_SECRET).await;
    let (_, m) = admin_get(&d, "/v1/shops/demo/members/lookup?email=ada@example.com").await;
    assert_eq!(m["points"]["available"], 21);

    // Birthday: the job on 12 March (shop time zone) gives 100, once.
    assert!(d.terminate().success());
    let config = setup.config_path();
    let config = config.to_str().unwrap();
    let (ok, out, err) = jobs_at(config, "2027-03-12T17:00:00Z");
    assert!(ok, "{err}");
    assert!(out.contains("1 birthday bonuses"), "{out}");
    let (_, out, _) = jobs_at(config, "2027-03-12T20:00:00Z");
    assert!(out.contains("0 birthday bonuses"), "{out}");
    let (ok, out, err) = run_cli(&["verify", "--config", config]);
    assert!(ok, "{out}{err}");

    let d = setup.start();
    let (_, m) = admin_get(&d, "/v1/shops/demo/members/lookup?email=ada@example.com").await;
    assert_eq!(m["points"]["available"], 121);

    // Spend down to 40, then a sale of 11 crosses 50 again: "can now redeem Free coffee".
    let (s, _, _) = admin_post(
        &d,
        &format!("/v1/shops/demo/members/{id}/redemptions"),
        Some("k1"),
        r#"{"points": 81}"#,
    )
    .await;
    assert_eq!(s, 201);
    post_shopify(&d, "demo", "orders/paid", "wh-2", &order(2), SHOPIFY_SECRET).await;
    let line = format!("member {id} can now redeem Free coffee (50 points), balance 51");
    assert!(
        d.wait_for_line(|l| l.contains(&line)).is_some(),
        "{:?}",
        d.stdout_lines()
    );
}

fn bobs_order(id: u64) -> Vec<u8> {
    String::from_utf8(order(id))
        .unwrap()
        .replace("ada@example.com", "bob@example.com")
        .replace("7391022153765", "7391022150000")
        .replace("+15145550142", "+15145550199")
        .replace("\"Ada\"", "\"Bob\"")
        .into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_referral_pays_both_sides_once_on_the_friends_first_purchase() {
    let setup = Setup::new(1024 * 1024);
    std::fs::write(
        setup.dir.path().join("rules.toml"),
        "[earn]\npoints_per_unit = \"1\"\n\n[bonuses]\nreferral_referrer = 30\nreferral_referee = 20\n",
    )
    .unwrap();
    let d = setup.start();
    post_shopify(&d, "demo", "orders/paid", "wh-1", &order(1), SHOPIFY_SECRET).await;
    let (_, ada) = admin_get(&d, "/v1/shops/demo/members/lookup?email=ada@example.com").await;
    let ada_id = ada["id"].as_str().unwrap().to_string();
    let path = format!("/v1/shops/demo/members/{ada_id}/referrals");

    let (s, r, _) = admin_post(&d, &path, None, r#"{"email": "Bob@Example.com"}"#).await;
    assert_eq!(s, 201, "{r}");
    // Ada is already a member: she cannot be referred.
    let (s, r, _) = admin_post(&d, &path, None, r#"{"email": "ada@example.com"}"#).await;
    assert_eq!(
        (s, r["error"]["code"].as_str()),
        (409, Some("already_a_member"))
    );

    // Bob's first purchase: 11 + 20 for him, +30 for Ada; his second earns plain 11.
    let (_, r) = post_shopify(
        &d,
        "demo",
        "orders/paid",
        "wh-2",
        &bobs_order(2),
        SHOPIFY_SECRET,
    )
    .await;
    assert_eq!(r["points"], 11, "{r}");
    post_shopify(
        &d,
        "demo",
        "orders/paid",
        "wh-3",
        &bobs_order(3),
        SHOPIFY_SECRET,
    )
    .await;
    let (_, bob) = admin_get(&d, "/v1/shops/demo/members/lookup?email=bob@example.com").await;
    assert_eq!(bob["points"]["available"], 42, "{bob}");
    let (_, ada) = admin_get(&d, "/v1/shops/demo/members/lookup?email=ada@example.com").await;
    assert_eq!(ada["points"]["available"], 41, "{ada}");

    assert!(d.terminate().success());
    let (ok, out, err) = run_cli(&["verify", "--config", setup.config_path().to_str().unwrap()]);
    assert!(ok, "{out}{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn whatif_rescores_stored_sales_under_candidate_rules_without_writing() {
    let setup = Setup::new(1024 * 1024);
    let d = setup.start();
    for i in 1..=3u64 {
        post_shopify(
            &d,
            "demo",
            "orders/paid",
            &format!("wh-{i}"),
            &order(i),
            SHOPIFY_SECRET,
        )
        .await;
    }
    assert!(d.terminate().success());
    let candidate = setup.dir.path().join("candidate.toml");
    std::fs::write(
        &candidate,
        "[earn]\npoints_per_unit = \"2\"\n\n[[rules]]\nid = \"first-visit\"\nwhen = { first_purchase = true }\neffect = { bonus = 25 }\n",
    )
    .unwrap();
    let config = setup.config_path();
    let (ok, out, err) = run_cli(&[
        "whatif",
        "--config",
        config.to_str().unwrap(),
        "--shop",
        "demo",
        "--rules",
        candidate.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    let r = &r[0];
    // Today: 3 × 11 = 33. Candidate: 3 × 22 + 25 on the first = 91.
    assert_eq!(r["sales"], 3);
    assert_eq!(r["current_points"], 33);
    assert_eq!(r["candidate_points"], 91);
    assert_eq!(r["difference"], 58);
    assert_eq!(r["liability_difference"], "0.58");
    let first = r["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["rule_id"] == "first-visit")
        .unwrap();
    assert_eq!(
        (first["current"].as_i64(), first["candidate"].as_i64()),
        (Some(0), Some(25))
    );
    // Nothing was written: the journal still verifies with its 3 postings.
    let (ok, out, _) = run_cli(&["verify", "--config", config.to_str().unwrap()]);
    assert!(ok && out.contains("(3 postings)"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_program_can_let_the_crossing_sale_earn_at_the_new_tier() {
    let setup = Setup::new(1024 * 1024);
    std::fs::write(
        setup.dir.path().join("rules.toml"),
        "[earn]\npoints_per_unit = \"1\"\n\n[tiers]\ncrossing_sale = \"new_tier\"\n\n[[tiers.levels]]\nname = \"silver\"\nthreshold = 30\n\n[[rules]]\nid = \"silver-double\"\nwhen = { tiers = [\"silver\"] }\neffect = { multiplier = \"2\" }\n",
    )
    .unwrap();
    let d = setup.start();
    let mut earned = Vec::new();
    for i in 1..=3u64 {
        let (_, r) = post_shopify(
            &d,
            "demo",
            "orders/paid",
            &format!("wh-{i}"),
            &order(i),
            SHOPIFY_SECRET,
        )
        .await;
        earned.push(r["points"].as_i64().unwrap());
    }
    // The third sale crosses 30 and already earns double.
    assert_eq!(earned, vec![11, 11, 22]);
}

#[tokio::test(flavor = "multi_thread")]
async fn pos_customer_tags_drive_tag_rules_and_whatif_uses_the_tags_a_sale_was_scored_with() {
    let setup = Setup::new(1024 * 1024);
    let rules = "[earn]\npoints_per_unit = \"1\"\n\n[[rules]]\nid = \"vip-double\"\nwhen = { tags = [\"vip\"] }\neffect = { multiplier = \"2\" }\n";
    std::fs::write(setup.dir.path().join("rules.toml"), rules).unwrap();
    let d = setup.start();
    // Shopify's customer record tags Ada "oat-milk, vip".
    let (s, r) = post_shopify(
        &d,
        "demo",
        "customers/update",
        "wh-c1",
        &fixture("customers-update.json"),
        SHOPIFY_SECRET,
    )
    .await;
    assert_eq!(s, 200, "{r}");
    let (_, m) = admin_get(&d, "/v1/shops/demo/members/lookup?email=ada@example.com").await;
    assert_eq!(m["tags"], serde_json::json!(["oat-milk", "vip"]), "{m}");
    let (_, r) = post_shopify(&d, "demo", "orders/paid", "wh-1", &order(1), SHOPIFY_SECRET).await;
    assert_eq!(r["points"], 22, "a VIP earns double: {r}");
    // The POS drops the tag; the next sale earns single.
    let untagged = String::from_utf8(fixture("customers-update.json"))
        .unwrap()
        .replace("\"oat-milk, vip\"", "\"oat-milk\"");
    post_shopify(
        &d,
        "demo",
        "customers/update",
        "wh-c2",
        untagged.as_bytes(),
        SHOPIFY_SECRET,
    )
    .await;
    let (_, r) = post_shopify(&d, "demo", "orders/paid", "wh-2", &order(2), SHOPIFY_SECRET).await;
    assert_eq!(r["points"], 11, "{r}");
    assert!(d.terminate().success());

    // Replaying the same rules changes nothing: each sale is rescored with its own tags.
    let candidate = setup.dir.path().join("candidate.toml");
    std::fs::write(&candidate, rules).unwrap();
    let config = setup.config_path();
    let (ok, out, err) = run_cli(&[
        "whatif",
        "--config",
        config.to_str().unwrap(),
        "--shop",
        "demo",
        "--rules",
        candidate.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (
            r[0]["current_points"].as_i64(),
            r[0]["candidate_points"].as_i64()
        ),
        (Some(33), Some(33)),
        "{r}"
    );
}
