//! Twilio Programmable Messaging: `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`.

use std::fmt;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::{base, http_error, retry_after, scrub, transport_error};
use super::{Accepted, SendError, SmsMessage};
use crate::member::redact;

/// Twilio account and sender settings.
#[derive(Clone)]
pub struct TwilioConfig {
    /// API root, `https://api.twilio.com` in production.
    pub base_url: String,
    /// `AC...`; always part of the URL.
    pub account_sid: String,
    /// Account auth token; used for HTTP Basic unless an API key is configured.
    pub auth_token: String,
    /// `SK...` API key (Twilio's recommendation for production); with
    /// [`api_key_secret`](Self::api_key_secret) it replaces `AccountSid:AuthToken`.
    pub api_key_sid: Option<String>,
    /// Secret of [`api_key_sid`](Self::api_key_sid).
    pub api_key_secret: Option<String>,
    /// Sender number or alphanumeric id; ignored when a Messaging Service is configured.
    pub from: Option<String>,
    /// `MG...` Messaging Service; preferred over `from` (pooled senders, Twilio-side opt-out).
    pub messaging_service_sid: Option<String>,
    /// Whole-request timeout (connect, send, answer).
    pub timeout: Duration,
}

impl TwilioConfig {
    /// Production defaults for an account: `https://api.twilio.com`, 10 s timeout.
    pub fn new(account_sid: impl Into<String>, auth_token: impl Into<String>) -> Self {
        TwilioConfig {
            base_url: "https://api.twilio.com".into(),
            account_sid: account_sid.into(),
            auth_token: auth_token.into(),
            api_key_sid: None,
            api_key_secret: None,
            from: None,
            messaging_service_sid: None,
            timeout: Duration::from_secs(10),
        }
    }
}

