//! Starts the real `loyaltyd` binary on a free loopback port with a temporary data
//! directory, and talks HTTP to it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const ADMIN_TOKEN: &str = "test-admin-token";
pub const SHOPIFY_SECRET: &str = "test-shopify-secret";

/// A config directory: loyaltyd.toml + rules.toml + data dir.
pub struct Setup {
    pub dir: tempfile::TempDir,
}

pub const SQUARE_KEY: &str = "test-square-signature-key";
pub const SQUARE_URL: &str = "https://loyalty.example.com/webhooks/demo/square";
pub const SQUARE_TOKEN: &str = "test-square-access-token";

impl Setup {
    /// A setup whose demo shop also takes Square webhooks, with the Orders API at
    /// `orders_base_url`.
    pub fn with_square(orders_base_url: &str) -> Setup {
        let setup = Setup::new(1024 * 1024);
        let path = setup.config_path();
        let text = std::fs::read_to_string(&path).unwrap().replace(
            "[[shops]]\nid = \"other\"",
            &format!(
                "[shops.square]\nsignature_key = \"{SQUARE_KEY}\"\nnotification_url = \"{SQUARE_URL}\"\n\
                 access_token = \"{SQUARE_TOKEN}\"\norders_base_url = \"{orders_base_url}\"\n\
                 orders_retries = 0\norders_timeout_ms = 1000\n\n[[shops]]\nid = \"other\""
            ),
        );
        std::fs::write(&path, text).unwrap();
        setup
    }

    pub fn new(max_body_bytes: usize) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("rules.toml"),
            "[earn]\npoints_per_unit = \"1\"\nrounding = \"floor\"\n\n[points]\nexpiry = \"fixed\"\nexpiry_days = 365\n\n[[rewards]]\nid = \"free-coffee\"\nname = \"Free coffee\"\npoints = 5\n",
        )
        .unwrap();
        let config = format!(
            r#"[server]
listen = "127.0.0.1:0"
admin_token = "{ADMIN_TOKEN}"
max_body_bytes = {max_body_bytes}

[storage]
path = "{data}"

[[shops]]
id = "demo"
currency = "USD"
timezone = "America/New_York"
country = "US"
rules = "rules.toml"

[shops.shopify]
webhook_secret = "{SHOPIFY_SECRET}"

[shops.woocommerce]
webhook_secret = "demo-woocommerce-secret"

[[shops]]
id = "other"
currency = "EUR"
rules = "rules.toml"
"#,
            data = dir.path().join("data").display()
        );
        std::fs::write(dir.path().join("loyaltyd.toml"), config).unwrap();
        Setup { dir }
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("loyaltyd.toml")
    }

    pub fn start(&self) -> Daemon {
        Daemon::start(&self.config_path())
    }

    /// Put `tables` (e.g. a `[notify]` section) into the config, before the shops.
    pub fn add_config(&self, tables: &str) {
        let path = self.config_path();
        let text = std::fs::read_to_string(&path).unwrap().replacen(
            "[[shops]]\nid = \"demo\"",
            &format!("{tables}\n\n[[shops]]\nid = \"demo\""),
            1,
        );
        std::fs::write(&path, text).unwrap();
    }

    /// A rules file with only the base rate (1 point per unit, no rewards): one
    /// message per sale.
    pub fn base_rules_only(&self) {
        std::fs::write(
            self.dir.path().join("rules.toml"),
            "[earn]\npoints_per_unit = \"1\"\n",
        )
        .unwrap();
    }
}

/// A running daemon; SIGKILLed on drop if still running.
pub struct Daemon {
    child: Child,
    pub base: String,
    stdout: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    pub fn start(config: &Path) -> Daemon {
        Daemon::spawn(config, Stdio::inherit()).0
    }

