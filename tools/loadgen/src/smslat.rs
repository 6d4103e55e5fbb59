//! `loadgen sms-latency`: join the acks of `run --sms-members --ack-times` with the fake
//! Twilio's `--arrival-log`, per phone in order (the k-th ack of a member with the k-th
//! accepted SMS to its phone), and report ack → provider latency and SMS throughput.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use hdrhistogram::Histogram;
use serde_json::json;

#[derive(Debug, Args)]
pub struct SmsLatencyArgs {
    /// `phone unix_ns` per 200 answer (`run --ack-times`).
    #[arg(long)]
    pub acks: PathBuf,
    /// `unix_ns status to` per request at the fake Twilio (`fakeproviders --arrival-log`).
    #[arg(long)]
    pub arrivals: PathBuf,
}

fn lines(path: &Path) -> anyhow::Result<Vec<String>> {
    let f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    BufReader::new(f)
        .lines()
        .filter(|l| l.as_ref().map_or(true, |l| !l.trim().is_empty()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("cannot read {}", path.display()))
}

fn ms(ns: i128) -> f64 {
    ns as f64 / 1e6
}

pub fn sms_latency(a: SmsLatencyArgs) -> anyhow::Result<bool> {
    let mut acks: HashMap<String, Vec<i128>> = HashMap::new();
    let mut n_acks = 0u64;
    let (mut first_ack, mut last_ack) = (i128::MAX, i128::MIN);
    for (i, l) in lines(&a.acks)?.iter().enumerate() {
        let mut it = l.split(' ');
        let (Some(phone), Some(ns)) = (it.next(), it.next().and_then(|n| n.parse().ok())) else {
            anyhow::bail!("{}:{}: bad line {l:?}", a.acks.display(), i + 1);
        };
        acks.entry(phone.to_string()).or_default().push(ns);
        n_acks += 1;
        first_ack = first_ack.min(ns);
        last_ack = last_ack.max(ns);
    }
    let mut sms: HashMap<String, Vec<i128>> = HashMap::new();
    let (mut n_sms, mut n_other) = (0u64, 0u64);
    let (mut first_sms, mut last_sms) = (i128::MAX, i128::MIN);
    for (i, l) in lines(&a.arrivals)?.iter().enumerate() {
        let mut it = l.split(' ');
        let (Some(ns), Some(status), Some(to)) = (
            it.next().and_then(|n| n.parse::<i128>().ok()),
            it.next(),
            it.next(),
        ) else {
            anyhow::bail!("{}:{}: bad line {l:?}", a.arrivals.display(), i + 1);
        };
        if status != "201" {
            n_other += 1;
            continue;
        }
        sms.entry(to.to_string()).or_default().push(ns);
        n_sms += 1;
        first_sms = first_sms.min(ns);
        last_sms = last_sms.max(ns);
    }
    anyhow::ensure!(n_acks > 0, "no acks in {}", a.acks.display());

    // 1 µs .. 10 min.
    let mut h = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("valid bounds");
    let (mut matched, mut negative, mut unmatched_acks, mut unmatched_sms) =
        (0u64, 0u64, 0u64, 0u64);
    let mut sum_ns = 0i128;
    for (phone, ack) in &mut acks {
        ack.sort_unstable();
        let empty = Vec::new();
        let mut got = sms.get(phone).unwrap_or(&empty).clone();
        got.sort_unstable();
        let k = ack.len().min(got.len());
        for (t_ack, t_sms) in ack.iter().zip(&got).take(k) {
            let d = t_sms - t_ack;
            if d < 0 {
                negative += 1;
            }
            sum_ns += d;
            h.saturating_record(((d.max(0) / 1000) as u64).clamp(1, 600_000_000));
        }
        matched += k as u64;
        unmatched_acks += (ack.len() - k) as u64;
        unmatched_sms += (got.len() - k) as u64;
    }
    for (phone, got) in &sms {
        if !acks.contains_key(phone) {
            unmatched_sms += got.len() as u64;
        }
    }
    let q = |x: f64| h.value_at_quantile(x) as f64 / 1000.0;
    let (p50, p90, p99, p999, max) = if h.is_empty() {
        (0.0, 0.0, 0.0, 0.0, 0.0)
    } else {
        (q(0.5), q(0.9), q(0.99), q(0.999), h.max() as f64 / 1000.0)
    };
    let mean = if matched > 0 {
        ms(sum_ns / matched as i128)
    } else {
        0.0
    };
    let ack_span = (last_ack - first_ack).max(1);
    let ingest_rps = if n_acks > 1 {
        (n_acks - 1) as f64 / (ack_span as f64 / 1e9)
    } else {
        0.0
    };
    let (sms_rps, sms_in_window_rps, tail_ms) = if n_sms > 1 {
        let span = (last_sms - first_sms).max(1) as f64 / 1e9;
        // SMS that arrived while acks were still coming in.
        let during = sms
            .values()
            .flatten()
            .filter(|&&t| t >= first_ack && t <= last_ack)
            .count();
        (
            (n_sms - 1) as f64 / span,
            during as f64 / (ack_span as f64 / 1e9),
            ms(last_sms - last_ack),
        )
    } else {
        (0.0, 0.0, 0.0)
    };
    println!(
        "acks:            {n_acks} over {:.2} s ({ingest_rps:.1}/s)",
        ack_span as f64 / 1e9
    );
    println!(
        "sms accepted:    {n_sms} ({sms_rps:.1}/s first to last; {sms_in_window_rps:.1}/s while acks came in), {n_other} other answer(s)"
    );
    println!(
        "matched:         {matched} (acks without SMS {unmatched_acks}, SMS without ack {unmatched_sms}, negative {negative})"
    );
    println!("last SMS after last ack: {tail_ms:.1} ms");
    println!(
        "ack -> provider ms: p50 {p50:.3}  p90 {p90:.3}  p99 {p99:.3}  p99.9 {p999:.3}  max {max:.3}  mean {mean:.3}"
    );
    let result = json!({
        "acks": n_acks,
        "sms": n_sms,
        "other": n_other,
        "matched": matched,
        "unmatched_acks": unmatched_acks,
        "unmatched_sms": unmatched_sms,
        "negative": negative,
        "ingest_rps": ingest_rps,
        "sms_rps": sms_rps,
        "sms_in_window_rps": sms_in_window_rps,
        "tail_ms": tail_ms,
        "latency_ms": {"p50": p50, "p90": p90, "p99": p99, "p999": p999, "max": max, "mean": mean},
    });
    println!("SMSLAT {result}");
    Ok(unmatched_acks == 0)
}
