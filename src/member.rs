//! Members and the identities that find them: POS customer ids, e-mail, phone.
//!
//! Contact details are normalised here, once: e-mails are trimmed and lower-cased,
//! phones become E.164 using the shop's country for numbers written without `+`.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::points::Points;

/// A member's id within a shop (`m_` + 20 hex digits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MemberId(String);

impl MemberId {
    /// A fresh random id.
    pub fn generate() -> MemberId {
        let u = uuid::Uuid::new_v4().simple().to_string();
        MemberId(format!("m_{}", &u[..20]))
    }

    /// Accept an id from outside (URL path) if it has the shape we issue.
    pub fn parse(s: &str) -> Option<MemberId> {
        let hex = s.strip_prefix("m_")?;
        (hex.len() == 20 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| MemberId(s.to_string()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The kinds of identity that find a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityKind {
    /// A Shopify customer id.
    ShopifyCustomerId,
    /// A Square customer id.
    SquareCustomerId,
    /// A lower-cased e-mail address.
    Email,
    /// An E.164 phone number.
    Phone,
}

impl IdentityKind {
    /// Stable name used in storage keys and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityKind::ShopifyCustomerId => "shopify_customer_id",
            IdentityKind::SquareCustomerId => "square_customer_id",
            IdentityKind::Email => "email",
            IdentityKind::Phone => "phone",
        }
    }

    /// The customer-id kind of an adapter, if it has one.
    pub fn customer_id_of(adapter: &str) -> Option<IdentityKind> {
        match adapter {
            "shopify" => Some(IdentityKind::ShopifyCustomerId),
            "square" => Some(IdentityKind::SquareCustomerId),
            _ => None,
        }
    }
}

/// One identity of a member.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Identity {
    /// What kind.
    pub kind: IdentityKind,
    /// Its normalised value.
    pub value: String,
}

/// An identity linked to a member, with where and when the link was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkedIdentity {
    /// What kind.
    pub kind: IdentityKind,
    /// Its normalised value.
    pub value: String,
    /// The adapter whose event brought it (`shopify`, `square`, …).
    #[serde(default)]
    pub source: Option<String>,
    /// When it was linked.
    #[serde(default)]
    pub linked_at: Option<DateTime<Utc>>,
}

/// The identities a sale or customer event offers, in the order they are tried.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityClaims {
    /// Tried in order: POS customer id, e-mail, phone.
    pub identities: Vec<Identity>,
    /// Given name, if known.
    pub first_name: Option<String>,
    /// Family name, if known.
    pub last_name: Option<String>,
    /// The adapter that offered them.
    pub source: Option<String>,
    /// An e-mail the sender says is NOT verified: kept as a contact on the member,
    /// never used to find or merge members (someone could sign up with another
    /// person's address).
    pub unverified_email: Option<String>,
}

impl IdentityClaims {
    /// Build from an adapter's customer reference, normalising contacts.
    pub fn from_customer(
        adapter: &str,
        customer: &loyaltyd_adapter::CustomerRef,
        country: phonenumber::country::Id,
    ) -> IdentityClaims {
        let mut identities = Vec::new();
        if let (Some(kind), Some(id)) = (
            IdentityKind::customer_id_of(adapter),
            customer.external_id.as_deref(),
        ) {
            if !id.trim().is_empty() {
                identities.push(Identity {
                    kind,
                    value: id.trim().to_string(),
                });
            }
        }
        let mut unverified_email = None;
        if let Some(email) = customer.email.as_deref().and_then(normalise_email) {
            if customer.email_verified == Some(false) {
                unverified_email = Some(email);
            } else {
                identities.push(Identity {
                    kind: IdentityKind::Email,
                    value: email,
                });
            }
        }
        if let Some(phone) = customer
            .phone
            .as_deref()
            .and_then(|p| normalise_phone(p, country))
        {
            identities.push(Identity {
                kind: IdentityKind::Phone,
                value: phone,
            });
        }
        IdentityClaims {
            identities,
            first_name: customer.first_name.clone(),
            last_name: customer.last_name.clone(),
            source: Some(adapter.to_string()),
            unverified_email,
        }
    }
}

/// Trim and lower-case an e-mail; `None` if it cannot be one.
pub fn normalise_email(raw: &str) -> Option<String> {
    let e = raw.trim().to_lowercase();
    let (local, domain) = e.split_once('@')?;
    (!local.is_empty() && domain.contains('.') && !e.contains(char::is_whitespace)).then_some(e)
}

/// A phone number in E.164 (`+15145550142`); `None` if it is not a valid number.
pub fn normalise_phone(raw: &str, country: phonenumber::country::Id) -> Option<String> {
    let n = phonenumber::parse(Some(country), raw.trim()).ok()?;
    phonenumber::is_valid(&n).then(|| n.format().mode(phonenumber::Mode::E164).to_string())
}