    /// Start `loyaltyd serve` and wait for its address; returns its stderr when piped.
    fn spawn(config: &Path, stderr: Stdio) -> (Daemon, Option<std::process::ChildStderr>) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_loyaltyd"))
            .args(["serve", "--config"])
            .arg(config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start loyaltyd");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("loyaltyd listening on ") {
                    let _ = tx.send(addr.to_string());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("loyaltyd did not print its address");
        let daemon = Daemon {
            child,
            base,
            stdout: lines,
        };
        (daemon, stderr)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Send a signal (e.g. `libc::SIGHUP`).
    pub fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Lines printed on stdout so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// Wait until a stdout line satisfies `pred`.
    pub fn wait_for_line(&self, pred: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(l) = self.stdout_lines().into_iter().find(|l| pred(l)) {
                return Some(l);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Send SIGTERM and wait for the exit status.
    pub fn terminate(mut self) -> ExitStatus {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "loyaltyd did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn shopify_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("integrations/shopify/fixtures")
            .join(name),
    )
    .unwrap()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// POST a Shopify webhook signed with `secret`.
pub async fn post_shopify(
    d: &Daemon,
    shop: &str,
    topic: &str,
    webhook_id: &str,
    body: &[u8],
    secret: &str,
) -> (u16, serde_json::Value) {
    let resp = client()
        .post(d.url(&format!("/webhooks/{shop}/shopify")))
        .header("X-Shopify-Topic", topic)
        .header("X-Shopify-Webhook-Id", webhook_id)
        .header("X-Shopify-Hmac-Sha256", shopify_signature(secret, body))
        .header("Content-Type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(serde_json::Value::Null))
}

/// POST a Square webhook signed over notification URL + body.
pub async fn post_square(d: &Daemon, body: &str) -> (u16, serde_json::Value) {
    let mut mac = Hmac::<Sha256>::new_from_slice(SQUARE_KEY.as_bytes()).unwrap();
    mac.update(SQUARE_URL.as_bytes());
    mac.update(body.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let resp = client()
        .post(d.url("/webhooks/demo/square"))
        .header("x-square-hmacsha256-signature", sig)
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(serde_json::Value::Null))
}

/// Run the `loyaltyd` binary with arguments; returns (success, stdout, stderr).
pub fn run_cli(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_loyaltyd"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The POS fixture order (ada@example.com, 11 points) under another order id.
pub fn order(id: u64) -> Vec<u8> {
    String::from_utf8(fixture("orders-paid-pos.json"))
        .unwrap()
        .replace("5812403339301", &id.to_string())
        .into_bytes()
}

/// `loyaltyd jobs run --config CONFIG --at AT`.
pub fn jobs_at(config: &str, at: &str) -> (bool, String, String) {
    run_cli(&["jobs", "run", "--config", config, "--at", at])
}

/// POST JSON to an admin endpoint with the test token and an optional Idempotency-Key.
pub async fn admin_post(
    d: &Daemon,
    path: &str,
    key: Option<&str>,
    body: &str,
) -> (u16, serde_json::Value, bool) {
    let mut req = client()
        .post(d.url(path))
        .bearer_auth(ADMIN_TOKEN)
        .header("Content-Type", "application/json")
        .body(body.to_string());
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let replayed = resp.headers().get("idempotent-replayed").is_some();
    (
        status,
        resp.json().await.unwrap_or(serde_json::Value::Null),
        replayed,
    )
}

/// PUT JSON to an admin endpoint with the test token.
pub async fn admin_put(
    d: &Daemon,
    path: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let resp = client()
        .put(d.url(path))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(serde_json::Value::Null))
}

/// GET an admin endpoint with the test token.
pub async fn admin_get(d: &Daemon, path: &str) -> (u16, serde_json::Value) {
    let resp = client()
        .get(d.url(path))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(serde_json::Value::Null))
}

/// Daemon stderr lines, collected as they are printed.
pub type Logs = Arc<Mutex<Vec<String>>>;

impl Daemon {
    /// Like [`Daemon::start`], with `RUST_LOG=warn` and stderr collected instead of
    /// inherited.
    pub fn start_with_logs(config: &Path) -> (Daemon, Logs) {
        let (daemon, stderr) = Daemon::spawn(config, Stdio::piped());
        let stderr = stderr.expect("stderr is piped");
        let logs: Logs = Arc::new(Mutex::new(Vec::new()));
        let log_sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{line}");
                log_sink.lock().unwrap().push(line);
            }
        });
        (daemon, logs)
    }

    /// Wait for the daemon to exit by itself (at most 30 s, then the test fails).
    pub fn wait_exit(mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "loyaltyd did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Set the running daemon's file size limit (`RLIMIT_FSIZE`, soft; `None`: no
    /// limit). A write past it fails with EFBIG.
    #[cfg(target_os = "linux")]
    pub fn limit_file_size(&self, bytes: Option<u64>) {
        let mut old = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        let rc = unsafe {
            libc::prlimit(
                self.child.id() as i32,
                libc::RLIMIT_FSIZE,
                std::ptr::null(),
                &mut old,
            )
        };
        assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
        let new = libc::rlimit {
            rlim_cur: bytes.unwrap_or(old.rlim_max),
            rlim_max: old.rlim_max,
        };
        let rc = unsafe {
            libc::prlimit(
                self.child.id() as i32,
                libc::RLIMIT_FSIZE,
                &new,
                std::ptr::null_mut(),
            )
        };
        assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
    }
}

impl Daemon {
    /// The daemon's process id, to sample `/proc/<pid>/…`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// Resident set size of a process in KiB (`VmRSS` in `/proc/<pid>/status`); `None` once it
/// exited or where there is no `/proc`.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `GET /metrics` as text.
pub async fn metrics_text(d: &Daemon) -> String {
    client()
        .get(d.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of one series in Prometheus text, named with its labels exactly as exposed,
/// e.g. `loyaltyd_outbox_depth` or
/// `loyaltyd_notifications_total{channel="sms",provider="twilio",outcome="sent"}`.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}
