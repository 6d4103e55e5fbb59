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
//! A [`Mode`] changes how every request is answered until it is changed again (a 5xx
//! storm, 429s with `Retry-After`, requests that hang past the client's timeout, connections
//! dropped without an answer), so one test can run an outage and then the recovery. It is set
//! with [`FakeTwilio::set_mode`] (and the same on the other fakes) or over HTTP on the fake
//! itself, which is how scripts drive the `fakeproviders` binary:
//!
//! - `POST /__mode` with a JSON [`Mode`], e.g. `{"mode":"status","status":503}`,
//!   `{"mode":"too_many_requests","retry_after_secs":1}`, `{"mode":"hang","hang_ms":30000}`,
//!   `{"mode":"reset"}` or `{"mode":"ok"}`; answers the mode now in force.
//! - `GET /__mode`: the mode in force.
//! - `GET /__stats`: [`Stats`], counted even when recording is off: requests by status,
//!   accepted requests, distinct recipients accepted and the repeats among them.
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

        /// Forget the requests recorded so far, and the counts of [`Self::stats`].
        pub fn clear(&self) {
            self.server.clear()
        }

        /// Answer every request this way from now on (scripted replies still come first).
        pub fn set_mode(&self, mode: $crate::Mode) {
            self.server.set_mode(mode)
        }

        /// The mode in force.
        pub fn mode(&self) -> $crate::Mode {
            self.server.mode()
        }

        /// Counts since the start (or the last [`Self::clear`]).
        pub fn stats(&self) -> $crate::Stats {
            self.server.stats()
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
    /// The status the fake answered (0: it closed the connection instead, [`Mode::Reset`]).
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

/// How a fake answers every request until told otherwise. Scripted [`Reply`]s still come
/// first; a configured delay still applies.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Mode {
    /// Validate and accept, as the provider does.
    #[default]
    Ok,
    /// Answer this status with the provider's error body: a 5xx storm.
    Status {
        /// HTTP status (500, 503, ...).
        status: u16,
    },
    /// 429 with `Retry-After` (SendGrid: `X-RateLimit-Reset`), as [`Reply::TooManyRequests`].
    TooManyRequests {
        /// Seconds until the client may try again.
        retry_after_secs: u64,
    },
    /// Hold each request this long, then answer 503: set it longer than the client's timeout
    /// and the client sees a timeout. The message is never accepted, so a test can still
    /// expect each message exactly once (a provider that accepts after the client gave up
    /// is [`Reply::Slow`]).
    Hang {
        /// Milliseconds to hold the request.
        hang_ms: u64,
    },
    /// Close the connection without answering (recorded with status 0).
    Reset,
}

/// Counts a fake keeps even when recording is off.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    /// Requests to the provider's API (not to `/__mode` or `/__stats`).
    pub requests: u64,
    /// Requests by the status answered (0: connection closed without an answer).
    pub by_status: std::collections::BTreeMap<u16, u64>,
    /// Requests accepted (2xx).
    pub accepted: u64,
    /// Distinct recipients among the accepted requests (Twilio `To`, the first e-mail
    /// recipient).
    pub recipients: u64,
    /// Accepted requests beyond the first for their recipient.
    pub repeats: u64,
    /// Reads (`GET`, e.g. Twilio's message list), counted in `requests` and `by_status`
    /// but never as accepted.
    #[serde(default)]
    pub lookups: u64,
}
