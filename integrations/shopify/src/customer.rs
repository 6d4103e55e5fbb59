//! Shopify's `customers/create` and `customers/update` payloads → [`CustomerUpsert`].
//!
//! - Ids, email, phone and names are taken as sent (blank strings read as absent);
//!   loyaltyd normalises email and phone itself.
//! - Marketing consent: `email_marketing_consent.state` and `sms_marketing_consent.state`
//!   `subscribed` → `Some(true)`; `unsubscribed` or `not_subscribed` → `Some(false)`;
//!   any other state (`pending` double opt-in, `redacted`, `invalid`) or an absent object
//!   → `None` ("Shopify did not say"). Since API 2025-01 Shopify no longer sends these
//!   objects in customer webhooks (consent moved to the
//!   `customers/email_marketing_consent_update` and `customers/marketing_consent_update`
//!   topics), so with current API versions consent is `None` and the member's stored
//!   consent is left as it is.
//! - Birthday: Shopify's customer has no birthday field. It is taken, in this order,
//!   from a top-level `birthday` (some apps and older custom integrations add one) or a
//!   metafield included in the webhook (subscriptions that request metafields) whose key
//!   is `birthday`, `birth_date`, `birthdate` or `date_of_birth` in any namespace (such
//!   as `facts.birth_date`), and only when the value is a plain `YYYY-MM-DD` date.
//!   Anything else — other formats, impossible dates, and the free-text `note`, which is
//!   never parsed — gives `None`; a bad birthday never rejects the customer.

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use loyaltyd_adapter::{Consent, CustomerRef, CustomerUpsert, ParseError};
use serde::Deserialize;
use serde_json::Value;

/// Metafield keys read as a birthday.
const BIRTHDAY_KEYS: [&str; 4] = ["birthday", "birth_date", "birthdate", "date_of_birth"];

#[derive(Debug, Deserialize)]
pub(crate) struct ShopifyCustomer {
    id: u64,
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
    #[serde(default)]
    created_at: Option<DateTime<FixedOffset>>,
    #[serde(default)]
    updated_at: Option<DateTime<FixedOffset>>,
    #[serde(default)]
    email_marketing_consent: Option<MarketingConsent>,
    #[serde(default)]
    sms_marketing_consent: Option<MarketingConsent>,
    /// Comma-separated, as Shopify sends it.
    #[serde(default)]
    tags: Option<String>,
    /// Not a Shopify field: read leniently (any JSON type), used only when a date.
    #[serde(default)]
    birthday: Option<Value>,
    #[serde(default)]
    metafields: Option<Vec<Metafield>>,
}

#[derive(Debug, Deserialize)]
struct MarketingConsent {
    #[serde(default)]
    state: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Metafield {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    value: Option<Value>,
}

impl ShopifyCustomer {
    pub(crate) fn from_json(body: &[u8]) -> Result<ShopifyCustomer, ParseError> {
        serde_json::from_slice(body).map_err(|e| ParseError::Malformed(e.to_string()))
    }

    /// When the customer was created.
    pub(crate) fn created_at(&self) -> Option<DateTime<Utc>> {
        self.created_at.map(|t| t.with_timezone(&Utc))
    }

    /// When the customer was last updated.
    pub(crate) fn updated_at(&self) -> Option<DateTime<Utc>> {
        self.updated_at.map(|t| t.with_timezone(&Utc))
    }

