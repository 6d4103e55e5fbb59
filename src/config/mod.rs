//! The one typed configuration, loaded once at start-up and passed down.
//!
//! Sources, later ones winning: the TOML file, then `LOYALTYD__SECTION__KEY`
//! environment variables (through the `config` crate). Every error names the file, the
//! line (when the key is in the file) and the dotted key.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use loyaltyd_adapter::{Currency, Secret, ShopId};
use serde::Deserialize;

use crate::rules::{LiveRules, RuleSet};

mod notify;
mod secrets;
mod tokens;
pub use notify::{
    EmailProviderSettings, EmailSettings, NotifyConfig, QuietHours, SmsSettings, SmtpTlsMode,
};
pub use tokens::{ApiToken, Role};

/// Default location of the config file, relative to the working directory.
pub const DEFAULT_PATH: &str = "config/loyaltyd.toml";

/// A config problem, with where it is.
#[derive(Debug, thiserror::Error)]
#[error("{file}{}: {key}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ConfigError {
    /// The file at fault.
    pub file: String,
    /// 1-based line of the key in the file, when it is there.
    pub line: Option<usize>,
    /// Dotted key, e.g. `shops[0].currency` (or `-` for the file as a whole).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// The daemon's whole configuration, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from.
    pub file: PathBuf,
    /// `[server]`
    pub server: ServerConfig,
    /// `[storage]`
    pub storage: StorageConfig,
    /// `[notify]`
    pub notify: NotifyConfig,
    /// `[[tokens]]` plus `server.admin_token` (named `admin`, every shop).
    pub tokens: Vec<ApiToken>,
    /// `[jobs] interval_secs`: how often maturation and expiry run.
    pub jobs_interval: Duration,
    /// `[[shops]]`
    pub shops: Vec<ShopConfig>,
}

/// `[server]`
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on; port 0 picks a free port (printed at start-up).
    pub listen: SocketAddr,
    /// Bearer token for the admin API.
    pub admin_token: Secret,
    /// Largest webhook body accepted; larger ones get 413 before being read in full.
    pub max_body_bytes: usize,
    /// Longest a request may take before it is answered 408.
    pub request_timeout: Duration,
    /// `header_timeout_secs` (default 10): longest a client may take to send a request's
    /// headers, or to start its next request on a kept-alive connection; then the
    /// connection is closed (slow-loris defence).
    pub header_timeout: Duration,
    /// `max_connections` (default 1024): connections served at once; more wait in the
    /// kernel's accept queue.
    pub max_connections: usize,
}

/// `[storage]`
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// The sled directory (relative paths are relative to the working directory).
    pub path: PathBuf,
    /// `durable_acks` (default true): answer webhooks only after a flush. `false` is
    /// for benchmarking the cost of durability only — acknowledged events can then be
    /// lost in a crash.
    pub durable_acks: bool,
    /// `dedupe_retention_days` (default 30; 0 keeps them forever, else at least 3, past
    /// Square's 72-hour retries): how long the answer to a sender's delivery id is kept
    /// for its retries. Order and refund records, which stop a late redelivery from
    /// posting twice, are kept forever.
    pub dedupe_retention: Option<Duration>,
    /// `sent_retention_days` (default 30; 0 keeps them forever): how long the record of
    /// a delivered notification is kept.
    pub sent_retention: Option<Duration>,
    /// `cache_capacity_mib` (default 16, 1 to 65536): sled's page cache. sled counts
    /// pages at their on-disk size, so the memory it takes is a few times this
    /// (docs/hardening.md, "Memory and retention").
    pub cache_capacity_bytes: u64,
}

/// One `[[shops]]` entry.
#[derive(Debug, Clone)]
pub struct ShopConfig {
    /// `id`: used in URLs.
    pub id: ShopId,
    /// `name`: shown to members.
    pub name: String,
    /// `currency`: the shop's ISO 4217 currency.
    pub currency: Currency,
    /// `timezone`: IANA name; days, hours and expiry are in this zone.
    pub timezone: Tz,
    /// `country`: ISO 3166 region used to read phone numbers written without `+`.
    pub country: phonenumber::country::Id,
    /// `point_value`: money per point, for the liability report.
    pub point_value: rust_decimal::Decimal,
    /// `rules`: the rules file (relative to the config file's directory).
    pub rules_path: PathBuf,
    /// The rules in force (reloaded on SIGHUP or when the file changes).
    pub rules: LiveRules,
    /// `quiet_hours` (`"21:00-08:00"` or `"off"`), else `[notify] quiet_hours`.
    pub quiet_hours: Option<QuietHours>,
    /// `[shops.shopify]`, when the shop takes Shopify webhooks.
    pub shopify: Option<ShopifyConfig>,
    /// `[shops.square]`, when the shop takes Square webhooks.
    pub square: Option<SquareConfig>,
    /// `[shops.<name>]` tables of declarative adapters.
    pub declarative: Vec<DeclarativeShopConfig>,
}

