//! Shopify webhooks → loyaltyd canonical events.
//!
//! # Verification
//! - Signature: `X-Shopify-Hmac-Sha256` = base64 HMAC-SHA256 of the raw body under the
//!   app's client secret (or the store's notification key for hand-made webhooks).
//!   Several secrets may be configured so a rotation drops nothing (Shopify may keep
//!   signing with the old secret for up to an hour after a rotation).
//! - Replay protection: after the signature check, a delivery whose
//!   `X-Shopify-Triggered-At` lies more than [`ShopifySettings::replay_tolerance`] before
//!   [`RawRequest::received_at`] is rejected as [`VerifyError::Stale`]. The default is
//!   [`DEFAULT_REPLAY_TOLERANCE_HOURS`] = 6 hours because Shopify retries a failed
//!   delivery 8 times over **4 hours**, and every retry carries the original
//!   `Triggered-At`: a tolerance at or under 4 hours would turn Shopify's own last retries
//!   (after a loyaltyd outage, say) into lost events, and the 2 extra hours absorb
//!   Shopify's queueing delays and clock skew. A delivery without the header (older API
//!   versions) is accepted, and so is an unreadable one (as if absent) or one from the
//!   future (clock skew). Shopify does not sign its headers, so this stops a captured
//!   delivery replayed as it was, not one whose header was rewritten; what guarantees
//!   that nothing earns twice is the daemon's dedupe on the event id and on order,
//!   refund and cancellation ids.
//!
//! # Parsing
//! - Dedupe key ([`EventEnvelope::event_id`]): `X-Shopify-Webhook-Id` (Shopify's
//!   delivery idempotency key).
//! - The unprefixed `shopify-*` header names of Shopify's newer Events deliveries are
//!   accepted next to the `X-Shopify-*` ones.
//! - Topics used (every other topic is answered as ignored until the program uses it):
//!   - `orders/paid` or `orders/create`, whichever [`ShopifySettings::earn_on`] names
//!     (default [`EarnOn::Paid`]) → [`PosEvent::Sale`]; `occurred_at` = `processed_at`,
//!     else `created_at`. The other of the two is ignored ("earning happens on
//!     orders/paid"), so one order can never earn on both (the daemon also scores a sale
//!     at most once per order id).
//!   - `orders/cancelled` → [`PosEvent::Cancel`] with `cancel_reason`; `occurred_at` =
//!     `cancelled_at`. Only the order id, `cancelled_at` and `cancel_reason` are read.
//!   - `refunds/create` → [`PosEvent::Refund`]; `occurred_at` = `processed_at`, else
//!     `created_at`. Lines come from `refund_line_items[]` (money from the `*_set.shop_money`
//!     strings; the bare numeric `subtotal`/`total_tax` only as a fallback, read exactly);
//!     the amount is the sum of transactions with `kind` `refund` and `status` `success`,
//!     `None` when no money moved. An amount-only refund gives a refund with no lines; a
//!     refund with neither lines nor money moved is ignored. `refund_shipping_lines`,
//!     `order_adjustments` and `duties` are not mapped; money refunded for them shows
//!     only in the amount.
//!   - `customers/create` and `customers/update` → [`PosEvent::CustomerUpsert`]: ids,
//!     email, phone and names; marketing consent from `email_marketing_consent.state` /
//!     `sms_marketing_consent.state` (`subscribed` → yes, `unsubscribed` /
//!     `not_subscribed` → no, absent — as in every API version since 2025-01 — or any
//!     other state → unknown); a birthday only from a `birthday` field or a
//!     birthday metafield holding a plain `YYYY-MM-DD` (Shopify has no standard
//!     birthday; the free-text `note` is never parsed). `occurred_at` = `created_at` for
//!     `customers/create`, `updated_at` for `customers/update`.
//!
//!   When the payload has no time, the `X-Shopify-Triggered-At` header is used.
//!
//! # Choosing the earn trigger
//! [`EarnOn::Paid`] (the default) scores an order once money has been taken, so pending
//! payment methods (bank transfer, cash on delivery) earn only when paid.
//! [`EarnOn::Create`] scores every order as soon as it exists, paid or not — for shops
//! whose orders are all paid at checkout and that want points to show at once; an order
//! that is never paid must then be cancelled to take its points back.
//!
//! # Example
//! ```
//! use loyaltyd_adapter::{Adapter, Parsed, RawRequest, Secret, ShopId, VerifyError, signature};
//! use loyaltyd_shopify::{EarnOn, ShopifyAdapter, ShopifySettings};
//!
//! let adapter = ShopifyAdapter::with_settings(ShopifySettings {
//!     secrets: vec![Secret::new("hush")],
//!     earn_on: EarnOn::Create,
//!     ..ShopifySettings::default()
//! });
//! let body = br#"{"id": 1}"#;
//! let sig = signature::base64_encode(&signature::hmac_sha256(b"hush", &[body]));
//! let mut headers = http::HeaderMap::new();
//! headers.insert("x-shopify-hmac-sha256", sig.parse().unwrap());
//! headers.insert("x-shopify-topic", "orders/paid".parse().unwrap());
//! headers.insert("x-shopify-webhook-id", "wh-1".parse().unwrap());
//! headers.insert("x-shopify-triggered-at", "2026-11-20T15:14:05Z".parse().unwrap());
//! let received_at = "2026-11-20T15:14:07Z".parse().unwrap();
//! let mut req = RawRequest { shop: ShopId::new("demo").unwrap(), headers, body: body.to_vec().into(),
//!     received_at };
//! adapter.verify(&req).unwrap();
//! // Earning happens on orders/create here, so orders/paid is ignored.
//! assert!(matches!(adapter.parse(&req).unwrap(), Parsed::Ignored { .. }));
//!
//! // The same delivery replayed three days later is stale.
//! req.received_at = "2026-11-23T15:14:07Z".parse().unwrap();
//! assert!(matches!(adapter.verify(&req), Err(VerifyError::Stale(_))));
//! ```

