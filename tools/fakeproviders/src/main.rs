//! `fakeproviders`: run the fake Twilio, SendGrid and Mailgun side by side, for benchmarks.
//!
//! ```text
//! fakeproviders [--twilio-port N] [--sendgrid-port N] [--mailgun-port N] [--delay-ms N] [--record]
//!               [--arrival-log PATH]
//! ```
//! Ports default to 0 (any free port); the bound addresses and the credentials the fakes accept
//! are printed, one `name=value` per line. Requests are not kept in memory unless `--record`
//! (or `--arrival-log`, which records the fake Twilio's). Stops on Ctrl-C or SIGTERM.
//!
//! `--arrival-log PATH`: on stopping, write one line per request the fake Twilio received,
//! in arrival order: `unix_ns status to`, where `unix_ns` is the wall-clock time the request
//! (headers and body) had arrived, before any delay, in nanoseconds since the UNIX epoch.
//! The file is written at exit so that logging costs nothing while the load runs.
//!
//! Each fake also answers `POST /__mode` (switch to a 5xx storm, 429s, hangs, dropped
//! connections, or back to `ok`), `GET /__mode` and `GET /__stats` (requests by status,
//! accepted, distinct recipients and repeats, counted with or without `--record`); see the
//! library docs. `tools/storm.sh` drives an outage and recovery with them.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fakeproviders::{FakeMailgun, FakeSendGrid, FakeTwilio};

const ACCOUNT_SID: &str = "AC00000000000000000000000000000000";
const AUTH_TOKEN: &str = "fake-auth-token";
const SENDGRID_KEY: &str = "SG.fake-key";
const MAILGUN_DOMAIN: &str = "mg.example.test";
const MAILGUN_KEY: &str = "fake-mailgun-key";

struct Args {
    twilio: u16,
    sendgrid: u16,
    mailgun: u16,
    delay: Duration,
    record: bool,
    arrival_log: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        twilio: 0,
        sendgrid: 0,
        mailgun: 0,
        delay: Duration::ZERO,
        record: false,
        arrival_log: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--record" {
            args.record = true;
            continue;
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: not a number: {v}"))
        };
        let port = |v: &str| {
            v.parse::<u16>()
                .map_err(|_| format!("{flag}: not a port: {v}"))
        };
        match flag.as_str() {
            "--twilio-port" => args.twilio = port(&value)?,
            "--sendgrid-port" => args.sendgrid = port(&value)?,
            "--mailgun-port" => args.mailgun = port(&value)?,
            "--delay-ms" => args.delay = Duration::from_millis(number(&value)?),
            "--arrival-log" => args.arrival_log = Some(PathBuf::from(value)),
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(args)
}

fn loopback(port: u16) -> SocketAddr {
    ([127, 0, 0, 1], port).into()
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("fakeproviders: {e}");
            eprintln!("usage: fakeproviders [--twilio-port N] [--sendgrid-port N] [--mailgun-port N] [--delay-ms N] [--record] [--arrival-log PATH]");
            return ExitCode::from(2);
        }
    };
    let started = async {
        let twilio = FakeTwilio::start_on(loopback(args.twilio), ACCOUNT_SID, AUTH_TOKEN).await?;
        let sendgrid = FakeSendGrid::start_on(loopback(args.sendgrid), SENDGRID_KEY).await?;
        let mailgun =
            FakeMailgun::start_on(loopback(args.mailgun), MAILGUN_DOMAIN, MAILGUN_KEY).await?;
        std::io::Result::Ok((twilio, sendgrid, mailgun))
    };
    let (twilio, sendgrid, mailgun) = match started.await {
        Ok(fakes) => fakes,
        Err(e) => {
            eprintln!("fakeproviders: cannot bind: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Wall clock and monotonic clock read together, to turn arrival `Instant`s into UNIX time.
    let epoch = (Instant::now(), SystemTime::now());
    twilio.set_recording(args.record || args.arrival_log.is_some());
    sendgrid.set_recording(args.record);
    mailgun.set_recording(args.record);
    twilio.set_delay(args.delay);
    sendgrid.set_delay(args.delay);
    mailgun.set_delay(args.delay);

    println!("twilio={}", twilio.base_url());
    println!("twilio_account_sid={ACCOUNT_SID}");
    println!("twilio_auth_token={AUTH_TOKEN}");
    println!("sendgrid={}", sendgrid.base_url());
    println!("sendgrid_api_key={SENDGRID_KEY}");
    println!("mailgun={}", mailgun.base_url());
    println!("mailgun_domain={MAILGUN_DOMAIN}");
    println!("mailgun_api_key={MAILGUN_KEY}");

    if let Err(e) = stopped().await {
        eprintln!("fakeproviders: cannot wait for Ctrl-C: {e}");
        return ExitCode::FAILURE;
    }
    if let Some(path) = &args.arrival_log {
        match write_arrivals(path, &twilio.requests(), epoch) {
            Ok(n) => eprintln!(
                "fakeproviders: {n} twilio arrival(s) written to {}",
                path.display()
            ),
            Err(e) => {
                eprintln!("fakeproviders: cannot write {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

/// Ctrl-C or, on Unix, SIGTERM.
async fn stopped() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await
}

/// `unix_ns status to` per request, in arrival order.
fn write_arrivals(
    path: &std::path::Path,
    requests: &[fakeproviders::Received],
    (base_instant, base_wall): (Instant, SystemTime),
) -> std::io::Result<usize> {
    let base_ns = base_wall
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0);
    let mut rows: Vec<(i128, u16, &str)> = requests
        .iter()
        .map(|r| {
            let offset = if r.at >= base_instant {
                r.at.duration_since(base_instant).as_nanos() as i128
            } else {
                -(base_instant.duration_since(r.at).as_nanos() as i128)
            };
            (base_ns + offset, r.status, r.field("To").unwrap_or("-"))
        })
        .collect();
    // Recorded when answered; sort back into arrival order.
    rows.sort_by_key(|r| r.0);
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for (ns, status, to) in &rows {
        writeln!(out, "{ns} {status} {to}")?;
    }
    out.flush()?;
    Ok(rows.len())
}
