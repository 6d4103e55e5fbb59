//! Contract test: the requests our Twilio and SendGrid clients send are checked against the
//! providers' own OpenAPI specifications (`../shared/provider-specs/`, see its README).
//!
//! Each test starts a Prism (`@stoplight/prism-cli`) mock server for one spec with `--errors`,
//! so any request that violates the spec (path parameters, security scheme, content type,
//! body schema) is answered with an error status instead of the spec's success response. A
//! success seen by our client therefore proves that the request conformed. Every test also
//! sends requests that break the contract and asserts that Prism rejects them, so a Prism
//! that accepted everything could not make the test pass.
//!
//! Prism comes from `tools/contract/` (`@stoplight/prism-cli` pinned to 5.14.2, the last
//! release that runs on Node 20): run `(cd tools/contract && npm ci)` once. Without that
//! install the test falls back to `npx --yes @stoplight/prism-cli@5.14.2` (slower: npx
//! resolves and downloads it). Without Node at all the test fails, it does not skip.
//!
//! What Prism 5.14.2 does and does not check here (tried by hand against these specs):
//! - Security: a missing `Authorization`, the wrong scheme (Bearer for Twilio, Basic for
//!   SendGrid) or a malformed Basic value (`Basic abc`) is refused with 401. Credential
//!   *values* are not checked, so wrong tokens are the fake-provider tests' business.
//! - Twilio's body must be `application/x-www-form-urlencoded` (JSON or multipart: 415),
//!   `To` is required (422), `AccountSid` and `MessagingServiceSid` patterns are enforced.
//!   Not checked: the `phone-number` format of `To`/`From` is unknown to Prism's validator
//!   and ignored (`To=hello` is accepted), and unknown form fields are accepted (the schema
//!   does not forbid them), so a misspelt optional field would go unnoticed.
//! - SendGrid: the JSON body schema is enforced (`personalizations` required, `email`
//!   format, `"name": null` refused: 400). Prism answers errors with the spec's example
//!   body, not a real field list. The spec's 202 declares no headers, so the mock sends no
//!   `X-Message-Id` and the client's `provider_id` is `None` here.
//! - The Twilio spec declares only the 201 answer: error behaviour (429, 5xx, 21610) is
//!   covered by the tests against `tools/fakeproviders`, not here.

use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use loyaltyd::notify::providers::{
    EmailMessage, SendError, SendGridClient, SendGridConfig, SmsMessage, TwilioClient, TwilioConfig,
};
use serde_json::json;

/// The Prism release the specs are checked with (see `tools/contract/package.json`).
const PRISM_VERSION: &str = "5.14.2";
/// How long a locally installed Prism may take to load a spec (the Twilio one is 1.8 MB;
/// about 4 s on a developer machine).
const START_LOCAL: Duration = Duration::from_secs(60);
/// The same through npx, which may first have to download Prism.
const START_NPX: Duration = Duration::from_secs(180);

const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
const AUTH_TOKEN: &str = "contract-test-token";
const TO: &str = "+15145550142";
const FROM: &str = "+15005550006";
const SENDGRID_KEY: &str = "SG.contract-test-key";

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn spec(name: &str) -> PathBuf {
    let path = repo_root().join("../shared/provider-specs").join(name);
    assert!(
        path.is_file(),
        "provider spec {} is missing: the contract test needs ../shared/provider-specs/ beside the repository",
        path.display()
    );
    path
}

