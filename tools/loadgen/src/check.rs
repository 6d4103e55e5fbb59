//! `loadgen check`: the crash test's verdict, run against a freshly restarted daemon.
//!
//! 1. Balances before replay: each customer's `points.available` must be at least the
//!    sum of its acked webhooks (less = an acknowledged sale was lost), and exactly the
//!    sum of the webhooks the replay finds already applied (more = applied twice).
//! 2. Replay every SENT webhook with its original id and body: an acked one must answer
//!    200 `"duplicate": true`; an unacked one may be a duplicate (committed, ack lost
//!    in the crash) or newly applied (never committed).
//! 3. Balances after replay: exactly the sum of every sent order's points (each order
//!    applied once).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use http::Uri;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::client::{self, HttpClient, Outcome};
use crate::gen::Webhook;
use crate::logs;

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Daemon base URL (plain HTTP).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Shop id.
    #[arg(long, default_value = "demo")]
    pub shop: String,
    /// Admin bearer token.
    #[arg(long, default_value = "demo-admin-token")]
    pub admin_token: String,
    /// The sent log written by `run --sent-log`.
    #[arg(long)]
    pub sent_log: PathBuf,
    /// The acked log written by `run --acked-log`.
    #[arg(long)]
    pub acked_log: PathBuf,
    /// Requests in flight during replay and lookups.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Only check acked webhooks and balances; do not replay unacked ones.
    #[arg(long)]
    pub acked_only: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replay {
    /// 200, duplicate: true, status applied: it had been committed once.
    WasApplied,
    /// 200, duplicate: false, status applied: it had never been committed.
    NewlyApplied,
    /// Anything else (already_scored, ignored, non-200, transport error after retries).
    Unexpected,
}

async fn with_retries<F, Fut>(mut f: F) -> Outcome
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Outcome>,
{
    let mut last = Outcome::Other("not tried".into());
    for attempt in 0..5u32 {
        last = f().await;
        match &last {
            Outcome::Response(s, _) if *s < 500 => return last,
            _ => tokio::time::sleep(Duration::from_millis(100 << attempt)).await,
        }
    }
    last
}

async fn lookup_all(
    client: &HttpClient,
    base: &str,
    shop: &str,
    token: &str,
    customers: &[u64],
    concurrency: usize,
) -> anyhow::Result<HashMap<u64, i64>> {
    let sem = Arc::new(Semaphore::new(concurrency));
    let mut set = tokio::task::JoinSet::new();
    for &c in customers {
        let permit = sem.clone().acquire_owned().await?;
        let uri: Uri =
            format!("{base}/v1/shops/{shop}/members/lookup?shopify_customer_id={c}").parse()?;
        let client = client.clone();
        let token = token.to_string();
        set.spawn(async move {
            let o = with_retries(|| {
                client::get(&client, uri.clone(), Some(&token), Duration::from_secs(10))
            })
            .await;
            drop(permit);
            (c, o)
        });
    }
    let mut out = HashMap::new();
    while let Some(r) = set.join_next().await {
        let (c, o) = r.context("lookup task panicked")?;
        let points = match o {
            Outcome::Response(404, _) => 0,
            Outcome::Response(200, body) => {
                let v: Value = serde_json::from_slice(&body)
                    .with_context(|| format!("customer {c}: lookup answer is not JSON"))?;
                points_of(&v["points"]["available"])
                    .with_context(|| format!("customer {c}: no points.available in {v}"))?
            }
            Outcome::Response(s, body) => anyhow::bail!(
                "customer {c}: lookup answered {s}: {}",
                String::from_utf8_lossy(&body)
            ),
            other => anyhow::bail!("customer {c}: lookup failed: {other:?}"),
        };
        out.insert(c, points);
    }
    Ok(out)
}

fn points_of(v: &Value) -> Option<i64> {
    if let Some(n) = v.as_i64() {
        return Some(n);
    }
    let s = v.as_str()?;
    let s = s.strip_suffix(".00").unwrap_or(s);
    s.parse().ok()
}

