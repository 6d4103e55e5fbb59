//! Customer events from a POS: link identities (omnichannel: the same e-mail or phone
//! on Shopify and Square is one member), and keep birthday and marketing consent.
//! No points move, so no posting; the delivery is deduplicated like every other.

use chrono::{DateTime, NaiveDate, Utc};
use loyaltyd_adapter::{Consent, ShopId};

use super::earn::find_or_create_member;
use super::tx::{Tx, TxResult};
use super::{keys, Applied, DeliveryOutcome, DeliveryRecord, Ledger, LedgerError};
use crate::member::IdentityClaims;

/// A customer created or updated at a POS.
#[derive(Debug, Clone)]
pub struct CustomerCommand<'a> {
    /// Shop.
    pub shop: &'a ShopId,
    /// Adapter that received it.
    pub adapter: &'a str,
    /// Sender's delivery id.
    pub event_id: &'a str,
    /// Identities and names (at least one identity).
    pub claims: &'a IdentityClaims,
    /// Birthday, if the POS has one.
    pub birthday: Option<NaiveDate>,
    /// Consent per channel; `None` leaves what is stored.
    pub consent: Consent,
    /// The POS's tags for the customer; `None` leaves what is stored.
    pub tags: Option<&'a [String]>,
    /// Sign-up bonus if this creates the member (0: none).
    pub signup_bonus: u32,
    /// The shop's ledger terms and time zone (for the bonus lot).
    pub policy: &'a crate::ledger::policy::LedgerPolicy,
    /// Shop time zone.
    pub timezone: chrono_tz::Tz,
}

impl Ledger {
    /// Create or update the member behind a POS customer.
    pub fn apply_customer(
        &self,
        cmd: &CustomerCommand<'_>,
        now: DateTime<Utc>,
    ) -> Result<Applied, LedgerError> {
        if cmd.claims.identities.is_empty() {
            return Err(LedgerError::Invariant(
                "a customer event needs at least one identity".into(),
            ));
        }
        self.transact(cmd.shop, |tx| customer(tx, cmd, now))
    }
}

fn customer(tx: &Tx<'_>, cmd: &CustomerCommand<'_>, now: DateTime<Utc>) -> TxResult<Applied> {
    let dedupe_key = keys::dedupe(cmd.shop, cmd.adapter, cmd.event_id);
    if let Some(existing) = tx.get::<DeliveryRecord>(tx.index, &dedupe_key)? {
        return Ok(Applied::Duplicate(existing));
    }
    let (mut member, existed) = find_or_create_member(tx, cmd.claims, now)?;
    if !existed {
        super::bonus::welcome(
            tx,
            &mut member,
            cmd.signup_bonus,
            cmd.policy,
            cmd.timezone,
            now,
            now,
        )?;
    }
    // A customer record is the POS's current view: newer names replace older ones.
    if let Some(f) = &cmd.claims.first_name {
        member.first_name = Some(f.clone());
    }
    if let Some(l) = &cmd.claims.last_name {
        member.last_name = Some(l.clone());
    }
    if cmd.birthday.is_some() {
        member.birthday = cmd.birthday;
    }
    if cmd.consent.email.is_some() {
        member.consent.email = cmd.consent.email;
    }
    if cmd.consent.sms.is_some() {
        member.consent.sms = cmd.consent.sms;
    }
    if let Some(tags) = cmd.tags {
        member.tags = tags.to_vec();
    }
    member.updated_at = now;
    tx.save_member(&member)?;
    let r = DeliveryRecord {
        outcome: DeliveryOutcome::CustomerUpdated {
            member: member.id.clone(),
        },
        recorded_at: now,
    };
    tx.put(tx.index, &dedupe_key, &r)?;
    Ok(Applied::New(r))
}
