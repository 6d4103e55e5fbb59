//! Shopify's `refunds/create` payload → [`Refund`].
//!
//! Line money is read from `subtotal_set.shop_money.amount` and
//! `total_tax_set.shop_money.amount`, which are decimal strings. The bare `subtotal` and
//! `total_tax` are JSON *numbers*; they are only a fallback, and are then read from their
//! JSON text (never through `f64`). Money returned is the sum of the transactions with
//! `kind` `refund` and `status` `success`: a refund row exists even when no money moved.

use chrono::{DateTime, FixedOffset, Utc};
use loyaltyd_adapter::{Currency, Money, ParseError, Refund, RefundLine};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::order::money;

#[derive(Debug, Deserialize)]
pub(crate) struct ShopifyRefund {
    id: u64,
    order_id: u64,
    #[serde(default)]
    created_at: Option<DateTime<FixedOffset>>,
    #[serde(default)]
    processed_at: Option<DateTime<FixedOffset>>,
    #[serde(default)]
    refund_line_items: Vec<RefundLineItem>,
    #[serde(default)]
    transactions: Vec<Transaction>,
}

#[derive(Debug, Deserialize)]
struct RefundLineItem {
    line_item_id: u64,
    quantity: i64,
    #[serde(default)]
    subtotal: Option<Box<RawValue>>,
    #[serde(default)]
    total_tax: Option<Box<RawValue>>,
    #[serde(default)]
    subtotal_set: Option<MoneyBag>,
    #[serde(default)]
    total_tax_set: Option<MoneyBag>,
}

#[derive(Debug, Deserialize)]
struct MoneyBag {
    #[serde(default)]
    shop_money: Option<ShopMoney>,
}

#[derive(Debug, Deserialize)]
struct ShopMoney {
    amount: String,
    #[serde(default)]
    currency_code: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Transaction {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    amount: Option<String>,
    #[serde(default)]
    currency: Option<String>,
}

/// What a `refunds/create` delivery amounts to.
pub(crate) enum Outcome {
    /// Lines came back, money moved, or both.
    Refund(Refund),
    /// Neither: nothing for the program to reverse.
    Nothing,
}

impl ShopifyRefund {
    pub(crate) fn from_json(body: &[u8]) -> Result<ShopifyRefund, ParseError> {
        serde_json::from_slice(body).map_err(|e| ParseError::Malformed(e.to_string()))
    }

    /// When the refund was processed (`processed_at`, else `created_at`).
    pub(crate) fn occurred_at(&self) -> Option<DateTime<Utc>> {
        self.processed_at
            .or(self.created_at)
            .map(|t| t.with_timezone(&Utc))
    }

