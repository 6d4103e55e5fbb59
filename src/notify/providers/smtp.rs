//! Email through any SMTP relay, with lettre's pooled async transport.

use std::fmt;
use std::time::Duration;

use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{scrub, Accepted, ConfigError, EmailMessage, SendError};
use crate::member::redact;

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text, no TLS: only for a relay on loopback or a trusted network.
    None,
    /// Plain connect, then STARTTLS (required: refuses to continue without it). Usually 587.
    StartTls,
    /// TLS from the first byte ("SMTPS"). Usually 465.
    Implicit,
}

/// SMTP relay settings.
#[derive(Clone)]
pub struct SmtpConfig {
    /// Relay host name (also the name the TLS certificate must match).
    pub host: String,
    /// Relay port.
    pub port: u16,
    /// Connection security.
    pub tls: SmtpTls,
    /// Login, when the relay wants one (together with `password`).
    pub username: Option<String>,
    /// Password for `username`.
    pub password: Option<String>,
    /// Sender, `points@shop.example` or `Corner Shop <points@shop.example>`.
    pub from: String,
    /// Timeout for each SMTP command.
    pub timeout: Duration,
}

impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("from", &self.from)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Sends email through an SMTP relay.
#[derive(Clone)]
pub struct SmtpClient {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    host: String,
    port: u16,
}

impl fmt::Debug for SmtpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpClient")
            .field("host", &self.host)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// `X-Loyaltyd-Notification: <reference>`: lets a bounce or a copy of the mail be traced back
/// to the outbox entry, like the metadata fields of the HTTP providers.
#[derive(Debug, Clone)]
struct NotificationHeader(String);

impl Header for NotificationHeader {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("X-Loyaltyd-Notification")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(NotificationHeader(s.to_string()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

impl SmtpClient {
    /// Build the (lazily connecting) transport; fails on an unusable host, sender or login.
    pub fn new(cfg: SmtpConfig) -> Result<Self, ConfigError> {
        let from: Mailbox = cfg
            .from
            .parse()
            .map_err(|e| ConfigError(format!("smtp: invalid from address: {e}")))?;
        let mut builder = match cfg.tls {
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&cfg.host),
            SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&cfg.host)
                .map_err(|e| ConfigError(format!("smtp: {e}")))?,
            SmtpTls::Implicit => AsyncSmtpTransport::<Tokio1Executor>::relay(&cfg.host)
                .map_err(|e| ConfigError(format!("smtp: {e}")))?,
        }
        .port(cfg.port)
        .timeout(Some(cfg.timeout));
        match (cfg.username, cfg.password) {
            (Some(user), Some(pass)) => builder = builder.credentials(Credentials::new(user, pass)),
            (None, None) => {}
            _ => {
                return Err(ConfigError(
                    "smtp: username and password must be given together".into(),
                ))
            }
        }
        Ok(SmtpClient {
            transport: builder.build(),
            from,
            host: cfg.host,
            port: cfg.port,
        })
    }

    /// The MIME message: plain text, or text + HTML as `multipart/alternative`.
    fn message(&self, m: &EmailMessage) -> Result<Message, SendError> {
        let address: Address = m.to.parse().map_err(|e| SendError::Permanent {
            reason: format!("smtp: invalid recipient {}: {e}", redact(&m.to)),
            status: None,
            code: None,
            unsubscribed: false,
        })?;
        let builder = Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(m.to_name.clone(), address))
            .subject(m.subject.clone())
            .header(NotificationHeader(m.reference.clone()));
        let built = match &m.html {
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(
                m.text.clone(),
                html.clone(),
            )),
            None => builder.header(ContentType::TEXT_PLAIN).body(m.text.clone()),
        };
        built.map_err(|e| SendError::Permanent {
            reason: scrub(&format!("smtp: cannot build the message: {e}"), &m.to),
            status: None,
            code: None,
            unsubscribed: false,
        })
    }

    /// Hand one email to the relay; `Accepted::provider_id` is the relay's final reply text
    /// (often "queued as ..."), `None` if it was empty.
    pub async fn send(&self, m: &EmailMessage) -> Result<Accepted, SendError> {
        let message = self.message(m)?;
        match self.transport.send(message).await {
            Ok(response) => {
                let text = response.message().collect::<Vec<_>>().join(" ");
                let id = (!text.trim().is_empty()).then(|| text.trim().to_string());
                tracing::debug!(provider = "smtp", to = %redact(&m.to), reference = %m.reference, reply = ?id, "email accepted");
                Ok(Accepted { provider_id: id })
            }
            Err(e) => {
                let err = classify(&e, &m.to);
                tracing::warn!(provider = "smtp", to = %redact(&m.to), reference = %m.reference, error = %err, "email not sent");
                Err(err)
            }
        }
    }
}

