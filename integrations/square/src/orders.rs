//! Completing a sale from Square's Orders API (`GET /v2/orders/{order_id}`).

use std::time::Duration;

use loyaltyd_adapter::{CustomerRef, EnrichError, ParseError, Sale, SaleLine};
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION};
use reqwest::{StatusCode, Url};
use rust_decimal::Decimal;
use serde_json::Value;

use crate::json::{invalid, same_currency, Obj};
use crate::{OrdersApi, SettingsError};

/// First pause between attempts; doubled after each failed attempt.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest pause between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// A ready-to-use Orders API client for one seller.
#[derive(Debug, Clone)]
pub(crate) struct OrdersClient {
    http: reqwest::Client,
    base_url: Url,
    /// `Bearer <token>`, marked sensitive so that it is never printed.
    authorization: HeaderValue,
    square_version: HeaderValue,
    timeout: Duration,
    retries: u32,
}

impl OrdersClient {
    pub(crate) fn new(api: &OrdersApi) -> Result<Self, SettingsError> {
        let base_url = Url::parse(api.base_url.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| SettingsError::InvalidBaseUrl(api.base_url.clone()))?;
        let token = std::str::from_utf8(api.access_token.expose())
            .map_err(|_| SettingsError::InvalidAccessToken)?;
        if token.trim().is_empty() {
            return Err(SettingsError::InvalidAccessToken);
        }
        let mut authorization = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| SettingsError::InvalidAccessToken)?;
        authorization.set_sensitive(true);
        let square_version = HeaderValue::from_str(api.square_version.trim())
            .ok()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| SettingsError::InvalidSquareVersion(api.square_version.clone()))?;
        let http = reqwest::Client::builder()
            .timeout(api.timeout)
            .connect_timeout(api.timeout)
            .user_agent(concat!("loyaltyd-square/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SettingsError::HttpClient(e.to_string()))?;
        Ok(OrdersClient {
            http,
            base_url,
            authorization,
            square_version,
            timeout: api.timeout,
            retries: api.retries,
        })
    }

    /// `{base_url}/v2/orders/{order_id}`, the id percent-encoded as one path segment.
    fn order_url(&self, order_id: &str) -> Url {
        let mut url = self.base_url.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(["v2", "orders", order_id]);
        }
        url
    }

    /// The order's JSON body, retrying transient failures.
    pub(crate) async fn fetch(&self, order_id: &str) -> Result<bytes::Bytes, EnrichError> {
        let url = self.order_url(order_id);
        let mut attempt: u32 = 0;
        loop {
            let reason = match self.attempt(&url).await {
                Attempt::Done(body) => return Ok(body),
                Attempt::Permanent(reason) => {
                    return Err(EnrichError::Permanent(format!(
                        "Square order {order_id}: {reason}"
                    )))
                }
                Attempt::Refused(reason) => {
                    return Err(EnrichError::Retryable(format!(
                        "Square order {order_id}: {reason}: the access token or Square-Version \
                         was refused; the event is kept and retried (check \
                         shops[].square.access_token)"
                    )))
                }
                Attempt::Retry(reason) => reason,
            };
            if attempt >= self.retries {
                return Err(EnrichError::Retryable(format!(
                    "Square order {order_id}: {reason} ({} attempts)",
                    attempt + 1
                )));
            }
            tokio::time::sleep(backoff(attempt)).await;
            attempt += 1;
        }
    }

    async fn attempt(&self, url: &Url) -> Attempt {
        let sent = self
            .http
            .get(url.clone())
            .header(AUTHORIZATION, self.authorization.clone())
            .header("Square-Version", self.square_version.clone())
            .header(ACCEPT, "application/json")
            .timeout(self.timeout)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) if e.is_builder() => return Attempt::Permanent(describe(&e, self.timeout)),
            Err(e) => return Attempt::Retry(describe(&e, self.timeout)),
        };
        let status = response.status();
        if status.is_success() {
            return match response.bytes().await {
                Ok(body) => Attempt::Done(body),
                Err(e) => Attempt::Retry(format!(
                    "reading the answer failed: {}",
                    describe(&e, self.timeout)
                )),
            };
        }
        // Square's error body: {"errors": [{"category", "code", "detail"}]}. Only the codes
        // are kept: they say what went wrong without echoing anything sent.
        let codes = response
            .bytes()
            .await
            .ok()
            .and_then(|b| error_codes(&b))
            .map(|c| format!(" ({c})"))
            .unwrap_or_default();
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            Attempt::Retry(format!("Orders API answered {status}{codes}"))
        } else if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            // A revoked or mistyped token is the shop's to fix, not the sale's fault: keep
            // the event rather than lose its points, but do not hammer the API now.
            Attempt::Refused(format!("Orders API answered {status}{codes}"))
        } else {
            Attempt::Permanent(format!("Orders API answered {status}{codes}"))
        }
    }
}

enum Attempt {
    Done(bytes::Bytes),
    Retry(String),
    /// 401 / 403: retried later (from the queue), not at once.
    Refused(String),
    Permanent(String),
}

