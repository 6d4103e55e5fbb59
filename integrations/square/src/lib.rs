//! Square webhooks → loyaltyd canonical events, completed from Square's Orders API.
//!
//! - **Signature:** `x-square-hmacsha256-signature` = base64 HMAC-SHA256 of the
//!   notification URL *exactly as registered in the subscription* followed by the raw body,
//!   keyed by the subscription's signature key (used verbatim). Several keys may be
//!   configured so a rotation drops nothing. The legacy SHA-1 `x-square-signature` header
//!   is ignored. Configure the public URL explicitly: behind a TLS-terminating proxy the
//!   request URL the daemon sees is not the one Square signed.
//! - **Dedupe key:** the envelope's `event_id`.
//! - **Events used** (every other type, including `webhooks.test_notification` and all
//!   `order.*` events, is answered as ignored):
//!   - `payment.created` / `payment.updated` with `status` `COMPLETED` →
//!     [`PosEvent::Sale`]; any other status is ignored ("payment APPROVED; earns when
//!     COMPLETED"). The sale's `order_id` is the **payment id**: a payment reported
//!     COMPLETED by both `created` and `updated` (and again by every later `updated`, e.g.
//!     when it is refunded) has one business key, so the ledger scores it once, and
//!     refunds name it through their `payment_id`. `source_order_id` is the payment's
//!     `order_id`; `customer` is `customer_id` + `buyer_email_address` (`None` when both
//!     are absent); `total` is `total_money` (tip included); `channel` is
//!     `application_details.square_product` in lower case (`square_pos`, `online_store`,
//!     ...) or `"square"` when Square does not say. `occurred_at` is the payment's
//!     `updated_at`, else its `created_at`, else the envelope's `created_at`.
//!
//!     **Lines before enrichment:** one line titled [`PAYMENT_LINE_TITLE`] whose id is the
//!     payment id, quantity 1, unit price `amount_money` (tip excluded). Square's payment
//!     does not say how much of it is tax, so the sale has `tax` 0 and `taxes_included`
//!     false: without the Orders API the whole amount, tax included, is the spend.
//!   - `refund.created` / `refund.updated` with `status` `COMPLETED` →
//!     [`PosEvent::Refund`] with `order_id` = the refund's `payment_id`, no lines (Square
//!     refunds carry none) and `amount` = `amount_money`; other statuses are ignored.
//!   - `customer.created` / `customer.updated` → [`PosEvent::CustomerUpsert`]: id, email,
//!     phone, given and family name; `birthday` from `YYYY-MM-DD`; email consent =
//!     not `preferences.email_unsubscribed` (SMS consent: not said). Square writes a
//!     birthday without a year as `0000-MM-DD`; it is kept as **year 0**, which the
//!     proleptic Gregorian calendar counts as a leap year, so `0000-02-29` is valid too.
//!     Read year 0 as "year unknown" and use only the month and day.
//! - **Money:** Square sends integer minor units; they are converted exactly with the
//!   currency's exponent ([`money_from_minor_units`]: JPY 1500 → 1500, USD 1188 → 11.88,
//!   KWD 12345 → 12.345). A currency whose exponent loyaltyd does not know is an invalid
//!   field, never a guess.
//! - **Enrichment:** when [`OrdersApi`] is configured, a sale with a `source_order_id`
//!   [needs enrichment](Adapter::needs_enrichment): [`Adapter::enrich`] fetches
//!   `GET {base_url}/v2/orders/{order_id}` and replaces the payment line with the order's
//!   line items (see [`SquareAdapter`]).
//!
//! ```
//! use loyaltyd_adapter::{Adapter, Parsed, RawRequest, Secret, ShopId, signature};
//! use loyaltyd_square::{SquareAdapter, SquareSettings};
//!
//! let url = "https://loyalty.example.com/webhooks/demo/square";
//! let adapter = SquareAdapter::new(SquareSettings {
//!     signature_keys: vec![Secret::new("hush")],
//!     notification_url: url.to_string(),
//!     orders: None,
//! })
//! .unwrap();
//! let body = br#"{"merchant_id":"M1","type":"webhooks.test_notification","event_id":"e-1","created_at":"2026-11-20T15:14:07Z","data":{"type":"webhooks","id":"w-1"}}"#;
//! let sig = signature::base64_encode(&signature::hmac_sha256(b"hush", &[url.as_bytes(), body]));
//! let mut headers = http::HeaderMap::new();
//! headers.insert("x-square-hmacsha256-signature", sig.parse().unwrap());
//! let req = RawRequest { shop: ShopId::new("demo").unwrap(), headers, body: body.to_vec().into(),
//!     received_at: chrono::Utc::now() };
//! adapter.verify(&req).unwrap();
//! assert!(matches!(adapter.parse(&req).unwrap(), Parsed::Ignored { .. }));
//! ```

mod json;
mod orders;
mod webhook;

use std::time::Duration;

use loyaltyd_adapter::{
    signature, Adapter, Currency, EnrichError, EnrichFuture, EventEnvelope, ParseError, Parsed,
    PosEvent, RawRequest, Sale, Secret, VerifyError,
};
use rust_decimal::Decimal;

