//! SendGrid v3 Mail Send: `POST /v3/mail/send` with a JSON body.

use std::fmt;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use super::{base, http_error, retry_after, scrub, transport_error};
use super::{Accepted, EmailMessage, SendError};
use crate::member::redact;

/// SendGrid account and sender settings.
#[derive(Clone)]
pub struct SendGridConfig {
    /// API root: `https://api.sendgrid.com` (EU-pinned subusers: `https://api.eu.sendgrid.com`).
    pub base_url: String,
    /// API key with the Mail Send scope.
    pub api_key: String,
    /// Verified sender address.
    pub from: String,
    /// Sender display name.
    pub from_name: Option<String>,
    /// Whole-request timeout.
    pub timeout: Duration,
}

impl fmt::Debug for SendGridConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendGridConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &"<redacted>")
            .field("from", &self.from)
            .field("from_name", &self.from_name)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Sends email through SendGrid.
#[derive(Debug, Clone)]
pub struct SendGridClient {
    cfg: SendGridConfig,
    http: reqwest::Client,
}

/// `{"email", "name"?}`: SendGrid rejects `"name": null`, so the key is left out instead.
fn address(email: &str, name: Option<&str>) -> Value {
    match name {
        Some(name) => json!({ "email": email, "name": name }),
        None => json!({ "email": email }),
    }
}

impl SendGridClient {
    /// A client sharing `http` (and its connection pool) with the rest of the daemon.
    pub fn new(cfg: SendGridConfig, http: reqwest::Client) -> Self {
        SendGridClient { cfg, http }
    }

    /// The mail/send body for one message.
    fn body(&self, m: &EmailMessage) -> Value {
        let mut content = vec![json!({ "type": "text/plain", "value": m.text })];
        if let Some(html) = &m.html {
            // SendGrid requires text/plain before text/html.
            content.push(json!({ "type": "text/html", "value": html }));
        }
        json!({
            "personalizations": [{
                "to": [address(&m.to, m.to_name.as_deref())],
                // Echoed back in Event Webhook events, so events can be matched to the outbox.
                "custom_args": { "notification_id": m.reference },
            }],
            "from": address(&self.cfg.from, self.cfg.from_name.as_deref()),
            "subject": m.subject,
            "content": content,
        })
    }

    /// Hand one email to SendGrid; `Accepted::provider_id` is the `X-Message-Id` header.
    pub async fn send(&self, m: &EmailMessage) -> Result<Accepted, SendError> {
        let cfg = &self.cfg;
        let resp = self
            .http
            .post(format!("{}/v3/mail/send", base(&cfg.base_url)))
            .bearer_auth(&cfg.api_key)
            .json(&self.body(m))
            .timeout(cfg.timeout)
            .send()
            .await
            .map_err(|e| {
                let err = transport_error("sendgrid", cfg.timeout, e);
                tracing::warn!(provider = "sendgrid", to = %redact(&m.to), reference = %m.reference, error = %err, "email not sent");
                err
            })?;
        let status = resp.status().as_u16();

        if resp.status().is_success() {
            let id = resp
                .headers()
                .get("x-message-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            if id.is_none() {
                // Still accepted; an error would make the caller send it twice.
                tracing::warn!(provider = "sendgrid", reference = %m.reference, status, "accepted without X-Message-Id");
            }
            tracing::debug!(provider = "sendgrid", to = %redact(&m.to), reference = %m.reference, id = ?id, "email accepted");
            return Ok(Accepted { provider_id: id });
        }

        let wait = retry_after::sendgrid_from_headers(resp.headers(), SystemTime::now());
        let body = resp.bytes().await.unwrap_or_default();
        let reason = scrub(
            &format!("sendgrid: HTTP {status}: {}", error_text(&body)),
            &m.to,
        );
        let err = http_error(status, reason, None, wait);
        tracing::warn!(provider = "sendgrid", to = %redact(&m.to), reference = %m.reference, status, error = %err, "email not sent");
        Err(err)
    }
}

