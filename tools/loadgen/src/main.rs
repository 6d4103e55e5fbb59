//! loadgen: load generator, baseline server and crash-test checker for loyaltyd's
//! signed Shopify webhook endpoint.
//!
//! - `loadgen run`: send correctly signed, unique `orders/paid` webhooks whose points
//!   are known in advance; print counts, throughput and latency percentiles, then a
//!   `RESULT {json}` line.
//! - `loadgen bare`: an HTTP server that answers 200 `{}` to any POST (the baseline).
//! - `loadgen check`: after a crash test, verify against a restarted daemon that no
//!   acked sale was lost and none was applied twice; prints a `CHECK {json}` line.
//! - `loadgen enroll`: give members a phone and SMS consent (`customers/update`), for
//!   `run --sms-members`.
//! - `loadgen sms-latency`: join `run --ack-times` with `fakeproviders --arrival-log` and
//!   report ack → provider latency percentiles and SMS throughput (`SMSLAT {json}`).

mod bare;
mod check;
mod client;
mod enroll;
mod gen;
mod logs;
mod run;
mod smslat;

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Load generator for loyaltyd's Shopify webhooks.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Runtime worker threads (default: one per core).
    #[arg(long, global = true)]
    threads: Option<usize>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Send signed `orders/paid` webhooks for a while and report.
    Run(run::RunArgs),
    /// Serve 200 `{}` to every POST: the throughput baseline.
    Bare {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9090")]
        listen: SocketAddr,
    },
    /// Verify a crash test's sent and acked logs against a restarted daemon.
    Check(check::CheckArgs),
    /// Give members a phone and SMS consent with signed `customers/update` webhooks.
    Enroll(enroll::EnrollArgs),
    /// Join ack times with a fake Twilio's arrival log: ack → SMS latency, throughput.
    SmsLatency(smslat::SmsLatencyArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = cli.threads {
        rt.worker_threads(n.max(1));
    }
    let rt = match rt.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Command::Run(a) => run::run(a).await,
            Command::Bare { listen } => bare::serve(listen).await.map(|()| true),
            Command::Check(a) => check::check(a).await,
            Command::Enroll(a) => enroll::enroll(a).await,
            Command::SmsLatency(a) => smslat::sms_latency(a),
        }
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            ExitCode::from(2)
        }
    }
}
