//! Shopify webhooks → loyaltyd canonical events.
//!
//! - Signature: `X-Shopify-Hmac-Sha256` = base64 HMAC-SHA256 of the raw body under the
//!   app's client secret (or the store's notification key for hand-made webhooks).
//!   Several secrets may be configured so a rotation drops nothing.
//! - Dedupe key: `X-Shopify-Webhook-Id` (Shopify's delivery idempotency key).
//! - Topics used: `orders/paid` → [`PosEvent::Sale`]. Every other topic is answered
//!   as ignored until the program uses it.
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
//! let req = RawRequest { shop: ShopId::new("demo").unwrap(), headers, body: body.to_vec().into() };
//! adapter.verify(&req).unwrap();
//! assert!(matches!(adapter.parse(&req).unwrap(), Parsed::Ignored { .. }));
//! ```

mod order;

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
                let occurred_at = order.processed_at().or(triggered_at).ok_or_else(|| {
                    ParseError::InvalidField {
                        field: "processed_at".into(),
                        message: "no sale time in the order or the X-Shopify-Triggered-At header"
                            .into(),
                    }
                })?;
                Ok(Parsed::Event(Box::new(EventEnvelope {
                    shop: req.shop.clone(),
                    adapter: NAME.to_string(),
                    event_id: webhook_id.to_string(),
                    occurred_at,
                    event: PosEvent::Sale(order.into_sale()?),
                })))
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
