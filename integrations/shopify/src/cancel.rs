//! Shopify's `orders/cancelled` payload → [`Cancel`].
//!
//! The payload is the full order resource, but a cancellation needs only the order id,
//! when it was cancelled and why; the rest is not read, so a cancellation is never
//! refused over a field loyalty does not use.

use chrono::{DateTime, FixedOffset, Utc};
use loyaltyd_adapter::{Cancel, ParseError};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub(crate) struct CancelledOrder {
    id: u64,
    #[serde(default)]
    cancelled_at: Option<DateTime<FixedOffset>>,
    #[serde(default)]
    cancel_reason: Option<String>,
}

impl CancelledOrder {
    pub(crate) fn from_json(body: &[u8]) -> Result<CancelledOrder, ParseError> {
        serde_json::from_slice(body).map_err(|e| ParseError::Malformed(e.to_string()))
    }

    /// When the order was cancelled, if the payload says.
    pub(crate) fn cancelled_at(&self) -> Option<DateTime<Utc>> {
        self.cancelled_at.map(|t| t.with_timezone(&Utc))
    }

    pub(crate) fn into_cancel(self) -> Cancel {
        Cancel {
            order_id: self.id.to_string(),
            reason: self.cancel_reason.filter(|r| !r.trim().is_empty()),
        }
    }
}
