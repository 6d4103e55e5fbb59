//! Storage faults against the real binary (issue 8, fault injection): a full disk and
//! a data directory that refuses every write, then space returning.
//!
//! How the faults are made, without special hardware or privileges: the test lowers
//! the running daemon's file size limit (`RLIMIT_FSIZE`, through `prlimit(2)` on its
//! pid). sled writes its log by appending to the file `db`, so a limit at the file's
//! current size is a full disk (the log cannot grow; EFBIG where a full disk gives
//! ENOSPC), and a limit of 0 is a file system that refuses every write, like one
//! remounted read-only after an error (EFBIG where it gives EROFS). Raising the limit
//! again is space returning. (chmod of the directory would not do: sled's files are
//! already open, and root ignores modes.) Where the test may mount, a third test fills
//! a real tmpfs for a genuine ENOSPC.
//!
//! What the daemon must do: every webhook answers 503 `storage_unavailable` while
//! writes fail and nothing is acknowledged that is not on disk; `/readyz` is not
//! ready; the log names the failure. sled keeps a failed write's error until the
//! database is reopened, so once the directory takes writes again the daemon exits
//! with status 75 for the service manager to restart it. After the restart every
//! acknowledged sale is there, and re-sending every webhook that got 503 applies it
//! exactly once.

#![cfg(target_os = "linux")]

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

const POINTS_PER_SALE: i64 = 11;
const REDEEMED: i64 = 5;
const ADA: &str = "/v1/shops/demo/members/lookup?email=ada@example.com";
/// Sales acknowledged before the fault.
const BEFORE: u64 = 10;
/// Webhooks that must be refused while the fault lasts.
const REFUSALS: usize = 40;
/// Writes the fault may still let through before the first refusal (a tmpfs page
/// already allocated to the log has room for a few small ones).
const SLACK: usize = 20;

async fn sale(d: &Daemon, n: u64) -> (u16, Value) {
    post_shopify(
        d,
        "demo",
        "orders/paid",
        &format!("wh-{n}"),
        &order(n),
        SHOPIFY_SECRET,
    )
    .await
}

