//! `loadgen run`: closed-loop (C workers, each with one request in flight) or, with
//! `--rate`, open-loop load of signed `orders/paid` webhooks.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use hdrhistogram::Histogram;
use http::Uri;
use serde_json::json;
use tokio::sync::{watch, Semaphore};

use crate::client::{self, HttpClient, Outcome};
use crate::gen::{Generator, Members, Webhook, MAX_MEMBERS};
use crate::logs::LineLog;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Daemon base URL (plain HTTP).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Shop id (URL path `/webhooks/{shop}/shopify`).
    #[arg(long, default_value = "demo")]
    pub shop: String,
    /// Shopify webhook secret the shop is configured with.
    #[arg(long, default_value = "demo-shopify-secret")]
    pub secret: String,
    /// Distinct members (Shopify customers) to spread orders over.
    #[arg(long, default_value_t = 1000)]
    pub members: u64,
    /// Closed loop: connections kept busy. Open loop (--rate): most requests in flight.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// How long to send, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Open loop: start this many requests per second, whatever the latency.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Append `webhook_id order_id customer_id expected_points` per 200 response.
    #[arg(long)]
    pub acked_log: Option<PathBuf>,
    /// Append each webhook (with body and signature) before it is first sent.
    #[arg(long)]
    pub sent_log: Option<PathBuf>,
    /// Seed for member identities (with --id-prefix).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Prefix of webhook ids and member e-mails; separates runs.
    #[arg(long, default_value = "lg")]
    pub id_prefix: String,
    /// Run id inside webhook/order ids; default: fresh per process.
    #[arg(long)]
    pub run_id: Option<String>,
    /// Currency of the orders.
    #[arg(long, default_value = "USD")]
    pub currency: String,
    /// Per-request timeout, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
    /// Do not retry a webhook after a transport error or 5xx (default: retry the same
    /// webhook id and body until it is answered or the run ends, as Shopify does).
    #[arg(long)]
    pub no_retry: bool,
    /// SMS mode: orders go round robin to members (one each when --members is at least
    /// the number of orders) and carry the member's phone, as enrolled by `loadgen enroll`.
    #[arg(long)]
    pub sms_members: bool,
    /// Write `phone_or_customer_id unix_ns` per 200 answer (wall clock when the answer was
    /// read), at the end of the run; kept in memory meanwhile.
    #[arg(long)]
    pub ack_times: Option<PathBuf>,
}

/// Counters and latency of a run.
pub struct Stats {
    pub requests: u64,
    pub ok: u64,
    pub acked: u64,
    pub applied: u64,
    pub duplicate: u64,
    pub already_scored: u64,
    pub ignored: u64,
    pub by_status: BTreeMap<u16, u64>,
    pub connect_errors: u64,
    pub timeouts: u64,
    pub other_errors: u64,
    pub skipped: u64,
    pub webhooks: u64,
    pub first_error: Option<String>,
    pub hist: Histogram<u64>,
}

impl Stats {
    fn new() -> Stats {
        Stats {
            requests: 0,
            ok: 0,
            acked: 0,
            applied: 0,
            duplicate: 0,
            already_scored: 0,
            ignored: 0,
            by_status: BTreeMap::new(),
            connect_errors: 0,
            timeouts: 0,
            other_errors: 0,
            skipped: 0,
            webhooks: 0,
            first_error: None,
            // 1 µs .. 5 min, 3 significant digits.
            hist: Histogram::new_with_bounds(1, 300_000_000, 3).expect("valid bounds"),
        }
    }

    fn merge(&mut self, o: &Stats) {
        self.requests += o.requests;
        self.ok += o.ok;
        self.acked += o.acked;
        self.applied += o.applied;
        self.duplicate += o.duplicate;
        self.already_scored += o.already_scored;
        self.ignored += o.ignored;
        for (k, v) in &o.by_status {
            *self.by_status.entry(*k).or_default() += v;
        }
        self.connect_errors += o.connect_errors;
        self.timeouts += o.timeouts;
        self.other_errors += o.other_errors;
        self.skipped += o.skipped;
        self.webhooks += o.webhooks;
        if self.first_error.is_none() {
            self.first_error.clone_from(&o.first_error);
        }
        self.hist.add(&o.hist).expect("same bounds");
    }