/// How to run Prism on this machine: the pinned install in `tools/contract/`, else npx.
/// Panics with what to install when neither works.
fn prism_command() -> (Command, Duration) {
    const INSTALL: &str = "install Node >= 18.20.1 and run `(cd tools/contract && npm ci)`";
    let node = Command::new("node").arg("--version").output();
    match node {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "`node --version` failed ({}): the provider contract test needs Node to run Prism; {INSTALL}",
            out.status
        ),
        Err(e) => panic!(
            "cannot run `node` ({e}): the provider contract test needs Node to run Prism; {INSTALL}"
        ),
    }

    let contract = repo_root().join("tools/contract");
    let package = contract.join("node_modules/@stoplight/prism-cli/package.json");
    if package.is_file() {
        let text = std::fs::read_to_string(&package).unwrap();
        let installed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            installed["version"].as_str(),
            Some(PRISM_VERSION),
            "{} is not the pinned Prism: run `(cd tools/contract && npm ci)`",
            package.display()
        );
        let mut cmd = Command::new("node");
        cmd.arg(contract.join("node_modules/@stoplight/prism-cli/dist/index.js"));
        return (cmd, START_LOCAL);
    }

    match Command::new("npx").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        _ => panic!("Prism is not installed in tools/contract/ and `npx` cannot be run: {INSTALL}"),
    }
    eprintln!(
        "Prism is not installed in tools/contract/ (run `(cd tools/contract && npm ci)`); using npx"
    );
    let mut cmd = Command::new("npx");
    cmd.args(["--yes", &format!("@stoplight/prism-cli@{PRISM_VERSION}")]);
    (cmd, START_NPX)
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A running Prism mock server; killed (with its whole process group) on drop, also when
/// the test fails.
struct Prism {
    child: Child,
    base_url: String,
    log: PathBuf,
}

impl Prism {
    /// Start `prism mock --errors SPEC` on a free loopback port and wait until it answers.
    fn start(spec_file: &str) -> Prism {
        let spec = spec(spec_file);
        let (mut cmd, patience) = prism_command();
        let port = free_port();
        let log = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("prism-{}.log", spec_file.trim_end_matches(".json")));
        let out = File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        cmd.args([
            "mock",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "--errors",
        ])
        .arg(&spec)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        // Own process group, so drop can end npx and the node it starts together.
        .process_group(0);
        // SAFETY: prctl is async-signal-safe; it only asks the kernel to kill the server if
        // this test process dies without running drops (e.g. killed by a CI timeout).
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start Prism for {}: {e}", spec.display()));
        let mut prism = Prism {
            child,
            base_url: format!("http://127.0.0.1:{port}"),
            log,
        };
        prism.wait_ready(port, patience);
        prism
    }

    /// Poll the port until Prism listens (it does so only once the spec is loaded).
    fn wait_ready(&mut self, port: u16, patience: Duration) {
        let started = Instant::now();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "Prism exited ({status}) before listening on {port}:\n{}",
                    self.log_tail()
                );
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                eprintln!(
                    "Prism ready on {} after {:.1} s ({})",
                    self.base_url,
                    started.elapsed().as_secs_f64(),
                    self.log.display()
                );
                return;
            }
            if started.elapsed() > patience {
                panic!(
                    "Prism did not listen on {port} within {patience:?}:\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The end of Prism's output, for failure messages.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        format!("--- {} (last lines) ---\n{tail}", self.log.display())
    }
}

