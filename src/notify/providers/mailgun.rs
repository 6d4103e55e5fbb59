//! Mailgun Messages API: `POST /v3/{domain}/messages` with a multipart form.

use std::fmt;
use std::time::{Duration, SystemTime};

use reqwest::multipart::Form;
use serde_json::Value;

use super::{base, http_error, retry_after, scrub, transport_error};
use super::{Accepted, EmailMessage, SendError};
use crate::member::redact;

/// Mailgun account and sender settings.
#[derive(Clone)]
pub struct MailgunConfig {
    /// API root: `https://api.mailgun.net` (EU: `https://api.eu.mailgun.net`).
    pub base_url: String,
    /// Sending domain, part of the URL.
    pub domain: String,
    /// Private API key (basic auth password; the user is always `api`).
    pub api_key: String,
    /// Sender, `points@mg.example.com` or `Shop <points@mg.example.com>`.
    pub from: String,
    /// Whole-request timeout.
    pub timeout: Duration,
}

impl fmt::Debug for MailgunConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailgunConfig")
            .field("base_url", &self.base_url)
            .field("domain", &self.domain)
            .field("api_key", &"<redacted>")
            .field("from", &self.from)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Sends email through Mailgun.
#[derive(Debug, Clone)]
pub struct MailgunClient {
    cfg: MailgunConfig,
    http: reqwest::Client,
}

/// `"Name" <address>`, quoting the name so commas or angle brackets in it cannot split the
/// recipient list (Mailgun's `to` is a comma-separated list).
fn recipient(email: &str, name: Option<&str>) -> String {
    match name {
        Some(name) if !name.is_empty() => {
            let escaped = name.replace('\\', "\\\\").replace('"', "\\\"");
            format!("\"{escaped}\" <{email}>")
        }
        _ => email.to_string(),
    }
}

impl MailgunClient {
    /// A client sharing `http` (and its connection pool) with the rest of the daemon.
    pub fn new(cfg: MailgunConfig, http: reqwest::Client) -> Self {
        MailgunClient { cfg, http }
    }