    pub(crate) fn into_upsert(self) -> CustomerUpsert {
        let birthday = self.birthday.as_ref().and_then(plain_date).or_else(|| {
            self.metafields.iter().flatten().find_map(|m| {
                let key = m.key.as_deref()?;
                if BIRTHDAY_KEYS.contains(&key) {
                    m.value.as_ref().and_then(plain_date)
                } else {
                    None
                }
            })
        });
        let consent = Consent {
            email: consent(self.email_marketing_consent.as_ref()),
            sms: consent(self.sms_marketing_consent.as_ref()),
        };
        let nonblank = |s: Option<String>| s.filter(|v| !v.trim().is_empty());
        CustomerUpsert {
            customer: CustomerRef {
                external_id: Some(self.id.to_string()),
                email_verified: self.verified_email.filter(|_| self.email.is_some()),
                email: nonblank(self.email),
                phone: nonblank(self.phone),
                first_name: nonblank(self.first_name),
                last_name: nonblank(self.last_name),
            },
            birthday,
            consent,
            tags: self.tags.as_deref().map(|t| {
                t.split(',')
                    .map(|s| s.trim().to_lowercase())
                    .filter(|s| !s.is_empty())
                    .collect()
            }),
        }
    }
}

fn consent(c: Option<&MarketingConsent>) -> Option<bool> {
    match c?.state.as_deref()? {
        "subscribed" => Some(true),
        "unsubscribed" | "not_subscribed" => Some(false),
        _ => None,
    }
}

/// A JSON string holding exactly `YYYY-MM-DD` that names a real day.
fn plain_date(v: &Value) -> Option<NaiveDate> {
    let s = v.as_str()?;
    let b = s.as_bytes();
    let shape = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        });
    if !shape {
        return None;
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upsert(json: &str) -> CustomerUpsert {
        ShopifyCustomer::from_json(json.as_bytes())
            .unwrap()
            .into_upsert()
    }

    #[test]
    fn every_consent_state_maps_as_documented() {
        for (state, want) in [
            ("subscribed", Some(true)),
            ("unsubscribed", Some(false)),
            ("not_subscribed", Some(false)),
            ("pending", None),
            ("redacted", None),
            ("invalid", None),
        ] {
            let u = upsert(&format!(
                r#"{{"id": 1, "email_marketing_consent": {{"state": "{state}"}},
                    "sms_marketing_consent": {{"state": "{state}"}}}}"#
            ));
            assert_eq!(u.consent.email, want, "{state}");
            assert_eq!(u.consent.sms, want, "{state}");
        }
        let u =
            upsert(r#"{"id": 1, "email_marketing_consent": null, "sms_marketing_consent": {}}"#);
        assert_eq!(u.consent, Consent::default());
    }

    #[test]
    fn a_birthday_is_read_only_from_a_plain_date() {
        let date = |y, m, d| NaiveDate::from_ymd_opt(y, m, d);
        for (json, want) in [
            (r#"{"id": 1, "birthday": "1990-03-12"}"#, date(1990, 3, 12)),
            (
                r#"{"id": 1, "metafields": [{"namespace": "custom", "key": "date_of_birth", "value": "1985-12-01"}]}"#,
                date(1985, 12, 1),
            ),
            (
                r#"{"id": 1, "birthday": "12/03/1990",
                    "metafields": [{"namespace": "facts", "key": "birth_date", "value": "1990-03-12"}]}"#,
                date(1990, 3, 12),
            ),
            (r#"{"id": 1, "birthday": "1990-02-30"}"#, None),
            (r#"{"id": 1, "birthday": "1990-3-12"}"#, None),
            (r#"{"id": 1, "birthday": "+1990-03-12"}"#, None),
            (r#"{"id": 1, "birthday": 19900312}"#, None),
            (r#"{"id": 1, "birthday": "1990-03-12T00:00:00Z"}"#, None),
            (
                r#"{"id": 1, "metafields": [{"namespace": "facts", "key": "anniversary", "value": "2010-06-01"}]}"#,
                None,
            ),
            (r#"{"id": 1, "note": "birthday: 1990-03-12"}"#, None),
            (r#"{"id": 1, "metafields": null}"#, None),
        ] {
            assert_eq!(upsert(json).birthday, want, "{json}");
        }
    }

    #[test]
    fn blank_contact_fields_read_as_absent() {
        let u = upsert(r#"{"id": 7, "email": " ", "phone": "", "first_name": "Ada"}"#);
        assert_eq!(
            u.customer,
            CustomerRef {
                external_id: Some("7".into()),
                first_name: Some("Ada".into()),
                ..CustomerRef::default()
            }
        );
    }
}