pub async fn check(a: CheckArgs) -> anyhow::Result<bool> {
    let base = client::base_url(&a.url)?;
    let sent = logs::read_sent(&a.sent_log)?;
    let acked = logs::read_acked(&a.acked_log)?;
    let client = client::new_client(a.concurrency);

    let by_id: HashMap<&str, &Webhook> = sent.iter().map(|w| (w.id.as_str(), w)).collect();
    let mut acked_ids: HashSet<&str> = HashSet::new();
    let mut problems: Vec<String> = Vec::new();
    let mut acked_sum: BTreeMap<u64, i64> = BTreeMap::new();
    let mut acked_not_sent = 0u64;
    for ack in &acked {
        if !acked_ids.insert(ack.id.as_str()) {
            continue;
        }
        *acked_sum.entry(ack.customer_id).or_default() += ack.expected_points as i64;
        match by_id.get(ack.id.as_str()) {
            Some(w)
                if w.order_id == ack.order_id
                    && w.customer_id == ack.customer_id
                    && w.expected_points == ack.expected_points => {}
            Some(_) => problems.push(format!("acked {} disagrees with its sent line", ack.id)),
            None => acked_not_sent += 1,
        }
    }
    if acked_not_sent > 0 {
        problems.push(format!(
            "{acked_not_sent} acked webhook(s) missing from the sent log (cannot replay them)"
        ));
    }
    let to_replay: Vec<&Webhook> = sent
        .iter()
        .filter(|w| !a.acked_only || acked_ids.contains(w.id.as_str()))
        .collect();
    let mut customers: Vec<u64> = sent
        .iter()
        .map(|w| w.customer_id)
        .chain(acked_sum.keys().copied())
        .collect();
    customers.sort_unstable();
    customers.dedup();
    eprintln!(
        "check: {} sent, {} acked, {} customer(s); reading balances",
        sent.len(),
        acked_ids.len(),
        customers.len()
    );

    // 1. Balances before replay.
    let before = lookup_all(
        &client,
        &base,
        &a.shop,
        &a.admin_token,
        &customers,
        a.concurrency,
    )
    .await?;

    // 2. Replay.
    eprintln!("check: replaying {} webhook(s)", to_replay.len());
    let uri: Uri = format!("{base}/webhooks/{}/shopify", a.shop).parse()?;
    let sem = Arc::new(Semaphore::new(a.concurrency));
    let mut set = tokio::task::JoinSet::new();
    for (i, w) in to_replay.iter().enumerate() {
        let permit = sem.clone().acquire_owned().await?;
        let (client, uri, w) = (client.clone(), uri.clone(), (*w).clone());
        set.spawn(async move {
            let o = with_retries(|| {
                client::post_webhook(&client, &uri, "orders/paid", &w, Duration::from_secs(10))
            })
            .await;
            drop(permit);
            (i, o)
        });
    }
    let mut replay = vec![Replay::Unexpected; to_replay.len()];
    let mut unexpected_examples = Vec::new();
    while let Some(r) = set.join_next().await {
        let (i, o) = r.context("replay task panicked")?;
        replay[i] = match &o {
            Outcome::Response(200, body) => {
                let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
                match (v["status"].as_str(), v["duplicate"].as_bool()) {
                    (Some("applied"), Some(true)) => Replay::WasApplied,
                    (Some("applied"), Some(false)) => Replay::NewlyApplied,
                    _ => {
                        if unexpected_examples.len() < 5 {
                            unexpected_examples.push(format!("{}: 200 {v}", to_replay[i].id));
                        }
                        Replay::Unexpected
                    }
                }
            }
            other => {
                if unexpected_examples.len() < 5 {
                    unexpected_examples.push(format!("{}: {other:?}", to_replay[i].id));
                }
                Replay::Unexpected
            }
        };
    }

    // 3. Balances after replay.
    let after = lookup_all(
        &client,
        &base,
        &a.shop,
        &a.admin_token,
        &customers,
        a.concurrency,
    )
    .await?;

    // Verdict.
    let mut acked_lost = 0u64; // acked, but the replay applied it anew
    let mut acked_unexpected = 0u64;
    let mut committed_unacked = 0u64;
    let mut never_committed = 0u64;
    let mut unexpected = 0u64;
    let mut applied_sum: HashMap<u64, i64> = HashMap::new();
    let mut all_sum: HashMap<u64, i64> = HashMap::new();
    for (w, r) in to_replay.iter().zip(&replay) {
        let is_acked = acked_ids.contains(w.id.as_str());
        *all_sum.entry(w.customer_id).or_default() += w.expected_points as i64;
        match r {
            Replay::WasApplied => {
                *applied_sum.entry(w.customer_id).or_default() += w.expected_points as i64;
                if !is_acked {
                    committed_unacked += 1;
                }
            }
            Replay::NewlyApplied if is_acked => {
                acked_lost += 1;
                if problems.len() < 20 {
                    problems.push(format!(
                        "webhook {} (order {}, customer {}, {} points) was acked but the \
                         replay applied it anew: the acknowledged sale had been lost",
                        w.id, w.order_id, w.customer_id, w.expected_points
                    ));
                }
            }
            Replay::NewlyApplied => never_committed += 1,
            Replay::Unexpected => {
                unexpected += 1;
                if is_acked {
                    acked_unexpected += 1;
                }
            }
        }
    }
    let mut short_customers = 0u64; // balance below the acked sum before replay
    let mut short_points = 0i64;
    let mut excess_customers = 0u64; // balance above what was applied: applied twice
    let mut excess_points = 0i64;
    let mut mismatch_before = 0u64;
    let mut mismatch_after = 0u64;
    for c in &customers {
        let b = before.get(c).copied().unwrap_or(0);
        let acked_pts = acked_sum.get(c).copied().unwrap_or(0);
        if b < acked_pts {
            short_customers += 1;
            short_points += acked_pts - b;
        }
        if a.acked_only {
            continue;
        }
        let applied = applied_sum.get(c).copied().unwrap_or(0);
        let want = all_sum.get(c).copied().unwrap_or(0);
        let got = after.get(c).copied().unwrap_or(0);
        if b != applied {
            mismatch_before += 1;
        }
        if got != want {
            mismatch_after += 1;
        }
        let excess = (b - applied).max(got - want);
        if excess > 0 {
            excess_customers += 1;
            excess_points += excess;
        }
        if (b != applied || got != want) && problems.len() < 20 {
            problems.push(format!(
                "customer {c}: {b} points before replay (found applied {applied}, acked \
                 {acked_pts}), {got} after replay (expected {want})"
            ));
        }
    }
    let events_lost = acked_lost + acked_unexpected;
    let ok = events_lost == 0
        && short_customers == 0
        && excess_customers == 0
        && mismatch_before == 0
        && mismatch_after == 0
        && unexpected == 0
        && problems.is_empty();

    println!("sent webhooks:                 {}", sent.len());
    println!("acknowledged (200):            {}", acked_ids.len());
    println!("committed without ack:         {committed_unacked}");
    println!("never committed (unacked):     {never_committed}");
    println!("acked but applied anew (LOST): {acked_lost}");
    println!("unexpected replay answers:     {unexpected} ({acked_unexpected} of them acked)");
    println!(
        "customers below acked sum:     {short_customers} ({short_points} points short overall)"
    );
    println!("customers applied twice:       {excess_customers} ({excess_points} excess points)");
    println!("balance mismatches:            before replay {mismatch_before}, after replay {mismatch_after}");
    for e in &unexpected_examples {
        println!("  unexpected: {e}");
    }
    for p in &problems {
        println!("  problem: {p}");
    }
    let result = json!({
        "sent": sent.len(),
        "acked": acked_ids.len(),
        "committed_unacked": committed_unacked,
        "never_committed": never_committed,
        "events_lost": events_lost,
        "customers_short": short_customers,
        "points_short": short_points,
        "duplicates_applied_twice": excess_customers,
        "excess_points": excess_points,
        "unexpected": unexpected,
        "mismatch_before": mismatch_before,
        "mismatch_after": mismatch_after,
        "ok": ok,
    });
    println!("CHECK {result}");
    Ok(ok)
}
