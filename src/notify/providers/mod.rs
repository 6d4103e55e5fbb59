//! Clients for the services that carry notifications to members.
//!
//! - [`TwilioClient`]: SMS through Twilio Programmable Messaging.
//! - [`SendGridClient`], [`MailgunClient`]: email through their HTTP APIs.
//! - [`SmtpClient`]: email through any SMTP relay (lettre).
//!
//! Every client answers [`Accepted`] (with the provider's id, the join key for delivery
//! callbacks) or a [`SendError`] that says whether trying again can help. The caller owns
//! the retry policy; clients never retry by themselves because a retry of an ambiguous
//! outcome (timeout, 500) can duplicate a message and only the caller knows whether that is
//! acceptable for the channel.
//!
//! Recipients, tokens and keys are never logged in full: addresses go through
//! [`crate::member::redact`], and provider error texts have the recipient masked before they
//! become a [`SendError`] reason (Twilio, for one, echoes the number back).

mod mailgun;
pub mod retry_after;
mod sendgrid;
mod smtp;
mod twilio;

use std::fmt;
use std::time::Duration;

pub use mailgun::{MailgunClient, MailgunConfig};
pub use sendgrid::{SendGridClient, SendGridConfig};
pub use smtp::{SmtpClient, SmtpConfig, SmtpTls};
pub use twilio::{TwilioClient, TwilioConfig};

use crate::member::redact;

/// One SMS to send.
#[derive(Clone, PartialEq, Eq)]
pub struct SmsMessage {
    /// Recipient in E.164 (`+15145550142`).
    pub to: String,
    /// Text; providers split long bodies into billed segments.
    pub body: String,
    /// Our notification id (e.g. `demo-42`), for logs and correlation.
    pub reference: String,
}

/// One email to send.
#[derive(Clone, PartialEq, Eq)]
pub struct EmailMessage {
    /// Recipient address.
    pub to: String,
    /// Recipient display name.
    pub to_name: Option<String>,
    /// Subject line.
    pub subject: String,
    /// Plain-text body (always sent).
    pub text: String,
    /// HTML alternative, when the template has one.
    pub html: Option<String>,
    /// Our notification id; carried as provider metadata so events can be matched to it.
    pub reference: String,
}

// Debug by hand so a stray `{:?}` cannot leak a phone number or address into logs.
impl fmt::Debug for SmsMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmsMessage")
            .field("to", &redact(&self.to))
            .field("body_chars", &self.body.chars().count())
            .field("reference", &self.reference)
            .finish()
    }
}

impl fmt::Debug for EmailMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailMessage")
            .field("to", &redact(&self.to))
            .field("subject", &self.subject)
            .field("html", &self.html.is_some())
            .field("reference", &self.reference)
            .finish()
    }
}

/// The provider took the message (not yet delivered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// Twilio `sid`, SendGrid `X-Message-Id`, Mailgun `id`, or the SMTP server's final reply
    /// text; `None` when the provider accepted without one.
    pub provider_id: Option<String>,
}

/// Why a send did not go through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Try again later (connection errors, timeouts, 408, 429, 5xx, Twilio 20429/21611,
    /// SMTP 4xx). `retry_after` comes from `Retry-After` (delay-seconds or HTTP-date) or
    /// SendGrid's `X-RateLimit-Reset` (epoch seconds) when present.
    #[error("retryable: {reason}")]
    Retryable {
        /// What happened, with recipients masked.
        reason: String,
        /// HTTP status, if a response came back.
        status: Option<u16>,
        /// Provider error code (Twilio code, SMTP reply code), if any.
        code: Option<String>,
        /// How long the provider asked us to wait.
        retry_after: Option<Duration>,
        /// The provider may have taken the message all the same (no answer after the
        /// request went out, or a 500): a retry may send it twice unless it first checks
        /// (Twilio: [`SmsProvider::find_sent`]).
        ambiguous: bool,
    },
    /// Never retry (4xx other than 408/429, bad recipient, bad credentials, SMTP 5xx...).
    #[error("permanent: {reason}")]
    Permanent {
        /// What happened, with recipients masked.
        reason: String,
        /// HTTP status, if a response came back.
        status: Option<u16>,
        /// Provider error code (Twilio code, SMTP reply code), if any.
        code: Option<String>,
        /// The recipient opted out (Twilio 21610): stop messaging them on this channel.
        unsubscribed: bool,
    },
}

