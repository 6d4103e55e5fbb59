//! `loadgen enroll`: give the run's members a phone and SMS consent, with one signed
//! Shopify `customers/update` each (same customer ids, e-mails and phones as the orders of
//! `loadgen run --sms-members` with the same `--id-prefix` and `--seed`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use http::Uri;

use crate::client::{self, Outcome};
use crate::gen::{Generator, Members, MAX_MEMBERS};

#[derive(Debug, Args)]
pub struct EnrollArgs {
    /// Daemon base URL (plain HTTP).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Shop id.
    #[arg(long, default_value = "demo")]
    pub shop: String,
    /// Shopify webhook secret the shop is configured with.
    #[arg(long, default_value = "demo-shopify-secret")]
    pub secret: String,
    /// Members to enroll (0..N).
    #[arg(long, default_value_t = 1000)]
    pub members: u64,
    /// Requests in flight.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Seed for member identities (as given to `run`).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Prefix of member e-mails (as given to `run`).
    #[arg(long, default_value = "lg")]
    pub id_prefix: String,
    /// Currency of the customers.
    #[arg(long, default_value = "USD")]
    pub currency: String,
}

pub async fn enroll(a: EnrollArgs) -> anyhow::Result<bool> {
    anyhow::ensure!(
        (1..=MAX_MEMBERS).contains(&a.members),
        "--members must be 1..={MAX_MEMBERS}"
    );
    let base = client::base_url(&a.url)?;
    let uri: Uri = format!("{base}/webhooks/{}/shopify", a.shop)
        .parse()
        .context("bad shop id for a URL")?;
    let run = format!("{:x}", std::process::id());
    let gen = Arc::new(Generator::new(
        Members::new(&a.id_prefix, a.seed, a.members),
        &a.id_prefix,
        &run,
        &a.secret,
        &a.currency,
    ));
    let client = client::new_client(a.concurrency);
    let next = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..a.concurrency.max(1) {
        let (gen, client, uri, next, failed) = (
            gen.clone(),
            client.clone(),
            uri.clone(),
            next.clone(),
            failed.clone(),
        );
        let n = a.members;
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return;
                }
                let w = gen.customer_update(i);
                let mut ok = false;
                for attempt in 0..5u32 {
                    let o = client::post_webhook(
                        &client,
                        &uri,
                        "customers/update",
                        &w,
                        Duration::from_secs(10),
                    )
                    .await;
                    match o {
                        Outcome::Response(200, _) => {
                            ok = true;
                            break;
                        }
                        Outcome::Response(s, body) if s < 500 => {
                            eprintln!(
                                "loadgen enroll: member {i}: HTTP {s}: {}",
                                String::from_utf8_lossy(&body[..body.len().min(300)])
                            );
                            break;
                        }
                        _ => tokio::time::sleep(Duration::from_millis(50 << attempt)).await,
                    }
                }
                if !ok {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.context("enroll task panicked")?;
    }
    let failed = failed.load(Ordering::Relaxed);
    let secs = start.elapsed().as_secs_f64();
    println!(
        "enrolled {} member(s) in {secs:.2} s ({:.0}/s), {failed} failed",
        a.members - failed,
        (a.members - failed) as f64 / secs.max(1e-9)
    );
    Ok(failed == 0)
}