/// The adapter's name in URLs: `/webhooks/{shop}/square`.
pub const NAME: &str = "square";

/// The header carrying Square's HMAC-SHA256 signature.
pub const SIGNATURE_HEADER: &str = "x-square-hmacsha256-signature";

/// Square's production API host.
pub const DEFAULT_BASE_URL: &str = "https://connect.squareup.com";

/// Square's Sandbox API host.
pub const SANDBOX_BASE_URL: &str = "https://connect.squareupsandbox.com";

/// The `Square-Version` sent to the Orders API unless configured otherwise.
pub const DEFAULT_SQUARE_VERSION: &str = "2026-05-20";

/// Title of the single line a sale carries before its order is fetched.
pub const PAYMENT_LINE_TITLE: &str = "payment";

/// Everything one shop's Square adapter is built from.
#[derive(Debug, Clone)]
pub struct SquareSettings {
    /// The webhook subscription's signature keys; a request verifies under any of them
    /// (rotation). An empty list verifies nothing.
    pub signature_keys: Vec<Secret>,
    /// The notification URL exactly as registered in the Square subscription (scheme,
    /// host, path, trailing slash and all): it is part of what Square signs.
    pub notification_url: String,
    /// Where to fetch orders from; `None` scores payments without their line items.
    pub orders: Option<OrdersApi>,
}

/// Access to Square's Orders API for one seller.
#[derive(Debug, Clone)]
pub struct OrdersApi {
    /// API host, e.g. [`DEFAULT_BASE_URL`] or [`SANDBOX_BASE_URL`] (a path prefix is kept).
    pub base_url: String,
    /// The seller's access token (needs `ORDERS_READ`); sent as `Authorization: Bearer`,
    /// never logged.
    pub access_token: Secret,
    /// The `Square-Version` header, e.g. [`DEFAULT_SQUARE_VERSION`].
    pub square_version: String,
    /// Time allowed for one attempt (connecting, answering and reading the body).
    pub timeout: Duration,
    /// How many times a failed attempt is repeated (connection error, timeout, 429, 5xx)
    /// before [`EnrichError::Retryable`]; pauses double from 100 ms, at most 2 s.
    pub retries: u32,
}

impl OrdersApi {
    /// Production defaults: [`DEFAULT_BASE_URL`], [`DEFAULT_SQUARE_VERSION`], a 3 s
    /// timeout and 2 retries (at most 9.3 s in all, inside the 10 s Square allows for
    /// answering a webhook, see [`OrdersApi::worst_case`]).
    ///
    /// ```
    /// use loyaltyd_adapter::Secret;
    /// let api = loyaltyd_square::OrdersApi::new(Secret::new("EAAAl-token"));
    /// assert_eq!(api.base_url, "https://connect.squareup.com");
    /// assert_eq!(api.square_version, "2026-05-20");
    /// assert!(!format!("{api:?}").contains("l-token"));
    /// ```
    pub fn new(access_token: Secret) -> Self {
        OrdersApi {
            base_url: DEFAULT_BASE_URL.to_string(),
            access_token,
            square_version: DEFAULT_SQUARE_VERSION.to_string(),
            timeout: Duration::from_secs(3),
            retries: 2,
        }
    }

    /// The longest one [`Adapter::enrich`] call can take: every attempt timing out, plus
    /// the pauses between attempts. When enrichment runs while Square waits for the
    /// webhook's answer, keep this under Square's 10 s.
    ///
    /// ```
    /// use std::time::Duration;
    /// use loyaltyd_adapter::Secret;
    /// let api = loyaltyd_square::OrdersApi::new(Secret::new("t"));
    /// assert_eq!(api.worst_case(), Duration::from_millis(3 * 3000 + 100 + 200));
    /// ```
    pub fn worst_case(&self) -> Duration {
        self.timeout
            .saturating_mul(self.retries.saturating_add(1))
            .saturating_add(orders::total_backoff(self.retries))
    }
}

/// Settings that cannot work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    /// No notification URL: every signature would fail.
    #[error("notification_url is empty: set it to the URL exactly as registered in the Square webhook subscription")]
    EmptyNotificationUrl,
    /// The Orders API base URL is not an absolute http(s) URL.
    #[error("orders base_url {0:?} is not an absolute http(s) URL")]
    InvalidBaseUrl(String),
    /// The access token is empty or cannot travel in an HTTP header (its value is not shown).
    #[error("orders access_token is empty or contains characters not allowed in an HTTP header")]
    InvalidAccessToken,
    /// The `Square-Version` value is empty or cannot travel in an HTTP header.
    #[error(
        "orders square_version {0:?} is not a valid header value (expected e.g. \"2026-05-20\")"
    )]
    InvalidSquareVersion(String),
    /// The HTTP client could not be built (e.g. no TLS roots).
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(String),
}