impl Drop for Prism {
    fn drop(&mut self) {
        // The child leads its own process group (process_group(0)): end all of it.
        let pgid = self.child.id() as libc::pid_t;
        // SAFETY: plain kill(2) on the group this test started.
        unsafe {
            libc::kill(-pgid, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // SAFETY: as above.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// A client that never goes through a proxy from the environment (the mock is on loopback).
fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// Status and body of a hand-built request, for the negative controls.
async fn status_and_body(req: reqwest::RequestBuilder) -> (u16, String) {
    let resp = req.send().await.expect("Prism answers");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

fn twilio_config(prism: &Prism) -> TwilioConfig {
    TwilioConfig {
        base_url: prism.base_url.clone(),
        from: Some(FROM.into()),
        timeout: Duration::from_secs(10),
        ..TwilioConfig::new(ACCOUNT_SID, AUTH_TOKEN)
    }
}

fn sms() -> SmsMessage {
    SmsMessage {
        to: TO.into(),
        // Non-ASCII and form-significant characters, so the encoding is exercised too.
        body: "Corner Shop: you have 1,250 points (+50) & a free café 👍".into(),
        reference: "contract-1".into(),
    }
}

#[tokio::test]
async fn twilio_requests_conform_to_twilios_openapi_spec() {
    let prism = Prism::start("twilio_api_v2010.json");
    let client = |cfg| TwilioClient::new(cfg, http());

    // Positive: with a sender number (HTTP Basic AccountSid:AuthToken, form body).
    let accepted = client(twilio_config(&prism))
        .send(&sms())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "Prism refused our Twilio request: {e}\n{}",
                prism.log_tail()
            )
        });
    // The sid comes from the spec's example answer: proof the 201 body was parsed.
    let sid = accepted.provider_id.expect("sid from the 201 answer");
    assert!(sid.starts_with("SM") && sid.len() == 34, "{sid}");

    // The message list read after an ambiguous send (To, From, PageSize). Prism checks
    // the request first (a violation is a 422, as below); this one passes, and Prism then
    // refuses its own example answer: the spec's example page has relative `*_page_uri`
    // values under `format: uri`, which `--errors` reports as a 500 on the *response*.
    let since = chrono::Utc::now() - chrono::Duration::days(1);
    let err = client(twilio_config(&prism))
        .find_sent(&sms(), since)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(500), "{err}");
    assert!(
        err.to_string().contains(r#""location":["response""#),
        "only the example answer may be faulted: {err}"
    );
    // And Prism does check the list: an account SID off the pattern is refused.
    let err = client(TwilioConfig {
        account_sid: "AC123".into(),
        ..twilio_config(&prism)
    })
    .find_sent(&sms(), since)
    .await
    .unwrap_err();
    assert_eq!(err.status(), Some(422), "{err}");

    // Positive: through a Messaging Service instead of a sender number.
    let cfg = TwilioConfig {
        from: None,
        messaging_service_sid: Some("MG0123456789abcdef0123456789abcdef".into()),
        ..twilio_config(&prism)
    };
    client(cfg)
        .send(&sms())
        .await
        .unwrap_or_else(|e| panic!("Prism refused the Messaging Service request: {e}"));

    // Positive: with an API key (still HTTP Basic, key:secret).
    let cfg = TwilioConfig {
        api_key_sid: Some("SK0123456789abcdef0123456789abcdef".into()),
        api_key_secret: Some("key-secret".into()),
        ..twilio_config(&prism)
    };
    client(cfg)
        .send(&sms())
        .await
        .unwrap_or_else(|e| panic!("Prism refused the API-key request: {e}"));

    // Negative, through our client: an account SID that breaks the path pattern is refused,
    // so the successes above were not a mock that accepts anything.
    let cfg = TwilioConfig {
        account_sid: "AC123".into(),
        ..twilio_config(&prism)
    };
    let err = client(cfg).send(&sms()).await.unwrap_err();
    assert_eq!(err.status(), Some(422), "{err}");
    assert!(matches!(err, SendError::Permanent { .. }), "{err:?}");
    // Prism names the offending part (`"location":["path","accountsid"]`); the client cuts
    // provider texts at 300 characters, so only the start of it is still there.
    assert!(err.to_string().contains(r#""location":["path""#), "{err}");

    // Negative, hand-built requests that a regression in the client could produce.
    let http = http();
    let url = format!(
        "{}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
        prism.base_url
    );
    let form = [("To", TO), ("From", FROM), ("Body", "hi")];

    let (status, body) = status_and_body(
        http.post(&url)
            .basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN))
            .form(&form),
    )
    .await;
    assert_eq!(
        status, 201,
        "the control request itself must conform: {body}"
    );

    let (status, body) = status_and_body(
        http.post(&url)
            .basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN))
            .json(&json!({"To": TO, "From": FROM, "Body": "hi"})),
    )
    .await;
    assert_eq!(
        status, 415,
        "JSON instead of a form must be refused: {body}"
    );

    let (status, body) = status_and_body(
        http.post(&url)
            .basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN))
            .form(&[("From", FROM), ("Body", "hi")]),
    )
    .await;
    assert_eq!(status, 422, "a form without To must be refused: {body}");
    assert!(body.contains("'To'"), "{body}");

    let (status, body) = status_and_body(http.post(&url).form(&form)).await;
    assert_eq!(
        status, 401,
        "a request without credentials must be refused: {body}"
    );

    let (status, body) = status_and_body(http.post(&url).bearer_auth(AUTH_TOKEN).form(&form)).await;
    assert_eq!(
        status, 401,
        "Bearer instead of Basic must be refused: {body}"
    );

    let (status, body) = status_and_body(
        http.post(&url)
            .basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN))
            .form(&[("To", TO), ("Body", "hi"), ("MessagingServiceSid", "MG1")]),
    )
    .await;
    assert_eq!(
        status, 422,
        "a malformed MessagingServiceSid must be refused: {body}"
    );
}