/// SMTP 5xx replies and client-side errors are permanent; 4xx replies and anything on the
/// way (connect, TLS, timeouts, a dropped connection) are worth another try.
fn classify(e: &lettre::transport::smtp::Error, to: &str) -> SendError {
    let code = e.status().map(|c| c.to_string());
    let reason = scrub(&format!("smtp: {e}"), to);
    if e.is_permanent() || e.is_client() {
        SendError::Permanent {
            reason,
            status: None,
            code,
            unsubscribed: false,
        }
    } else {
        SendError::Retryable {
            reason,
            status: None,
            code,
            retry_after: None,
            // SMTP has no reconciliation; e-mail is retried at least once.
            ambiguous: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::Instant;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    /// A real SMTP server (aiosmtpd) on loopback, storing mail in a Maildir; killed on drop.
    struct Aiosmtpd {
        child: Child,
        port: u16,
        maildir: PathBuf,
        _dir: tempfile::TempDir,
    }

    impl Aiosmtpd {
        fn start() -> Aiosmtpd {
            let importable = Command::new("python3")
                .args(["-c", "import aiosmtpd"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            // Fail, not skip: a skipped SMTP test would hide a broken SMTP path in CI.
            assert!(
                importable,
                "the SMTP test needs a real SMTP server: `python3 -c \"import aiosmtpd\"` failed; \
                 install it with `pip install aiosmtpd==1.4.6` (or apt-get install python3-aiosmtpd)"
            );
            let port = free_port();
            let dir = tempfile::tempdir().expect("temp dir");
            let maildir = dir.path().join("maildir");
            let child = Command::new("python3")
                .args(["-m", "aiosmtpd", "-n", "-l"])
                .arg(format!("127.0.0.1:{port}"))
                .args(["-c", "aiosmtpd.handlers.Mailbox"])
                .arg(&maildir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start python3 -m aiosmtpd");
            let mut server = Aiosmtpd {
                child,
                port,
                maildir,
                _dir: dir,
            };
            let deadline = Instant::now() + Duration::from_secs(15);
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                if let Ok(Some(status)) = server.child.try_wait() {
                    panic!("aiosmtpd exited before listening: {status}");
                }
                assert!(
                    Instant::now() < deadline,
                    "aiosmtpd did not listen on 127.0.0.1:{port} within 15 s"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            server
        }

        /// The stored messages, raw.
        fn messages(&self) -> Vec<String> {
            read_dir_files(&self.maildir.join("new"))
        }
    }

    impl Drop for Aiosmtpd {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn read_dir_files(dir: &Path) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .collect()
    }

    fn free_port() -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        l.local_addr().expect("local addr").port()
    }

    fn config(port: u16) -> SmtpConfig {
        SmtpConfig {
            host: "127.0.0.1".into(),
            port,
            tls: SmtpTls::None,
            username: None,
            password: None,
            from: "Corner Shop <points@shop.example>".into(),
            timeout: Duration::from_secs(5),
        }
    }

    fn email() -> EmailMessage {
        EmailMessage {
            to: "ada@example.com".into(),
            to_name: Some("Ada Lovelace".into()),
            subject: "You have 1250 points".into(),
            text: "Hello Ada, you have 1250 points.".into(),
            html: Some("<p>Hello Ada, you have <b>1250</b> points.</p>".into()),
            reference: "demo-42".into(),
        }
    }

    #[tokio::test]
    async fn smtp_message_reaches_a_real_smtp_server_with_subject_recipient_and_reference() {
        let server = Aiosmtpd::start();
        let client = SmtpClient::new(config(server.port)).unwrap();
        let accepted = client.send(&email()).await.unwrap();
        assert!(accepted.provider_id.is_some());

        let deadline = Instant::now() + Duration::from_secs(5);
        let mut stored = server.messages();
        while stored.is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            stored = server.messages();
        }
        assert_eq!(
            stored.len(),
            1,
            "expected one message in {:?}",
            server.maildir
        );
        let raw = &stored[0];
        assert!(raw.contains("Subject: You have 1250 points"), "{raw}");
        assert!(
            raw.contains("To: \"Ada Lovelace\" <ada@example.com>"),
            "{raw}"
        );
        assert!(raw.contains("X-RcptTo: ada@example.com"), "{raw}");
        assert!(raw.contains("X-Loyaltyd-Notification: demo-42"), "{raw}");
        assert!(raw.contains("multipart/alternative"), "{raw}");
        assert!(raw.contains("Hello Ada, you have 1250 points."), "{raw}");
        assert!(raw.contains("<b>1250</b>"), "{raw}");
    }

    #[tokio::test]
    async fn smtp_plain_text_mail_is_a_single_text_part() {
        let server = Aiosmtpd::start();
        let client = SmtpClient::new(config(server.port)).unwrap();
        let m = EmailMessage {
            html: None,
            ..email()
        };
        client.send(&m).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut stored = server.messages();
        while stored.is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            stored = server.messages();
        }
        let raw = stored.first().expect("one stored message");
        assert!(raw.contains("Content-Type: text/plain"), "{raw}");
        assert!(!raw.contains("multipart"), "{raw}");
    }

    /// A scripted SMTP server that answers `RCPT TO` with `rcpt_reply`.
    async fn scripted_server(rcpt_reply: &'static str) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read).lines();
                    let _ = write.write_all(b"220 scripted ESMTP\r\n").await;
                    while let Ok(Some(line)) = lines.next_line().await {
                        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                        let reply = match verb.as_str() {
                            "EHLO" | "HELO" => "250 scripted",
                            "MAIL" | "RSET" | "NOOP" => "250 2.0.0 OK",
                            "RCPT" => rcpt_reply,
                            "QUIT" => "221 2.0.0 Bye",
                            _ => "502 5.5.2 Command not implemented",
                        };
                        if write
                            .write_all(format!("{reply}\r\n").as_bytes())
                            .await
                            .is_err()
                            || verb == "QUIT"
                        {
                            break;
                        }
                    }
                });
            }
        });
        port
    }

    #[tokio::test]
    async fn smtp_permanent_rejection_is_a_permanent_failure_without_the_address() {
        let port = scripted_server(
            "550 5.1.1 <ada@example.com>: Recipient address rejected: User unknown",
        )
        .await;
        let err = SmtpClient::new(config(port))
            .unwrap()
            .send(&email())
            .await
            .unwrap_err();
        assert!(!err.is_retryable(), "{err:?}");
        assert_eq!(err.code(), Some("550"));
        assert!(!err.to_string().contains("ada@example.com"), "{err}");
    }

    #[tokio::test]
    async fn smtp_transient_rejection_is_retryable() {
        let port = scripted_server("451 4.7.1 Greylisted, try again later").await;
        let err = SmtpClient::new(config(port))
            .unwrap()
            .send(&email())
            .await
            .unwrap_err();
        assert!(err.is_retryable(), "{err:?}");
        assert_eq!(err.code(), Some("451"));
    }

    #[tokio::test]
    async fn smtp_refused_connection_is_retryable() {
        let err = SmtpClient::new(config(free_port()))
            .unwrap()
            .send(&email())
            .await
            .unwrap_err();
        assert!(err.is_retryable(), "{err:?}");
    }

    #[tokio::test]
    async fn smtp_invalid_recipient_is_a_permanent_failure_before_connecting() {
        let m = EmailMessage {
            to: "not an address".into(),
            ..email()
        };
        let err = SmtpClient::new(config(free_port()))
            .unwrap()
            .send(&m)
            .await
            .unwrap_err();
        assert!(!err.is_retryable(), "{err:?}");
    }

    #[test]
    fn smtp_config_errors_are_reported_at_construction() {
        let bad_from = SmtpConfig {
            from: "nobody".into(),
            ..config(25)
        };
        assert!(SmtpClient::new(bad_from).is_err());
        let half_login = SmtpConfig {
            username: Some("user".into()),
            ..config(25)
        };
        assert!(SmtpClient::new(half_login).is_err());
    }
}