    fn record(&mut self, latency: Duration, o: &Outcome) {
        self.requests += 1;
        self.hist
            .saturating_record((latency.as_micros() as u64).clamp(1, 300_000_000));
        match o {
            Outcome::Response(status, body) => {
                *self.by_status.entry(*status).or_default() += 1;
                if (200..300).contains(status) {
                    self.ok += 1;
                }
                if *status == 200 {
                    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
                        if v["duplicate"] == json!(true) {
                            self.duplicate += 1;
                        }
                        match v["status"].as_str() {
                            Some("applied") => self.applied += 1,
                            Some("already_scored") => self.already_scored += 1,
                            Some("ignored") => self.ignored += 1,
                            _ => {}
                        }
                    }
                } else if self.first_error.is_none() {
                    self.first_error = Some(format!(
                        "HTTP {status}: {}",
                        String::from_utf8_lossy(&body[..body.len().min(300)])
                    ));
                }
            }
            Outcome::Connect => self.connect_errors += 1,
            Outcome::Timeout => self.timeouts += 1,
            Outcome::Other(e) => {
                self.other_errors += 1;
                if self.first_error.is_none() {
                    self.first_error = Some(e.clone());
                }
            }
        }
    }
}

struct Shared {
    gen: Generator,
    client: HttpClient,
    uri: Uri,
    seq: AtomicU64,
    deadline: Instant,
    timeout: Duration,
    retry: bool,
    sent_log: Option<LineLog>,
    acked_log: Option<LineLog>,
    ack_times: Option<Mutex<Vec<(u64, u128)>>>,
    stop: watch::Receiver<bool>,
}

impl Shared {
    fn over(&self) -> bool {
        Instant::now() >= self.deadline || *self.stop.borrow()
    }

    /// Send one new webhook, retrying the same id after errors if allowed. Latency of
    /// each attempt counts from `start` for the first attempt (open loop: the
    /// scheduled time) and from the attempt itself after that.
    async fn one(&self, start: Instant, stats: &mut (dyn FnMut(Duration, &Outcome) + Send)) {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let w = self.gen.webhook(seq);
        if let Some(log) = &self.sent_log {
            if let Err(e) = log.sent(&w) {
                eprintln!("loadgen: {e:#}");
            }
        }
        let mut t0 = start;
        let mut backoff = Duration::from_millis(20);
        loop {
            let mut stop = self.stop.clone();
            let o = tokio::select! {
                o = client::post_webhook(&self.client, &self.uri, "orders/paid", &w, self.timeout) => o,
                _ = stop.wait_for(|s| *s) => return,
            };
            stats(t0.elapsed(), &o);
            let retryable = match &o {
                Outcome::Response(200, _) => {
                    self.ack(&w);
                    false
                }
                Outcome::Response(s, _) => *s >= 500,
                _ => true,
            };
            if !retryable || !self.retry || self.over() {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            backoff = (backoff * 2).min(Duration::from_millis(500));
            if self.over() {
                return;
            }
            t0 = Instant::now();
        }
    }

    fn ack(&self, w: &Webhook) {
        if let Some(times) = &self.ack_times {
            let ns = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            times
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((w.customer_id, ns));
        }
        if let Some(log) = &self.acked_log {
            if let Err(e) = log.acked(w) {
                eprintln!("loadgen: {e:#}");
            }
        }
    }
}

fn default_run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    format!(
        "{:x}",
        crate::gen::splitmix64(nanos ^ (u64::from(std::process::id()) << 32)) & 0xffff_ffff_ffff
    )
}

/// Stop on SIGINT/SIGTERM (print the results so far and exit normally).
fn stop_on_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let term = async {
            #[cfg(unix)]
            {
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            }
            #[cfg(not(unix))]
            std::future::pending::<()>().await
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term => {}
        }
        eprintln!("loadgen: stop requested, finishing");
        let _ = tx.send(true);
    });
    rx
}