/// Verifies and parses one shop's Square webhooks, and completes its sales from the
/// Orders API.
///
/// **Enrichment** ([`Adapter::enrich`]) sends `GET {base_url}/v2/orders/{source_order_id}`
/// with `Authorization: Bearer <token>`, `Square-Version` and `Accept: application/json`.
/// Connection errors, timeouts, 429 and 5xx are retried `retries` times with a short
/// exponential backoff, then reported as [`EnrichError::Retryable`]; 401 and 403 (a
/// revoked token, a wrong `Square-Version`) are [`EnrichError::Retryable`] at once, so the
/// event waits in the queue until the shop fixes its settings instead of losing its
/// points; any other answer that is not 2xx (404, 400, ...) and an order that cannot be
/// read are [`EnrichError::Permanent`]. On success the sale's lines become the order's
/// `line_items`: `line_id` = `uid`, `product_id` = `catalog_object_id` (the item
/// variation), `title` = `name (variation_name)`, `quantity` = the decimal string read
/// exactly, `unit_price` = `base_price_money`, `discount` = `total_discount_money`, `tax` =
/// `total_tax_money`, `gift_card` = `item_type` `GIFT_CARD`. The sale's `tax` becomes the
/// order's `total_tax_money` and `taxes_included` is true only when the order has taxes
/// and every one is `INCLUSIVE` (mixed inclusive and additive taxes give false). The
/// payment's customer is kept; a sale without one takes the order's `customer_id`.
/// `total` stays the payment's `total_money`; service charges and tips are not lines.
#[derive(Debug, Clone)]
pub struct SquareAdapter {
    signature_keys: Vec<Secret>,
    notification_url: String,
    orders: Option<orders::OrdersClient>,
}

impl SquareAdapter {
    /// Build the adapter; with [`OrdersApi`] settings this also builds its HTTP client.
    pub fn new(settings: SquareSettings) -> Result<Self, SettingsError> {
        if settings.notification_url.is_empty() {
            return Err(SettingsError::EmptyNotificationUrl);
        }
        let orders = settings
            .orders
            .as_ref()
            .map(orders::OrdersClient::new)
            .transpose()?;
        Ok(SquareAdapter {
            signature_keys: settings.signature_keys,
            notification_url: settings.notification_url,
            orders,
        })
    }

    /// The notification URL signatures are checked against.
    pub fn notification_url(&self) -> &str {
        &self.notification_url
    }

    /// Whether the Orders API is configured (and so sales get enriched).
    pub fn enriches_from_orders_api(&self) -> bool {
        self.orders.is_some()
    }
}

impl Adapter for SquareAdapter {
    fn name(&self) -> &'static str {
        NAME
    }

    fn verify(&self, req: &RawRequest) -> Result<(), VerifyError> {
        let sig = req
            .header(SIGNATURE_HEADER)
            .ok_or(VerifyError::MissingHeader(SIGNATURE_HEADER))?;
        signature::verify_hmac_sha256_base64(
            &self.signature_keys,
            &[self.notification_url.as_bytes(), &req.body],
            sig,
        )
    }

    fn parse(&self, req: &RawRequest) -> Result<Parsed, ParseError> {
        webhook::parse(req)
    }

    /// True for a Square sale that names a `source_order_id` and still has only its
    /// payment line, when the Orders API is configured. An enriched sale answers false,
    /// so asking again is harmless.
    fn needs_enrichment(&self, event: &EventEnvelope) -> bool {
        self.orders.is_some()
            && event.adapter == NAME
            && matches!(&event.event, PosEvent::Sale(sale) if awaits_order(sale))
    }

    fn enrich(&self, mut event: EventEnvelope) -> EnrichFuture<'_> {
        Box::pin(async move {
            let Some(client) = &self.orders else {
                return Ok(event);
            };
            let PosEvent::Sale(sale) = &mut event.event else {
                return Ok(event);
            };
            let Some(order_id) = sale.source_order_id.clone() else {
                return Ok(event);
            };
            let body = client.fetch(&order_id).await?;
            orders::apply_order(sale, &order_id, &body).map_err(|e| {
                EnrichError::Permanent(format!("Square order {order_id} cannot be read: {e}"))
            })?;
            Ok(event)
        })
    }
}

/// A sale as parsed from a payment: its only line is the payment line.
fn awaits_order(sale: &Sale) -> bool {
    sale.source_order_id.is_some()
        && matches!(sale.lines.as_slice(), [line] if line.line_id == sale.order_id)
}

/// An integer amount of minor units (Square's `Money.amount`) as an exact decimal in
/// major units; `None` when the currency's exponent is unknown.
///
/// ```
/// use loyaltyd_square::money_from_minor_units;
/// let m = |amount, code: &str| money_from_minor_units(amount, code.parse().unwrap()).map(|d| d.to_string());
/// assert_eq!(m(1500, "JPY").as_deref(), Some("1500"));
/// assert_eq!(m(1188, "USD").as_deref(), Some("11.88"));
/// assert_eq!(m(12345, "KWD").as_deref(), Some("12.345"));
/// assert_eq!(m(100, "XYZ"), None);
/// ```
pub fn money_from_minor_units(amount: i64, currency: Currency) -> Option<Decimal> {
    currency
        .minor_units()
        .and_then(|scale| Decimal::try_new(amount, scale).ok())
}
