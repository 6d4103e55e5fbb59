//! What the notifier needs of members: contact details, consent, and consent changes
//! from staff, from STOP/START replies and from providers reporting an opt-out.

use chrono::{DateTime, Utc};
use loyaltyd_adapter::ShopId;

use super::{Ledger, LedgerError};
use crate::member::{Member, MemberId};
use crate::notify::delivery::{Contact, Directory};

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
