//! Fault injection for the time-driven jobs: maturation, expiry and birthday bonuses
//! over a ledger of many members, with the job process SIGKILLed part-way through —
//! several times — and run again. Every due lot must mature and expire exactly once,
//! every birthday bonus be given exactly once, the books must verify after every kill,
//! and a run after completion must change nothing.
//!
//! Progress is read from the ledger itself (the journal export of the killed run's
//! data), never from hooks in the daemon.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// Members in the ledger: enough that one job run takes seconds, not milliseconds.
const MEMBERS: usize = 1200;
/// Every third member has a birthday on the day the jobs run.
fn has_birthday_on_job_day(i: usize) -> bool {
    i % 3 == 0
}
/// The job clock: 10 December 2026, noon in New York (the shop's zone).
const JOB_AT: &str = "2026-12-10T17:00:00Z";
const BIRTHDAY_BONUS: i64 = 25;

/// Returns window 14 days, lots valid 365 days, a birthday bonus.
const RULES: &str = r#"[earn]
points_per_unit = "1"
rounding = "floor"

[points]
pending_days = 14
expiry = "fixed"
expiry_days = 365

[bonuses]
birthday = 25
"#;

/// What the webhooks put in the ledger for one member.
#[derive(Debug, Clone)]
struct Seeded {
    member_id: String,
    /// Points of the March 2025 sale: pending since, due to mature, then lapsed in March 2026.
    old_sale: i64,
    /// Points of the November 2026 sale: due to mature on 4 December 2026, valid a year.
    new_sale: i64,
    birthday_today: bool,
}

fn shopify_order(i: usize, which: u64, processed_at: &str, quantity: u64) -> Vec<u8> {
    let mut o: Value = serde_json::from_slice(&fixture("orders-paid-pos.json")).unwrap();
    let email = format!("member{i}@example.com");
    o["id"] = json!(9_000_000_000u64 + (i as u64) * 10 + which);
    o["created_at"] = json!(processed_at);
    o["processed_at"] = json!(processed_at);
    o["email"] = json!(email);
    o["phone"] = Value::Null;
    o["customer"] = json!({"id": 7_000_000 + i, "email": email, "first_name": "Member",
        "last_name": format!("{i}"), "state": "enabled", "verified_email": true});
    o["line_items"][0]["quantity"] = json!(quantity);
    serde_json::to_vec(&o).unwrap()
}

fn shopify_customer(i: usize) -> Vec<u8> {
    let birthday = if has_birthday_on_job_day(i) {
        "1990-12-10"
    } else if i % 3 == 1 {
        "1985-06-01"
    } else {
        ""
    };
    let mut c = json!({"id": 7_000_000 + i, "email": format!("member{i}@example.com"),
        "first_name": "Member", "last_name": format!("{i}"), "state": "enabled",
        "verified_email": true, "currency": "USD",
        "created_at": "2025-02-01T09:00:00-05:00", "updated_at": "2025-02-01T09:00:00-05:00"});
    if !birthday.is_empty() {
        c["birthday"] = json!(birthday);
    }
    serde_json::to_vec(&c).unwrap()
}

/// Create the members through signed webhooks: a customer record, then two sales.
async fn seed(d: &Daemon) -> Vec<Seeded> {
    let d = std::sync::Arc::new(d.base.clone());
    let mut set = tokio::task::JoinSet::new();
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(24));
    for i in 0..MEMBERS {
        let (base, sem) = (d.clone(), sem.clone());
        set.spawn(async move {
            let _permit = sem.acquire_owned().await.unwrap();
            let post = |topic: &'static str, id: String, body: Vec<u8>| {
                let base = base.clone();
                async move {
                    let resp = client()
                        .post(format!("{base}/webhooks/demo/shopify"))
                        .header("X-Shopify-Topic", topic)
                        .header("X-Shopify-Webhook-Id", id)
                        .header(
                            "X-Shopify-Hmac-Sha256",
                            shopify_signature(SHOPIFY_SECRET, &body),
                        )
                        .header("Content-Type", "application/json")
                        .body(body)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(resp.status().as_u16(), 200);
                    resp.json::<Value>().await.unwrap()
                }
            };
            let r = post("customers/create", format!("c-{i}"), shopify_customer(i)).await;
            let member_id = r["member_id"].as_str().unwrap().to_string();
            let q_old = 1 + (i % 4) as u64;
            let q_new = 1 + (i % 5) as u64;
            let old = post(
                "orders/paid",
                format!("o-{i}-old"),
                shopify_order(i, 1, "2025-03-01T10:00:00-05:00", q_old),
            )
            .await;
            let new = post(
                "orders/paid",
                format!("o-{i}-new"),
                shopify_order(i, 2, "2026-11-20T10:14:03-05:00", q_new),
            )
            .await;
            for r in [&old, &new] {
                assert_eq!(r["status"], "applied", "{r}");
                assert_eq!(r["member_id"], member_id.as_str(), "{r}");
            }
            (
                i,
                Seeded {
                    member_id,
                    old_sale: old["points"].as_i64().unwrap(),
                    new_sale: new["points"].as_i64().unwrap(),
                    birthday_today: has_birthday_on_job_day(i),
                },
            )
        });
    }
    let mut out: Vec<(usize, Seeded)> = Vec::new();
    while let Some(r) = set.join_next().await {
        out.push(r.unwrap());
    }
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, s)| s).collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// A config directory with the shop's rules whose data lives in `data`.
fn config_with_data(setup: &Setup, dir: &Path, data: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("rules.toml"), RULES).unwrap();
    let text = std::fs::read_to_string(setup.config_path())
        .unwrap()
        .replace(
            &format!("path = \"{}\"", setup.dir.path().join("data").display()),
            &format!("path = \"{}\"", data.display()),
        );
    assert!(text.contains(&data.display().to_string()));
    let path = dir.join("loyaltyd.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn spawn_jobs(config: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_loyaltyd"))
        .args(["jobs", "run", "--config"])
        .arg(config)
        .args(["--at", JOB_AT])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// One journal posting, as exported.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Row {
    kind: String,
    member: String,
    account: String,
    amount: i64,
    key: String,
}