mod cancel;
mod customer;
mod order;
mod refund;

use chrono::{DateTime, Duration, Utc};
use loyaltyd_adapter::{
    signature, Adapter, EventEnvelope, ParseError, Parsed, PosEvent, RawRequest, Secret,
    VerifyError,
};
use serde::{Deserialize, Serialize};

/// The adapter's name in URLs: `/webhooks/{shop}/shopify`.
pub const NAME: &str = "shopify";

/// The default [`ShopifySettings::replay_tolerance`], in hours: longer than Shopify's
/// 4-hour retry window (see the crate docs).
pub const DEFAULT_REPLAY_TOLERANCE_HOURS: i64 = 6;

const HMAC_HEADERS: [&str; 2] = ["x-shopify-hmac-sha256", "shopify-hmac-sha256"];
const TOPIC_HEADERS: [&str; 2] = ["x-shopify-topic", "shopify-topic"];
const WEBHOOK_ID_HEADERS: [&str; 2] = ["x-shopify-webhook-id", "shopify-webhook-id"];
const TRIGGERED_AT_HEADERS: [&str; 2] = ["x-shopify-triggered-at", "shopify-triggered-at"];

/// Which order topic makes an order earn.
///
/// Deserialises from `"paid"` / `"create"` (or the topic names `"orders/paid"` /
/// `"orders/create"`).
///
/// ```
/// use loyaltyd_shopify::EarnOn;
/// assert_eq!(EarnOn::default(), EarnOn::Paid);
/// assert_eq!(EarnOn::Create.topic(), "orders/create");
/// let e: EarnOn = serde_json::from_str("\"orders/create\"").unwrap();
/// assert_eq!(e, EarnOn::Create);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EarnOn {
    /// `orders/paid`: when payment has been taken (the default).
    #[default]
    #[serde(alias = "orders/paid")]
    Paid,
    /// `orders/create`: as soon as the order exists, paid or not.
    #[serde(alias = "orders/create")]
    Create,
}