/// `{"errors":[{"message","field"}]}` as `field: message; ...`, or the raw body.
fn error_text(body: &[u8]) -> String {
    let parsed = serde_json::from_slice::<Value>(body).ok();
    let list = parsed
        .as_ref()
        .and_then(|v| v.get("errors"))
        .and_then(Value::as_array);
    match list {
        Some(errors) if !errors.is_empty() => errors
            .iter()
            .map(|e| {
                let message = e.get("message").and_then(Value::as_str).unwrap_or("?");
                match e.get("field").and_then(Value::as_str) {
                    Some(field) => format!("{field}: {message}"),
                    None => message.to_string(),
                }
            })
            .collect::<Vec<_>>()
            .join("; "),
        _ => String::from_utf8_lossy(body).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fakeproviders::{FakeSendGrid, Reply};

    const KEY: &str = "SG.test-key";

    fn config(fake: &FakeSendGrid) -> SendGridConfig {
        SendGridConfig {
            base_url: fake.base_url(),
            api_key: KEY.into(),
            from: "points@shop.example".into(),
            from_name: Some("Corner Shop".into()),
            timeout: Duration::from_secs(5),
        }
    }

    fn client(cfg: SendGridConfig) -> SendGridClient {
        SendGridClient::new(cfg, reqwest::Client::new())
    }

    fn email() -> EmailMessage {
        EmailMessage {
            to: "ada@example.com".into(),
            to_name: Some("Ada Lovelace".into()),
            subject: "You have 1,250 points".into(),
            text: "Hello Ada, you have 1,250 points.".into(),
            html: Some("<p>Hello Ada, you have <b>1,250</b> points.</p>".into()),
            reference: "demo-42".into(),
        }
    }

    #[tokio::test]
    async fn sendgrid_send_returns_the_x_message_id() {
        let fake = FakeSendGrid::start(KEY).await;
        let accepted = client(config(&fake)).send(&email()).await.unwrap();
        let id = accepted.provider_id.unwrap();
        assert_eq!(id.len(), 22, "{id}");
        assert_eq!(fake.requests()[0].status, 202);
    }

    #[tokio::test]
    async fn sendgrid_request_is_json_with_bearer_auth_in_the_documented_shape() {
        let fake = FakeSendGrid::start(KEY).await;
        client(config(&fake)).send(&email()).await.unwrap();
        let req = &fake.requests()[0];
        assert_eq!(
            (req.method.as_str(), req.path.as_str()),
            ("POST", "/v3/mail/send")
        );
        assert_eq!(req.header("authorization"), Some("Bearer SG.test-key"));
        assert_eq!(req.header("content-type"), Some("application/json"));
        assert_eq!(
            req.json.as_ref().unwrap(),
            &json!({
                "personalizations": [{
                    "to": [{"email": "ada@example.com", "name": "Ada Lovelace"}],
                    "custom_args": {"notification_id": "demo-42"},
                }],
                "from": {"email": "points@shop.example", "name": "Corner Shop"},
                "subject": "You have 1,250 points",
                "content": [
                    {"type": "text/plain", "value": "Hello Ada, you have 1,250 points."},
                    {"type": "text/html", "value": "<p>Hello Ada, you have <b>1,250</b> points.</p>"},
                ],
            })
        );
    }

    #[tokio::test]
    async fn sendgrid_plain_text_only_mail_leaves_out_html_and_names() {
        let fake = FakeSendGrid::start(KEY).await;
        let cfg = SendGridConfig {
            from_name: None,
            ..config(&fake)
        };
        let m = EmailMessage {
            to_name: None,
            html: None,
            ..email()
        };
        client(cfg).send(&m).await.unwrap();
        let body = fake.requests()[0].json.clone().unwrap();
        assert_eq!(body["content"].as_array().unwrap().len(), 1);
        assert_eq!(body["from"], json!({"email": "points@shop.example"}));
        assert_eq!(
            body["personalizations"][0]["to"],
            json!([{"email": "ada@example.com"}])
        );
    }

    #[tokio::test]
    async fn sendgrid_rate_limit_is_retryable_until_the_rate_limit_reset() {
        let fake = FakeSendGrid::start(KEY).await;
        fake.script(vec![Reply::TooManyRequests {
            retry_after_secs: 7,
        }]);
        let err = client(config(&fake)).send(&email()).await.unwrap_err();
        assert!(err.is_retryable());
        assert_eq!(err.status(), Some(429));
        // The reset is whole epoch seconds, so the wait is 6 to 7 seconds from now.
        let wait = err.retry_after().unwrap();
        assert!(
            wait >= Duration::from_secs(5) && wait <= Duration::from_secs(7),
            "{wait:?}"
        );
    }

    #[tokio::test]
    async fn sendgrid_server_error_is_retryable() {
        let fake = FakeSendGrid::start(KEY).await;
        fake.script(vec![Reply::Status(503)]);
        let err = client(config(&fake)).send(&email()).await.unwrap_err();
        assert!(err.is_retryable());
        assert_eq!(err.status(), Some(503));
    }

    #[tokio::test]
    async fn sendgrid_invalid_recipient_is_a_permanent_failure_naming_the_field() {
        let fake = FakeSendGrid::start(KEY).await;
        let m = EmailMessage {
            to: "not-an-address".into(),
            ..email()
        };
        let err = client(config(&fake)).send(&m).await.unwrap_err();
        assert!(!err.is_retryable());
        assert_eq!(err.status(), Some(400));
        assert!(
            err.to_string().contains("personalizations.0.to.0.email"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn sendgrid_answer_slower_than_the_timeout_is_retryable() {
        let fake = FakeSendGrid::start(KEY).await;
        fake.script(vec![Reply::Slow(Duration::from_secs(2))]);
        let cfg = SendGridConfig {
            timeout: Duration::from_millis(200),
            ..config(&fake)
        };
        let err = client(cfg).send(&email()).await.unwrap_err();
        assert!(err.is_retryable());
        assert_eq!(err.status(), None);
    }

    #[tokio::test]
    async fn sendgrid_wrong_key_is_a_permanent_failure_with_status_401() {
        let fake = FakeSendGrid::start(KEY).await;
        let cfg = SendGridConfig {
            api_key: "SG.wrong".into(),
            ..config(&fake)
        };
        let err = client(cfg).send(&email()).await.unwrap_err();
        assert!(!err.is_retryable());
        assert_eq!(err.status(), Some(401));
    }

    #[test]
    fn sendgrid_error_list_is_summarised_field_by_field() {
        let body = br#"{"errors":[{"message":"Does not contain a valid address.","field":"from.email"},{"message":"too many requests","field":null}]}"#;
        assert_eq!(
            error_text(body),
            "from.email: Does not contain a valid address.; too many requests"
        );
        assert_eq!(error_text(b"upstream down"), "upstream down");
    }
}