/// `[shops.shopify]`
#[derive(Debug, Clone)]
pub struct ShopifyConfig {
    /// `webhook_secret`, plus any `previous_webhook_secrets` still accepted during a rotation.
    pub secrets: Vec<Secret>,
    /// `earn_on`: `"paid"` (default, `orders/paid`) or `"create"` (`orders/create`).
    pub earn_on_create: bool,
    /// `replay_tolerance_secs`: deliveries triggered longer ago are refused (default
    /// 6 hours, beyond Shopify's 4-hour retry window).
    pub replay_tolerance: Duration,
}

/// `[shops.square]`
#[derive(Debug, Clone)]
pub struct SquareConfig {
    /// `signature_key`, plus `previous_signature_keys` during a rotation.
    pub signature_keys: Vec<Secret>,
    /// `notification_url`: exactly as registered with Square (it is signed).
    pub notification_url: String,
    /// Orders API access, when `access_token` is set.
    pub orders: Option<SquareOrdersConfig>,
}

/// Square Orders API settings (`[shops.square] access_token`, `orders_*`).
#[derive(Debug, Clone)]
pub struct SquareOrdersConfig {
    /// `orders_base_url` (default `https://connect.squareup.com`).
    pub base_url: String,
    /// `access_token`.
    pub access_token: Secret,
    /// `square_version` (default `2026-05-20`).
    pub square_version: String,
    /// `orders_timeout_ms` (default 2000; with the retry, the webhook is answered well
    /// inside Square's 10 s).
    pub timeout: Duration,
    /// `orders_retries` (default 1) before the event is queued for later.
    pub retries: u32,
    /// `max_retry_backoff_secs` (default 300, at most 3600): the longest pause between two
    /// attempts at one queued event (probes of an API that keeps failing pause at most a
    /// minute, or this if lower; see `crate::retry`).
    pub max_retry_backoff: Duration,
}

/// `[shops.<name>]` for a declarative adapter (e.g. `woocommerce`).
#[derive(Debug, Clone)]
pub struct DeclarativeShopConfig {
    /// The adapter definition's name.
    pub adapter: String,
    /// `webhook_secret` + `previous_webhook_secrets`.
    pub secrets: Vec<Secret>,
    /// `notification_url`, for definitions that sign URL + body.
    pub notification_url: Option<String>,
}

