//! The parts of Shopify's order resource that loyalty needs.
//!
//! Money fields arrive as decimal strings and ids as 64-bit integers; both are read
//! exactly (never through `f64`).

use std::str::FromStr;

use chrono::{DateTime, FixedOffset, Utc};
use loyaltyd_adapter::{CustomerRef, ParseError, Sale, SaleLine};
use rust_decimal::Decimal;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub(crate) struct Order {
    id: u64,
    currency: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    processed_at: Option<DateTime<FixedOffset>>,
    #[serde(default)]
    created_at: Option<DateTime<FixedOffset>>,
    #[serde(default)]
    taxes_included: bool,
    #[serde(default)]
    total_price: Option<String>,
    #[serde(default)]
    total_tax: Option<String>,
    #[serde(default)]
    location_id: Option<u64>,
    #[serde(default)]
    source_name: Option<String>,
    #[serde(default)]
    customer: Option<Customer>,
    #[serde(default)]
    line_items: Vec<LineItem>,
    #[serde(default)]
    shipping_lines: Vec<ShippingLine>,
}

#[derive(Debug, Deserialize)]
struct Customer {
    #[serde(default)]
    id: Option<u64>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    verified_email: Option<bool>,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LineItem {
    id: u64,
    #[serde(default)]
    product_id: Option<u64>,
    #[serde(default)]
    variant_id: Option<u64>,
    #[serde(default)]
    sku: Option<String>,
    #[serde(default)]
    title: String,
    #[serde(default)]
    vendor: Option<String>,
    quantity: u64,
    price: String,
    #[serde(default)]
    gift_card: bool,
    #[serde(default)]
    discount_allocations: Vec<DiscountAllocation>,
    #[serde(default)]
    tax_lines: Vec<TaxLine>,
}

#[derive(Debug, Deserialize)]
struct TaxLine {
    price: String,
}

#[derive(Debug, Deserialize)]
struct DiscountAllocation {
    amount: String,
}

#[derive(Debug, Deserialize)]
struct ShippingLine {
    #[serde(default)]
    price: Option<String>,
    #[serde(default)]
    discount_allocations: Vec<DiscountAllocation>,
}

impl Order {
    pub(crate) fn from_json(body: &[u8]) -> Result<Order, ParseError> {
        serde_json::from_slice(body).map_err(|e| ParseError::Malformed(e.to_string()))
    }

    /// When the sale happened: `processed_at` (the time Shopify gives the order, which
    /// for imported orders is the original sale time), else `created_at`.
    pub(crate) fn sold_at(&self) -> Option<DateTime<Utc>> {
        self.processed_at
            .or(self.created_at)
            .map(|t| t.with_timezone(&Utc))
    }

    pub(crate) fn into_sale(self) -> Result<Sale, ParseError> {
        let currency =
            self.currency
                .parse()
                .map_err(|e: loyaltyd_adapter::event::InvalidCurrency| {
                    ParseError::InvalidField {
                        field: "currency".into(),
                        message: e.to_string(),
                    }
                })?;

        let mut lines = Vec::with_capacity(self.line_items.len());
        for (i, li) in self.line_items.into_iter().enumerate() {
            let unit_price = money(&li.price, &format!("line_items[{i}].price"))?;
            let mut discount = Decimal::ZERO;
            for (j, d) in li.discount_allocations.iter().enumerate() {
                discount += money(
                    &d.amount,
                    &format!("line_items[{i}].discount_allocations[{j}].amount"),
                )?;
            }
            let mut tax = Decimal::ZERO;
            for (j, t) in li.tax_lines.iter().enumerate() {
                tax += money(&t.price, &format!("line_items[{i}].tax_lines[{j}].price"))?;
            }
            lines.push(SaleLine {
                line_id: li.id.to_string(),
                sku: li.sku.filter(|s| !s.is_empty()),
                product_id: li.product_id.map(|p| p.to_string()),
                variant_id: li.variant_id.map(|v| v.to_string()),
                title: li.title,
                vendor: li.vendor.filter(|v| !v.is_empty()),
                quantity: Decimal::from(li.quantity),
                unit_price,
                discount,
                tax,
                product_type: None,
                categories: Vec::new(),
                gift_card: li.gift_card,
            });
        }

        let mut shipping = Decimal::ZERO;
        for (i, s) in self.shipping_lines.iter().enumerate() {
            if let Some(p) = &s.price {
                shipping += money(p, &format!("shipping_lines[{i}].price"))?;
            }
            for (j, d) in s.discount_allocations.iter().enumerate() {
                shipping -= money(
                    &d.amount,
                    &format!("shipping_lines[{i}].discount_allocations[{j}].amount"),
                )?;
            }
        }

        let customer = customer_ref(self.customer, self.email, self.phone);
        Ok(Sale {
            order_id: self.id.to_string(),
            source_order_id: None,
            customer,
            currency,
            lines,
            shipping,
            tax: opt_money(self.total_tax.as_deref(), "total_tax")?,
            taxes_included: self.taxes_included,
            total: opt_money(self.total_price.as_deref(), "total_price")?,
            location_id: self.location_id.map(|l| l.to_string()),
            channel: self.source_name,
        })
    }
}

/// The buyer: the order's customer, with the order's own email/phone filling gaps
/// (a guest checkout has no customer object but usually an email).
fn customer_ref(
    customer: Option<Customer>,
    order_email: Option<String>,
    order_phone: Option<String>,
) -> Option<CustomerRef> {
    let nonblank = |s: Option<String>| s.filter(|v| !v.trim().is_empty());
    let c = customer.unwrap_or(Customer {
        id: None,
        email: None,
        verified_email: None,
        phone: None,
        first_name: None,
        last_name: None,
    });
    // The customer's own e-mail carries Shopify's verification flag; the order's
    // (guest checkout) e-mail carries none.
    let own_email = nonblank(c.email);
    let email_verified = if own_email.is_some() {
        c.verified_email
    } else {
        None
    };
    let r = CustomerRef {
        external_id: c.id.map(|id| id.to_string()),
        email_verified,
        email: own_email.or(nonblank(order_email)),
        phone: nonblank(c.phone).or(nonblank(order_phone)),
        first_name: nonblank(c.first_name),
        last_name: nonblank(c.last_name),
    };
    if r.external_id.is_none() && r.email.is_none() && r.phone.is_none() {
        None
    } else {
        Some(r)
    }
}

/// A non-negative decimal amount from a money string; errors name `field`.
pub(crate) fn money(s: &str, field: &str) -> Result<Decimal, ParseError> {
    let d = Decimal::from_str(s.trim()).map_err(|e| ParseError::InvalidField {
        field: field.to_string(),
        message: format!("{s:?} is not a decimal amount: {e}"),
    })?;
    if d.is_sign_negative() && !d.is_zero() {
        return Err(ParseError::InvalidField {
            field: field.to_string(),
            message: format!("{s:?} is negative"),
        });
    }
    Ok(d)
}

fn opt_money(s: Option<&str>, field: &str) -> Result<Decimal, ParseError> {
    s.map_or(Ok(Decimal::ZERO), |s| money(s, field))
}
