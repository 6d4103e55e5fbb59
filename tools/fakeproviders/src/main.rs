//! `fakeproviders`: run the fake Twilio, SendGrid and Mailgun side by side, for benchmarks.
//!
//! ```text
//! fakeproviders [--twilio-port N] [--sendgrid-port N] [--mailgun-port N] [--delay-ms N] [--record]
//! ```
//! Ports default to 0 (any free port); the bound addresses and the credentials the fakes accept
//! are printed, one `name=value` per line. Requests are not kept in memory unless `--record`.
//! Stops on Ctrl-C.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

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
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        twilio: 0,
        sendgrid: 0,
        mailgun: 0,
        delay: Duration::ZERO,
        record: false,
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
            eprintln!("usage: fakeproviders [--twilio-port N] [--sendgrid-port N] [--mailgun-port N] [--delay-ms N] [--record]");
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
    twilio.set_recording(args.record);
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

    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("fakeproviders: cannot wait for Ctrl-C: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