    pub(crate) fn into_refund(self) -> Result<Outcome, ParseError> {
        // The currency of the line amounts: every line's shop money must agree.
        let mut line_currency: Option<(Currency, String)> = None;
        let mut lines = Vec::with_capacity(self.refund_line_items.len());
        for (i, rli) in self.refund_line_items.into_iter().enumerate() {
            let at = |f: &str| format!("refund_line_items[{i}].{f}");
            if rli.quantity < 0 {
                return Err(ParseError::InvalidField {
                    field: at("quantity"),
                    message: format!("{} is negative", rli.quantity),
                });
            }
            let subtotal = line_amount(
                rli.subtotal_set.as_ref(),
                rli.subtotal.as_deref(),
                &at("subtotal_set.shop_money"),
                &at("subtotal"),
                &mut line_currency,
            )?
            .ok_or_else(|| ParseError::InvalidField {
                field: at("subtotal_set"),
                message: "missing, and no numeric subtotal either".into(),
            })?;
            let tax = line_amount(
                rli.total_tax_set.as_ref(),
                rli.total_tax.as_deref(),
                &at("total_tax_set.shop_money"),
                &at("total_tax"),
                &mut line_currency,
            )?
            .unwrap_or(Decimal::ZERO);
            lines.push(RefundLine {
                line_id: rli.line_item_id.to_string(),
                quantity: Decimal::from(rli.quantity),
                subtotal,
                tax,
            });
        }

        // Money returned: successful refund transactions only.
        let mut paid: Option<(Decimal, Currency, String)> = None;
        for (i, t) in self.transactions.iter().enumerate() {
            if t.kind.as_deref() != Some("refund") || t.status.as_deref() != Some("success") {
                continue;
            }
            let amount_field = format!("transactions[{i}].amount");
            let amount = money(
                t.amount
                    .as_deref()
                    .ok_or_else(|| ParseError::InvalidField {
                        field: amount_field.clone(),
                        message: "missing on a successful refund transaction".into(),
                    })?,
                &amount_field,
            )?;
            let currency_field = format!("transactions[{i}].currency");
            let currency = currency(t.currency.as_deref(), &currency_field)?;
            paid = match paid {
                None => Some((amount, currency, currency_field)),
                Some((sum, c, first)) if c == currency => Some((sum + amount, c, first)),
                Some((_, c, first)) => {
                    return Err(ParseError::InvalidField {
                        field: currency_field,
                        message: format!("{currency} differs from {c} in {first}"),
                    })
                }
            };
        }
        let amount = paid.map(|(amount, currency, _)| Money { amount, currency });

        let currency = match (line_currency, amount) {
            (Some((c, _)), _) => c,
            (None, Some(m)) => m.currency,
            (None, None) if lines.is_empty() => return Ok(Outcome::Nothing),
            (None, None) => {
                return Err(ParseError::InvalidField {
                    field: "refund_line_items[0].subtotal_set.shop_money.currency_code".into(),
                    message: "no currency on any refund line or successful refund transaction"
                        .into(),
                })
            }
        };

        Ok(Outcome::Refund(Refund {
            refund_id: self.id.to_string(),
            order_id: self.order_id.to_string(),
            currency,
            lines,
            amount,
        }))
    }
}

/// A line amount from its `*_set.shop_money` (preferred) or its bare JSON number.
/// Records the shop-money currency in `seen`, which every line must share.
fn line_amount(
    set: Option<&MoneyBag>,
    number: Option<&RawValue>,
    set_field: &str,
    number_field: &str,
    seen: &mut Option<(Currency, String)>,
) -> Result<Option<Decimal>, ParseError> {
    if let Some(shop) = set.and_then(|s| s.shop_money.as_ref()) {
        let amount = money(&shop.amount, &format!("{set_field}.amount"))?;
        if let Some(code) = shop.currency_code.as_deref() {
            let field = format!("{set_field}.currency_code");
            let c = currency(Some(code), &field)?;
            match seen {
                None => *seen = Some((c, field)),
                Some((first, first_field)) if *first != c => {
                    return Err(ParseError::InvalidField {
                        field,
                        message: format!("{c} differs from {first} in {first_field}"),
                    })
                }
                Some(_) => {}
            }
        }
        return Ok(Some(amount));
    }
    number
        .filter(|raw| raw.get().trim() != "null")
        .map(|raw| exact_number(raw, number_field))
        .transpose()
}

/// A JSON number (or numeric string) read from its text, so `2.92` stays exactly 2.92.
fn exact_number(raw: &RawValue, field: &str) -> Result<Decimal, ParseError> {
    let text = raw.get().trim();
    let text = if text.starts_with('"') {
        serde_json::from_str::<String>(text).map_err(|e| ParseError::InvalidField {
            field: field.to_string(),
            message: e.to_string(),
        })?
    } else {
        text.to_string()
    };
    if text.contains(['e', 'E']) {
        let d = Decimal::from_scientific(&text).map_err(|e| ParseError::InvalidField {
            field: field.to_string(),
            message: format!("{text} is not a decimal amount: {e}"),
        })?;
        return money(&d.to_string(), field);
    }
    money(&text, field)
}

fn currency(code: Option<&str>, field: &str) -> Result<Currency, ParseError> {
    code.ok_or_else(|| ParseError::InvalidField {
        field: field.to_string(),
        message: "missing".into(),
    })?
    .parse()
    .map_err(
        |e: loyaltyd_adapter::event::InvalidCurrency| ParseError::InvalidField {
            field: field.to_string(),
            message: e.to_string(),
        },
    )
}