impl EarnOn {
    /// The Shopify topic that earns.
    pub fn topic(self) -> &'static str {
        match self {
            EarnOn::Paid => "orders/paid",
            EarnOn::Create => "orders/create",
        }
    }
}

/// How one shop's Shopify adapter behaves.
///
/// ```
/// use loyaltyd_shopify::{EarnOn, ShopifySettings};
/// let s = ShopifySettings::default();
/// assert!(s.secrets.is_empty());
/// assert_eq!(s.earn_on, EarnOn::Paid);
/// assert_eq!(s.replay_tolerance, chrono::Duration::hours(6));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShopifySettings {
    /// Secrets a delivery may be signed with (any one verifies; empty ones never do).
    pub secrets: Vec<Secret>,
    /// Which topic earns; the other is ignored.
    pub earn_on: EarnOn,
    /// How long after `X-Shopify-Triggered-At` a delivery is still accepted; default
    /// [`DEFAULT_REPLAY_TOLERANCE_HOURS`] (see the crate docs for why).
    pub replay_tolerance: Duration,
}

impl Default for ShopifySettings {
    fn default() -> Self {
        ShopifySettings {
            secrets: Vec::new(),
            earn_on: EarnOn::default(),
            replay_tolerance: Duration::hours(DEFAULT_REPLAY_TOLERANCE_HOURS),
        }
    }
}

/// Verifies and parses one shop's Shopify webhooks.
#[derive(Debug, Clone)]
pub struct ShopifyAdapter {
    settings: ShopifySettings,
}

impl ShopifyAdapter {
    /// An adapter accepting signatures made with any of `secrets`, with default settings
    /// (earn on `orders/paid`, 6-hour replay tolerance). Same as
    /// [`ShopifyAdapter::with_secrets`].
    pub fn new(secrets: Vec<Secret>) -> Self {
        Self::with_secrets(secrets)
    }

    /// An adapter accepting signatures made with any of `secrets`, with default settings.
    pub fn with_secrets(secrets: Vec<Secret>) -> Self {
        Self::with_settings(ShopifySettings {
            secrets,
            ..ShopifySettings::default()
        })
    }

    /// An adapter with the given settings.
    pub fn with_settings(settings: ShopifySettings) -> Self {
        ShopifyAdapter { settings }
    }

    /// The adapter's settings.
    pub fn settings(&self) -> &ShopifySettings {
        &self.settings
    }
}

