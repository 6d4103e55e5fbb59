//! The [`Adapter`] trait and what flows through it.

use bytes::Bytes;
use http::HeaderMap;

use crate::event::{EventEnvelope, ShopId};

/// A webhook request exactly as it arrived: the raw body bytes are what the sender
/// signed, so nothing may parse or re-serialise them before [`Adapter::verify`].
#[derive(Debug, Clone)]
pub struct RawRequest {
    /// The shop the request was addressed to (from the URL path).
    pub shop: ShopId,
    /// Request headers; look-ups are case-insensitive.
    pub headers: HeaderMap,
    /// The body, byte for byte.
    pub body: Bytes,
    /// When loyaltyd received it (adapters compare it with the sender's timestamp for
    /// replay protection; they never read the clock themselves).
    pub received_at: chrono::DateTime<chrono::Utc>,
}

impl RawRequest {
    /// The value of a header as text, if present and valid visible ASCII.
    ///
    /// ```
    /// use loyaltyd_adapter::{RawRequest, ShopId};
    /// let mut headers = http::HeaderMap::new();
    /// headers.insert("X-Shopify-Topic", "orders/paid".parse().unwrap());
    /// let req = RawRequest { shop: ShopId::new("demo").unwrap(), headers, body: Default::default(),
    ///     received_at: chrono::Utc::now() };
    /// assert_eq!(req.header("x-shopify-topic"), Some("orders/paid"));
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The first of several header names that is present (for senders that are renaming
    /// their headers, e.g. Shopify's `X-Shopify-*` and unprefixed `shopify-*`).
    pub fn first_header(&self, names: &[&str]) -> Option<&str> {
        names.iter().find_map(|n| self.header(n))
    }
}

/// What an adapter made of a verified request.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// An event the loyalty program acts on.
    Event(Box<EventEnvelope>),
    /// A well-formed event the program does not use; it is recorded (so that a
    /// retry is recognised) and answered 200.
    Ignored {
        /// The sender's delivery id, used as the dedupe key.
        event_id: String,
        /// The sender's name for the event (topic / type).
        kind: String,
        /// Why it is ignored, for the operator.
        reason: String,
    },
}

impl Parsed {
    /// Shorthand for [`Parsed::Ignored`].
    ///
    /// ```
    /// use loyaltyd_adapter::Parsed;
    /// let p = Parsed::ignored("d-1", "orders/updated", "not used");
    /// assert!(matches!(p, Parsed::Ignored { .. }));
    /// ```
    pub fn ignored(
        event_id: impl Into<String>,
        kind: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Parsed::Ignored {
            event_id: event_id.into(),
            kind: kind.into(),
            reason: reason.into(),
        }
    }
}

/// Why a signature check failed. Every variant answers 401 and stores nothing.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    /// The signature header is absent.
    #[error("missing signature header {0}")]
    MissingHeader(&'static str),
    /// The header is present but not a well-formed signature (e.g. not base64).
    #[error("malformed signature header: {0}")]
    Malformed(&'static str),
    /// The signature does not match the body under any configured secret.
    #[error("signature does not match")]
    Mismatch,
    /// Correctly signed, but older than the replay tolerance allows.
    #[error("event is too old: {0}")]
    Stale(String),
}

/// Why a verified request could not be turned into an event. Answers 400.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    /// A header the adapter needs is absent.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// The body is not the JSON the sender documents.
    #[error("malformed body: {0}")]
    Malformed(String),
    /// A field has a value that cannot be right (negative quantity, bad money, ...).
    #[error("invalid field {field}: {message}")]
    InvalidField {
        /// Dotted path of the field in the sender's payload.
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

/// Why an event could not be completed from the sender's API (see [`Adapter::enrich`]).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnrichError {
    /// Worth trying again later (timeout, connection refused, 429, 5xx). The daemon
    /// keeps the event durably and retries with backoff; it is never scored without
    /// the data it lacks.
    #[error("temporarily unavailable: {0}")]
    Retryable(String),
    /// Will not succeed (401/403/404 from the sender's API, malformed answer). The
    /// event is recorded as rejected with this reason.
    #[error("cannot complete the event: {0}")]
    Permanent(String),
}

/// The future returned by [`Adapter::enrich`].
pub type EnrichFuture<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<EventEnvelope, EnrichError>> + Send + 'a>,
>;

/// One point-of-sale system's webhook dialect.
///
/// An adapter instance is built per shop with that shop's secrets, so `verify` needs
/// no other input. `verify` is always called, and must succeed, before `parse`.
/// See the crate documentation for a complete example.
pub trait Adapter: Send + Sync {
    /// Lower-case name used in the URL `/webhooks/{shop}/{name}`.
    fn name(&self) -> &'static str;

    /// Check the request's signature over the raw body, in constant time.
    fn verify(&self, request: &RawRequest) -> Result<(), VerifyError>;

    /// Map a verified request to a canonical event, or say why it is ignored.
    fn parse(&self, request: &RawRequest) -> Result<Parsed, ParseError>;

    /// Whether `event` must be completed from the sender's API before it can be scored
    /// (e.g. a Square payment whose line items live in the Orders API). Pure: no I/O.
    fn needs_enrichment(&self, _event: &EventEnvelope) -> bool {
        false
    }

    /// Complete an event from the sender's API (called only when
    /// [`Adapter::needs_enrichment`] says so, possibly again later after a
    /// [`EnrichError::Retryable`]). The default returns the event unchanged.
    fn enrich(&self, event: EventEnvelope) -> EnrichFuture<'_> {
        Box::pin(async move { Ok(event) })
    }
}
