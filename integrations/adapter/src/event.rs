//! Canonical events: what every adapter produces, whatever the sender.
//!
//! Money is always [`Decimal`] plus a [`Currency`], never a float; quantities are
//! decimals too because some POS systems sell by weight.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// A shop's id as it appears in URLs and config: 1–64 characters of `a-z`, `0-9`, `-`, `_`.
///
/// ```
/// use loyaltyd_adapter::ShopId;
/// assert!(ShopId::new("demo-shop").is_ok());
/// assert!(ShopId::new("../etc").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ShopId(String);

impl ShopId {
    /// Validate and wrap a shop id.
    pub fn new(id: impl Into<String>) -> Result<Self, InvalidShopId> {
        let id = id.into();
        let ok = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok {
            Ok(ShopId(id))
        } else {
            Err(InvalidShopId(id))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ShopId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ShopId {
    type Error = InvalidShopId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        ShopId::new(s)
    }
}

impl From<ShopId> for String {
    fn from(s: ShopId) -> String {
        s.0
    }
}

/// A shop id that breaks the [`ShopId`] rules.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid shop id {0:?}: use 1-64 characters of a-z, 0-9, '-' and '_'")]
pub struct InvalidShopId(pub String);

/// An ISO 4217 currency code, upper case.
///
/// ```
/// use loyaltyd_adapter::Currency;
/// let jpy: Currency = "JPY".parse().unwrap();
/// assert_eq!(jpy.minor_units(), Some(0));
/// assert!("usd".parse::<Currency>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl Currency {
    /// The code as text.
    pub fn as_str(&self) -> &str {
        // The bytes are checked ASCII upper-case letters at construction.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }

    /// Number of decimal places of the currency's minor unit, for currencies whose
    /// exponent is not 2 or that are common in retail; `None` when unknown.
    pub fn minor_units(&self) -> Option<u32> {
        match self.as_str() {
            "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF"
            | "UGX" | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => Some(0),
            "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => Some(3),
            "CLF" | "UYW" => Some(4),
            "AUD" | "BRL" | "CAD" | "CHF" | "CNY" | "CZK" | "DKK" | "EUR" | "GBP" | "HKD"
            | "HUF" | "IDR" | "ILS" | "INR" | "MXN" | "MYR" | "NOK" | "NZD" | "PHP" | "PLN"
            | "RON" | "SAR" | "SEK" | "SGD" | "THB" | "TRY" | "TWD" | "USD" | "ZAR" | "AED" => {
                Some(2)
            }
            _ => None,
        }
    }
}

impl FromStr for Currency {
    type Err = InvalidCurrency;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        if b.len() == 3 && b.iter().all(|c| c.is_ascii_uppercase()) {
            Ok(Currency([b[0], b[1], b[2]]))
        } else {
            Err(InvalidCurrency(s.to_string()))
        }
    }
}

impl TryFrom<String> for Currency {
    type Error = InvalidCurrency;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.as_str().to_string()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A currency code that is not three upper-case letters.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid currency code {0:?}: expected ISO 4217, e.g. \"USD\"")]
pub struct InvalidCurrency(pub String);

/// An amount of money in a currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    /// The amount, exact.
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    /// Its currency.
    pub currency: Currency,
}

/// Every canonical event, with what identifies and dates it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventEnvelope {
    /// The shop the event belongs to.
    pub shop: ShopId,
    /// The adapter that produced it (`shopify`, `square`, ...).
    pub adapter: String,
    /// The sender's id for this delivery: the dedupe key.
    pub event_id: String,
    /// When the sender says the thing happened (not when we received it).
    pub occurred_at: DateTime<Utc>,
    /// What happened.
    pub event: PosEvent,
}