// ---- raw shape, as deserialised: everything optional so that errors name the key ----

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    storage: RawStorage,
    #[serde(default)]
    notify: notify::RawNotify,
    #[serde(default)]
    jobs: RawJobs,
    #[serde(default)]
    shops: Vec<RawShop>,
    #[serde(default)]
    tokens: Vec<tokens::RawToken>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJobs {
    interval_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    admin_token: Option<String>,
    max_body_bytes: Option<u64>,
    request_timeout_secs: Option<u64>,
    header_timeout_secs: Option<u64>,
    max_connections: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    path: Option<String>,
    durable_acks: Option<bool>,
    dedupe_retention_days: Option<u64>,
    sent_retention_days: Option<u64>,
    cache_capacity_mib: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct RawShop {
    id: Option<String>,
    name: Option<String>,
    currency: Option<String>,
    timezone: Option<String>,
    country: Option<String>,
    point_value: Option<String>,
    rules: Option<String>,
    quiet_hours: Option<String>,
    shopify: Option<RawShopify>,
    square: Option<RawSquare>,
    /// Tables named after declarative adapters (`[shops.woocommerce]`).
    #[serde(flatten)]
    other: std::collections::BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShopify {
    webhook_secret: Option<String>,
    #[serde(default)]
    previous_webhook_secrets: Vec<String>,
    earn_on: Option<String>,
    replay_tolerance_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSquare {
    signature_key: Option<String>,
    #[serde(default)]
    previous_signature_keys: Vec<String>,
    notification_url: Option<String>,
    access_token: Option<String>,
    orders_base_url: Option<String>,
    square_version: Option<String>,
    orders_timeout_ms: Option<u64>,
    orders_retries: Option<u32>,
    max_retry_backoff_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeclarative {
    webhook_secret: Option<String>,
    #[serde(default)]
    previous_webhook_secrets: Vec<String>,
    notification_url: Option<String>,
}

impl Config {
    /// Load and validate the config file at `path` with environment overrides.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::load_with_env(path, std::env::vars())
    }

    /// Like [`Config::load`], with the environment given explicitly (for tests).
    pub fn load_with_env(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            line: None,
            key: "-".into(),
            message: format!("cannot read the config file: {e}"),
        })?;
        // Syntax first, with the toml parser's line and column.
        let mut table = match text.parse::<toml::Table>() {
            Ok(t) => t,
            Err(e) => {
                return Err(ConfigError {
                    line: e.span().map(|s| line_of_offset(&text, s.start)),
                    file,
                    key: "-".into(),
                    message: format!("not valid TOML: {}", e.message()),
                })
            }
        };
        let base_dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        // `<key>_file` secrets, from the TOML and the environment.
        secrets::resolve_table(&mut table, "", &base_dir, &file, &text)?;
        let resolved = toml::to_string(&table).map_err(|e| ConfigError {
            file: file.clone(),
            line: None,
            key: "-".into(),
            message: format!("cannot re-encode the configuration: {e}"),
        })?;
        let env = secrets::resolve_env(
            env.into_iter()
                .filter(|(k, _)| k.starts_with("LOYALTYD__"))
                .collect(),
            &base_dir,
            &file,
        )?;
        let env: config::Map<String, String> = env.into_iter().collect();
        let built = config::Config::builder()
            .add_source(config::File::from_str(&resolved, config::FileFormat::Toml))
            .add_source(
                config::Environment::with_prefix("LOYALTYD")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true)
                    .source(Some(env)),
            )
            .build()
            .and_then(|c| c.try_deserialize::<RawConfig>())
            .map_err(|e| from_config_crate(&file, &text, e))?;
        let loc = Locator {
            file: &file,
            text: &text,
        };
        validate(path, &base_dir, built, &loc)
    }

    /// The shop with this id.
    pub fn shop(&self, id: &ShopId) -> Option<&ShopConfig> {
        self.shops.iter().find(|s| &s.id == id)
    }
}

struct Locator<'a> {
    file: &'a str,
    text: &'a str,
}

impl Locator<'_> {
    fn err(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_string(),
            line: find_key_line(self.text, key),
            key: key.to_string(),
            message: message.into(),
        }
    }
}

