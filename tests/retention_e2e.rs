//! End to end: the daemon's job loop prunes dedupe and sent-notification records past
//! the `[storage]` windows, and nothing a refund, a redelivery or `verify` needs goes
//! with them.
//!
//! Records cannot be made old by waiting, so the test ages them: it stops the daemon,
//! moves the `recorded_at` of one delivery's dedupe record and the `sent_at` of every
//! sent record 40 days back in the stopped daemon's sled database, and starts it again.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use serde_json::Value;

const ADA_LOOKUP: &str = "/v1/shops/demo/members/lookup?email=ada@example.com";

/// The daemon with the retention module's log lines on stderr, sent to `logs`.
fn start_logging(config: &Path) -> (Child, String, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_loyaltyd"))
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn,loyaltyd::ledger::retention=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (addr_tx, addr_rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(a) = line.strip_prefix("loyaltyd listening on ") {
                let _ = addr_tx.send(a.to_string());
            }
        }
    });
    let (log_tx, log_rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("{line}");
            let _ = log_tx.send(line);
        }
    });
    let base = addr_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("loyaltyd did not print its address");
    (child, base, log_rx)
}

fn terminate(mut child: Child) {
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
}

/// Move a JSON record's timestamp field back by `days`.
fn age(value: &[u8], field: &str, days: i64) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(value).unwrap();
    let at: chrono::DateTime<chrono::Utc> = v[field].as_str().unwrap().parse().unwrap();
    v[field] = Value::String((at - chrono::Duration::days(days)).to_rfc3339());
    serde_json::to_vec(&v).unwrap()
}

async fn post(base: &str, topic: &str, id: &str, body: &[u8]) -> Value {
    let resp = client()
        .post(format!("{base}/webhooks/demo/shopify"))
        .header("X-Shopify-Topic", topic)
        .header("X-Shopify-Webhook-Id", id)
        .header(
            "X-Shopify-Hmac-Sha256",
            shopify_signature(SHOPIFY_SECRET, body),
        )
        .header("Content-Type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    resp.json().await.unwrap()
}

async fn ada(base: &str) -> Value {
    let resp = client()
        .get(format!("{base}{ADA_LOOKUP}"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    resp.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_job_loop_prunes_old_dedupe_and_sent_records_and_keeps_what_refunds_and_verify_need() {
    let setup = Setup::new(1024 * 1024);
    let config = setup.config_path();
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replacen(
        "[storage]\n",
        "[storage]\ndedupe_retention_days = 3\nsent_retention_days = 7\n",
        1,
    );
    std::fs::write(&config, text).unwrap();
    let data = setup.dir.path().join("data");

    // Two sales by Ada; every notice delivered (the daemon delivers what is queued
    // before it stops).
    let (daemon, base, _) = start_logging(&config);
    let old_sale = fixture("orders-paid-pos.json");
    let new_sale = order(1002);
    let r = post(&base, "orders/paid", "wh-old", &old_sale).await;
    assert_eq!(
        (r["status"].as_str(), r["points"].as_i64()),
        (Some("applied"), Some(11))
    );
    let first_new = post(&base, "orders/paid", "wh-new", &new_sale).await;
    assert_eq!(first_new["status"], "applied");
    terminate(daemon);

    // Age wh-old's dedupe record and every sent record by 40 days.
    let sent_before = {
        let db = sled::Config::new().path(&data).open().unwrap();
        let index = db.open_tree("index").unwrap();
        let mut aged = 0;
        for item in index.scan_prefix(b"d\0demo\0") {
            let (k, v) = item.unwrap();
            if k.ends_with(b"\0wh-old") {
                index.insert(&k, age(&v, "recorded_at", 40)).unwrap();
                aged += 1;
            }
        }
        assert_eq!(aged, 1, "wh-old's dedupe record");
        let sent = db.open_tree("outbox_sent").unwrap();
        for item in sent.iter() {
            let (k, v) = item.unwrap();
            sent.insert(&k, age(&v, "sent_at", 40)).unwrap();
        }
        assert_eq!(db.open_tree("outbox").unwrap().len(), 0, "all delivered");
        db.flush().unwrap();
        sent.len()
    };
    assert!(sent_before >= 2, "one notice per sale at least");

    // The first pass of the job loop runs at start-up.
    let (daemon, base, logs) = start_logging(&config);
    let line = loop {
        // A failure bound only (the pass takes milliseconds), not a timing check.
        match logs.recv_timeout(Duration::from_secs(60)) {
            Ok(l) if l.contains("retention pruned") => break l,
            Ok(_) => continue,
            Err(e) => panic!("no retention pass logged: {e}"),
        }
    };
    assert!(line.contains("dedupe=1"), "{line}");
    assert!(line.contains(&format!("sent={sent_before}")), "{line}");

    // Inside the window: wh-new is still a duplicate with its first answer.
    let again = post(&base, "orders/paid", "wh-new", &new_sale).await;
    assert_eq!(again["duplicate"], true, "{again}");
    assert_eq!(again["member_id"], first_new["member_id"]);
    // Past it: wh-old is recognised by its order record and posts nothing.
    let late = post(&base, "orders/paid", "wh-old", &old_sale).await;
    assert_eq!(late["status"], "already_scored", "{late}");
    assert_eq!(ada(&base).await["points"]["available"], 22);

    // A refund of the order whose dedupe record went reverses exactly its share, once.
    let refund = fixture("refunds-create-partial.json");
    let r = post(&base, "refunds/create", "wh-refund", &refund).await;
    assert_eq!(
        (r["status"].as_str(), r["points"].as_i64()),
        (Some("reversed"), Some(2)),
        "{r}"
    );
    let r = post(&base, "refunds/create", "wh-refund-2", &refund).await;
    assert_eq!(r["status"], "already_scored", "{r}");
    assert_eq!(ada(&base).await["points"]["available"], 20);
    terminate(daemon);

    // verify still finds a notice for every posting, pruned or not.
    let (ok, out, err) = run_cli(&["verify", "--config", config.to_str().unwrap()]);
    assert!(ok, "verify failed:\n{out}\n{err}");
}