/// What happened at the point of sale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PosEvent {
    /// An order or payment was completed.
    Sale(Sale),
    /// Money was returned for (part of) a sale.
    Refund(Refund),
    /// A sale was cancelled as a whole.
    Cancel(Cancel),
    /// A customer record was created or changed.
    CustomerUpsert(CustomerUpsert),
}

/// A completed sale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sale {
    /// The sender's order id: a sale is scored at most once per order id, and refunds
    /// and cancellations name it.
    pub order_id: String,
    /// The sender's separate order object, when `order_id` names something else (Square:
    /// `order_id` is the payment id, this is the Orders API id to fetch line items from).
    #[serde(default)]
    pub source_order_id: Option<String>,
    /// Who bought; `None` for a guest checkout with no contact details.
    pub customer: Option<CustomerRef>,
    /// The currency every amount of this sale is in.
    pub currency: Currency,
    /// What was bought.
    pub lines: Vec<SaleLine>,
    /// Shipping charged, after shipping discounts.
    #[serde(with = "rust_decimal::serde::str")]
    pub shipping: Decimal,
    /// Tax charged.
    #[serde(with = "rust_decimal::serde::str")]
    pub tax: Decimal,
    /// Whether line prices already include tax.
    pub taxes_included: bool,
    /// What the customer paid in total.
    #[serde(with = "rust_decimal::serde::str")]
    pub total: Decimal,
    /// Store / location id for in-person sales.
    pub location_id: Option<String>,
    /// Sales channel as the sender names it (`web`, `pos`, ...).
    pub channel: Option<String>,
}

/// One line of a sale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SaleLine {
    /// The sender's line id (refunds refer to it).
    pub line_id: String,
    /// Stock keeping unit, when the item has one.
    pub sku: Option<String>,
    /// The sender's product id.
    pub product_id: Option<String>,
    /// The sender's variant id.
    pub variant_id: Option<String>,
    /// Product title.
    pub title: String,
    /// Vendor / brand.
    pub vendor: Option<String>,
    /// Quantity sold (decimal: some items sell by weight).
    #[serde(with = "rust_decimal::serde::str")]
    pub quantity: Decimal,
    /// Price of one unit before discounts.
    #[serde(with = "rust_decimal::serde::str")]
    pub unit_price: Decimal,
    /// Discounts allocated to this line, as a positive amount for the whole line.
    #[serde(with = "rust_decimal::serde::str")]
    pub discount: Decimal,
    /// Tax charged on this line (inside `unit_price` when the sale's `taxes_included`).
    #[serde(with = "rust_decimal::serde::str")]
    pub tax: Decimal,
    /// Product type / category name, when the POS reports one (rules: `product_types`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_type: Option<String>,
    /// Collections / categories the product belongs to (rules: `collections`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    /// The line sells a gift card (money in another form, not a purchase).
    pub gift_card: bool,
}

impl SaleLine {
    /// Price × quantity − discount.
    ///
    /// ```
    /// use loyaltyd_adapter::SaleLine;
    /// use rust_decimal::Decimal;
    /// let line = SaleLine { line_id: "1".into(), sku: None, product_id: None, variant_id: None,
    ///     title: "Latte".into(), vendor: None, quantity: Decimal::from(2),
    ///     unit_price: "4.50".parse().unwrap(), discount: "1.00".parse().unwrap(),
    ///     tax: Decimal::ZERO, product_type: None, categories: Vec::new(), gift_card: false };
    /// assert_eq!(line.net(), "8.00".parse::<Decimal>().unwrap());
    /// ```
    pub fn net(&self) -> Decimal {
        self.unit_price * self.quantity - self.discount
    }
}

/// A customer as a sale or customer event names them. Any field may be missing.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CustomerRef {
    /// The sender's customer id.
    pub external_id: Option<String>,
    /// Email as sent (normalised by loyaltyd, not by the adapter).
    pub email: Option<String>,
    /// Whether the sender vouches that the e-mail belongs to this customer (Shopify's
    /// `verified_email`); `None` when the sender does not say. loyaltyd never finds or
    /// merges members through an e-mail marked `Some(false)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    /// Phone as sent (normalised to E.164 by loyaltyd).
    pub phone: Option<String>,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
}

