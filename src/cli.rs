//! Command-line interface: `serve`, `check-config`, `sign`, offline tools over a
//! stopped daemon's data (`verify`, `export`, `import`, `restore`, …), and `member` and
//! `backup`, which act on a running daemon through its admin API.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use loyaltyd_adapter::{signature, ShopId};

use crate::config::{Config, DEFAULT_PATH};

/// loyaltyd: turn POS sales into loyalty points, exactly once.
#[derive(Debug, Parser)]
#[command(name = "loyaltyd", version, about)]
pub struct Cli {
    /// Log format on stderr: `text` (default) or `json` (one object per line, for log
    /// collectors). Level from `RUST_LOG` (default `info`).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "LOYALTYD_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// JSON lines.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon.
    Serve {
        /// Config file.
        #[arg(long, default_value = DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Validate the config and every shop's rules file, then exit.
    CheckConfig {
        /// Config file.
        #[arg(long, default_value = DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Print the signature header a POS would send for a body, using the shop's
    /// configured secret (for testing webhooks by hand with curl).
    Sign {
        /// Config file.
        #[arg(long, default_value = DEFAULT_PATH)]
        config: PathBuf,
        /// Shop id.
        #[arg(long)]
        shop: String,
        /// Adapter whose signature scheme to use.
        #[arg(long, default_value = "shopify")]
        adapter: String,
        /// Body file; `-` or absent reads standard input.
        file: Option<PathBuf>,
    },
    /// Score a sale under a rules file without posting anything; prints the award and
    /// its explanation as JSON. The order is a canonical sale (JSON) or a raw Shopify
    /// order as its webhook sends it.
    Simulate {
        /// Rules file.
        #[arg(long)]
        rules: PathBuf,
        /// Order file.
        #[arg(long)]
        order: PathBuf,
    },
    /// Rescore the shop's stored sales under a candidate rules file, without writing,
    /// and report how points and liability would differ, per rule and in total (run on
    /// a stopped daemon's data).
    Whatif {
        /// Config file.
        #[arg(long, default_value = DEFAULT_PATH)]
        config: PathBuf,
        /// Candidate rules file.
        #[arg(long)]
        rules: PathBuf,
        /// Only this shop (default: every shop).
        #[arg(long)]
        shop: Option<String>,
        /// Period start: YYYY-MM-DD (shop time zone) or RFC 3339.
        #[arg(long)]
        from: Option<String>,
        /// Period end: YYYY-MM-DD (through that day) or RFC 3339 (default: now).
        #[arg(long)]
        to: Option<String>,
    },
    /// Recompute every balance and lot from the journal and compare with what is stored
    /// (run on a stopped daemon's data). Exits non-zero naming every difference.
    Verify {
        /// Config file.
        #[arg(long, default_value = DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Export data for accounting (run on a stopped daemon's data).
    Export {
        /// What to export.
        #[command(subcommand)]
        what: ExportWhat,
    },
    /// Reports.
    Report {
        /// Which report.
        #[command(subcommand)]
        what: ReportWhat,
    },
    /// Time-driven jobs (run on a stopped daemon's data; the daemon runs them itself).
    Jobs {
        /// Which jobs.
        #[command(subcommand)]
        what: JobsWhat,
    },
    /// Notifications that could not be delivered (run on a stopped daemon's data; the
    /// admin API does the same on a running one).
    Deadletters {
        /// What to do.
        #[command(subcommand)]
        what: DeadlettersWhat,
    },
    /// Print a shell completion script, e.g.
    /// `loyaltyd completions bash > /etc/bash_completion.d/loyaltyd`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Find, show, adjust and redeem members of a RUNNING daemon (through its admin API).
    Member {
        /// What to do.
        #[command(subcommand)]
        what: MemberWhat,
    },
    /// Bring data from elsewhere (run on a stopped daemon's data).
    Import {
        /// What to import.
        #[command(subcommand)]
        what: ImportWhat,
    },
    /// Take a consistent backup of a RUNNING daemon's data (`POST /v1/backup`, admin
    /// token) and write it to a file.
    Backup {
        /// Where the daemon is.
        #[command(flatten)]
        api: ApiArgs,
        /// The backup file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Restore a backup into an EMPTY data directory (the config's `storage.path`),
    /// verify its checksum, then run the checks of `verify`.
    Restore {
        /// Config file (its `storage.path` is restored into).
        #[arg(long, default_value = DEFAULT_PATH)]
        config: PathBuf,
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
    },
}

/// How to reach a running daemon's admin API.
#[derive(Debug, Clone, clap::Args)]
pub struct ApiArgs {
    /// Config file: its `server.listen` and `server.admin_token` are the defaults.
    #[arg(long, default_value = DEFAULT_PATH)]
    pub config: PathBuf,
    /// Base URL of the daemon (e.g. `http://127.0.0.1:8080`), instead of `server.listen`.
    #[arg(long)]
    pub url: Option<String>,
    /// Bearer token, instead of `server.admin_token`.
    #[arg(long, env = "LOYALTYD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// `loyaltyd member ...`
#[derive(Debug, Subcommand)]
pub enum MemberWhat {
    /// Find a member by one identity.
    #[command(group(clap::ArgGroup::new("identity").required(true).args(
        ["email", "phone", "shopify_customer_id", "square_customer_id"]
    )))]
    Find {
        /// Where the daemon is.
        #[command(flatten)]
        api: ApiArgs,
        /// Shop id.
        #[arg(long)]
        shop: String,
        /// E-mail address.
        #[arg(long)]
        email: Option<String>,
        /// Phone number (E.164, or national for the shop's country).
        #[arg(long)]
        phone: Option<String>,
        /// Shopify customer id.
        #[arg(long)]
        shopify_customer_id: Option<String>,
        /// Square customer id.
        #[arg(long)]
        square_customer_id: Option<String>,
        /// Print the API's JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Balance, tier, lots with expiry, and the last postings with their explanations.
    Show {
        /// Where the daemon is.
        #[command(flatten)]
        api: ApiArgs,
        /// Shop id.
        #[arg(long)]
        shop: String,
        /// Member id (`m_…`).
        id: String,
        /// How many recent postings to show.
        #[arg(long, default_value_t = 10)]
        postings: usize,
        /// Print the API's JSON (`member` and `ledger`) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Add (positive) or remove (negative) points, with a reason.
    Adjust {
        /// Where the daemon is.
        #[command(flatten)]
        api: ApiArgs,
        /// Shop id.
        #[arg(long)]
        shop: String,
        /// Member id (`m_…`).
        id: String,
        /// Signed points, e.g. `25` or `-10`.
        #[arg(long, allow_negative_numbers = true)]
        points: i64,
        /// Why (recorded in the journal).
        #[arg(long)]
        reason: String,
        /// Reuse the key a previous run printed, so a retry does not post twice.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Print the API's JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Spend points, or a catalogue reward's cost.
    #[command(group(clap::ArgGroup::new("what").required(true).args(["points", "reward"])))]
    Redeem {
        /// Where the daemon is.
        #[command(flatten)]
        api: ApiArgs,
        /// Shop id.
        #[arg(long)]
        shop: String,
        /// Member id (`m_…`).
        id: String,
        /// Points to spend.
        #[arg(long)]
        points: Option<i64>,
        /// Reward id from the shop's catalogue.
        #[arg(long)]
        reward: Option<String>,
        /// The order the points pay for (a full refund gives them back).
        #[arg(long)]
        order_id: Option<String>,
        /// Reuse the key a previous run printed, so a retry does not post twice.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Print the API's JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// `loyaltyd import ...`
#[derive(Debug, Subcommand)]
pub enum ImportWhat {
    /// Members and opening balances from a CSV file with the header
    /// `email,phone,first_name,last_name,points[,external_id]`. The whole file is
    /// checked first and nothing is written if a row is bad; running it again changes
    /// nothing.
    Balances {
        /// Config file.
        #[arg(long, default_value = DEFAULT_PATH)]
        config: PathBuf,
        /// Shop id.
        #[arg(long)]
        shop: String,
        /// The CSV file.
        #[arg(long)]
        csv: PathBuf,
    },
}

/// `loyaltyd deadletters ...`
#[derive(Debug, Subcommand)]
pub enum DeadlettersWhat {
    /// List a shop's dead letters as JSON (no phone numbers or e-mail addresses).
    List {
        /// Config file.
        #[arg(long, default_value = DEFAULT_PATH)]
        config: PathBuf,
        /// Shop id.
        #[arg(long)]
        shop: String,
    },
    /// Put a dead letter back in the outbox; the daemon sends it at its next start.
    Retry {
        /// Config file.
        #[arg(long, default_value = DEFAULT_PATH)]
        config: PathBuf,
        /// Shop id.
        #[arg(long)]
        shop: String,
        /// Message id (from `list`).
        #[arg(long)]
        id: u64,
        /// Channel: `sms`, `email` or `console`.
        #[arg(long)]
        channel: String,
    },
}

/// `loyaltyd export ...`
#[derive(Debug, Subcommand)]
pub enum ExportWhat {
    /// The journal, one row per entry (columns in the README).
    Journal {
        /// Config file.
        #[arg(long, default_value = DEFAULT_PATH)]
        config: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value = "csv")]
        format: ExportFormat,
        /// Write here instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

/// Export formats.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ExportFormat {
    /// Comma-separated values with a header row.
    Csv,
}

/// `loyaltyd report ...`
#[derive(Debug, Subcommand)]
pub enum ReportWhat {
    /// Outstanding points and their value over a period.
    Liability {
        /// Config file.
        #[arg(long, default_value = DEFAULT_PATH)]
        config: PathBuf,
        /// Only this shop (default: every shop).
        #[arg(long)]
        shop: Option<String>,
        /// Period start: YYYY-MM-DD (shop time zone) or RFC 3339.
        #[arg(long)]
        from: Option<String>,
        /// Period end: YYYY-MM-DD (through that day) or RFC 3339 (default: now).
        #[arg(long)]
        to: Option<String>,
    },
}

/// `loyaltyd jobs ...`
#[derive(Debug, Subcommand)]
pub enum JobsWhat {
    /// Mature pending points and expire lapsed points, as of now or `--at`.
    Run {
        /// Config file.
        #[arg(long, default_value = DEFAULT_PATH)]
        config: PathBuf,
        /// Act as if it were this time (RFC 3339), e.g. to catch up after downtime.
        #[arg(long)]
        at: Option<String>,
    },
}

/// A canonical sale, or a Shopify order read by the Shopify adapter.
fn read_sale(body: &[u8]) -> anyhow::Result<loyaltyd_adapter::Sale> {
    if let Ok(sale) = serde_json::from_slice::<loyaltyd_adapter::Sale>(body) {
        return Ok(sale);
    }
    use loyaltyd_adapter::Adapter;
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "x-shopify-topic",
        http::HeaderValue::from_static("orders/paid"),
    );
    headers.insert(
        "x-shopify-webhook-id",
        http::HeaderValue::from_static("simulate"),
    );
    let req = loyaltyd_adapter::RawRequest {
        shop: ShopId::new("simulate")?,
        headers,
        body: body.to_vec().into(),
        received_at: chrono::Utc::now(),
    };
    match loyaltyd_shopify::ShopifyAdapter::new(Vec::new()).parse(&req)? {
        loyaltyd_adapter::Parsed::Event(env) => match env.event {
            loyaltyd_adapter::PosEvent::Sale(sale) => Ok(sale),
            other => bail!("not a sale: {other:?}"),
        },
        loyaltyd_adapter::Parsed::Ignored { reason, .. } => bail!("ignored: {reason}"),
    }
}

fn deadletters(what: DeadlettersWhat) -> anyhow::Result<()> {
    let (config, shop) = match &what {
        DeadlettersWhat::List { config, shop } | DeadlettersWhat::Retry { config, shop, .. } => {
            (config, shop)
        }
    };
    let c = load(config)?;
    let shop = loyaltyd_adapter::ShopId::new(shop.as_str())
        .ok()
        .filter(|s| c.shop(s).is_some())
        .ok_or_else(|| anyhow::anyhow!("no shop {shop:?} in {}", config.display()))?;
    let ledger = open_ledger(&c)?;
    let store = crate::notify::delivery::DeliveryStore::open(ledger.db())?;
    match what {
        DeadlettersWhat::List { .. } => {
            let items: Vec<serde_json::Value> = store
                .dead_letters(&shop)?
                .iter()
                .map(|d| {
                    serde_json::json!({
                        "message_id": d.message.id,
                        "channel": d.route.name(),
                        "member_id": d.message.member,
                        "kind": crate::notify::render::kind(&d.message).name(),
                        "provider": d.provider,
                        "status": d.status,
                        "code": d.code,
                        "error": d.error,
                        "attempts": d.attempts,
                        "dead_at": d.at,
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&items)?);
        }
        DeadlettersWhat::Retry { id, channel, .. } => {
            let route = crate::notify::delivery::Route::parse(&channel)
                .ok_or_else(|| anyhow::anyhow!("{channel:?} is not sms, email or console"))?;
            store.retry(&shop, id, route, chrono::Utc::now())?;
            ledger.flush_now()?;
            println!("message {id} ({channel}) queued again");
        }
    }
    Ok(())
}

fn import_balances(
    config: &std::path::Path,
    shop: &str,
    csv: &std::path::Path,
) -> anyhow::Result<()> {
    let c = load(config)?;
    let shop = ShopId::new(shop)
        .ok()
        .and_then(|id| c.shop(&id).cloned())
        .ok_or_else(|| anyhow::anyhow!("no shop {shop:?} in {}", config.display()))?;
    let file =
        std::fs::File::open(csv).with_context(|| format!("cannot read {}", csv.display()))?;
    let rows =
        match crate::ledger::import::read_balances_csv(std::io::BufReader::new(file), shop.country)
        {
            Ok(rows) => rows,
            Err(problems) => {
                for p in &problems {
                    eprintln!("{}:{p}", csv.display());
                }
                bail!(
                    "{} problem(s) in {}; nothing was imported",
                    problems.len(),
                    csv.display()
                );
            }
        };
    let ledger = open_ledger(&c)?;
    let rules = shop.rules.current();
    let now = chrono::Utc::now();
    let mut progress =
        crate::ops::progress::Progress::new("imported rows", Some(rows.len() as u64));
    let (mut created, mut posted, mut points, mut skipped) = (0u64, 0u64, 0i64, 0u64);
    for row in &rows {
        use crate::ledger::import::ImportOutcome;
        match ledger.import_row(&shop.id, row, &rules.policy, shop.timezone, now)? {
            ImportOutcome::Posted {
                created: c, seq, ..
            } => {
                created += u64::from(c);
                if seq.is_some() {
                    posted += 1;
                    points += row.points.0;
                }
            }
            ImportOutcome::AlreadyImported { points_then, .. } => {
                skipped += 1;
                if let Some(then) = points_then {
                    eprintln!(
                        "{}:line {}: already imported with {then} points (the file now says {}); left as it was",
                        csv.display(),
                        row.line,
                        row.points
                    );
                }
            }
        }
        progress.inc(1);
    }
    progress.finish();
    ledger.flush_now()?;
    println!(
        "shop {}: {} row(s): {created} member(s) created, {posted} opening balance(s) posted ({points} points), {skipped} already imported",
        shop.id,
        rows.len()
    );
    Ok(())
}

fn restore(config: &std::path::Path, from: &std::path::Path) -> anyhow::Result<()> {
    let c = load(config)?;
    let dir = &c.storage.path;
    crate::ops::backup::check_empty(dir)?;
    let mut progress = crate::ops::progress::Progress::new("restored records", None);
    let checked = crate::ops::backup::restore(from, dir, |n| progress.inc(n))?;
    progress.finish();
    println!(
        "restored {} records from {} (taken {}, sha256 {}) into {}",
        checked.records,
        from.display(),
        checked.created_at.to_rfc3339(),
        checked.sha256,
        dir.display()
    );
    verify_all(&c)
}

fn verify_all(c: &Config) -> anyhow::Result<()> {
    let ledger = open_ledger(c)?;
    let mut bad = 0;
    for shop in &c.shops {
        let mut progress = crate::ops::progress::Progress::new(
            &format!("verified postings of {}", shop.id),
            Some(ledger.journal_len(&shop.id)?),
        );
        let v = ledger.verify_with_progress(&shop.id, &mut |n| progress.inc(n))?;
        progress.finish();
        if v.problems.is_empty() {
            println!("shop {}: ok ({} postings)", shop.id, v.postings);
        } else {
            bad += v.problems.len();
            println!(
                "shop {}: {} problem(s) in {} postings",
                shop.id,
                v.problems.len(),
                v.postings
            );
            for p in &v.problems {
                println!("  {p}");
            }
        }
    }
    if bad > 0 {
        bail!("verification failed: {bad} problem(s)");
    }
    Ok(())
}

fn open_ledger(c: &Config) -> anyhow::Result<crate::ledger::Ledger> {
    // sled releases its file lock when its background threads let go of the database,
    // a moment after the last handle is dropped (e.g. right after `restore` wrote it, or
    // a daemon exited): wait up to 3 s for the lock before reporting it as taken.
    let mut attempts = 0;
    let ledger = loop {
        match crate::ledger::Ledger::open_offline_with_cache(
            &c.storage.path,
            c.storage.cache_capacity_bytes,
        ) {
            Ok(l) => break l,
            Err(e) if attempts < 30 && e.to_string().contains("could not acquire lock") => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(e) => {
                return Err(anyhow::anyhow!(
                    "cannot open the ledger at {}: {e}",
                    c.storage.path.display()
                ))
            }
        }
    };
    for shop in &c.shops {
        ledger.set_rewards(&shop.id, shop.rules.current().rewards.clone());
    }
    Ok(ledger)
}

fn load(path: &std::path::Path) -> anyhow::Result<Config> {
    // The error already names file, line and key; no extra context needed.
    Config::load(path).map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))
}

/// Run a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config } => {
            let config = load(&config)?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            rt.block_on(crate::serve::serve(config))
        }
        Command::CheckConfig { config } => {
            let c = load(&config)?;
            let templates = crate::notify::setup::templates(&c)
                .map_err(|e| anyhow::anyhow!("invalid notification {e}"))?;
            println!(
                "{}: ok ({} shop{})",
                config.display(),
                c.shops.len(),
                if c.shops.len() == 1 { "" } else { "s" }
            );
            let worst = crate::notify::templates::EventKind::ALL
                .iter()
                .filter_map(|k| {
                    let ctx = crate::notify::templates::TemplateContext::sample(*k);
                    let r = templates
                        .render(*k, crate::notify::templates::Channel::Sms, &ctx)
                        .ok()?;
                    Some((crate::notify::segments::measure(&r.body).segments, k.name()))
                })
                .max();
            println!(
                "  templates: {} event kinds x SMS and e-mail render with sample data{}",
                crate::notify::templates::EventKind::ALL.len(),
                worst
                    .map(|(n, k)| format!(
                        "; longest SMS {n} segment(s) ({k}), limit {}",
                        c.notify.max_sms_segments
                    ))
                    .unwrap_or_default()
            );
            let channels = [
                c.notify
                    .sms
                    .as_ref()
                    .map(|s| format!("SMS via twilio at {}", s.base_url)),
                c.notify.email.as_ref().map(|e| match &e.provider {
                    crate::config::EmailProviderSettings::SendGrid { base_url, .. } => {
                        format!("e-mail via sendgrid at {base_url}")
                    }
                    crate::config::EmailProviderSettings::Mailgun { base_url, .. } => {
                        format!("e-mail via mailgun at {base_url}")
                    }
                    crate::config::EmailProviderSettings::Smtp { host, port, .. } => {
                        format!("e-mail via smtp at {host}:{port}")
                    }
                }),
            ];
            let channels: Vec<String> = channels.into_iter().flatten().collect();
            println!(
                "  notifications: {}",
                if channels.is_empty() {
                    "console sink".to_string()
                } else {
                    channels.join(", ")
                }
            );
            for s in &c.shops {
                for w in &s.rules.current().warnings {
                    println!("  warning: {}: {w}", s.rules_path.display());
                }
                println!(
                    "  shop {}: {} {}, rules {} ({} point(s) per {})",
                    s.id,
                    s.currency,
                    s.timezone,
                    s.rules_path.display(),
                    s.rules.current().earn.points_per_unit,
                    s.currency
                );
            }
            Ok(())
        }
        Command::Deadletters { what } => deadletters(what),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "loyaltyd", &mut std::io::stdout());
            Ok(())
        }
        Command::Member { what } => crate::ops::member::run(what),
        Command::Import {
            what: ImportWhat::Balances { config, shop, csv },
        } => import_balances(&config, &shop, &csv),
        Command::Backup { api, out } => crate::ops::member::backup(api, &out),
        Command::Restore { config, from } => restore(&config, &from),
        Command::Sign {
            config,
            shop,
            adapter,
            file,
        } => {
            let c = load(&config)?;
            let id = ShopId::new(shop)?;
            let shop = c
                .shop(&id)
                .with_context(|| format!("no shop {id} in {}", config.display()))?;
            let mut body = Vec::new();
            match file.as_deref() {
                None => std::io::stdin().read_to_end(&mut body)?,
                Some(p) if p.as_os_str() == "-" => std::io::stdin().read_to_end(&mut body)?,
                Some(p) => {
                    body =
                        std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
                    body.len()
                }
            };
            match adapter.as_str() {
                "shopify" => {
                    let s = shop
                        .shopify
                        .as_ref()
                        .with_context(|| format!("shop {id} has no [shops.shopify] table"))?;
                    let mac = signature::hmac_sha256(s.secrets[0].expose(), &[&body]);
                    println!("{}", signature::base64_encode(&mac));
                    Ok(())
                }
                "square" => {
                    let s = shop
                        .square
                        .as_ref()
                        .with_context(|| format!("shop {id} has no [shops.square] table"))?;
                    let mac = signature::hmac_sha256(
                        s.signature_keys[0].expose(),
                        &[s.notification_url.as_bytes(), &body],
                    );
                    println!("{}", signature::base64_encode(&mac));
                    Ok(())
                }
                other => match shop.declarative.iter().find(|d| d.adapter == other) {
                    // The shipped declarative adapters sign the body with HMAC-SHA256/base64.
                    Some(d) if other == "woocommerce" => {
                        let mac = signature::hmac_sha256(d.secrets[0].expose(), &[&body]);
                        println!("{}", signature::base64_encode(&mac));
                        Ok(())
                    }
                    _ => bail!(
                        "cannot sign for adapter {other:?}: supported: shopify, square, woocommerce"
                    ),
                },
            }
        }
        Command::Simulate { rules, order } => {
            let rules = crate::rules::RuleSet::load(&rules)?;
            let body = std::fs::read(&order)
                .with_context(|| format!("cannot read {}", order.display()))?;
            let sale = read_sale(&body).with_context(|| {
                format!(
                    "{} is neither a canonical sale nor a Shopify order",
                    order.display()
                )
            })?;
            println!(
                "{}",
                serde_json::to_string_pretty(&crate::http::simulate::explain(
                    &crate::rules::SaleContext {
                        sale: &sale,
                        adapter: "simulate",
                        occurred_at: chrono::Utc::now(),
                        timezone: chrono_tz::Tz::UTC,
                    },
                    &rules
                ))?
            );
            Ok(())
        }
        Command::Whatif {
            config,
            rules,
            shop,
            from,
            to,
        } => {
            let c = load(&config)?;
            let candidate = crate::rules::RuleSet::load(&rules)?;
            let ledger = open_ledger(&c)?;
            let mut reports = Vec::new();
            for s in &c.shops {
                if shop.as_deref().is_some_and(|id| id != s.id.as_str()) {
                    continue;
                }
                let from = from
                    .as_deref()
                    .map(|v| crate::report::period::parse_bound("from", v, s.timezone, false))
                    .transpose()?;
                let to = match to.as_deref() {
                    Some(v) => crate::report::period::parse_bound("to", v, s.timezone, true)?,
                    None => chrono::Utc::now(),
                };
                let progress =
                    crate::ops::progress::Progress::new(&format!("rescoring {}", s.id), None);
                reports.push(crate::report::whatif::whatif(
                    &ledger, s, &candidate, from, to,
                )?);
                progress.finish();
            }
            println!("{}", serde_json::to_string_pretty(&reports)?);
            Ok(())
        }
        Command::Verify { config } => verify_all(&load(&config)?),
        Command::Export {
            what:
                ExportWhat::Journal {
                    config,
                    format: ExportFormat::Csv,
                    output,
                },
        } => {
            let c = load(&config)?;
            let ledger = open_ledger(&c)?;
            let shops: Vec<ShopId> = c.shops.iter().map(|s| s.id.clone()).collect();
            let total: u64 = shops
                .iter()
                .map(|s| ledger.journal_len(s).unwrap_or(0))
                .sum();
            let mut bar = crate::ops::progress::Progress::new("exported postings", Some(total));
            let progress = |_: u64| bar.inc(1);
            let rows = match output {
                Some(p) => {
                    let f = std::fs::File::create(&p)
                        .with_context(|| format!("cannot create {}", p.display()))?;
                    crate::report::export::journal_csv(
                        &ledger,
                        &shops,
                        std::io::BufWriter::new(f),
                        progress,
                    )?
                }
                None => crate::report::export::journal_csv(
                    &ledger,
                    &shops,
                    std::io::stdout().lock(),
                    progress,
                )?,
            };
            bar.finish();
            eprintln!("exported {rows} entries from {total} postings");
            Ok(())
        }
        Command::Report {
            what:
                ReportWhat::Liability {
                    config,
                    shop,
                    from,
                    to,
                },
        } => {
            let c = load(&config)?;
            let ledger = open_ledger(&c)?;
            let mut reports = Vec::new();
            for s in &c.shops {
                if shop.as_deref().is_some_and(|id| id != s.id.as_str()) {
                    continue;
                }
                let from = from
                    .as_deref()
                    .map(|v| crate::report::period::parse_bound("from", v, s.timezone, false))
                    .transpose()?;
                let to = match to.as_deref() {
                    Some(v) => crate::report::period::parse_bound("to", v, s.timezone, true)?,
                    None => chrono::Utc::now(),
                };
                reports.push(crate::report::liability::liability(&ledger, s, from, to)?);
            }
            if reports.is_empty() {
                bail!("no such shop in {}", config.display());
            }
            println!("{}", serde_json::to_string_pretty(&reports)?);
            Ok(())
        }
        Command::Jobs {
            what: JobsWhat::Run { config, at },
        } => {
            let c = load(&config)?;
            let ledger = open_ledger(&c)?;
            let now = match at {
                Some(t) => chrono::DateTime::parse_from_rfc3339(&t)
                    .with_context(|| format!("--at {t:?} is not an RFC 3339 time"))?
                    .with_timezone(&chrono::Utc),
                None => chrono::Utc::now(),
            };
            for s in &c.shops {
                let m = ledger.mature_due(&s.id, now)?;
                let rules = s.rules.current();
                let e = ledger.expire_due(&s.id, &rules.policy, s.timezone, now)?;
                let t = match &rules.tiers {
                    Some(tiers) => ledger.review_tiers(&s.id, tiers, s.timezone, now)?,
                    None => Default::default(),
                };
                let b = ledger.birthday_bonuses(
                    &s.id,
                    rules.bonuses.birthday,
                    &rules.policy,
                    s.timezone,
                    now,
                )?;
                let w = ledger.warn_expiring(&s.id, c.notify.expiry_warning_days, now)?;
                println!(
                    "shop {}: matured {} points in {} postings, expired {} points in {} postings, {} tier changes, {} birthday bonuses, {} expiry warnings",
                    s.id, m.points, m.postings, e.points, e.postings, t.postings, b.postings, w
                );
            }
            ledger.flush_now()?;
            Ok(())
        }
    }
}
