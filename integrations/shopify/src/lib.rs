//! Shopify webhooks → loyaltyd canonical events.
//!
//! - Signature: `X-Shopify-Hmac-Sha256` = base64 HMAC-SHA256 of the raw body under the
//!   app's client secret (or the store's notification key for hand-made webhooks).
//!   Several secrets may be configured so a rotation drops nothing.
//! - Dedupe key: `X-Shopify-Webhook-Id` (Shopify's delivery idempotency key).
//! - Topics used (every other topic is answered as ignored until the program uses it):
//!   - `orders/paid` → [`PosEvent::Sale`]; `occurred_at` = `processed_at`.
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
//!
//!   When the payload has no time, the `X-Shopify-Triggered-At` header is used.
//!
//! ```
//! use loyaltyd_adapter::{Adapter, Parsed, RawRequest, Secret, ShopId, signature};
//! use loyaltyd_shopify::ShopifyAdapter;
//!
//! let adapter = ShopifyAdapter::new(vec![Secret::new("hush")]);
//! let body = br#"{"id": 1}"#;
//! let sig = signature::base64_encode(&signature::hmac_sha256(b"hush", &[body]));
//! let mut headers = http::HeaderMap::new();
//! headers.insert("x-shopify-hmac-sha256", sig.parse().unwrap());
//! headers.insert("x-shopify-topic", "products/update".parse().unwrap());
//! headers.insert("x-shopify-webhook-id", "wh-1".parse().unwrap());
//! let req = RawRequest { shop: ShopId::new("demo").unwrap(), headers, body: body.to_vec().into(),
//!     received_at: chrono::Utc::now() };
//! adapter.verify(&req).unwrap();
//! assert!(matches!(adapter.parse(&req).unwrap(), Parsed::Ignored { .. }));
//! ```

mod cancel;
mod order;
mod refund;

use chrono::{DateTime, Utc};
use loyaltyd_adapter::{
    signature, Adapter, EventEnvelope, ParseError, Parsed, PosEvent, RawRequest, Secret,
    VerifyError,
};

/// The adapter's name in URLs: `/webhooks/{shop}/shopify`.
pub const NAME: &str = "shopify";

const HMAC_HEADERS: [&str; 2] = ["x-shopify-hmac-sha256", "shopify-hmac-sha256"];
const TOPIC_HEADERS: [&str; 2] = ["x-shopify-topic", "shopify-topic"];
const WEBHOOK_ID_HEADERS: [&str; 2] = ["x-shopify-webhook-id", "shopify-webhook-id"];
const TRIGGERED_AT_HEADERS: [&str; 2] = ["x-shopify-triggered-at", "shopify-triggered-at"];

/// Verifies and parses one shop's Shopify webhooks.
#[derive(Debug, Clone)]
pub struct ShopifyAdapter {
    secrets: Vec<Secret>,
}

impl ShopifyAdapter {
    /// An adapter accepting signatures made with any of `secrets`.
    pub fn new(secrets: Vec<Secret>) -> Self {
        ShopifyAdapter { secrets }
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
        signature::verify_hmac_sha256_base64(&self.secrets, &[&req.body], sig)
    }

    fn parse(&self, req: &RawRequest) -> Result<Parsed, ParseError> {
        let topic = req
            .first_header(&TOPIC_HEADERS)
            .ok_or(ParseError::MissingHeader("X-Shopify-Topic"))?;
        let webhook_id = req
            .first_header(&WEBHOOK_ID_HEADERS)
            .filter(|id| !id.trim().is_empty())
            .ok_or(ParseError::MissingHeader("X-Shopify-Webhook-Id"))?;
        let triggered_at = req
            .first_header(&TRIGGERED_AT_HEADERS)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc));

        match topic {
            "orders/paid" => {
                let order = order::Order::from_json(&req.body)?;
                let occurred_at = order
                    .processed_at()
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
            other => {
                // Still require a JSON body: a verified but garbled request is a sender bug
                // worth surfacing as 400, whatever its topic.
                serde_json::from_slice::<serde::de::IgnoredAny>(&req.body)
                    .map_err(|e| ParseError::Malformed(e.to_string()))?;
                Ok(Parsed::ignored(
                    webhook_id,
                    other,
                    "topic not used by the loyalty program",
                ))
            }
        }
    }
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