// Secrets stay out of Debug output.
impl fmt::Debug for TwilioConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioConfig")
            .field("base_url", &self.base_url)
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"<redacted>")
            .field("api_key_sid", &self.api_key_sid)
            .field(
                "api_key_secret",
                &self.api_key_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("from", &self.from)
            .field("messaging_service_sid", &self.messaging_service_sid)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Sends SMS through Twilio.
#[derive(Debug, Clone)]
pub struct TwilioClient {
    cfg: TwilioConfig,
    http: reqwest::Client,
}

/// Twilio codes that mean "later": 20429 too many concurrent requests (never processed),
/// 21611 sender queue full.
const RETRYABLE_CODES: [&str; 2] = ["20429", "21611"];
/// Recipient replied STOP.
const UNSUBSCRIBED: &str = "21610";

impl TwilioClient {
    /// A client sharing `http` (and its connection pool) with the rest of the daemon.
    pub fn new(cfg: TwilioConfig, http: reqwest::Client) -> Self {
        TwilioClient { cfg, http }
    }

    /// How long one request may take (`notify.sms.timeout_secs`).
    pub fn timeout(&self) -> Duration {
        self.cfg.timeout
    }

    /// HTTP Basic credentials: the API key when one is configured, else the account.
    fn credentials(&self) -> Result<(&str, &str), SendError> {
        let cfg = &self.cfg;
        match (&cfg.api_key_sid, &cfg.api_key_secret) {
            (Some(key), Some(secret)) => Ok((key, secret)),
            (None, _) => Ok((&cfg.account_sid, &cfg.auth_token)),
            (Some(_), None) => Err(SendError::config(
                "twilio: api_key_sid is set but api_key_secret is not",
            )),
        }
    }

    fn messages_url(&self) -> String {
        format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            base(&self.cfg.base_url),
            self.cfg.account_sid
        )
    }

    /// Send `req` with the credentials and the timeout; the answer's status, the wait it
    /// asks for, and its body (one that cannot be read counts as empty: the status
    /// decides).
    async fn call(&self, req: reqwest::RequestBuilder) -> Result<Answer, SendError> {
        let (user, pass) = self.credentials()?;
        let timeout = self.cfg.timeout;
        let resp = req
            .basic_auth(user, Some(pass))
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| transport_error("twilio", timeout, e))?;
        let status = resp.status().as_u16();
        let wait = retry_after::from_headers(resp.headers(), SystemTime::now());
        let body = resp.bytes().await.unwrap_or_default();
        Ok(Answer { status, wait, body })
    }

    /// The `sid` of a message to `m.to` with `m.body` that Twilio created since `since`
    /// (a minute of clock skew allowed) and did not fail or cancel: reconciliation after
    /// an ambiguous send (`GET …/Messages.json?To=…&From=…`, newest first, one page of
    /// 50). Queued messages count: they have no `date_sent` yet, so the list is not
    /// filtered by it.
    ///
    /// ```no_run
    /// # async fn f(c: loyaltyd::notify::providers::TwilioClient,
    /// #            m: loyaltyd::notify::providers::SmsMessage) {
    /// let since = chrono::Utc::now() - chrono::Duration::minutes(5);
    /// if let Ok(Some(sid)) = c.find_sent(&m, since).await {
    ///     println!("already sent as {sid}");
    /// }
    /// # }
    /// ```
    pub async fn find_sent(
        &self,
        m: &SmsMessage,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<String>, SendError> {
        let cfg = &self.cfg;
        let mut query: Vec<(&str, &str)> = vec![("To", &m.to), ("PageSize", "50")];
        if let (None, Some(from)) = (&cfg.messaging_service_sid, &cfg.from) {
            query.push(("From", from));
        }
        let Answer { status, wait, body } = self
            .call(self.http.get(self.messages_url()).query(&query))
            .await?;
        if !(200..300).contains(&status) {
            return Err(classify(status, &body, wait, &m.to));
        }
        let list: Value = serde_json::from_slice(&body).map_err(|e| SendError::Retryable {
            reason: format!("twilio: message list is not JSON: {e}"),
            status: Some(status),
            code: None,
            retry_after: None,
            ambiguous: false,
        })?;
        let earliest = since - chrono::Duration::minutes(1);
        let found = list
            .get("messages")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|msg| {
                let text = |k: &str| msg.get(k).and_then(Value::as_str);
                let created = text("date_created")
                    .and_then(|d| chrono::DateTime::parse_from_rfc2822(d).ok())
                    .is_some_and(|d| d >= earliest);
                created
                    && text("body") == Some(m.body.as_str())
                    && !matches!(text("status"), Some("failed" | "canceled"))
            })
            .and_then(|msg| msg.get("sid").and_then(Value::as_str).map(str::to_string));
        tracing::debug!(provider = "twilio", to = %redact(&m.to), reference = %m.reference, found = found.is_some(), "looked for an earlier send");
        Ok(found)
    }

    /// Hand one SMS to Twilio; `Accepted::provider_id` is the message `sid`.
    pub async fn send(&self, m: &SmsMessage) -> Result<Accepted, SendError> {
        let cfg = &self.cfg;
        let mut form: Vec<(&str, &str)> = vec![("To", &m.to), ("Body", &m.body)];
        match (&cfg.messaging_service_sid, &cfg.from) {
            (Some(service), _) => form.push(("MessagingServiceSid", service)),
            (None, Some(from)) => form.push(("From", from)),
            (None, None) => {
                return Err(SendError::config(
                    "twilio: neither from nor messaging_service_sid is configured",
                ))
            }
        }
        let Answer { status, wait, body } = self
            .call(self.http.post(self.messages_url()).form(&form))
            .await
            .inspect_err(|err| {
                tracing::warn!(provider = "twilio", to = %redact(&m.to), reference = %m.reference, error = %err, "sms not sent");
            })?;

        if (200..300).contains(&status) {
            let sid = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.get("sid").and_then(Value::as_str).map(str::to_string));
            if sid.is_none() {
                // Accepted all the same: reporting an error here would make the caller resend.
                tracing::warn!(provider = "twilio", reference = %m.reference, status, "accepted without a sid");
            }
            tracing::debug!(provider = "twilio", to = %redact(&m.to), reference = %m.reference, sid = ?sid, "sms accepted");
            return Ok(Accepted { provider_id: sid });
        }

        let err = classify(status, &body, wait, &m.to);
        tracing::warn!(provider = "twilio", to = %redact(&m.to), reference = %m.reference, status, error = %err, "sms not sent");
        Err(err)
    }
}

/// What Twilio answered.
struct Answer {
    status: u16,
    wait: Option<Duration>,
    body: bytes::Bytes,
}