fn validate(
    path: &Path,
    base_dir: &Path,
    raw: RawConfig,
    loc: &Locator<'_>,
) -> Result<Config, ConfigError> {
    let listen_text = raw.server.listen.unwrap_or_else(|| "127.0.0.1:8080".into());
    let listen: SocketAddr = listen_text.parse().map_err(|_| {
        loc.err(
            "server.listen",
            format!("{listen_text:?} is not an address like \"127.0.0.1:8080\""),
        )
    })?;
    let admin_token = match raw.server.admin_token {
        Some(t) if t.trim().len() >= 8 => Secret::new(t),
        Some(_) => return Err(loc.err("server.admin_token", "must be at least 8 characters long")),
        None => return Err(loc.err("server.admin_token", "is required")),
    };
    let max_body_bytes = raw.server.max_body_bytes.unwrap_or(1024 * 1024);
    if max_body_bytes == 0 || max_body_bytes > 64 * 1024 * 1024 {
        return Err(loc.err(
            "server.max_body_bytes",
            "must be between 1 and 67108864 (64 MiB)",
        ));
    }
    let timeout = raw.server.request_timeout_secs.unwrap_or(10);
    if timeout == 0 || timeout > 300 {
        return Err(loc.err("server.request_timeout_secs", "must be between 1 and 300"));
    }
    let header_timeout = raw.server.header_timeout_secs.unwrap_or(10);
    if header_timeout == 0 || header_timeout > 300 {
        return Err(loc.err("server.header_timeout_secs", "must be between 1 and 300"));
    }
    let max_connections = raw.server.max_connections.unwrap_or(1024);
    if max_connections == 0 || max_connections > 100_000 {
        return Err(loc.err("server.max_connections", "must be between 1 and 100000"));
    }
    let storage_path = raw.storage.path.unwrap_or_else(|| "data".into());
    if storage_path.trim().is_empty() {
        return Err(loc.err("storage.path", "must not be empty"));
    }
    let retention_days = |key: &str, v: Option<u64>, min: u64, why: &str| match v.unwrap_or(30) {
        0 => Ok(None),
        d if d < min || d > 36_500 => Err(loc.err(
            key,
            format!("must be 0 (keep forever) or between {min} and 36500 days{why}"),
        )),
        d => Ok(Some(Duration::from_secs(d * 86_400))),
    };
    let dedupe_retention = retention_days(
        "storage.dedupe_retention_days",
        raw.storage.dedupe_retention_days,
        3,
        ": senders retry a delivery for up to 72 hours (Square)",
    )?;
    let sent_retention = retention_days(
        "storage.sent_retention_days",
        raw.storage.sent_retention_days,
        1,
        "",
    )?;
    let cache_mib = raw
        .storage
        .cache_capacity_mib
        .unwrap_or(crate::ledger::DEFAULT_CACHE_MIB);
    if cache_mib == 0 || cache_mib > 65_536 {
        return Err(loc.err(
            "storage.cache_capacity_mib",
            "must be between 1 and 65536 (MiB)",
        ));
    }

    let jobs_interval = raw.jobs.interval_secs.unwrap_or(60);
    if jobs_interval == 0 || jobs_interval > 86_400 {
        return Err(loc.err("jobs.interval_secs", "must be between 1 and 86400"));
    }
    let notify = notify::validate(raw.notify, base_dir, loc)?;
    let tokens = tokens::validate(raw.tokens, &admin_token, loc)?;
    if raw.shops.is_empty() {
        return Err(loc.err("shops", "at least one [[shops]] entry is required"));
    }
    let mut seen = HashSet::new();
    let mut shops = Vec::with_capacity(raw.shops.len());
    for (i, s) in raw.shops.into_iter().enumerate() {
        let k = |name: &str| format!("shops[{i}].{name}");
        let id_text = s.id.ok_or_else(|| loc.err(&k("id"), "is required"))?;
        let id = ShopId::new(id_text).map_err(|e| loc.err(&k("id"), e.to_string()))?;
        if !seen.insert(id.clone()) {
            return Err(loc.err(&k("id"), format!("shop id {id} is used twice")));
        }
        let currency: Currency = s
            .currency
            .ok_or_else(|| loc.err(&k("currency"), "is required"))?
            .parse()
            .map_err(|e: loyaltyd_adapter::event::InvalidCurrency| {
                loc.err(&k("currency"), e.to_string())
            })?;
        let tz_text = s.timezone.unwrap_or_else(|| "UTC".into());
        let timezone: Tz = tz_text.parse().map_err(|_| {
            loc.err(
                &k("timezone"),
                format!("{tz_text:?} is not an IANA time zone like \"Europe/Paris\""),
            )
        })?;
        let country_text = s.country.unwrap_or_else(|| "US".into());
        let country: phonenumber::country::Id = country_text.parse().map_err(|_| {
            loc.err(
                &k("country"),
                format!("{country_text:?} is not an ISO 3166 country code like \"US\""),
            )
        })?;
        let pv_text = s.point_value.unwrap_or_else(|| "0.01".into());
        let point_value: rust_decimal::Decimal = pv_text
            .trim()
            .parse()
            .ok()
            .filter(|v: &rust_decimal::Decimal| !v.is_sign_negative())
            .ok_or_else(|| {
                loc.err(
                    &k("point_value"),
                    format!("{pv_text:?} is not a non-negative decimal like \"0.01\""),
                )
            })?;
        let rules_rel = s.rules.unwrap_or_else(|| "rules.toml".into());
        let rules_path = base_dir.join(&rules_rel);
        let rules = RuleSet::load(&rules_path).map_err(|e| {
            // Rule errors carry their own file and line; say which shop pointed there.
            let mut err = loc.err(&k("rules"), e.to_string());
            err.message = format!("rules file {rules_rel:?} is invalid: {}", err.message);
            err
        })?;
        let shopify = match s.shopify {
            None => None,
            Some(sh) => {
                let primary = sh
                    .webhook_secret
                    .filter(|v| !v.trim().is_empty())
                    .ok_or_else(|| loc.err(&k("shopify.webhook_secret"), "is required"))?;
                let mut secrets = vec![Secret::new(primary)];
                secrets.extend(
                    sh.previous_webhook_secrets
                        .into_iter()
                        .filter(|v| !v.trim().is_empty())
                        .map(Secret::new),
                );
                let earn_on_create = match sh.earn_on.as_deref().unwrap_or("paid") {
                    "paid" => false,
                    "create" => true,
                    other => {
                        return Err(loc.err(
                            &k("shopify.earn_on"),
                            format!("{other:?} is not \"paid\" or \"create\""),
                        ))
                    }
                };
                Some(ShopifyConfig {
                    secrets,
                    earn_on_create,
                    replay_tolerance: Duration::from_secs(
                        sh.replay_tolerance_secs.unwrap_or(6 * 3600),
                    ),
                })
            }
        };
        let square = match s.square {
            None => None,
            Some(sq) => {
                let key = sq
                    .signature_key
                    .filter(|v| !v.trim().is_empty())
                    .ok_or_else(|| loc.err(&k("square.signature_key"), "is required"))?;
                let mut signature_keys = vec![Secret::new(key)];
                signature_keys.extend(
                    sq.previous_signature_keys
                        .into_iter()
                        .filter(|v| !v.trim().is_empty())
                        .map(Secret::new),
                );
                let notification_url = sq
                    .notification_url
                    .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
                    .ok_or_else(|| {
                        loc.err(
                            &k("square.notification_url"),
                            "is required: the URL exactly as registered with Square (https://...)",
                        )
                    })?;
                let max_retry_backoff = sq.max_retry_backoff_secs.unwrap_or(300);
                if max_retry_backoff == 0 || max_retry_backoff > 3600 {
                    return Err(loc.err(
                        &k("square.max_retry_backoff_secs"),
                        "must be between 1 and 3600",
                    ));
                }
                let orders = sq
                    .access_token
                    .filter(|t| !t.trim().is_empty())
                    .map(|token| SquareOrdersConfig {
                        base_url: sq
                            .orders_base_url
                            .unwrap_or_else(|| "https://connect.squareup.com".into())
                            .trim_end_matches('/')
                            .to_string(),
                        access_token: Secret::new(token),
                        square_version: sq.square_version.unwrap_or_else(|| "2026-05-20".into()),
                        timeout: Duration::from_millis(sq.orders_timeout_ms.unwrap_or(2000)),
                        retries: sq.orders_retries.unwrap_or(1),
                        max_retry_backoff: Duration::from_secs(max_retry_backoff),
                    });
                Some(SquareConfig {
                    signature_keys,
                    notification_url,
                    orders,
                })
            }
        };
        let mut declarative = Vec::new();
        for (name, value) in s.other {
            let raw: RawDeclarative = serde_json::from_value(value).map_err(|e| {
                loc.err(
                    &k(&name),
                    format!("unknown key, or not an adapter table with webhook_secret: {e}"),
                )
            })?;
            let primary = raw
                .webhook_secret
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| loc.err(&k(&format!("{name}.webhook_secret")), "is required"))?;
            let mut secrets = vec![Secret::new(primary)];
            secrets.extend(
                raw.previous_webhook_secrets
                    .into_iter()
                    .filter(|v| !v.trim().is_empty())
                    .map(Secret::new),
            );
            declarative.push(DeclarativeShopConfig {
                adapter: name,
                secrets,
                notification_url: raw.notification_url,
            });
        }
        shops.push(ShopConfig {
            name: s.name.unwrap_or_else(|| id.to_string()),
            id,
            currency,
            timezone,
            country,
            point_value,
            rules: LiveRules::new(rules_path.clone(), rules),
            rules_path,
            quiet_hours: match s.quiet_hours {
                Some(q) => notify::quiet_hours(Some(q), &k("quiet_hours"), loc)?,
                None => notify.quiet_hours,
            },
            shopify,
            square,
            declarative,
        });
    }

    // Tokens name shops that exist (index 0 is server.admin_token).
    for (i, t) in tokens.iter().enumerate().skip(1) {
        if let Some(unknown) = t
            .shops
            .iter()
            .flatten()
            .find(|s| !shops.iter().any(|shop| &shop.id == *s))
        {
            return Err(loc.err(
                &format!("tokens[{}].shops", i - 1),
                format!("no shop {unknown} is configured"),
            ));
        }
    }
    Ok(Config {
        file: path.to_path_buf(),
        server: ServerConfig {
            listen,
            admin_token,
            max_body_bytes: max_body_bytes as usize,
            request_timeout: Duration::from_secs(timeout),
            header_timeout: Duration::from_secs(header_timeout),
            max_connections: max_connections as usize,
        },
        storage: StorageConfig {
            path: PathBuf::from(storage_path),
            durable_acks: raw.storage.durable_acks.unwrap_or(true),
            dedupe_retention,
            sent_retention,
            cache_capacity_bytes: cache_mib * 1024 * 1024,
        },
        notify,
        tokens,
        jobs_interval: Duration::from_secs(jobs_interval),
        shops,
    })
}