pub async fn run(a: RunArgs) -> anyhow::Result<bool> {
    anyhow::ensure!(
        (1..=MAX_MEMBERS).contains(&a.members),
        "--members must be 1..={MAX_MEMBERS}"
    );
    anyhow::ensure!(a.concurrency >= 1, "--concurrency must be at least 1");
    anyhow::ensure!(
        a.duration > 0.0 && a.duration.is_finite(),
        "--duration must be positive"
    );
    let base = client::base_url(&a.url)?;
    let uri: Uri = format!("{base}/webhooks/{}/shopify", a.shop)
        .parse()
        .context("bad shop id for a URL")?;
    let run_id = a.run_id.clone().unwrap_or_else(default_run_id);
    let members = Members::new(&a.id_prefix, a.seed, a.members);
    let gen = Generator::new(members, &a.id_prefix, &run_id, &a.secret, &a.currency)
        .with_sms_members(a.sms_members);
    let stop = stop_on_signal();
    let start = Instant::now();
    let shared = Arc::new(Shared {
        gen,
        client: client::new_client(a.concurrency),
        uri,
        seq: AtomicU64::new(0),
        deadline: start + Duration::from_secs_f64(a.duration),
        timeout: Duration::from_secs_f64(a.timeout),
        retry: !a.no_retry,
        sent_log: a.sent_log.as_deref().map(LineLog::open).transpose()?,
        acked_log: a.acked_log.as_deref().map(LineLog::open).transpose()?,
        ack_times: a.ack_times.as_ref().map(|_| Mutex::new(Vec::new())),
        stop,
    });
    eprintln!(
        "loadgen: {} for {}s, {} member(s), run id {run_id}, {}",
        shared.uri,
        a.duration,
        a.members,
        match a.rate {
            Some(r) => format!(
                "open loop at {r} req/s (at most {} in flight)",
                a.concurrency
            ),
            None => format!("closed loop, {} connection(s)", a.concurrency),
        }
    );

    let mut total = Stats::new();
    match a.rate {
        None => {
            let mut tasks = Vec::with_capacity(a.concurrency);
            for _ in 0..a.concurrency {
                let sh = shared.clone();
                tasks.push(tokio::spawn(async move {
                    let mut st = Stats::new();
                    while !sh.over() {
                        st.webhooks += 1;
                        sh.one(Instant::now(), &mut |d, o| st.record(d, o)).await;
                    }
                    st
                }));
            }
            for t in tasks {
                total.merge(&t.await.context("worker panicked")?);
            }
        }
        Some(rate) => {
            anyhow::ensure!(rate > 0.0 && rate.is_finite(), "--rate must be positive");
            let stats = Arc::new(Mutex::new(Stats::new()));
            let permits = Arc::new(Semaphore::new(a.concurrency));
            let period = Duration::from_secs_f64(1.0 / rate);
            let mut next = Instant::now();
            let mut tasks = tokio::task::JoinSet::new();
            let mut stop = shared.stop.clone();
            while !shared.over() {
                tokio::select! {
                    _ = tokio::time::sleep_until(next.into()) => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
                let scheduled = next;
                next += period;
                match permits.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let sh = shared.clone();
                        let st = stats.clone();
                        tasks.spawn(async move {
                            let mut rec = |d: Duration, o: &Outcome| {
                                st.lock().unwrap_or_else(|e| e.into_inner()).record(d, o)
                            };
                            sh.one(scheduled, &mut rec).await;
                            drop(permit);
                        });
                        stats.lock().unwrap_or_else(|e| e.into_inner()).webhooks += 1;
                    }
                    Err(_) => stats.lock().unwrap_or_else(|e| e.into_inner()).skipped += 1,
                }
                while tasks.try_join_next().is_some() {}
            }
            while tasks.join_next().await.is_some() {}
            total.merge(&stats.lock().unwrap_or_else(|e| e.into_inner()));
        }
    }
    let elapsed = start.elapsed();
    if let (Some(path), Some(times)) = (&a.ack_times, &shared.ack_times) {
        write_ack_times(
            path,
            &shared.gen,
            &times.lock().unwrap_or_else(|e| e.into_inner()),
        )?;
    }
    report(&a, &run_id, &total, elapsed);
    Ok(true)
}

