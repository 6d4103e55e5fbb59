//! Build the notifier from the configuration: providers, rate limits, templates.

use std::collections::HashMap;
use std::sync::Arc;

use loyaltyd_adapter::Secret;

use super::console::ConsoleSink;
use super::delivery::{DeliveryStore, Directory};
use super::providers::{
    EmailProvider, MailgunClient, MailgunConfig, SendGridClient, SendGridConfig, SmsProvider,
    SmtpClient, SmtpConfig, SmtpTls, TwilioClient, TwilioConfig,
};
use super::render::ShopVoice;
use super::templates::Templates;
use super::worker::{limiter, Notifier, Policy, ShopNotify};
use crate::config::{Config, EmailProviderSettings, SmtpTlsMode};
use crate::metrics::Metrics;

/// Why the notifier could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// Templates did not load or fail their checks.
    #[error("templates: {0}")]
    Templates(String),
    /// A provider could not be set up.
    #[error("{0}")]
    Provider(String),
    /// The console file could not be opened.
    #[error("console notification file: {0}")]
    Console(#[from] std::io::Error),
    /// The stores could not be opened.
    #[error("storage: {0}")]
    Storage(#[from] sled::Error),
}

/// `"Name" <address>`, with the name quoted so commas and the like stay in it.
fn display_address(name: &str, address: &str) -> String {
    let name: String = name.chars().filter(|c| *c != '"' && *c != '\\').collect();
    format!("\"{name}\" <{address}>")
}

fn text(s: &Secret) -> String {
    String::from_utf8_lossy(s.expose()).into_owned()
}

/// Load the templates and check them against the SMS length limit.
pub fn templates(config: &Config) -> Result<Templates, SetupError> {
    let t = Templates::load(config.notify.templates_dir.as_deref())
        .map_err(|e| SetupError::Templates(e.to_string()))?;
    let problems = t.check(config.notify.max_sms_segments);
    if !problems.is_empty() {
        let list: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        return Err(SetupError::Templates(list.join("; ")));
    }
    Ok(t)
}

/// The notifier for `config`.
pub fn build(
    config: &Config,
    db: &sled::Db,
    directory: Arc<dyn Directory>,
    metrics: Arc<Metrics>,
) -> Result<Notifier, SetupError> {
    let n = &config.notify;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(n.concurrency)
        .build()
        .map_err(|e| SetupError::Provider(format!("HTTP client: {e}")))?;
    let sms = n.sms.as_ref().map(|s| {
        let client = TwilioClient::new(
            TwilioConfig {
                base_url: s.base_url.clone(),
                account_sid: s.account_sid.clone(),
                auth_token: text(&s.auth_token),
                api_key_sid: s.api_key.as_ref().map(|(k, _)| k.clone()),
                api_key_secret: s.api_key.as_ref().map(|(_, v)| text(v)),
                from: s.from.clone(),
                messaging_service_sid: s.messaging_service_sid.clone(),
                timeout: s.timeout,
            },
            http.clone(),
        );
        (SmsProvider::Twilio(client), limiter(s.rate_per_sec))
    });
    let email = match &n.email {
        None => None,
        Some(e) => {
            let provider = match &e.provider {
                EmailProviderSettings::SendGrid { base_url, api_key } => {
                    EmailProvider::SendGrid(SendGridClient::new(
                        SendGridConfig {
                            base_url: base_url.clone(),
                            api_key: text(api_key),
                            from: e.from.clone(),
                            from_name: e.from_name.clone(),
                            timeout: e.timeout,
                        },
                        http.clone(),
                    ))
                }
                EmailProviderSettings::Mailgun {
                    base_url,
                    domain,
                    api_key,
                } => EmailProvider::Mailgun(MailgunClient::new(
                    MailgunConfig {
                        base_url: base_url.clone(),
                        domain: domain.clone(),
                        api_key: text(api_key),
                        from: match &e.from_name {
                            Some(name) => display_address(name, &e.from),
                            None => e.from.clone(),
                        },
                        timeout: e.timeout,
                    },
                    http.clone(),
                )),
                EmailProviderSettings::Smtp {
                    host,
                    port,
                    tls,
                    credentials,
                } => EmailProvider::Smtp(
                    SmtpClient::new(SmtpConfig {
                        host: host.clone(),
                        port: *port,
                        tls: match tls {
                            SmtpTlsMode::None => SmtpTls::None,
                            SmtpTlsMode::StartTls => SmtpTls::StartTls,
                            SmtpTlsMode::Implicit => SmtpTls::Implicit,
                        },
                        username: credentials.as_ref().map(|(u, _)| u.clone()),
                        password: credentials.as_ref().map(|(_, p)| text(p)),
                        from: match &e.from_name {
                            Some(name) => display_address(name, &e.from),
                            None => e.from.clone(),
                        },
                        timeout: e.timeout,
                    })
                    .map_err(|e| SetupError::Provider(format!("SMTP: {}", e.0)))?,
                ),
            };
            Some((provider, limiter(e.rate_per_sec)))
        }
    };
    let console = if sms.is_none() && email.is_none() {
        Some(ConsoleSink::new(n.console_file.clone())?)
    } else {
        None
    };
    let shops: HashMap<_, _> = config
        .shops
        .iter()
        .map(|s| {
            (
                s.id.clone(),
                ShopNotify {
                    voice: ShopVoice {
                        name: s.name.clone(),
                        timezone: s.timezone,
                    },
                    quiet_hours: s.quiet_hours,
                },
            )
        })
        .collect();
    Ok(Notifier {
        store: DeliveryStore::open(db)?,
        console,
        sms,
        email,
        templates: templates(config)?,
        directory,
        shops,
        policy: Policy::from_config(n),
        metrics,
    })
}