fn journal(config: &Path) -> Vec<(u64, Row)> {
    let (ok, out, err) = run_cli(&[
        "export",
        "journal",
        "--format",
        "csv",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert!(ok, "export failed: {err}");
    let mut r = csv::Reader::from_reader(out.as_bytes());
    let h = r.headers().unwrap().clone();
    let col = |name: &str| h.iter().position(|c| c == name).unwrap();
    let (seq, kind, member, account, amount, key) = (
        col("seq"),
        col("kind"),
        col("member_id"),
        col("account"),
        col("amount"),
        col("idempotency_key"),
    );
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            (
                rec[seq].parse().unwrap(),
                Row {
                    kind: rec[kind].to_string(),
                    member: rec[member].to_string(),
                    account: rec[account].to_string(),
                    amount: rec[amount].parse().unwrap(),
                    key: rec[key].to_string(),
                },
            )
        })
        .collect()
}

/// Postings made by the jobs, by kind.
fn job_postings(rows: &[(u64, Row)]) -> BTreeMap<String, usize> {
    let mut seqs: BTreeMap<String, std::collections::BTreeSet<u64>> = BTreeMap::new();
    for (seq, r) in rows {
        if r.key.starts_with("job:") || r.key.starts_with("bonus:birthday:") {
            seqs.entry(r.kind.clone()).or_default().insert(*seq);
        }
    }
    seqs.into_iter().map(|(k, v)| (k, v.len())).collect()
}

fn verify(config: &Path) {
    let (ok, out, err) = run_cli(&["verify", "--config", config.to_str().unwrap()]);
    assert!(ok, "verify failed:\n{out}\n{err}");
}

/// Run `jobs run` on `config`, SIGKILLing it after `delay` unless it ends first.
/// Returns whether it ran to the end.
fn run_and_kill(config: &Path, delay: Duration) -> bool {
    let mut child = spawn_jobs(config);
    let deadline = Instant::now() + delay;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            assert!(status.success(), "jobs run failed: {err}");
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    false
}