fn write_ack_times(
    path: &std::path::Path,
    gen: &Generator,
    times: &[(u64, u128)],
) -> anyhow::Result<()> {
    use std::io::Write;
    let f =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = std::io::BufWriter::new(f);
    for (customer, ns) in times {
        let key = gen
            .phone_of(*customer)
            .unwrap_or_else(|| customer.to_string());
        writeln!(out, "{key} {ns}")?;
    }
    out.flush()
        .with_context(|| format!("cannot write {}", path.display()))
}

fn ms(us: u64) -> f64 {
    (us as f64) / 1000.0
}

fn report(a: &RunArgs, run_id: &str, s: &Stats, elapsed: Duration) {
    let secs = elapsed.as_secs_f64().max(1e-9);
    let responses: u64 = s.by_status.values().sum();
    let non2xx: BTreeMap<String, u64> = s
        .by_status
        .iter()
        .filter(|(k, _)| !(200..300).contains(*k))
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
    let h = &s.hist;
    let (p50, p90, p99, p999, max, mean) = if h.is_empty() {
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    } else {
        (
            ms(h.value_at_quantile(0.50)),
            ms(h.value_at_quantile(0.90)),
            ms(h.value_at_quantile(0.99)),
            ms(h.value_at_quantile(0.999)),
            ms(h.max()),
            h.mean() / 1000.0,
        )
    };
    println!("target:        {}", a.url);
    println!(
        "mode:          {}",
        match a.rate {
            Some(r) => format!("open loop, {r} req/s, at most {} in flight", a.concurrency),
            None => format!("closed loop, concurrency {}", a.concurrency),
        }
    );
    println!("elapsed:       {secs:.2} s");
    println!("webhooks:      {}", s.webhooks);
    println!("requests sent: {}", s.requests);
    println!(
        "2xx:           {} (applied {}, duplicate {}, already_scored {}, ignored {})",
        s.ok, s.applied, s.duplicate, s.already_scored, s.ignored
    );
    println!(
        "non-2xx:       {}{}",
        non2xx.values().sum::<u64>(),
        if non2xx.is_empty() {
            String::new()
        } else {
            format!(
                " ({})",
                non2xx
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    println!(
        "errors:        {} (connect {}, timeout {}, other {})",
        s.connect_errors + s.timeouts + s.other_errors,
        s.connect_errors,
        s.timeouts,
        s.other_errors
    );
    if s.skipped > 0 {
        println!(
            "skipped:       {} (over --concurrency in flight)",
            s.skipped
        );
    }
    if let Some(e) = &s.first_error {
        println!("first error:   {e}");
    }
    println!(
        "throughput:    {:.1} req/s ({:.1} 2xx/s)",
        responses as f64 / secs,
        s.ok as f64 / secs
    );
    println!(
        "latency ms:    p50 {p50:.3}  p90 {p90:.3}  p99 {p99:.3}  p99.9 {p999:.3}  max {max:.3}  mean {mean:.3}"
    );
    let result = json!({
        "url": a.url,
        "run_id": run_id,
        "mode": if a.rate.is_some() { "open" } else { "closed" },
        "concurrency": a.concurrency,
        "rate": a.rate,
        "elapsed_s": secs,
        "webhooks": s.webhooks,
        "requests": s.requests,
        "responses": responses,
        "ok_2xx": s.ok,
        "applied": s.applied,
        "duplicate": s.duplicate,
        "already_scored": s.already_scored,
        "ignored": s.ignored,
        "non_2xx": non2xx,
        "errors": {
            "connect": s.connect_errors,
            "timeout": s.timeouts,
            "other": s.other_errors,
        },
        "skipped": s.skipped,
        "throughput_rps": responses as f64 / secs,
        "ok_rps": s.ok as f64 / secs,
        "latency_ms": {
            "p50": p50, "p90": p90, "p99": p99, "p999": p999, "max": max, "mean": mean,
        },
    });
    println!("RESULT {result}");
}