fn sendgrid_config(prism: &Prism) -> SendGridConfig {
    SendGridConfig {
        base_url: prism.base_url.clone(),
        api_key: SENDGRID_KEY.into(),
        from: "points@shop.example".into(),
        from_name: Some("Corner Shop".into()),
        timeout: Duration::from_secs(10),
    }
}

fn email() -> EmailMessage {
    EmailMessage {
        to: "ada@example.com".into(),
        to_name: Some("Ada Lovelace".into()),
        subject: "You have 1,250 points".into(),
        text: "Hello Ada, you have 1,250 points.".into(),
        html: Some("<p>Hello Ada, you have <b>1,250</b> points.</p>".into()),
        reference: "contract-2".into(),
    }
}

#[tokio::test]
async fn sendgrid_requests_conform_to_sendgrids_openapi_spec() {
    let prism = Prism::start("sendgrid_mail_v3.json");
    let client = |cfg| SendGridClient::new(cfg, http());

    // Positive: names, text and HTML (Bearer key, JSON body).
    let accepted = client(sendgrid_config(&prism))
        .send(&email())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "Prism refused our SendGrid request: {e}\n{}",
                prism.log_tail()
            )
        });
    // The spec's 202 declares no X-Message-Id header, so the mock sends none.
    assert_eq!(accepted.provider_id, None);

    // Positive: plain text only, no display names (the keys are left out, not null).
    let cfg = SendGridConfig {
        from_name: None,
        ..sendgrid_config(&prism)
    };
    let m = EmailMessage {
        to_name: None,
        html: None,
        ..email()
    };
    client(cfg)
        .send(&m)
        .await
        .unwrap_or_else(|e| panic!("Prism refused the plain-text request: {e}"));

    // Negative, through our client: an invalid recipient address breaks the `email` format.
    let m = EmailMessage {
        to: "not-an-address".into(),
        ..email()
    };
    let err = client(sendgrid_config(&prism)).send(&m).await.unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
    assert!(matches!(err, SendError::Permanent { .. }), "{err:?}");

    // Negative, hand-built requests that a regression in the client could produce.
    let http = http();
    let url = format!("{}/v3/mail/send", prism.base_url);
    let good = json!({
        "personalizations": [{"to": [{"email": "ada@example.com"}]}],
        "from": {"email": "points@shop.example"},
        "subject": "s",
        "content": [{"type": "text/plain", "value": "x"}],
    });

    let (status, body) =
        status_and_body(http.post(&url).bearer_auth(SENDGRID_KEY).json(&good)).await;
    assert_eq!(
        status, 202,
        "the control request itself must conform: {body}"
    );

    let mut without_personalizations = good.clone();
    without_personalizations
        .as_object_mut()
        .unwrap()
        .remove("personalizations");
    let (status, body) = status_and_body(
        http.post(&url)
            .bearer_auth(SENDGRID_KEY)
            .json(&without_personalizations),
    )
    .await;
    assert_eq!(
        status, 400,
        "a body without personalizations must be refused: {body}"
    );

    let mut null_name = good.clone();
    null_name["personalizations"][0]["to"][0]["name"] = serde_json::Value::Null;
    let (status, body) =
        status_and_body(http.post(&url).bearer_auth(SENDGRID_KEY).json(&null_name)).await;
    assert_eq!(status, 400, "\"name\": null must be refused: {body}");

    let (status, body) = status_and_body(http.post(&url).json(&good)).await;
    assert_eq!(
        status, 401,
        "a request without the API key must be refused: {body}"
    );

    let (status, body) = status_and_body(
        http.post(&url)
            .basic_auth("apikey", Some(SENDGRID_KEY))
            .json(&good),
    )
    .await;
    assert_eq!(
        status, 401,
        "Basic instead of Bearer must be refused: {body}"
    );

    let (status, body) = status_and_body(
        http.post(&url)
            .bearer_auth(SENDGRID_KEY)
            .form(&[("to", "ada@example.com"), ("subject", "s")]),
    )
    .await;
    assert_eq!(
        status, 400,
        "a form body instead of JSON must be refused: {body}"
    );
}
