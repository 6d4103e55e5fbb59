//! `[notify]`: where member notifications go and how hard delivery tries.
//!
//! With neither `[notify.sms]` nor `[notify.email]`, messages go to the console sink
//! (the offline default). Quiet hours and coalescing are off unless configured.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::NaiveTime;
use loyaltyd_adapter::Secret;
use serde::Deserialize;

use super::{ConfigError, Locator};

/// `[notify]`, validated.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// `[notify.console] file`: also append console notifications to this file.
    pub console_file: Option<PathBuf>,
    /// `[notify.sms]`, when members are texted.
    pub sms: Option<SmsSettings>,
    /// `[notify.email]`, when members are e-mailed.
    pub email: Option<EmailSettings>,
    /// `templates`: a directory whose `<kind>.<channel>….j2` files override the
    /// embedded templates (relative to the config file).
    pub templates_dir: Option<PathBuf>,
    /// `max_sms_segments` (default 2): SMS templates longer than this with sample data
    /// are refused at load.
    pub max_sms_segments: usize,
    /// `max_age_secs` (default 6 h): retrying stops after this; the message becomes a
    /// dead letter (a stale "your balance is" text is worse than none).
    pub max_age: Duration,
    /// `retry_base_ms` (default 1000) and `retry_cap_secs` (default 300): full-jitter
    /// exponential backoff between attempts.
    pub retry_base: Duration,
    /// See `retry_base`.
    pub retry_cap: Duration,
    /// `coalesce_secs` (default 0 = off): a member's messages on one channel within
    /// this window go out as one.
    pub coalesce: Duration,
    /// `quiet_hours = "21:00-08:00"`: the default for shops without their own; messages
    /// falling inside are held until the end, in the shop's time zone.
    pub quiet_hours: Option<QuietHours>,
    /// `expiry_warning_days` (default 14, 0 = off): tell members this many days before
    /// their points expire.
    pub expiry_warning_days: u32,
    /// `concurrency` (default 32): provider requests in flight at once.
    pub concurrency: usize,
    /// `breaker_failures` (default 5): retryable provider failures in a row, with no
    /// success between, that pause a channel (a 429 with `Retry-After` pauses it at once).
    pub breaker_failures: u32,
    /// `breaker_max_open_secs` (default 10): the longest a paused channel waits before
    /// it probes the provider again; recovery is noticed within this.
    pub breaker_max_open: Duration,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            console_file: None,
            sms: None,
            email: None,
            templates_dir: None,
            max_sms_segments: 2,
            max_age: Duration::from_secs(6 * 3600),
            retry_base: Duration::from_millis(1000),
            retry_cap: Duration::from_secs(300),
            coalesce: Duration::ZERO,
            quiet_hours: None,
            expiry_warning_days: 14,
            concurrency: 32,
            breaker_failures: 5,
            breaker_max_open: Duration::from_secs(10),
        }
    }
}

/// A daily window in local time; `start > end` wraps midnight (`21:00-08:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    /// First quiet minute.
    pub start: NaiveTime,
    /// First minute messages may go out again.
    pub end: NaiveTime,
}

impl QuietHours {
    /// Parse `"HH:MM-HH:MM"`.
    pub fn parse(s: &str) -> Option<QuietHours> {
        let (a, b) = s.split_once('-')?;
        let start = NaiveTime::parse_from_str(a.trim(), "%H:%M").ok()?;
        let end = NaiveTime::parse_from_str(b.trim(), "%H:%M").ok()?;
        (start != end).then_some(QuietHours { start, end })
    }

    /// Whether local time `t` is inside the window.
    pub fn contains(&self, t: NaiveTime) -> bool {
        if self.start < self.end {
            t >= self.start && t < self.end
        } else {
            t >= self.start || t < self.end
        }
    }
}

/// `[notify.sms]`: Twilio.
#[derive(Debug, Clone)]
pub struct SmsSettings {
    /// `base_url` (default `https://api.twilio.com`).
    pub base_url: String,
    /// `account_sid` (`AC…`).
    pub account_sid: String,
    /// `auth_token`: also the key Twilio signs inbound webhooks with.
    pub auth_token: Secret,
    /// `api_key_sid` + `api_key_secret`: Twilio's recommended REST credentials.
    pub api_key: Option<(String, Secret)>,
    /// `from`: the sender number.
    pub from: Option<String>,
    /// `messaging_service_sid` (`MG…`), instead of or besides `from`.
    pub messaging_service_sid: Option<String>,
    /// `rate_per_sec` (default 10): token bucket below the sender's throughput.
    pub rate_per_sec: u32,
    /// `timeout_secs` (default 10).
    pub timeout: Duration,
    /// `inbound_url`: the public URL Twilio calls for replies, exactly as configured
    /// at Twilio (it is signed). Without it the URL is rebuilt from the request.
    pub inbound_url: Option<String>,
}