/// Turn the `config` crate's error into ours, keeping its key.
fn from_config_crate(file: &str, text: &str, e: config::ConfigError) -> ConfigError {
    let (key, message) = match &e {
        config::ConfigError::Type {
            key: Some(key),
            unexpected,
            expected,
            origin,
        } => (
            key.clone(),
            format!(
                "invalid type: {unexpected}, expected {expected}{}",
                origin
                    .as_deref()
                    .map(|o| format!(" (from {o})"))
                    .unwrap_or_default()
            ),
        ),
        config::ConfigError::At {
            error,
            key: Some(key),
            ..
        } => {
            let msg = error.to_string();
            // serde names an unknown key only in its message: make it part of the path.
            let key = match msg
                .strip_prefix("unknown field `")
                .and_then(|r| r.split('`').next())
            {
                Some(field) => format!("{key}.{field}"),
                None => key.clone(),
            };
            (key, msg)
        }
        other => {
            let msg = other.to_string();
            // serde's "unknown field `x`, expected ..." names the key in the message.
            let key = msg
                .split('`')
                .nth(1)
                .map(str::to_string)
                .unwrap_or_else(|| "-".into());
            (key, msg)
        }
    };
    ConfigError {
        file: file.to_string(),
        line: find_key_line(text, &key),
        key,
        message,
    }
}

