//! Local HTTP servers that speak the Twilio, SendGrid and Mailgun APIs.
//!
//! Each fake binds `127.0.0.1:0`, validates requests the way the provider does (method, path,
//! credentials, content type, required fields) and answers with provider-shaped bodies, so the
//! daemon's clients can be tested, and benchmarked, without a network or an account.
//!
//! - [`FakeTwilio`]: `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`.
//! - [`FakeSendGrid`]: `POST /v3/mail/send`.
//! - [`FakeMailgun`]: `POST /v3/{domain}/messages`.
//!
//! Every request is recorded as a [`Received`], also the ones that fail validation, with the
//! status that was answered. [`Reply`] scripts let a test make the next requests fail (503, 429,
//! a Twilio error code) or answer slowly; after the script runs out the fakes go back to
//! validating and accepting.
//!
//! The fakes are deliberately forgiving where the provider is (Mailgun also takes
//! `application/x-www-form-urlencoded`; Twilio ignores bodies that are not form-encoded, which
//! then fail as "To is required").

/// The methods every fake has, delegating to its `server` field.
macro_rules! common_methods {
    () => {
        /// `http://127.0.0.1:PORT`, to use as the client's base URL.
        pub fn base_url(&self) -> String {
            self.server.base_url()
        }

        /// The bound address.
        pub fn addr(&self) -> std::net::SocketAddr {
            self.server.addr()
        }

        /// Every request so far (also the rejected ones), in arrival order.
        pub fn requests(&self) -> Vec<$crate::Received> {
            self.server.requests()
        }

        /// Queue replies for the next requests, one each, whatever those requests are;
        /// afterwards requests are validated and accepted normally again.
        pub fn script(&self, replies: Vec<$crate::Reply>) {
            self.server.script(replies)
        }

        /// Delay every answer by `d` (on top of any scripted [`Reply::Slow`]).
        pub fn set_delay(&self, d: std::time::Duration) {
            self.server.set_delay(d)
        }

        /// Turn request recording off (long benchmark runs) or back on.
        pub fn set_recording(&self, on: bool) {
            self.server.set_recording(on)
        }

        /// Drop the scripted replies not used yet (back to accepting).
        pub fn clear_script(&self) {
            self.server.clear_script()
        }

        /// Forget the requests recorded so far.
        pub fn clear(&self) {
            self.server.clear()
        }

        /// Wait until at least `n` requests were answered or `timeout` passed; returns the
        /// requests recorded by then (possibly fewer than `n`).
        pub async fn wait_for(
            &self,
            n: usize,
            timeout: std::time::Duration,
        ) -> Vec<$crate::Received> {
            self.server.wait_for(n, timeout).await
        }
    };
}

mod mailgun;
mod sendgrid;
mod server;
mod twilio;

use std::time::{Duration, Instant};

pub use mailgun::FakeMailgun;
pub use sendgrid::FakeSendGrid;
pub use twilio::FakeTwilio;

/// One request as a fake saw it, and what it answered.
#[derive(Debug, Clone)]
pub struct Received {
    /// HTTP method (`POST`).
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// Headers in arrival order; names are lower case.
    pub headers: Vec<(String, String)>,
    /// Fields of an `application/x-www-form-urlencoded` or `multipart/form-data` body, in order.
    pub form: Vec<(String, String)>,
    /// The body, when it was `application/json` and parsed.
    pub json: Option<serde_json::Value>,
    /// When the request arrived (before any scripted or configured delay).
    pub at: Instant,
    /// The status the fake answered.
    pub status: u16,
}

impl Received {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first form field with this name.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeated form field.
    pub fn fields(&self, name: &str) -> Vec<&str> {
        self.form
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// A scripted answer for one upcoming request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Answer this HTTP status with the provider's error body (e.g. 503, 500, 401).
    Status(u16),
    /// 429 with `Retry-After` (Twilio, Mailgun) or `X-RateLimit-Reset` (SendGrid, which
    /// documents only the `X-RateLimit-*` headers).
    TooManyRequests {
        /// Seconds until the client may try again.
        retry_after_secs: u64,
    },
    /// A Twilio error body with this HTTP status and Twilio code (e.g. 400 / 21610). The other
    /// fakes answer it like [`Reply::Status`].
    TwilioError {
        /// HTTP status.
        status: u16,
        /// Twilio error code.
        code: u32,
    },
    /// Wait this long, then handle the request normally (validation, then success).
    Slow(Duration),
}
