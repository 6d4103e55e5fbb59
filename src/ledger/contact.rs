//! What the notifier needs of members: contact details, consent, and consent changes
//! from staff, from STOP/START replies and from providers reporting an opt-out.

use chrono::{DateTime, Utc};
use loyaltyd_adapter::ShopId;

use super::{Ledger, LedgerError};
use crate::member::{Member, MemberId};
use crate::notify::delivery::{Contact, Directory, DurableFuture};

/// A consent change: `None` leaves a channel as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConsentChange {
    /// E-mail consent.
    pub email: Option<bool>,
    /// SMS consent.
    pub sms: Option<bool>,
}

impl Ledger {
    /// Change a member's consent (no points move, so no posting). Returns the member
    /// as stored, or `None` when there is no such member.
    pub fn set_consent(
        &self,
        shop: &ShopId,
        member: &MemberId,
        change: ConsentChange,
        now: DateTime<Utc>,
    ) -> Result<Option<Member>, LedgerError> {
        self.transact(shop, |tx| {
            let Some(mut m) = tx.member(member)? else {
                return Ok(None);
            };
            if change.email.is_some() {
                m.consent.email = change.email;
            }
            if change.sms.is_some() {
                m.consent.sms = change.sms;
            }
            m.updated_at = now;
            tx.save_member(&m)?;
            Ok(Some(m))
        })
    }
}

impl Directory for Ledger {
    fn durable(&self) -> DurableFuture<'_> {
        Box::pin(async move { Ledger::durable(self).await.map_err(|e| e.to_string()) })
    }

    fn contact(&self, shop: &ShopId, member: &MemberId) -> Option<Contact> {
        let m = self.member(shop, member).ok()??;
        Some(Contact {
            phone: m.phone,
            email: m.email,
            first_name: m.first_name,
            consent: m.consent,
        })
    }

    fn withdraw_sms_consent(&self, shop: &ShopId, member: &MemberId) {
        let change = ConsentChange {
            sms: Some(false),
            email: None,
        };
        if let Err(e) = self.set_consent(shop, member, change, Utc::now()) {
            tracing::error!(%shop, %member, error = %e, "could not withdraw SMS consent");
        }
    }
}

/// A page of members.
#[derive(Debug, Clone)]
pub struct MemberPage {
    /// Members, in id order.
    pub members: Vec<Member>,
    /// Give this as `after` for the next page; `None` on the last page.
    pub next: Option<MemberId>,
}

impl Ledger {
    /// Members of a shop in id order after `after`, at most `limit`, keeping those whose
    /// name, e-mail, phone or POS customer id contains `query` (case-insensitive).
    pub fn list_members(
        &self,
        shop: &ShopId,
        after: Option<&MemberId>,
        limit: usize,
        query: Option<&str>,
    ) -> Result<MemberPage, LedgerError> {
        let prefix = super::keys::shop_prefix(shop);
        use std::ops::Bound;
        let start = match after {
            Some(m) => Bound::Excluded(super::keys::member(shop, m)),
            None => Bound::Included(prefix.clone()),
        };
        let q = query.map(str::to_lowercase).filter(|q| !q.is_empty());
        let mut members = Vec::new();
        let mut next = None;
        for item in self.members.range::<Vec<u8>, _>((start, Bound::Unbounded)) {
            let (k, v) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            let r: super::tx::MemberRecord = serde_json::from_slice(&v)?;
            let m = r.member;
            if let Some(q) = &q {
                let hit = [&m.first_name, &m.last_name, &m.email, &m.phone]
                    .into_iter()
                    .flatten()
                    .chain(m.identities.iter().map(|i| &i.value))
                    .any(|v| v.to_lowercase().contains(q.as_str()))
                    || m.id.as_str().contains(q.as_str());
                if !hit {
                    continue;
                }
            }
            if members.len() == limit {
                next = members.last().map(|m: &Member| m.id.clone());
                break;
            }
            members.push(m);
        }
        Ok(MemberPage { members, next })
    }

    /// Change a member's birthday and/or tags (staff).
    pub fn update_profile(
        &self,
        shop: &ShopId,
        member: &MemberId,
        birthday: Option<Option<chrono::NaiveDate>>,
        tags: Option<Vec<String>>,
        now: DateTime<Utc>,
    ) -> Result<Option<Member>, LedgerError> {
        self.transact(shop, |tx| {
            let Some(mut m) = tx.member(member)? else {
                return Ok(None);
            };
            if let Some(b) = birthday {
                m.birthday = b;
            }
            if let Some(t) = &tags {
                m.tags = t.clone();
            }
            m.updated_at = now;
            tx.save_member(&m)?;
            Ok(Some(m))
        })
    }
}