impl SendError {
    /// Whether trying again later can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SendError::Retryable { .. })
    }

    /// HTTP status of the provider's answer, if there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            SendError::Retryable { status, .. } | SendError::Permanent { status, .. } => *status,
        }
    }

    /// Provider error code, if there was one.
    pub fn code(&self) -> Option<&str> {
        match self {
            SendError::Retryable { code, .. } | SendError::Permanent { code, .. } => {
                code.as_deref()
            }
        }
    }

    /// The wait the provider asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SendError::Retryable { retry_after, .. } => *retry_after,
            SendError::Permanent { .. } => None,
        }
    }

    /// A permanent failure that comes from our own configuration, not from the provider.
    fn config(reason: impl Into<String>) -> SendError {
        SendError::Permanent {
            reason: reason.into(),
            status: None,
            code: None,
            unsubscribed: false,
        }
    }
}

/// A provider client cannot be built from its configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid provider configuration: {0}")]
pub struct ConfigError(pub String);

/// The configured SMS provider.
pub enum SmsProvider {
    /// Twilio Programmable Messaging.
    Twilio(TwilioClient),
}

impl SmsProvider {
    /// Hand one SMS to the provider.
    pub async fn send(&self, m: &SmsMessage) -> Result<Accepted, SendError> {
        match self {
            SmsProvider::Twilio(c) => c.send(m).await,
        }
    }

    /// The id of a message with this recipient and body that the provider took since
    /// `since`, if any: after an ambiguous attempt, whether it went out after all.
    pub async fn find_sent(
        &self,
        m: &SmsMessage,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<String>, SendError> {
        match self {
            SmsProvider::Twilio(c) => c.find_sent(m, since).await,
        }
    }

    /// Short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            SmsProvider::Twilio(_) => "twilio",
        }
    }

    /// How long one request may take.
    pub fn timeout(&self) -> Duration {
        match self {
            SmsProvider::Twilio(c) => c.timeout(),
        }
    }
}

/// The configured email provider.
pub enum EmailProvider {
    /// SendGrid v3 Mail Send.
    SendGrid(SendGridClient),
    /// Mailgun Messages API.
    Mailgun(MailgunClient),
    /// Any SMTP relay.
    Smtp(SmtpClient),
}

impl EmailProvider {
    /// Hand one email to the provider.
    pub async fn send(&self, m: &EmailMessage) -> Result<Accepted, SendError> {
        match self {
            EmailProvider::SendGrid(c) => c.send(m).await,
            EmailProvider::Mailgun(c) => c.send(m).await,
            EmailProvider::Smtp(c) => c.send(m).await,
        }
    }

    /// Short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            EmailProvider::SendGrid(_) => "sendgrid",
            EmailProvider::Mailgun(_) => "mailgun",
            EmailProvider::Smtp(_) => "smtp",
        }
    }
}

/// HTTP statuses worth another try: the request was not processed, or may succeed later.
fn retryable_status(status: u16) -> bool {
    status == 408 || status == 429 || status >= 500
}

/// Build the error for an HTTP answer that was not a success.
fn http_error(
    status: u16,
    reason: String,
    code: Option<String>,
    retry_after: Option<Duration>,
) -> SendError {
    if retryable_status(status) {
        SendError::Retryable {
            reason,
            status: Some(status),
            code,
            retry_after,
            // 502/503/504 come from gateways that did not pass the request on; a 500 is
            // the provider failing while it handled it.
            ambiguous: status == 500,
        }
    } else {
        SendError::Permanent {
            reason,
            status: Some(status),
            code,
            unsubscribed: false,
        }
    }
}