/// The pause after failed attempt `attempt` (0-based).
fn backoff(attempt: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(2u32.saturating_pow(attempt))
        .min(MAX_BACKOFF)
}

/// The pauses of `retries` retries added up.
pub(crate) fn total_backoff(retries: u32) -> Duration {
    // The pause stops doubling once it reaches MAX_BACKOFF (after a handful of retries).
    let growing = retries.min(8);
    let grown: Duration = (0..growing).map(backoff).sum();
    grown.saturating_add(MAX_BACKOFF.saturating_mul(retries - growing))
}

/// A reqwest error in words; it names the URL (which holds only the order id), never a header.
fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        format!("no answer within {timeout:?}")
    } else if e.is_connect() {
        format!("cannot connect: {e}")
    } else {
        e.to_string()
    }
}

fn error_codes(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let codes: Vec<String> = v
        .get("errors")?
        .as_array()?
        .iter()
        .filter_map(|e| {
            let category = e.get("category").and_then(Value::as_str).unwrap_or("");
            let code = e.get("code").and_then(Value::as_str)?;
            Some(if category.is_empty() {
                code.to_string()
            } else {
                format!("{category}/{code}")
            })
        })
        .collect();
    (!codes.is_empty()).then(|| codes.join(", "))
}

/// Replace the sale's lines, tax and (if it had none) customer with what the order says.
///
/// `order_id` is the id that was fetched; a body for another order is refused.
pub(crate) fn apply_order(sale: &mut Sale, order_id: &str, body: &[u8]) -> Result<(), ParseError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ParseError::Malformed(e.to_string()))?;
    let order = Obj::root(&value)?.obj("order")?;
    if let Some(id) = order.opt_str("id")? {
        if id != order_id {
            return Err(invalid(
                order.path_of("id"),
                format!("{id:?} is not the order that was asked for"),
            ));
        }
    }
    let currency = sale.currency;

    let mut lines = Vec::new();
    for li in order.objects("line_items")? {
        let line_id = li.str("uid")?.to_string();
        let item_type = li.opt_str("item_type")?;
        let name = li.opt_str("name")?.unwrap_or(match item_type {
            Some("CUSTOM_AMOUNT") => "Custom amount",
            Some("GIFT_CARD") => "Gift card",
            _ => "Item",
        });
        let title = match li.opt_str("variation_name")? {
            Some(variation) => format!("{name} ({variation})"),
            None => name.to_string(),
        };
        let quantity = li
            .opt_decimal_str("quantity")?
            .ok_or_else(|| invalid(li.path_of("quantity"), "missing"))?;
        let unit_price = li.money("base_price_money")?;
        same_currency(&unit_price, currency, li.path_of("base_price_money"))?;
        let line_money = |key: &str| -> Result<Decimal, ParseError> {
            match li.opt_money(key)? {
                Some(m) => {
                    same_currency(&m, currency, li.path_of(key))?;
                    Ok(m.amount)
                }
                None => Ok(Decimal::ZERO),
            }
        };
        lines.push(SaleLine {
            line_id,
            sku: li.opt_str("sku")?.map(str::to_string),
            product_id: li.opt_str("catalog_object_id")?.map(str::to_string),
            variant_id: None,
            title,
            vendor: None,
            quantity,
            unit_price: unit_price.amount,
            discount: line_money("total_discount_money")?,
            tax: line_money("total_tax_money")?,
            product_type: None,
            categories: Vec::new(),
            gift_card: item_type == Some("GIFT_CARD"),
        });
    }

    let taxes = order.objects("taxes")?;
    let mut all_inclusive = !taxes.is_empty();
    for t in &taxes {
        all_inclusive &= t.opt_str("type")? == Some("INCLUSIVE");
    }
    let tax = match order.opt_money("total_tax_money")? {
        Some(m) => {
            same_currency(&m, currency, order.path_of("total_tax_money"))?;
            m.amount
        }
        None => Decimal::ZERO,
    };

    if lines.is_empty() {
        // Nothing itemised: keep the payment's amount as one line (and its "tax unknown,
        // inside the amount" reading), but under the order's id so that the sale no longer
        // looks unenriched.
        if let Some(line) = sale.lines.first_mut() {
            line.line_id = order_id.to_string();
            line.title = "order without line items".to_string();
        }
    } else {
        sale.lines = lines;
        sale.tax = tax;
        sale.taxes_included = all_inclusive;
    }
    if sale.customer.is_none() {
        if let Some(customer_id) = order.opt_str("customer_id")? {
            sale.customer = Some(CustomerRef {
                email_verified: None,
                external_id: Some(customer_id.to_string()),
                ..CustomerRef::default()
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_from_100_ms_and_stop_at_2_s() {
        let ms: Vec<u128> = (0..7).map(|a| backoff(a).as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(total_backoff(0), Duration::ZERO);
        assert_eq!(total_backoff(2), Duration::from_millis(300));
        assert_eq!(total_backoff(7), Duration::from_millis(7100));
        // A silly retry count neither loops for ages nor overflows.
        assert!(total_backoff(u32::MAX) > Duration::from_secs(1_000_000));
    }
}