async fn redeem(d: &Daemon, member: &str) -> (u16, Value, bool) {
    admin_post(
        d,
        &format!("/v1/shops/demo/members/{member}/redemptions"),
        Some("redeem-during-the-fault"),
        &format!(r#"{{"points": {REDEEMED}}}"#),
    )
    .await
}

fn assert_refused(status: u16, body: &Value, what: &str) {
    assert_eq!(status, 503, "{what}: {body}");
    assert_eq!(
        body["error"]["code"], "storage_unavailable",
        "{what}: {body}"
    );
}

fn logs_contain(logs: &Logs, needle: &str) -> bool {
    logs.lock().unwrap().iter().any(|l| l.contains(needle))
}

/// What one scenario saw (printed; run with `--nocapture` to read them).
struct Figures {
    /// Sales answered 200 (before the fault, and while it let writes through).
    acknowledged: usize,
    /// Webhooks answered 503 while the fault lasted (sales, plus one duplicate of an
    /// acknowledged sale and one redemption).
    refused: usize,
    /// Refused sales found already on disk after the restart (a flush failed after
    /// their write had in fact landed): answered as duplicates, counted once.
    refused_but_present: usize,
    /// Sales re-sent after the restart that were missing from the ledger.
    lost: usize,
}

/// Warm up, inject the fault, check the refusals, clear it, check the restart and
/// that every sale counts once. `error_text` is what the log must say failed.
async fn scenario(
    setup: &Setup,
    inject: impl FnOnce(&Daemon),
    clear: impl FnOnce(&Daemon),
    error_text: &str,
) {
    let config = setup.config_path();
    let (d, logs) = Daemon::start_with_logs(&config);
    let mut acked = Vec::new();
    for n in 1..=BEFORE {
        let (status, body) = sale(&d, n).await;
        assert_eq!(status, 200, "{body}");
        acked.push(n);
    }
    let (_, ada) = admin_get(&d, ADA).await;
    let member = ada["id"].as_str().unwrap().to_string();
    let ready = reqwest::get(d.url("/readyz")).await.unwrap();
    let ready_body: Value = ready.json().await.unwrap();
    assert_eq!(ready_body["checks"]["database"], true, "{ready_body}");

    inject(&d);

    // Until the first refusal a write may still fit; from then on nothing is
    // acknowledged.
    let mut refused = Vec::new();
    let mut n = BEFORE;
    while refused.len() < REFUSALS {
        n += 1;
        let (status, body) = sale(&d, n).await;
        if refused.is_empty() && status == 200 {
            assert!(
                acked.len() < BEFORE as usize + SLACK,
                "the fault never made a write fail"
            );
            acked.push(n);
            continue;
        }
        assert_refused(status, &body, &format!("sale {n} during the fault"));
        refused.push(n);
    }
    // Not even the duplicate of a sale on disk is acknowledged, nor an admin write.
    let (status, body) = sale(&d, 1).await;
    assert_refused(status, &body, "a duplicate during the fault");
    let (status, body, _) = redeem(&d, &member).await;
    assert_refused(status, &body, "a redemption during the fault");

    let ready = reqwest::get(d.url("/readyz")).await.unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    let ready_body: Value = ready.json().await.unwrap();
    assert_eq!(ready_body["status"], "not_ready", "{ready_body}");
    assert_eq!(ready_body["checks"]["database"], false, "{ready_body}");
    assert!(
        ready_body["storage_failed_since"].is_string(),
        "{ready_body}"
    );
    assert!(logs_contain(&logs, "storage failed"));
    assert!(
        logs_contain(&logs, error_text),
        "the log names {error_text:?}"
    );

    // Space returns: the daemon notices and stops with the restart status.
    clear(&d);
    let status = d.wait_exit();
    assert_eq!(status.code(), Some(75), "{status}");
    assert!(logs_contain(&logs, "takes writes again"));
    assert!(logs_contain(
        &logs,
        "restarts loyaltyd with the store reopened"
    ));
    for secret in [SHOPIFY_SECRET, ADMIN_TOKEN, "ada@example.com"] {
        assert!(!logs_contain(&logs, secret), "the log shows {secret:?}");
    }

    // The service manager starts it again (Restart=on-failure).
    let d = setup.start();
    let mut lost = 0;
    for &n in &acked {
        let (status, body) = sale(&d, n).await;
        assert_eq!(status, 200, "{body}");
        if body["duplicate"] != true {
            lost += 1;
        }
    }
    let mut refused_but_present = 0;
    for &n in &refused {
        let (status, body) = sale(&d, n).await;
        assert_eq!(status, 200, "re-sent sale {n}: {body}");
        assert_eq!(body["status"], "applied", "{body}");
        if body["duplicate"] == true {
            refused_but_present += 1;
        }
    }
    let (status, first, _) = redeem(&d, &member).await;
    assert!(status == 200 || status == 201, "{first}");
    let (_, again, replayed) = redeem(&d, &member).await;
    assert!(replayed);
    assert_eq!(again, first);
    // Everything once more: all duplicates now.
    for &n in acked.iter().chain(&refused) {
        let (status, body) = sale(&d, n).await;
        assert_eq!((status, &body["duplicate"]), (200, &Value::Bool(true)));
    }

    let sales = (acked.len() + refused.len()) as i64;
    let (_, ada) = admin_get(&d, ADA).await;
    assert_eq!(ada["points"]["lifetime"], sales * POINTS_PER_SALE, "{ada}");
    assert_eq!(
        ada["points"]["available"],
        sales * POINTS_PER_SALE - REDEEMED,
        "{ada}"
    );
    let (_, ledger) = admin_get(
        &d,
        &format!("/v1/shops/demo/members/{member}/ledger?limit=1000"),
    )
    .await;
    let entries = ledger["entries"].as_array().unwrap();
    assert_eq!(
        entries.len() as i64,
        sales + 1,
        "one entry per sale, one redemption"
    );
    assert!(d.terminate().success());

    let (ok, out, err) = run_cli(&["verify", "--config", config.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("shop demo: ok"), "{out}");

    // Refusals: the sales, the duplicate and the redemption.
    let figures = Figures {
        acknowledged: acked.len(),
        refused: refused.len() + 2,
        refused_but_present,
        lost,
    };
    println!(
        "acknowledged {}, refused {}, refused but already on disk {}, lost {}",
        figures.acknowledged, figures.refused, figures.refused_but_present, figures.lost
    );
    assert_eq!(figures.refused, REFUSALS + 2);
    assert_eq!(figures.lost, 0);
}

fn log_size(setup: &Setup) -> u64 {
    std::fs::metadata(setup.dir.path().join("data/db"))
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_full_disk_webhooks_get_503_and_after_the_restart_every_sale_counts_exactly_once() {
    let setup = Setup::new(1024 * 1024);
    // The log may not grow past its size when the fault starts.
    scenario(
        &setup,
        |d| d.limit_file_size(Some(log_size(&setup))),
        |d| d.limit_file_size(None),
        "File too large",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_data_dir_that_refuses_every_write_gets_503_until_writes_work_again_and_loses_nothing() {
    let setup = Setup::new(1024 * 1024);
    // Not one byte may be written to any file.
    scenario(
        &setup,
        |d| d.limit_file_size(Some(0)),
        |d| d.limit_file_size(None),
        "File too large",
    )
    .await;
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Fill the file system holding `path` with a file there.
fn fill(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0x5a_u8; 64 * 1024];
    loop {
        if let Err(e) = f.write_all(&chunk).and_then(|_| f.sync_all()) {
            assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_really_full_tmpfs_webhooks_get_503_and_after_the_restart_every_sale_counts_once() {
    let setup = Setup::new(1024 * 1024);
    let disk = setup.dir.path().join("disk");
    let _tmpfs = match Tmpfs::mount(&disk, "16m") {
        Ok(t) => t,
        Err(e) => {
            // Containers without CAP_SYS_ADMIN; the RLIMIT_FSIZE tests cover the path.
            eprintln!("SKIPPED: cannot mount a tmpfs here ({e})");
            return;
        }
    };
    let config = setup.config_path();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &setup.dir.path().join("data").display().to_string(),
        &disk.join("data").display().to_string(),
    );
    std::fs::write(&config, text).unwrap();
    let filler = disk.join("filler");
    scenario(
        &setup,
        |_| fill(&filler),
        |_| std::fs::remove_file(&filler).unwrap(),
        "No space left on device",
    )
    .await;
}