impl Adapter for ShopifyAdapter {
    fn name(&self) -> &'static str {
        NAME
    }

    fn verify(&self, req: &RawRequest) -> Result<(), VerifyError> {
        let sig = req
            .first_header(&HMAC_HEADERS)
            .ok_or(VerifyError::MissingHeader("X-Shopify-Hmac-Sha256"))?;
        signature::verify_hmac_sha256_base64(&self.settings.secrets, &[&req.body], sig)?;
        if let Some(triggered_at) = triggered_at(req) {
            let age = req.received_at - triggered_at;
            if age > self.settings.replay_tolerance {
                return Err(VerifyError::Stale(format!(
                    "X-Shopify-Triggered-At {} is {} before it was received, more than the {} replay tolerance",
                    triggered_at.to_rfc3339(),
                    hours_minutes(age),
                    hours_minutes(self.settings.replay_tolerance),
                )));
            }
        }
        Ok(())
    }

    fn parse(&self, req: &RawRequest) -> Result<Parsed, ParseError> {
        let topic = req
            .first_header(&TOPIC_HEADERS)
            .ok_or(ParseError::MissingHeader("X-Shopify-Topic"))?;
        let webhook_id = req
            .first_header(&WEBHOOK_ID_HEADERS)
            .filter(|id| !id.trim().is_empty())
            .ok_or(ParseError::MissingHeader("X-Shopify-Webhook-Id"))?;
        let triggered_at = triggered_at(req);

        match topic {
            "orders/paid" | "orders/create" if topic != self.settings.earn_on.topic() => {
                require_json(req)?;
                Ok(Parsed::ignored(
                    webhook_id,
                    topic,
                    format!("earning happens on {}", self.settings.earn_on.topic()),
                ))
            }
            "orders/paid" | "orders/create" => {
                let order = order::Order::from_json(&req.body)?;
                let occurred_at = order
                    .sold_at()
                    .or(triggered_at)
                    .ok_or_else(|| no_time("processed_at", "sale"))?;
                Ok(event(
                    req,
                    webhook_id,
                    occurred_at,
                    PosEvent::Sale(order.into_sale()?),
                ))
            }
            "orders/cancelled" => {
                let order = cancel::CancelledOrder::from_json(&req.body)?;
                let occurred_at = order
                    .cancelled_at()
                    .or(triggered_at)
                    .ok_or_else(|| no_time("cancelled_at", "cancellation"))?;
                Ok(event(
                    req,
                    webhook_id,
                    occurred_at,
                    PosEvent::Cancel(order.into_cancel()),
                ))
            }
            "refunds/create" => {
                let refund = refund::ShopifyRefund::from_json(&req.body)?;
                let occurred_at = refund
                    .occurred_at()
                    .or(triggered_at)
                    .ok_or_else(|| no_time("processed_at", "refund"))?;
                match refund.into_refund()? {
                    refund::Outcome::Refund(r) => {
                        Ok(event(req, webhook_id, occurred_at, PosEvent::Refund(r)))
                    }
                    refund::Outcome::Nothing => Ok(Parsed::ignored(
                        webhook_id,
                        topic,
                        "refund returned no lines and moved no money",
                    )),
                }
            }
            "customers/create" | "customers/update" => {
                let customer = customer::ShopifyCustomer::from_json(&req.body)?;
                let (first, second, field) = if topic == "customers/create" {
                    (customer.created_at(), customer.updated_at(), "created_at")
                } else {
                    (customer.updated_at(), customer.created_at(), "updated_at")
                };
                let occurred_at = first
                    .or(second)
                    .or(triggered_at)
                    .ok_or_else(|| no_time(field, "customer"))?;
                Ok(event(
                    req,
                    webhook_id,
                    occurred_at,
                    PosEvent::CustomerUpsert(customer.into_upsert()),
                ))
            }
            other => {
                require_json(req)?;
                Ok(Parsed::ignored(
                    webhook_id,
                    other,
                    "topic not used by the loyalty program",
                ))
            }
        }
    }
}

/// A verified but garbled request is a sender bug worth surfacing as 400, whatever its
/// topic, so even an ignored delivery must be JSON.
fn require_json(req: &RawRequest) -> Result<(), ParseError> {
    serde_json::from_slice::<serde::de::IgnoredAny>(&req.body)
        .map(|_| ())
        .map_err(|e| ParseError::Malformed(e.to_string()))
}

/// `X-Shopify-Triggered-At`, if present and RFC 3339.
fn triggered_at(req: &RawRequest) -> Option<DateTime<Utc>> {
    req.first_header(&TRIGGERED_AT_HEADERS)
        .and_then(|t| DateTime::parse_from_rfc3339(t.trim()).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn hours_minutes(d: Duration) -> String {
    let minutes = d.num_minutes();
    format!("{}h{:02}m", minutes / 60, (minutes % 60).abs())
}

fn event(
    req: &RawRequest,
    webhook_id: &str,
    occurred_at: DateTime<Utc>,
    event: PosEvent,
) -> Parsed {
    Parsed::Event(Box::new(EventEnvelope {
        shop: req.shop.clone(),
        adapter: NAME.to_string(),
        event_id: webhook_id.to_string(),
        occurred_at,
        event,
    }))
}

fn no_time(field: &str, what: &str) -> ParseError {
    ParseError::InvalidField {
        field: field.into(),
        message: format!("no {what} time in the payload or the X-Shopify-Triggered-At header"),
    }
}
