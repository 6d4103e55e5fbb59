//! Command-line interface: `serve`, `check-config`, `sign`.

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
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
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
            println!(
                "{}: ok ({} shop{})",
                config.display(),
                c.shops.len(),
                if c.shops.len() == 1 { "" } else { "s" }
            );
            for s in &c.shops {
                println!(
                    "  shop {}: {} {}, rules {} ({} point(s) per {})",
                    s.id,
                    s.currency,
                    s.timezone,
                    s.rules_path.display(),
                    s.rules.earn.points_per_unit,
                    s.currency
                );
            }
            Ok(())
        }
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
                other => bail!("cannot sign for adapter {other:?}: supported: shopify"),
            }
        }
    }
}