    /// Hand one email to Mailgun; `Accepted::provider_id` is the returned `id`
    /// (`<...@domain>`, the Message-Id events refer to).
    pub async fn send(&self, m: &EmailMessage) -> Result<Accepted, SendError> {
        let cfg = &self.cfg;
        let mut form = Form::new()
            .text("from", cfg.from.clone())
            .text("to", recipient(&m.to, m.to_name.as_deref()))
            .text("subject", m.subject.clone())
            .text("text", m.text.clone());
        if let Some(html) = &m.html {
            form = form.text("html", html.clone());
        }
        // Custom variables come back in webhooks and event logs, to match them to the outbox.
        form = form.text("v:notification_id", m.reference.clone());

        let resp = self
            .http
            .post(format!("{}/v3/{}/messages", base(&cfg.base_url), cfg.domain))
            .basic_auth("api", Some(&cfg.api_key))
            .multipart(form)
            .timeout(cfg.timeout)
            .send()
            .await
            .map_err(|e| {
                let err = transport_error("mailgun", cfg.timeout, e);
                tracing::warn!(provider = "mailgun", to = %redact(&m.to), reference = %m.reference, error = %err, "email not sent");
                err
            })?;
        let status = resp.status().as_u16();
        let wait = retry_after::from_headers(resp.headers(), SystemTime::now());
        let body = resp.bytes().await.unwrap_or_default();
        let json = serde_json::from_slice::<Value>(&body).ok();

        if (200..300).contains(&status) {
            let id = json
                .as_ref()
                .and_then(|v| v.get("id").and_then(Value::as_str))
                .map(str::to_string);
            if id.is_none() {
                // Still accepted; an error would make the caller send it twice.
                tracing::warn!(provider = "mailgun", reference = %m.reference, status, "accepted without an id");
            }
            tracing::debug!(provider = "mailgun", to = %redact(&m.to), reference = %m.reference, id = ?id, "email accepted");
            return Ok(Accepted { provider_id: id });
        }

        // Mailgun errors are `{"message"}`, except 401 which is plain text.
        let message = json
            .as_ref()
            .and_then(|v| v.get("message").and_then(Value::as_str))
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        let reason = scrub(&format!("mailgun: HTTP {status}: {message}"), &m.to);
        let err = http_error(status, reason, None, wait);
        tracing::warn!(provider = "mailgun", to = %redact(&m.to), reference = %m.reference, status, error = %err, "email not sent");
        Err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fakeproviders::{FakeMailgun, Reply};

    const DOMAIN: &str = "mg.shop.example";
    const KEY: &str = "key-test";

    fn config(fake: &FakeMailgun) -> MailgunConfig {
        MailgunConfig {
            base_url: fake.base_url(),
            domain: DOMAIN.into(),
            api_key: KEY.into(),
            from: "Corner Shop <points@mg.shop.example>".into(),
            timeout: Duration::from_secs(5),
        }
    }

    fn client(cfg: MailgunConfig) -> MailgunClient {
        MailgunClient::new(cfg, reqwest::Client::new())
    }

    fn email() -> EmailMessage {
        EmailMessage {
            to: "ada@example.com".into(),
            to_name: Some("Lovelace, Ada".into()),
            subject: "You have 1,250 points".into(),
            text: "Hello Ada, you have 1,250 points.".into(),
            html: Some("<p>1,250 points</p>".into()),
            reference: "demo-42".into(),
        }
    }

    #[tokio::test]
    async fn mailgun_send_returns_the_message_id() {
        let fake = FakeMailgun::start(DOMAIN, KEY).await;
        let accepted = client(config(&fake)).send(&email()).await.unwrap();
        let id = accepted.provider_id.unwrap();
        assert!(
            id.starts_with('<') && id.ends_with(&format!("@{DOMAIN}>")),
            "{id}"
        );
    }

    #[tokio::test]
    async fn mailgun_request_is_multipart_with_basic_auth_and_the_notification_variable() {
        let fake = FakeMailgun::start(DOMAIN, KEY).await;
        client(config(&fake)).send(&email()).await.unwrap();
        let req = &fake.requests()[0];
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, format!("/v3/{DOMAIN}/messages"));
        assert!(req
            .header("content-type")
            .unwrap()
            .starts_with("multipart/form-data; boundary="));
        // base64("api:key-test")
        assert_eq!(req.header("authorization"), Some("Basic YXBpOmtleS10ZXN0"));
        let fields: Vec<(&str, &str)> = req
            .form
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            fields,
            [
                ("from", "Corner Shop <points@mg.shop.example>"),
                ("to", "\"Lovelace, Ada\" <ada@example.com>"),
                ("subject", "You have 1,250 points"),
                ("text", "Hello Ada, you have 1,250 points."),
                ("html", "<p>1,250 points</p>"),
                ("v:notification_id", "demo-42"),
            ]
        );
    }

    #[tokio::test]
    async fn mailgun_rate_limit_with_retry_after_is_retryable_after_that_delay() {
        let fake = FakeMailgun::start(DOMAIN, KEY).await;
        fake.script(vec![Reply::TooManyRequests {
            retry_after_secs: 7,
        }]);
        let err = client(config(&fake)).send(&email()).await.unwrap_err();
        assert!(err.is_retryable());
        assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    }

    #[tokio::test]
    async fn mailgun_server_error_is_retryable() {
        let fake = FakeMailgun::start(DOMAIN, KEY).await;
        fake.script(vec![Reply::Status(503)]);
        let err = client(config(&fake)).send(&email()).await.unwrap_err();
        assert!(err.is_retryable());
        assert_eq!(err.status(), Some(503));
    }

    #[tokio::test]
    async fn mailgun_unknown_domain_is_a_permanent_failure_with_mailguns_message() {
        let fake = FakeMailgun::start(DOMAIN, KEY).await;
        let cfg = MailgunConfig {
            domain: "other.example".into(),
            ..config(&fake)
        };
        let err = client(cfg).send(&email()).await.unwrap_err();
        assert!(!err.is_retryable());
        assert_eq!(err.status(), Some(404));
        assert!(err.to_string().contains("Domain not found"), "{err}");
    }

    #[tokio::test]
    async fn mailgun_answer_slower_than_the_timeout_is_retryable() {
        let fake = FakeMailgun::start(DOMAIN, KEY).await;
        fake.script(vec![Reply::Slow(Duration::from_secs(2))]);
        let cfg = MailgunConfig {
            timeout: Duration::from_millis(200),
            ..config(&fake)
        };
        let err = client(cfg).send(&email()).await.unwrap_err();
        assert!(err.is_retryable());
        assert_eq!(err.status(), None);
    }

    #[tokio::test]
    async fn mailgun_wrong_key_is_a_permanent_failure_with_status_401() {
        let fake = FakeMailgun::start(DOMAIN, KEY).await;
        let cfg = MailgunConfig {
            api_key: "key-wrong".into(),
            ..config(&fake)
        };
        let err = client(cfg).send(&email()).await.unwrap_err();
        assert!(!err.is_retryable());
        assert_eq!(err.status(), Some(401));
        assert!(err.to_string().contains("Forbidden"), "{err}");
    }

    #[test]
    fn mailgun_recipient_names_are_quoted() {
        assert_eq!(recipient("a@b.example", None), "a@b.example");
        assert_eq!(
            recipient("a@b.example", Some("Ada \"the\" Countess")),
            "\"Ada \\\"the\\\" Countess\" <a@b.example>"
        );
    }
}