fn line_of_offset(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Best-effort line of a dotted key (`server.listen`, `shops[1].shopify.webhook_secret`)
/// in a TOML text; falls back to the line of its table, then of a bare key name.
pub(crate) fn find_key_line(text: &str, key: &str) -> Option<usize> {
    let want = normalise_path(key);
    let mut table: Vec<String> = Vec::new();
    let mut array_counts: std::collections::HashMap<String, usize> = Default::default();
    let mut table_line = None;
    let mut last_segment_line = None;
    let last = want.last().cloned().unwrap_or_default();
    for (n, raw_line) in text.lines().enumerate() {
        let line = raw_line.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(inner) = line.strip_prefix("[[").and_then(|l| l.split("]]").next()) {
            let name = inner.trim().to_string();
            let idx = array_counts.entry(name.clone()).or_insert(0);
            table = normalise_path(&name);
            table.push(idx.to_string());
            *idx += 1;
        } else if let Some(inner) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            let parts = normalise_path(inner.trim());
            // `[shops.shopify]` after `[[shops]]` belongs to the latest shop.
            let head = parts.first().cloned().unwrap_or_default();
            table = match array_counts.get(&head) {
                Some(count) if *count > 0 => {
                    let mut t = vec![head, (count - 1).to_string()];
                    t.extend(parts.into_iter().skip(1));
                    t
                }
                _ => parts,
            };
        } else if let Some((k, _)) = line.split_once('=') {
            let mut full = table.clone();
            full.extend(normalise_path(k.trim().trim_matches('"')));
            if full == want {
                return Some(n + 1);
            }
            if full.last() == Some(&last) && last_segment_line.is_none() {
                last_segment_line = Some(n + 1);
            }
            continue;
        } else {
            continue;
        }
        if want.starts_with(&table) && !table.is_empty() {
            table_line = Some(n + 1);
        }
    }
    table_line.or(last_segment_line)
}