/// Classify a failure of reqwest itself (no HTTP answer).
fn transport_error(provider: &str, timeout: Duration, e: reqwest::Error) -> SendError {
    if e.is_builder() {
        // A URL or header we built is invalid: only a configuration change fixes that.
        return SendError::config(format!("{provider}: cannot build request: {e}"));
    }
    let reason = if e.is_timeout() {
        // The provider may have processed it; the caller decides whether to risk a duplicate.
        format!(
            "{provider}: no answer within {} ms (the provider may have accepted the message)",
            timeout.as_millis()
        )
    } else if e.is_connect() {
        format!("{provider}: cannot connect: {e}")
    } else {
        format!("{provider}: request failed: {e}")
    };
    SendError::Retryable {
        reason,
        status: None,
        code: None,
        retry_after: None,
        // Only a failure to connect proves the provider never saw the request.
        ambiguous: !e.is_connect(),
    }
}

/// A provider's text made safe for logs: the recipient masked, the length bounded (an HTML
/// error page from a proxy can be large).
fn scrub(text: &str, recipient: &str) -> String {
    const MAX: usize = 300;
    let text = text.trim();
    let masked = if recipient.is_empty() {
        text.to_string()
    } else {
        replace_ignoring_ascii_case(text, recipient, &redact(recipient))
    };
    if masked.chars().count() > MAX {
        let cut: String = masked.chars().take(MAX).collect();
        format!("{cut}…")
    } else {
        masked
    }
}

/// Servers often echo an address in another case (`<Ada@Example.com>`), so match ASCII
/// case-insensitively. ASCII lower-casing keeps byte offsets, so indices carry over.
fn replace_ignoring_ascii_case(text: &str, needle: &str, with: &str) -> String {
    let hay = text.to_ascii_lowercase();
    let needle = needle.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (at, _) in hay.match_indices(&needle) {
        out.push_str(&text[last..at]);
        out.push_str(with);
        last = at + needle.len();
    }
    out.push_str(&text[last..]);
    out
}

/// The base URL without a trailing slash, so `{base}/v3/...` never has `//`.
fn base(url: &str) -> &str {
    url.trim_end_matches('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_texts_have_the_recipient_masked() {
        assert_eq!(
            scrub("The 'To' number +15145550142 is not valid", "+15145550142"),
            "The 'To' number +1******0142 is not valid"
        );
        assert_eq!(
            scrub("550 <Ada@Example.COM>: unknown user", "ada@example.com"),
            "550 <a***@example.com>: unknown user"
        );
        assert_eq!(scrub(&"x".repeat(1000), "").chars().count(), 301);
    }

    #[test]
    fn debug_output_masks_recipients() {
        let sms = SmsMessage {
            to: "+15145550142".into(),
            body: "You have 10 points".into(),
            reference: "demo-1".into(),
        };
        let email = EmailMessage {
            to: "ada@example.com".into(),
            to_name: Some("Ada".into()),
            subject: "Points".into(),
            text: "10".into(),
            html: None,
            reference: "demo-2".into(),
        };
        let shown = format!("{sms:?} {email:?}");
        assert!(!shown.contains("+15145550142") && !shown.contains("ada@example.com"));
    }

    #[test]
    fn only_408_429_and_5xx_statuses_are_retryable() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(retryable_status(s), "{s}");
        }
        for s in [400, 401, 403, 404, 405, 413, 422] {
            assert!(!retryable_status(s), "{s}");
        }
    }

    #[test]
    fn only_a_500_of_the_retryable_statuses_may_have_been_processed() {
        let ambiguous = |s| match http_error(s, String::new(), None, None) {
            SendError::Retryable { ambiguous, .. } => ambiguous,
            SendError::Permanent { .. } => panic!("{s} is retryable"),
        };
        assert!(ambiguous(500));
        for s in [408, 429, 502, 503, 504] {
            assert!(!ambiguous(s), "{s}");
        }
    }

    #[tokio::test]
    async fn a_refused_connection_is_not_ambiguous() {
        // A port nothing listens on: bind one, note it, close it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{port}/"))
            .send()
            .await
            .unwrap_err();
        match transport_error("twilio", Duration::from_secs(1), e) {
            SendError::Retryable { ambiguous, .. } => assert!(!ambiguous),
            other => panic!("{other:?}"),
        }
    }
}