/// `[notify.email]`.
#[derive(Debug, Clone)]
pub struct EmailSettings {
    /// `provider` and its settings.
    pub provider: EmailProviderSettings,
    /// `from`: the sender address.
    pub from: String,
    /// `from_name`: the sender's display name.
    pub from_name: Option<String>,
    /// `rate_per_sec` (default 10).
    pub rate_per_sec: u32,
    /// `timeout_secs` (default 10).
    pub timeout: Duration,
}

/// `[notify.email] provider = …`
#[derive(Debug, Clone)]
pub enum EmailProviderSettings {
    /// SendGrid v3: `base_url` (default `https://api.sendgrid.com`), `api_key`.
    SendGrid {
        /// API root.
        base_url: String,
        /// API key (bearer).
        api_key: Secret,
    },
    /// Mailgun: `base_url` (default `https://api.mailgun.net`), `domain`, `api_key`.
    Mailgun {
        /// API root.
        base_url: String,
        /// Sending domain.
        domain: String,
        /// API key (basic auth as `api`).
        api_key: Secret,
    },
    /// SMTP: `host`, `port`, `tls` (`none` | `starttls` | `implicit`), credentials.
    Smtp {
        /// Server.
        host: String,
        /// Port (default 587, 465 with implicit TLS, 25 without TLS).
        port: u16,
        /// TLS mode.
        tls: SmtpTlsMode,
        /// `username` + `password`.
        credentials: Option<(String, Secret)>,
    },
}

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTlsMode {
    /// Plain text (loopback relays, tests).
    None,
    /// STARTTLS (refuses to go on without it).
    StartTls,
    /// TLS from the first byte.
    Implicit,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    #[serde(default)]
    console: RawConsole,
    sms: Option<RawSms>,
    email: Option<RawEmail>,
    templates: Option<String>,
    max_sms_segments: Option<usize>,
    max_age_secs: Option<u64>,
    retry_base_ms: Option<u64>,
    retry_cap_secs: Option<u64>,
    coalesce_secs: Option<u64>,
    quiet_hours: Option<String>,
    expiry_warning_days: Option<u32>,
    concurrency: Option<usize>,
    breaker_failures: Option<u32>,
    breaker_max_open_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConsole {
    file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSms {
    provider: Option<String>,
    base_url: Option<String>,
    account_sid: Option<String>,
    auth_token: Option<String>,
    api_key_sid: Option<String>,
    api_key_secret: Option<String>,
    from: Option<String>,
    messaging_service_sid: Option<String>,
    rate_per_sec: Option<u32>,
    timeout_secs: Option<u64>,
    inbound_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmail {
    provider: Option<String>,
    base_url: Option<String>,
    api_key: Option<String>,
    domain: Option<String>,
    from: Option<String>,
    from_name: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    tls: Option<String>,
    username: Option<String>,
    password: Option<String>,
    rate_per_sec: Option<u32>,
    timeout_secs: Option<u64>,
}

fn nonblank(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

fn timeout(secs: Option<u64>, key: &str, loc: &Locator<'_>) -> Result<Duration, ConfigError> {
    match secs.unwrap_or(10) {
        s @ 1..=120 => Ok(Duration::from_secs(s)),
        _ => Err(loc.err(key, "must be between 1 and 120")),
    }
}

fn rate(r: Option<u32>, key: &str, loc: &Locator<'_>) -> Result<u32, ConfigError> {
    match r.unwrap_or(10) {
        0 => Err(loc.err(key, "must be at least 1")),
        r => Ok(r),
    }
}

fn base_url(
    v: Option<String>,
    default: &str,
    key: &str,
    loc: &Locator<'_>,
) -> Result<String, ConfigError> {
    let url = nonblank(v).unwrap_or_else(|| default.to_string());
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(loc.err(key, format!("{url:?} is not an http(s) URL")));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// Parse a `quiet_hours` value.
pub(super) fn quiet_hours(
    v: Option<String>,
    key: &str,
    loc: &Locator<'_>,
) -> Result<Option<QuietHours>, ConfigError> {
    match v.as_deref().map(str::trim) {
        None | Some("") | Some("off") => Ok(None),
        Some(s) => QuietHours::parse(s).map(Some).ok_or_else(|| {
            loc.err(
                key,
                format!("{s:?} is not a window like \"21:00-08:00\" (or \"off\")"),
            )
        }),
    }
}

pub(super) fn validate(
    raw: RawNotify,
    base_dir: &Path,
    loc: &Locator<'_>,
) -> Result<NotifyConfig, ConfigError> {
    let d = NotifyConfig::default();
    let sms = match raw.sms {
        None => None,
        Some(s) => {
            match s.provider.as_deref().unwrap_or("twilio") {
                "twilio" => {}
                other => {
                    return Err(loc.err(
                        "notify.sms.provider",
                        format!("{other:?} is not a supported SMS provider (\"twilio\")"),
                    ))
                }
            }
            let account_sid = nonblank(s.account_sid)
                .ok_or_else(|| loc.err("notify.sms.account_sid", "is required"))?;
            if !(account_sid.starts_with("AC") && account_sid.len() == 34) {
                return Err(loc.err(
                    "notify.sms.account_sid",
                    "must be a Twilio Account SID (AC followed by 32 hex digits)",
                ));
            }
            let auth_token = nonblank(s.auth_token)
                .map(Secret::new)
                .ok_or_else(|| loc.err("notify.sms.auth_token", "is required"))?;
            let api_key = match (nonblank(s.api_key_sid), nonblank(s.api_key_secret)) {
                (Some(k), Some(v)) => Some((k, Secret::new(v))),
                (None, None) => None,
                (Some(_), None) => {
                    return Err(loc.err("notify.sms.api_key_secret", "is required with api_key_sid"))
                }
                (None, Some(_)) => {
                    return Err(loc.err("notify.sms.api_key_sid", "is required with api_key_secret"))
                }
            };
            let from = nonblank(s.from);
            let messaging_service_sid = nonblank(s.messaging_service_sid);
            if from.is_none() && messaging_service_sid.is_none() {
                return Err(loc.err("notify.sms.from", "is required (or messaging_service_sid)"));
            }
            Some(SmsSettings {
                base_url: base_url(
                    s.base_url,
                    "https://api.twilio.com",
                    "notify.sms.base_url",
                    loc,
                )?,
                account_sid,
                auth_token,
                api_key,
                from,
                messaging_service_sid,
                rate_per_sec: rate(s.rate_per_sec, "notify.sms.rate_per_sec", loc)?,
                timeout: timeout(s.timeout_secs, "notify.sms.timeout_secs", loc)?,
                inbound_url: nonblank(s.inbound_url),
            })
        }
    };
    let email = match raw.email {
        None => None,
        Some(e) => {
            let from =
                nonblank(e.from).ok_or_else(|| loc.err("notify.email.from", "is required"))?;
            if !from.contains('@') {
                return Err(loc.err(
                    "notify.email.from",
                    format!("{from:?} is not an e-mail address"),
                ));
            }
            let api_key = |e: Option<String>| {
                nonblank(e)
                    .map(Secret::new)
                    .ok_or_else(|| loc.err("notify.email.api_key", "is required"))
            };
            let provider = match e.provider.as_deref() {
                Some("sendgrid") => EmailProviderSettings::SendGrid {
                    base_url: base_url(
                        e.base_url,
                        "https://api.sendgrid.com",
                        "notify.email.base_url",
                        loc,
                    )?,
                    api_key: api_key(e.api_key)?,
                },
                Some("mailgun") => EmailProviderSettings::Mailgun {
                    base_url: base_url(
                        e.base_url,
                        "https://api.mailgun.net",
                        "notify.email.base_url",
                        loc,
                    )?,
                    domain: nonblank(e.domain)
                        .ok_or_else(|| loc.err("notify.email.domain", "is required for mailgun"))?,
                    api_key: api_key(e.api_key)?,
                },
                Some("smtp") => {
                    let tls = match e.tls.as_deref().unwrap_or("starttls") {
                        "none" => SmtpTlsMode::None,
                        "starttls" => SmtpTlsMode::StartTls,
                        "implicit" => SmtpTlsMode::Implicit,
                        other => {
                            return Err(loc.err(
                                "notify.email.tls",
                                format!("{other:?} is not \"none\", \"starttls\" or \"implicit\""),
                            ))
                        }
                    };
                    let port = e.port.unwrap_or(match tls {
                        SmtpTlsMode::None => 25,
                        SmtpTlsMode::StartTls => 587,
                        SmtpTlsMode::Implicit => 465,
                    });
                    let credentials = match (nonblank(e.username), nonblank(e.password)) {
                        (Some(u), Some(p)) => Some((u, Secret::new(p))),
                        (None, None) => None,
                        _ => {
                            return Err(loc
                                .err("notify.email.password", "username and password go together"))
                        }
                    };
                    EmailProviderSettings::Smtp {
                        host: nonblank(e.host)
                            .ok_or_else(|| loc.err("notify.email.host", "is required for smtp"))?,
                        port,
                        tls,
                        credentials,
                    }
                }
                Some(other) => {
                    return Err(loc.err(
                        "notify.email.provider",
                        format!("{other:?} is not \"sendgrid\", \"mailgun\" or \"smtp\""),
                    ))
                }
                None => {
                    return Err(loc.err(
                        "notify.email.provider",
                        "is required (\"sendgrid\", \"mailgun\" or \"smtp\")",
                    ))
                }
            };
            Some(EmailSettings {
                provider,
                from,
                from_name: nonblank(e.from_name),
                rate_per_sec: rate(e.rate_per_sec, "notify.email.rate_per_sec", loc)?,
                timeout: timeout(e.timeout_secs, "notify.email.timeout_secs", loc)?,
            })
        }
    };
    let max_sms_segments = raw.max_sms_segments.unwrap_or(d.max_sms_segments);
    if !(1..=10).contains(&max_sms_segments) {
        return Err(loc.err("notify.max_sms_segments", "must be between 1 and 10"));
    }
    let max_age = raw.max_age_secs.map_or(d.max_age, Duration::from_secs);
    if max_age < Duration::from_secs(60) || max_age > Duration::from_secs(7 * 86_400) {
        return Err(loc.err(
            "notify.max_age_secs",
            "must be between 60 and 604800 (7 days)",
        ));
    }
    let retry_base = raw
        .retry_base_ms
        .map_or(d.retry_base, Duration::from_millis);
    if retry_base.is_zero() || retry_base > Duration::from_secs(60) {
        return Err(loc.err("notify.retry_base_ms", "must be between 1 and 60000"));
    }
    let retry_cap = raw.retry_cap_secs.map_or(d.retry_cap, Duration::from_secs);
    if retry_cap < retry_base || retry_cap > Duration::from_secs(3600) {
        return Err(loc.err(
            "notify.retry_cap_secs",
            "must be at least retry_base_ms and at most 3600",
        ));
    }
    let coalesce = raw.coalesce_secs.map_or(d.coalesce, Duration::from_secs);
    if coalesce > Duration::from_secs(3600) {
        return Err(loc.err("notify.coalesce_secs", "must be at most 3600"));
    }
    let concurrency = raw.concurrency.unwrap_or(d.concurrency);
    if !(1..=1024).contains(&concurrency) {
        return Err(loc.err("notify.concurrency", "must be between 1 and 1024"));
    }
    let breaker_failures = raw.breaker_failures.unwrap_or(d.breaker_failures);
    if !(1..=100).contains(&breaker_failures) {
        return Err(loc.err("notify.breaker_failures", "must be between 1 and 100"));
    }
    let breaker_max_open = raw
        .breaker_max_open_secs
        .map_or(d.breaker_max_open, Duration::from_secs);
    if breaker_max_open.is_zero() || breaker_max_open > Duration::from_secs(3600) {
        return Err(loc.err("notify.breaker_max_open_secs", "must be between 1 and 3600"));
    }
    Ok(NotifyConfig {
        console_file: raw.console.file.map(PathBuf::from),
        sms,
        email,
        templates_dir: nonblank(raw.templates).map(|t| base_dir.join(t)),
        max_sms_segments,
        max_age,
        retry_base,
        retry_cap,
        coalesce,
        quiet_hours: quiet_hours(raw.quiet_hours, "notify.quiet_hours", loc)?,
        expiry_warning_days: raw.expiry_warning_days.unwrap_or(d.expiry_warning_days),
        concurrency,
        breaker_failures,
        breaker_max_open,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_hours_wrap_midnight() {
        let q = QuietHours::parse("21:00-08:00").unwrap();
        let t = |s| NaiveTime::parse_from_str(s, "%H:%M").unwrap();
        assert!(q.contains(t("21:00")) && q.contains(t("23:59")) && q.contains(t("07:59")));
        assert!(!q.contains(t("08:00")) && !q.contains(t("20:59")) && !q.contains(t("12:00")));
        let day = QuietHours::parse("12:00-13:30").unwrap();
        assert!(day.contains(t("12:30")) && !day.contains(t("13:30")));
        assert!(QuietHours::parse("8-9").is_none() && QuietHours::parse("08:00-08:00").is_none());
    }
}