/// Map a Twilio error answer to a [`SendError`]: the Twilio `code` first, else the status.
fn classify(status: u16, body: &[u8], wait: Option<Duration>, to: &str) -> SendError {
    let json = serde_json::from_slice::<Value>(body).ok();
    // Twilio sends `code` as a number; accept a string too rather than lose it.
    let code = json.as_ref().and_then(|v| match v.get("code") {
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    });
    let message = json
        .as_ref()
        .and_then(|v| v.get("message").and_then(Value::as_str))
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    let reason = match &code {
        Some(c) => scrub(&format!("twilio: HTTP {status}, code {c}: {message}"), to),
        None => scrub(&format!("twilio: HTTP {status}: {message}"), to),
    };
    match code.as_deref() {
        Some(UNSUBSCRIBED) => SendError::Permanent {
            reason,
            status: Some(status),
            code,
            unsubscribed: true,
        },
        Some(c) if RETRYABLE_CODES.contains(&c) => SendError::Retryable {
            reason,
            status: Some(status),
            code,
            retry_after: wait,
            // Refused before processing.
            ambiguous: false,
        },
        // No code, or one without a rule: the HTTP status decides (as Twilio's SDKs do).
        _ => http_error(status, reason, code, wait),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fakeproviders::{FakeTwilio, Reply};

    const SID: &str = "AC0123456789abcdef0123456789abcdef";
    const TOKEN: &str = "secret-token";
    const TO: &str = "+15145550142";
    const FROM: &str = "+15005550006";

    fn config(fake: &FakeTwilio) -> TwilioConfig {
        TwilioConfig {
            base_url: fake.base_url(),
            from: Some(FROM.into()),
            timeout: Duration::from_secs(5),
            ..TwilioConfig::new(SID, TOKEN)
        }
    }

    fn client(cfg: TwilioConfig) -> TwilioClient {
        TwilioClient::new(cfg, reqwest::Client::new())
    }

    fn sms(to: &str) -> SmsMessage {
        SmsMessage {
            to: to.into(),
            body: "You have 1,250 points".into(),
            reference: "demo-42".into(),
        }
    }

    fn basic(user: &str, pass: &str) -> String {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        )
    }

    #[tokio::test]
    async fn twilio_send_returns_the_message_sid() {
        let fake = FakeTwilio::start(SID, TOKEN).await;
        let accepted = client(config(&fake)).send(&sms(TO)).await.unwrap();
        let sid = accepted.provider_id.unwrap();
        assert!(sid.starts_with("SM") && sid.len() == 34, "{sid}");
    }

    #[tokio::test]
    async fn twilio_request_is_a_form_post_with_basic_auth_and_exact_fields() {
        let fake = FakeTwilio::start(SID, TOKEN).await;
        client(config(&fake)).send(&sms(TO)).await.unwrap();
        let req = &fake.requests()[0];
        assert_eq!(req.method, "POST");
        assert_eq!(
            req.path,
            format!("/2010-04-01/Accounts/{SID}/Messages.json")
        );
        assert_eq!(
            req.header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
        assert_eq!(
            req.header("authorization"),
            Some(basic(SID, TOKEN).as_str())
        );
        assert_eq!(
            req.form,
            vec![
                ("To".to_string(), TO.to_string()),
                ("Body".to_string(), "You have 1,250 points".to_string()),
                ("From".to_string(), FROM.to_string()),
            ]
        );
        assert_eq!(req.status, 201);
    }

    #[tokio::test]
    async fn twilio_messaging_service_is_preferred_over_from() {
        let fake = FakeTwilio::start(SID, TOKEN).await;
        let service = "MG0123456789abcdef0123456789abcdef";
        let cfg = TwilioConfig {
            messaging_service_sid: Some(service.into()),
            ..config(&fake)
        };
        client(cfg).send(&sms(TO)).await.unwrap();
        let req = &fake.requests()[0];
        assert_eq!(req.field("MessagingServiceSid"), Some(service));
        assert_eq!(req.field("From"), None);
    }

    #[tokio::test]
    async fn twilio_api_key_replaces_the_account_credentials() {
        let fake = FakeTwilio::start(SID, TOKEN).await;
        let key = "SK0123456789abcdef0123456789abcdef";
        fake.add_api_key(key, "key-secret");
        let cfg = TwilioConfig {
            api_key_sid: Some(key.into()),
            api_key_secret: Some("key-secret".into()),
            ..config(&fake)
        };
        client(cfg).send(&sms(TO)).await.unwrap();
        let req = &fake.requests()[0];
        assert_eq!(
            req.header("authorization"),
            Some(basic(key, "key-secret").as_str())
        );
        // The account SID stays in the path.
        assert!(req.path.contains(SID));
    }

    #[tokio::test]
    async fn twilio_unsubscribed_recipient_is_a_permanent_failure() {
        let fake = FakeTwilio::start(SID, TOKEN).await;
        fake.unsubscribe(TO);
        let err = client(config(&fake)).send(&sms(TO)).await.unwrap_err();
        match err {
            SendError::Permanent {
                status,
                code,
                unsubscribed,
                ..
            } => {
                assert_eq!(status, Some(400));
                assert_eq!(code.as_deref(), Some("21610"));
                assert!(unsubscribed);
            }
            other => panic!("expected permanent, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn twilio_invalid_number_is_a_permanent_failure_without_leaking_it() {
        let fake = FakeTwilio::start(SID, TOKEN).await;
        let bad = "+1 514 555 0142";
        let err = client(config(&fake)).send(&sms(bad)).await.unwrap_err();
        assert!(!err.is_retryable());
        assert_eq!(err.code(), Some("21211"));
        assert_eq!(err.status(), Some(400));
        assert!(matches!(
            err,
            SendError::Permanent {
                unsubscribed: false,
                ..
            }
        ));
        // Twilio echoes the number back; the reason must carry only the masked form.
        assert!(!err.to_string().contains(bad), "{err}");
    }

    #[tokio::test]
    async fn twilio_rate_limit_with_retry_after_is_retryable_after_that_delay() {
        let fake = FakeTwilio::start(SID, TOKEN).await;
        fake.script(vec![Reply::TooManyRequests {
            retry_after_secs: 7,
        }]);
        let err = client(config(&fake)).send(&sms(TO)).await.unwrap_err();
        assert!(err.is_retryable());
        assert_eq!(err.code(), Some("20429"));
        assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    }

    #[tokio::test]
    async fn twilio_full_sender_queue_is_retryable() {
        let fake = FakeTwilio::start(SID, TOKEN).await;
        fake.script(vec![Reply::TwilioError {
            status: 400,
            code: 21611,
        }]);
        let err = client(config(&fake)).send(&sms(TO)).await.unwrap_err();
        assert!(err.is_retryable());
        assert_eq!(err.status(), Some(400));
    }

    #[tokio::test]
    async fn twilio_service_unavailable_is_retryable_and_the_next_send_succeeds() {
        let fake = FakeTwilio::start(SID, TOKEN).await;
        fake.script(vec![Reply::Status(503)]);
        let c = client(config(&fake));
        let err = c.send(&sms(TO)).await.unwrap_err();
        assert!(err.is_retryable());
        assert_eq!(err.status(), Some(503));
        assert_eq!(err.retry_after(), None);
        assert!(c.send(&sms(TO)).await.is_ok());
    }

    #[tokio::test]
    async fn twilio_answer_slower_than_the_timeout_is_retryable() {
        let fake = FakeTwilio::start(SID, TOKEN).await;
        fake.script(vec![Reply::Slow(Duration::from_secs(2))]);
        let cfg = TwilioConfig {
            timeout: Duration::from_millis(200),
            ..config(&fake)
        };
        let err = client(cfg).send(&sms(TO)).await.unwrap_err();
        assert!(matches!(
            err,
            SendError::Retryable {
                status: None,
                code: None,
                ambiguous: true,
                ..
            }
        ));
        // The fake finishes the request anyway: the ambiguity the reason warns about.
        let seen = fake.wait_for(1, Duration::from_secs(5)).await;
        assert_eq!(seen[0].status, 201);
    }

    #[tokio::test]
    async fn a_text_twilio_took_after_the_client_gave_up_is_found_in_its_message_list() {
        let fake = FakeTwilio::start(SID, TOKEN).await;
        fake.script(vec![Reply::Slow(Duration::from_millis(500))]);
        let c = client(TwilioConfig {
            timeout: Duration::from_millis(200),
            ..config(&fake)
        });
        let since = chrono::Utc::now();
        assert!(c.send(&sms(TO)).await.is_err());
        let seen = fake.wait_for(1, Duration::from_secs(5)).await;
        assert_eq!(seen[0].status, 201);

        let c = client(config(&fake));
        let found = c.find_sent(&sms(TO), since).await.unwrap();
        let sid = found.expect("the accepted text is listed");
        assert!(sid.starts_with("SM") && sid.len() == 34, "{sid}");
        let list = fake.requests().into_iter().last().unwrap();
        assert_eq!(list.method, "GET");
        assert_eq!(
            list.path,
            format!("/2010-04-01/Accounts/{SID}/Messages.json")
        );
        assert_eq!(
            list.header("authorization"),
            Some(basic(SID, TOKEN).as_str())
        );
        assert_eq!(fake.stats().accepted, 1, "a list is not a send");
    }

    #[tokio::test]
    async fn only_the_same_body_to_the_same_number_since_the_attempt_counts_as_sent() {
        let fake = FakeTwilio::start(SID, TOKEN).await;
        let c = client(config(&fake));
        c.send(&sms(TO)).await.unwrap();
        let since = chrono::Utc::now();
        let other_body = SmsMessage {
            body: "You have 1,261 points".into(),
            ..sms(TO)
        };
        assert_eq!(c.find_sent(&other_body, since).await.unwrap(), None);
        assert_eq!(
            c.find_sent(&sms("+15145550199"), since).await.unwrap(),
            None
        );
        // Created well before the attempt began: an older text with the same words.
        let later = since + chrono::Duration::minutes(5);
        assert_eq!(c.find_sent(&sms(TO), later).await.unwrap(), None);
        assert!(c.find_sent(&sms(TO), since).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_failed_list_is_an_error_not_a_message_that_was_never_sent() {
        let fake = FakeTwilio::start(SID, TOKEN).await;
        fake.script(vec![Reply::Status(503)]);
        let err = client(config(&fake))
            .find_sent(&sms(TO), chrono::Utc::now())
            .await
            .unwrap_err();
        assert!(err.is_retryable(), "{err}");
        let err = client(TwilioConfig {
            auth_token: "wrong".into(),
            ..config(&fake)
        })
        .find_sent(&sms(TO), chrono::Utc::now())
        .await
        .unwrap_err();
        assert_eq!(err.status(), Some(401));
        assert!(!err.is_retryable());
    }

    #[tokio::test]
    async fn twilio_wrong_credentials_are_a_permanent_failure_with_status_401() {
        let fake = FakeTwilio::start(SID, TOKEN).await;
        let cfg = TwilioConfig {
            auth_token: "wrong".into(),
            ..config(&fake)
        };
        let err = client(cfg).send(&sms(TO)).await.unwrap_err();
        assert!(!err.is_retryable());
        assert_eq!(err.status(), Some(401));
        assert_eq!(err.code(), Some("20003"));
    }

    #[tokio::test]
    async fn twilio_unreachable_server_is_retryable() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let cfg = TwilioConfig {
            base_url: format!("http://127.0.0.1:{port}"),
            from: Some(FROM.into()),
            ..TwilioConfig::new(SID, TOKEN)
        };
        let err = client(cfg).send(&sms(TO)).await.unwrap_err();
        assert!(err.is_retryable());
        assert_eq!(err.status(), None);
    }

    #[tokio::test]
    async fn twilio_without_a_sender_is_a_permanent_failure_before_any_request() {
        let fake = FakeTwilio::start(SID, TOKEN).await;
        let cfg = TwilioConfig {
            from: None,
            ..config(&fake)
        };
        let err = client(cfg).send(&sms(TO)).await.unwrap_err();
        assert!(!err.is_retryable());
        assert!(fake.requests().is_empty());
    }

    #[test]
    fn twilio_error_without_a_code_falls_back_to_the_http_status() {
        let err = classify(502, b"<html>Bad Gateway</html>", None, TO);
        assert!(err.is_retryable());
        assert_eq!(err.code(), None);
        let err = classify(404, br#"{"message":"not found","status":404}"#, None, TO);
        assert!(!err.is_retryable());
        assert_eq!(err.status(), Some(404));
    }

    #[test]
    fn twilio_config_debug_hides_secrets() {
        let cfg = TwilioConfig {
            api_key_secret: Some("key-secret".into()),
            ..TwilioConfig::new(SID, TOKEN)
        };
        let shown = format!("{cfg:?}");
        assert!(!shown.contains(TOKEN) && !shown.contains("key-secret"));
    }
}