/// Sum the job postings in a journal.
fn job_work(rows: &[(u64, Row)]) -> usize {
    job_postings(rows).values().sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_killed_part_way_finish_exactly_once_when_run_again() {
    let setup = Setup::new(1024 * 1024);
    std::fs::write(setup.dir.path().join("rules.toml"), RULES).unwrap();
    let d = setup.start();
    let members = seed(&d).await;
    assert_eq!(d.terminate().code(), Some(0));
    let base = setup.dir.path().join("data");
    let birthdays = members.iter().filter(|m| m.birthday_today).count();
    // One maturation and one expiry per member, one bonus per birthday.
    let total = 2 * MEMBERS + birthdays;

    // A reference run, never interrupted, on a copy: what the interrupted runs must
    // end up with, and how long a run takes on this machine.
    let ref_dir = setup.dir.path().join("reference");
    let reference = config_with_data(&setup, &ref_dir, &ref_dir.join("data"));
    copy_dir(&base, &ref_dir.join("data"));
    let started = Instant::now();
    assert!(run_and_kill(&reference, Duration::from_secs(600)));
    let full_run = started.elapsed();
    let reference_journal = journal(&reference);
    assert_eq!(job_work(&reference_journal), total);

    // The same jobs on another copy, SIGKILLed part-way, again and again, until a run
    // gets to the end. The books must verify after every kill.
    let work_dir = setup.dir.path().join("work");
    let work = config_with_data(&setup, &work_dir, &work_dir.join("data"));
    copy_dir(&base, &work_dir.join("data"));
    let mut delay = full_run.mul_f64(0.3);
    let mut done = 0;
    let mut mid_run_kills = 0;
    let mut rounds = Vec::new();
    let mut finished = false;
    for _ in 0..15 {
        if run_and_kill(&work, delay) {
            finished = true;
            rounds.push(format!("ran to the end within {delay:?}"));
            break;
        }
        verify(&work);
        let kinds = job_postings(&journal(&work));
        let now_done: usize = kinds.values().sum();
        assert!(
            now_done >= done && now_done <= total,
            "{now_done} of {total} after {rounds:?}"
        );
        rounds.push(format!(
            "killed after {delay:?}: {kinds:?} of {total} postings"
        ));
        if now_done > done && now_done < total {
            mid_run_kills += 1;
        }
        if now_done == done {
            // Nothing reached the disk before the kill: give the next run longer.
            delay = delay.mul_f64(1.5);
        }
        done = now_done;
    }
    eprintln!("uninterrupted run {full_run:?}; rounds: {rounds:#?}");
    assert!(
        mid_run_kills >= 1,
        "no kill landed in the middle of a run: {rounds:#?}"
    );
    if !finished {
        assert!(run_and_kill(&work, Duration::from_secs(600)));
    }
    verify(&work);

    // Exactly once: the interrupted runs wrote the journal an uninterrupted run writes,
    // posting for posting.
    let work_journal = journal(&work);
    assert_eq!(work_journal.len(), reference_journal.len());
    assert!(work_journal == reference_journal, "journals differ");

    // And independently of the reference: one maturation of both sales, one expiry of
    // the old one, one birthday bonus for each member born on 10 December.
    let mut per_member: HashMap<&str, Vec<&Row>> = HashMap::new();
    for (_, r) in &work_journal {
        if r.key.starts_with("job:") || r.key.starts_with("bonus:birthday:") {
            per_member.entry(r.member.as_str()).or_default().push(r);
        }
    }
    let mut keys = std::collections::HashSet::new();
    for (_, r) in &work_journal {
        if r.account == "available" || r.account == "pending" {
            assert!(
                keys.insert((r.key.clone(), r.account.clone())),
                "{r:?} twice"
            );
        }
    }
    for m in &members {
        let rows = per_member.remove(m.member_id.as_str()).unwrap_or_default();
        let amount = |kind: &str, account: &str| -> Vec<i64> {
            rows.iter()
                .filter(|r| r.kind == kind && r.account == account)
                .map(|r| r.amount)
                .collect()
        };
        assert_eq!(
            amount("mature", "available"),
            [m.old_sale + m.new_sale],
            "{m:?}"
        );
        assert_eq!(amount("expire", "available"), [-m.old_sale], "{m:?}");
        let bonus: Vec<i64> = if m.birthday_today {
            vec![BIRTHDAY_BONUS]
        } else {
            vec![]
        };
        assert_eq!(amount("bonus", "available"), bonus, "{m:?}");
    }
    assert!(per_member.is_empty(), "job postings for unknown members");

    // Running the jobs again changes nothing.
    let (ok, out, err) = jobs_at(work.to_str().unwrap(), JOB_AT);
    assert!(ok, "{err}");
    assert!(
        out.contains("matured 0 points in 0 postings, expired 0 points in 0 postings, 0 tier changes, 0 birthday bonuses"),
        "{out}"
    );
    assert!(
        journal(&work) == work_journal,
        "a second run changed the journal"
    );
    verify(&work);

    // Balances, as the daemon reports them.
    let d = Daemon::start(&work);
    for m in &members {
        let (status, body) =
            admin_get(&d, &format!("/v1/shops/demo/members/{}", m.member_id)).await;
        assert_eq!(status, 200, "{body}");
        let bonus = if m.birthday_today { BIRTHDAY_BONUS } else { 0 };
        assert_eq!(
            body["points"]["available"],
            m.new_sale + bonus,
            "{m:?}: {body}"
        );
        assert_eq!(body["points"]["pending"], 0, "{m:?}: {body}");
    }
    assert_eq!(d.terminate().code(), Some(0));

    // A year later, the birthday comes round again: one more bonus each, once.
    let next_year = "2027-12-10T17:00:00Z";
    for _ in 0..2 {
        let (ok, _, err) = jobs_at(work.to_str().unwrap(), next_year);
        assert!(ok, "{err}");
    }
    let bonuses: BTreeMap<String, usize> = journal(&work)
        .iter()
        .filter(|(_, r)| r.kind == "bonus" && r.account == "available")
        .fold(BTreeMap::new(), |mut acc, (_, r)| {
            *acc.entry(r.member.clone()).or_default() += 1;
            acc
        });
    assert_eq!(bonuses.len(), birthdays);
    assert!(bonuses.values().all(|n| *n == 2), "{bonuses:?}");
    verify(&work);
}