fn normalise_path(key: &str) -> Vec<String> {
    key.replace('[', ".")
        .replace(']', "")
        .split('.')
        .filter(|s| !s.is_empty())
        .map(|s| s.trim().to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
[server]
listen = "127.0.0.1:8080"
admin_token = "secret-token"

[storage]
path = "data"

[[shops]]
id = "a"
currency = "USD"

[[shops]]
id = "b"
currency = "EUR"

[shops.shopify]
webhook_secret = "x"
"#;

    #[test]
    fn a_key_in_the_second_array_table_is_found_on_its_own_line() {
        assert_eq!(find_key_line(SAMPLE, "shops[1].currency"), Some(15));
        assert_eq!(
            find_key_line(SAMPLE, "shops[1].shopify.webhook_secret"),
            Some(18)
        );
        assert_eq!(find_key_line(SAMPLE, "server.listen"), Some(3));
    }

    #[test]
    fn secrets_can_come_from_files_named_in_the_toml_or_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("admin.secret"), "from-an-env-file-123\n").unwrap();
        std::fs::write(dir.path().join("shopify.secret"), "shpss_from_a_file").unwrap();
        let p = write_config(
            dir.path(),
            "[server]\nadmin_token = \"in-the-toml-1\"\n[[shops]]\nid = \"demo\"\ncurrency = \"USD\"\n[shops.shopify]\nwebhook_secret_file = \"shopify.secret\"\n",
        );
        // The environment wins over the TOML, as for every key.
        let env = vec![(
            "LOYALTYD__SERVER__ADMIN_TOKEN_FILE".to_string(),
            dir.path().join("admin.secret").display().to_string(),
        )];
        let c = Config::load_with_env(&p, env).unwrap();
        assert_eq!(c.server.admin_token.expose(), b"from-an-env-file-123");
        let shopify = c.shops[0].shopify.as_ref().unwrap();
        assert_eq!(shopify.secrets[0].expose(), b"shpss_from_a_file");
        // Both forms at once, or a missing file, name the key.
        let p = write_config(
            dir.path(),
            "[server]\nadmin_token = \"x-long-enough\"\nadmin_token_file = \"admin.secret\"\n[[shops]]\nid = \"demo\"\ncurrency = \"USD\"\n",
        );
        let e = Config::load_with_env(&p, vec![]).unwrap_err();
        assert_eq!(e.key, "server.admin_token_file", "{e}");
        let p = write_config(
            dir.path(),
            "[server]\nadmin_token_file = \"nowhere.secret\"\n[[shops]]\nid = \"demo\"\ncurrency = \"USD\"\n",
        );
        let e = Config::load_with_env(&p, vec![]).unwrap_err();
        assert!(e.to_string().contains("cannot read secret file"), "{e}");
        assert_eq!(e.line, Some(2));
    }
    #[test]
    fn a_missing_key_points_at_its_table() {
        assert_eq!(find_key_line(SAMPLE, "shops[0].timezone"), Some(9));
    }

    fn write_config(dir: &Path, body: &str) -> PathBuf {
        std::fs::write(dir.join("rules.toml"), "[earn]\npoints_per_unit = \"1\"\n").unwrap();
        let p = dir.join("loyaltyd.toml");
        std::fs::write(&p, body).unwrap();
        p
    }

    #[test]
    fn a_bad_currency_names_file_line_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_config(
            dir.path(),
            "[server]\nadmin_token = \"long-enough\"\n[[shops]]\nid = \"demo\"\ncurrency = \"dollars\"\n",
        );
        let e = Config::load_with_env(&p, vec![]).unwrap_err();
        assert_eq!(e.key, "shops[0].currency");
        assert_eq!(e.line, Some(5));
        assert!(
            e.to_string()
                .starts_with(&format!("{}:5: shops[0].currency:", p.display())),
            "{e}"
        );
    }

    #[test]
    fn a_toml_syntax_error_gives_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_config(dir.path(), "[server]\nlisten = \n");
        let e = Config::load_with_env(&p, vec![]).unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
    }

    #[test]
    fn connection_limits_out_of_range_name_their_key_and_line() {
        let dir = tempfile::tempdir().unwrap();
        for (key, line) in [
            ("header_timeout_secs = 0", "server.header_timeout_secs"),
            ("max_connections = 0", "server.max_connections"),
        ] {
            let p = write_config(
                dir.path(),
                &format!("[server]\nadmin_token = \"long-enough\"\n{key}\n[[shops]]\nid = \"d\"\ncurrency = \"USD\"\n"),
            );
            let e = Config::load_with_env(&p, vec![]).unwrap_err();
            assert_eq!(e.key, line, "{e}");
            assert_eq!(e.line, Some(3), "{e}");
        }
    }

    #[test]
    fn an_unknown_key_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_config(
            dir.path(),
            "[server]\nadmin_token = \"long-enough\"\nlisten_on = \"x\"\n[[shops]]\nid = \"d\"\ncurrency = \"USD\"\n",
        );
        let e = Config::load_with_env(&p, vec![]).unwrap_err();
        assert!(e.message.contains("listen_on"), "{e}");
        assert_eq!(e.line, Some(3), "{e}");
    }

    #[test]
    fn environment_variables_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_config(
            dir.path(),
            "[server]\nadmin_token = \"long-enough\"\n[[shops]]\nid = \"d\"\ncurrency = \"USD\"\n",
        );
        let c = Config::load_with_env(
            &p,
            vec![
                ("LOYALTYD__SERVER__LISTEN".into(), "127.0.0.1:9999".into()),
                ("LOYALTYD__STORAGE__PATH".into(), "/tmp/elsewhere".into()),
                ("LOYALTYD__SERVER__MAX_BODY_BYTES".into(), "2048".into()),
            ],
        )
        .unwrap();
        assert_eq!(c.server.listen.port(), 9999);
        assert_eq!(c.storage.path, PathBuf::from("/tmp/elsewhere"));
        assert_eq!(c.server.max_body_bytes, 2048);
    }

    #[test]
    fn a_bad_environment_override_names_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_config(
            dir.path(),
            "[server]\nadmin_token = \"long-enough\"\n[[shops]]\nid = \"d\"\ncurrency = \"USD\"\n",
        );
        let e = Config::load_with_env(
            &p,
            vec![("LOYALTYD__SERVER__LISTEN".into(), "nowhere".into())],
        )
        .unwrap_err();
        assert_eq!(e.key, "server.listen");
    }

    #[test]
    fn retention_windows_default_to_30_days_allow_0_and_refuse_less_than_the_retries() {
        let dir = tempfile::tempdir().unwrap();
        let shop = "[[shops]]\nid = \"d\"\ncurrency = \"USD\"\n";
        let server = "[server]\nadmin_token = \"long-enough\"\n";
        let p = write_config(dir.path(), &format!("{server}{shop}"));
        let c = Config::load_with_env(&p, vec![]).unwrap();
        let month = Some(Duration::from_secs(30 * 86_400));
        assert_eq!(
            (c.storage.dedupe_retention, c.storage.sent_retention),
            (month, month)
        );
        assert_eq!(c.storage.cache_capacity_bytes, 16 << 20);
        let p = write_config(
            dir.path(),
            &format!(
                "{server}[storage]\ndedupe_retention_days = 0\nsent_retention_days = 7\n\
                 cache_capacity_mib = 64\n{shop}"
            ),
        );
        let c = Config::load_with_env(&p, vec![]).unwrap();
        assert_eq!(c.storage.dedupe_retention, None);
        assert_eq!(c.storage.cache_capacity_bytes, 64 << 20);
        assert_eq!(
            c.storage.sent_retention,
            Some(Duration::from_secs(7 * 86_400))
        );
        for (body, key) in [
            ("dedupe_retention_days = 2", "storage.dedupe_retention_days"),
            ("sent_retention_days = 40000", "storage.sent_retention_days"),
            ("cache_capacity_mib = 0", "storage.cache_capacity_mib"),
        ] {
            let p = write_config(dir.path(), &format!("{server}[storage]\n{body}\n{shop}"));
            let e = Config::load_with_env(&p, vec![]).unwrap_err();
            assert_eq!((e.key.as_str(), e.line), (key, Some(4)), "{e}");
        }
    }

    #[test]
    fn notification_breaker_settings_default_to_5_failures_and_10_s_and_are_range_checked() {
        let dir = tempfile::tempdir().unwrap();
        let shop = "[[shops]]\nid = \"d\"\ncurrency = \"USD\"\n";
        let server = "[server]\nadmin_token = \"long-enough\"\n";
        let p = write_config(dir.path(), &format!("{server}{shop}"));
        let c = Config::load_with_env(&p, vec![]).unwrap();
        assert_eq!(
            (c.notify.breaker_failures, c.notify.breaker_max_open),
            (5, Duration::from_secs(10))
        );
        let p = write_config(
            dir.path(),
            &format!("{server}[notify]\nbreaker_failures = 3\nbreaker_max_open_secs = 60\n{shop}"),
        );
        let c = Config::load_with_env(&p, vec![]).unwrap();
        assert_eq!(
            (c.notify.breaker_failures, c.notify.breaker_max_open),
            (3, Duration::from_secs(60))
        );
        for (body, key) in [
            ("breaker_failures = 0", "notify.breaker_failures"),
            ("breaker_failures = 101", "notify.breaker_failures"),
            ("breaker_max_open_secs = 0", "notify.breaker_max_open_secs"),
            (
                "breaker_max_open_secs = 3601",
                "notify.breaker_max_open_secs",
            ),
        ] {
            let p = write_config(dir.path(), &format!("{server}[notify]\n{body}\n{shop}"));
            let e = Config::load_with_env(&p, vec![]).unwrap_err();
            assert_eq!((e.key.as_str(), e.line), (key, Some(4)), "{e}");
        }
    }

    #[test]
    fn the_shipped_config_is_valid() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_PATH);
        let c = Config::load_with_env(&p, vec![]).unwrap();
        assert!(c.shops.iter().any(|s| s.shopify.is_some()));
    }
}