/// A refund of part or all of a sale.
///
/// The envelope's `occurred_at` is when the sender processed the refund (not when the
/// sale happened, nor when the webhook arrived). A refund is independent of money
/// moving: `lines` says what came back, `amount` says what was paid out, and either may
/// be empty — an amount-only refund (goodwill, a shipping refund) has no lines, and a
/// return without payout (store credit handled elsewhere, a refund still pending) has
/// no amount. Several refunds may belong to one order; each is its own event.
///
/// ```
/// use loyaltyd_adapter::{Money, Refund, RefundLine};
/// use rust_decimal::Decimal;
/// let usd = "USD".parse().unwrap();
/// let refund = Refund {
///     refund_id: "r-1".into(),
///     order_id: "o-1".into(),
///     currency: usd,
///     lines: vec![RefundLine { line_id: "l-2".into(), quantity: Decimal::ONE,
///         subtotal: "2.92".parse().unwrap(), tax: "0.23".parse().unwrap() }],
///     amount: Some(Money { amount: "3.15".parse().unwrap(), currency: usd }),
/// };
/// let json = serde_json::to_value(&refund).unwrap();
/// assert_eq!(json["lines"][0]["tax"], "0.23");
/// assert_eq!(json["amount"]["amount"], "3.15");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refund {
    /// The sender's refund id (a refund is applied at most once).
    pub refund_id: String,
    /// The order the refund belongs to.
    pub order_id: String,
    /// The currency of the lines' `subtotal` and `tax` (the sale's currency). For a
    /// refund without lines it is the currency of `amount`.
    pub currency: Currency,
    /// Refunded lines with their refunded quantities, subtotals and tax; empty for an
    /// amount-only refund.
    pub lines: Vec<RefundLine>,
    /// Money actually returned to the customer, if any moved and the sender says.
    /// `None` when no payment was refunded (yet). Its currency is the one the money
    /// moved in, which a multi-currency sender may report differently from `currency`.
    pub amount: Option<Money>,
}

/// One refunded line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundLine {
    /// The sale line this refunds ([`SaleLine::line_id`]).
    pub line_id: String,
    /// Quantity refunded.
    #[serde(with = "rust_decimal::serde::str")]
    pub quantity: Decimal,
    /// Refunded subtotal after the line's discounts, on the same basis as the sale's line
    /// prices: tax is inside it when the sale's `taxes_included`, on top of it otherwise.
    #[serde(with = "rust_decimal::serde::str")]
    pub subtotal: Decimal,
    /// Tax refunded on this line (zero when the sender reports none); part of `subtotal`
    /// when the sale's `taxes_included`.
    #[serde(with = "rust_decimal::serde::str")]
    pub tax: Decimal,
}

/// A whole sale cancelled.
///
/// The envelope's `occurred_at` is when the sale was cancelled. A cancellation does not
/// say whether money was returned: a sender may also report the refund that goes with it
/// as a separate [`Refund`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cancel {
    /// The cancelled order.
    pub order_id: String,
    /// The sender's reason, if any.
    pub reason: Option<String>,
}

/// A customer created or updated at the POS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerUpsert {
    /// Who.
    pub customer: CustomerRef,
    /// Birthday, when the POS has one.
    pub birthday: Option<NaiveDate>,
    /// Marketing consent per channel, when the POS says.
    pub consent: Consent,
    /// The customer's tags at the POS (lower-cased, e.g. `card`, `vip`), which rules
    /// can test; `None` when the sender does not say (stored tags are then kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
}

/// Marketing consent per channel; `None` means "the sender did not say".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Consent {
    /// May we email?
    pub email: Option<bool>,
    /// May we text?
    pub sms: Option<bool>,
}