/// `a***@example.com` / `+1******0142`: enough to recognise, not enough to leak.
pub fn redact(value: &str) -> String {
    if let Some((local, domain)) = value.split_once('@') {
        let first: String = local.chars().take(1).collect();
        return format!("{first}***@{domain}");
    }
    let n = value.chars().count();
    if n <= 4 {
        return "****".into();
    }
    let head: String = value.chars().take(2).collect();
    let tail: String = value.chars().skip(n - 4).collect();
    format!("{head}{}{tail}", "*".repeat(n - 6.min(n)))
}

/// A member as stored. Balances live in the ledger's balance table, not here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// Id.
    pub id: MemberId,
    /// Normalised e-mail, if known.
    pub email: Option<String>,
    /// E.164 phone, if known.
    pub phone: Option<String>,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
    /// Every identity that finds this member, with where it came from.
    pub identities: Vec<LinkedIdentity>,
    /// Birthday, when a POS or staff gave it.
    #[serde(default)]
    pub birthday: Option<chrono::NaiveDate>,
    /// Marketing consent per channel (`None`: never stated).
    #[serde(default)]
    pub consent: loyaltyd_adapter::Consent,
    /// Tier name; tiers come with the rules engine.
    pub tier: Option<String>,
    /// Tags rules can test (`card`, `staff`, …).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Sales scored so far (0 = the next sale is the first purchase).
    #[serde(default)]
    pub sales: u32,
    /// Points earned on one local day, for per-day caps.
    #[serde(default)]
    pub earned_day: Option<(chrono::NaiveDate, Points)>,
    /// Points earned in one local month (`YYYY-MM`), for per-month caps.
    #[serde(default)]
    pub earned_month: Option<(String, Points)>,
    /// Points and spend per local month, for tier qualification (last 24 months).
    #[serde(default)]
    pub tier_buckets: Vec<crate::rules::tiers::MonthBucket>,
    /// The last year a birthday bonus was given.
    #[serde(default)]
    pub birthday_bonus_year: Option<i32>,
    /// Store credit earned as cash back, in the shop currency.
    #[serde(default, with = "rust_decimal::serde::str")]
    pub store_credit: rust_decimal::Decimal,
    /// Set when staff merged this member into another: its identities, points and
    /// lots moved there, and refunds of its old orders follow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<MemberId>,
    /// Bumped on every change: scoring reads a snapshot of the member outside the
    /// transaction, and the transaction refuses to post if the member changed since.
    #[serde(default)]
    pub revision: u64,
    /// Points ever earned (never decreases on spending).
    pub lifetime: Points,
    /// Last earning or redemption (drives inactivity expiry).
    #[serde(default)]
    pub last_activity_at: Option<DateTime<Utc>>,
    /// When the member was first seen.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use phonenumber::country::Id;

    #[test]
    fn emails_are_lower_cased_and_trimmed() {
        assert_eq!(
            normalise_email("  Guest.Buyer@Example.COM "),
            Some("guest.buyer@example.com".into())
        );
        assert_eq!(normalise_email("not-an-email"), None);
    }

    #[test]
    fn national_phone_numbers_become_e164_with_the_shop_country() {
        assert_eq!(
            normalise_phone("(514) 555-0142", Id::CA),
            Some("+15145550142".into())
        );
        assert_eq!(
            normalise_phone("+44 20 7946 0958", Id::US),
            Some("+442079460958".into())
        );
        assert_eq!(normalise_phone("12", Id::US), None);
    }

    #[test]
    fn redaction_hides_most_of_a_contact() {
        assert_eq!(redact("ada@example.com"), "a***@example.com");
        assert_eq!(redact("+15145550142"), "+1******0142");
    }

    #[test]
    fn an_email_the_sender_marks_unverified_never_finds_a_member() {
        let c = loyaltyd_adapter::CustomerRef {
            external_id: Some("42".into()),
            email: Some("Ada@Example.com".into()),
            email_verified: Some(false),
            ..Default::default()
        };
        let claims = IdentityClaims::from_customer("shopify", &c, Id::US);
        assert!(claims
            .identities
            .iter()
            .all(|i| i.kind != IdentityKind::Email));
        assert_eq!(claims.unverified_email.as_deref(), Some("ada@example.com"));
        let verified = loyaltyd_adapter::CustomerRef {
            email_verified: Some(true),
            ..c
        };
        let claims = IdentityClaims::from_customer("shopify", &verified, Id::US);
        assert!(claims
            .identities
            .iter()
            .any(|i| i.kind == IdentityKind::Email));
    }

    #[test]
    fn member_ids_from_outside_must_have_our_shape() {
        let id = MemberId::generate();
        assert_eq!(MemberId::parse(id.as_str()), Some(id));
        assert_eq!(MemberId::parse("../../etc"), None);
    }
}
