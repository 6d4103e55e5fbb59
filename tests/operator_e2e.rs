//! End to end: the operator endpoints — member list and search with cursor pagination,
//! profile updates, program activity per day and rule, webhook deliveries.

mod common;

use common::*;

async fn patch(d: &Daemon, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .patch(d.url(path))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or_default())
}

/// The fixture order, bought by customer `n` (own id, e-mail and phone).
fn order_by(n: u64) -> Vec<u8> {
    order_for(n, n)
}

/// Order number `order_no` bought by customer `n`.
fn order_for(order_no: u64, n: u64) -> Vec<u8> {
    String::from_utf8(order(order_no))
        .unwrap()
        .replace("7391022153765", &format!("73910221537{n:02}"))
        .replace("ada@example.com", &format!("buyer{n}@example.com"))
        .replace("+15145550142", &format!("+151455501{n:02}"))
        .into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn members_are_listed_in_pages_and_found_by_search() {
    let setup = Setup::new(1024 * 1024);
    let d = setup.start();
    for n in 1..=5u64 {
        let (s, r) = post_shopify(
            &d,
            "demo",
            "orders/paid",
            &format!("wh-{n}"),
            &order_by(n),
            SHOPIFY_SECRET,
        )
        .await;
        assert_eq!(s, 200, "{r}");
    }
    // Pages of two, following the cursor, cover everyone once.
    let mut seen = Vec::new();
    let mut path = "/v1/shops/demo/members?limit=2".to_string();
    for _ in 0..5 {
        let (s, page) = admin_get(&d, &path).await;
        assert_eq!(s, 200, "{page}");
        let members = page["members"].as_array().unwrap();
        assert!(members.len() <= 2);
        seen.extend(
            members
                .iter()
                .map(|m| m["id"].as_str().unwrap().to_string()),
        );
        match page["next"].as_str() {
            Some(next) => path = format!("/v1/shops/demo/members?limit=2&after={next}"),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (5, 5), "{seen:?}");
    // Search by e-mail fragment.
    let (_, found) = admin_get(&d, "/v1/shops/demo/members?q=BUYER3@").await;
    let found = found["members"].as_array().unwrap().clone();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["email"], "buyer3@example.com");
    assert_eq!(found[0]["points"]["available"], 11);
    // Bad cursor and limit are 400s with JSON errors.
    let (s, e) = admin_get(&d, "/v1/shops/demo/members?limit=0").await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (400, Some("invalid_limit"))
    );
    let (s, e) = admin_get(&d, "/v1/shops/demo/members?after=nope").await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (400, Some("invalid_cursor"))
    );

    // Staff set a birthday and tags.
    let id = found[0]["id"].as_str().unwrap();
    let (s, r) = patch(
        &d,
        &format!("/v1/shops/demo/members/{id}/profile"),
        serde_json::json!({"birthday": "1990-03-12", "tags": ["Card", " vip "]}),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    let (_, m) = admin_get(&d, &format!("/v1/shops/demo/members/{id}")).await;
    assert_eq!(m["tags"], serde_json::json!(["card", "vip"]), "{m}");
    let (s, _) = patch(
        &d,
        &format!("/v1/shops/demo/members/{id}/profile"),
        serde_json::json!({"birthday": "12/03/1990"}),
    )
    .await;
    assert_eq!(s, 400);
    assert!(d.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn activity_reports_points_per_day_and_rules_by_points_issued() {
    let setup = Setup::new(1024 * 1024);
    let d = setup.start();
    for n in 1..=3u64 {
        post_shopify(
            &d,
            "demo",
            "orders/paid",
            &format!("wh-{n}"),
            &order(n),
            SHOPIFY_SECRET,
        )
        .await;
    }
    let (s, r) = admin_get(&d, "/v1/shops/demo/reports/activity").await;
    assert_eq!(s, 200, "{r}");
    let days = r["days"].as_array().unwrap();
    assert_eq!(days.len(), 1, "{r}");
    assert_eq!(days[0]["issued"], 33);
    assert_eq!(days[0]["postings"], 3);
    assert_eq!(r["top_rules"][0]["rule_id"], "earn.base");
    assert_eq!(r["top_rules"][0]["points"], 33);
    assert_eq!(r["top_rules"][0]["sales"], 3);
    let (s, _) = admin_get(
        &d,
        "/v1/shops/demo/reports/activity?from=2026-12-01&to=2026-11-01",
    )
    .await;
    assert_eq!(s, 400);
    // The same totals in the metrics, with the database size.
    let metrics = reqwest::get(d.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l == "loyaltyd_points{shop=\"demo\",account=\"issued\"} 33"),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("loyaltyd_storage_size_bytes ") && !l.ends_with(" 0")),
        "{metrics}"
    );
    assert!(d.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_and_request_ids_are_reported() {
    let setup = Setup::new(1024 * 1024);
    let d = setup.start();
    // The worker passes at start; readiness follows within a moment.
    let mut ready = None;
    for _ in 0..100 {
        let r = reqwest::get(d.url("/readyz")).await.unwrap();
        if r.status() == 200 {
            ready = Some(r.json::<serde_json::Value>().await.unwrap());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let ready = ready.expect("/readyz never became 200");
    assert_eq!(ready["checks"]["notifier"], true, "{ready}");
    assert_eq!(ready["checks"]["database"], true);
    // A request id is generated, or kept when the proxy sends one.
    let r = reqwest::get(d.url("/healthz")).await.unwrap();
    assert!(r.headers().get("x-request-id").is_some());
    let r = reqwest::Client::new()
        .get(d.url("/healthz"))
        .header("x-request-id", "proxy-1234")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "proxy-1234");
    assert!(d.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn webhook_deliveries_show_accepted_and_rejected_requests_per_adapter_without_bodies() {
    let setup = Setup::new(1024 * 1024);
    let d = setup.start();
    post_shopify(&d, "demo", "orders/paid", "wh-1", &order(1), SHOPIFY_SECRET).await;
    post_shopify(&d, "demo", "orders/paid", "wh-2", &order(2), "wrong-secret").await;
    let (s, r) = admin_get(&d, "/v1/shops/demo/webhooks/deliveries").await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["adapters"]["shopify"]["accepted"], 1, "{r}");
    assert_eq!(r["adapters"]["shopify"]["rejected"], 1, "{r}");
    let newest = &r["deliveries"][0];
    assert_eq!(newest["class"], "rejected");
    assert_eq!(newest["status"], 401);
    assert_eq!(newest["outcome"], "invalid_signature");
    let text = r.to_string();
    assert!(!text.contains("ada@example.com") && !text.contains(SHOPIFY_SECRET));
    let (_, only) = admin_get(&d, "/v1/shops/demo/webhooks/deliveries?class=accepted").await;
    assert_eq!(only["deliveries"].as_array().unwrap().len(), 1);
    assert!(d.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn merging_two_members_moves_identities_points_and_refunds_and_the_books_still_verify() {
    let setup = Setup::new(1024 * 1024);
    let d = setup.start();
    // Buyer 1 twice, buyer 2 once: the same person with two accounts.
    for (wh, n) in [("wh-1", 1u64), ("wh-2", 2)] {
        post_shopify(&d, "demo", "orders/paid", wh, &order_by(n), SHOPIFY_SECRET).await;
    }
    let (s, r) = post_shopify(
        &d,
        "demo",
        "orders/paid",
        "wh-3",
        &order_for(3, 1),
        SHOPIFY_SECRET,
    )
    .await;
    assert_eq!(r["points"], 11, "{s} {r}");
    let (_, a) = admin_get(&d, "/v1/shops/demo/members/lookup?email=buyer1@example.com").await;
    let (_, b) = admin_get(&d, "/v1/shops/demo/members/lookup?email=buyer2@example.com").await;
    assert_eq!(
        (
            a["points"]["available"].as_i64(),
            b["points"]["available"].as_i64()
        ),
        (Some(22), Some(11))
    );
    let (a_id, b_id) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());

    let body = format!(
        "{{\"into\": \"{a_id}\", \"from\": \"{b_id}\", \"reason\": \"same person, two cards\"}}"
    );
    let (s, r, _) = admin_post(&d, "/v1/shops/demo/members/merge", None, &body).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["moved"]["available"], 11);
    // Buyer 2's e-mail now finds the survivor, with both balances.
    let (_, m) = admin_get(&d, "/v1/shops/demo/members/lookup?email=buyer2@example.com").await;
    assert_eq!(m["id"], a_id);
    assert_eq!(m["points"]["available"], 33, "{m}");
    // Merging again is refused.
    let (s, r, _) = admin_post(&d, "/v1/shops/demo/members/merge", None, &body).await;
    assert_eq!(
        (s, r["error"]["code"].as_str()),
        (409, Some("merge_refused")),
        "{r}"
    );
    // Cancelling buyer 2's old order takes its points from the survivor.
    let cancelled = String::from_utf8(fixture("orders-cancelled.json"))
        .unwrap()
        .replace("5812403339301", "2");
    let (s, r) = post_shopify(
        &d,
        "demo",
        "orders/cancelled",
        "wh-c",
        cancelled.as_bytes(),
        SHOPIFY_SECRET,
    )
    .await;
    assert_eq!((s, r["points"].as_i64()), (200, Some(11)), "{r}");
    let (_, m) = admin_get(&d, &format!("/v1/shops/demo/members/{a_id}")).await;
    assert_eq!(m["points"]["available"], 22, "{m}");
    // The journal names the actor and the reason; the books verify.
    let (_, ledger) = admin_get(&d, &format!("/v1/shops/demo/members/{a_id}/ledger")).await;
    let merge = ledger["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "merge")
        .cloned()
        .unwrap_or_default();
    assert_eq!(merge["actor"], "admin", "{ledger}");
    assert!(
        merge["reason"]
            .as_str()
            .unwrap_or("")
            .contains("same person"),
        "{merge}"
    );
    assert!(d.terminate().success());
    let (ok, out, err) = run_cli(&["verify", "--config", setup.config_path().to_str().unwrap()]);
    assert!(ok, "{out}{err}");
}
