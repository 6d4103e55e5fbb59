//! Points for events other than sales — a sign-up bonus when a member is first
//! created, a birthday bonus once a year — each given at most once per its key.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use chrono_tz::Tz;
use loyaltyd_adapter::ShopId;

use super::jobs::JobReport;
use super::journal::{Account, Entry, Posting, PostingKind};
use super::policy::LedgerPolicy;
use super::tx::{Credit, Tx, TxResult};
use super::{keys, Ledger, LedgerError};
use crate::member::{Member, MemberId};
use crate::points::Points;

/// Give `points` to `member` once for `key` (e.g. `signup:<member>`,
/// `birthday:<member>:<year>`). Returns whether anything was posted; the caller saves
/// the member.
#[allow(clippy::too_many_arguments)]
pub(crate) fn grant_bonus(
    tx: &Tx<'_>,
    member: &mut Member,
    points: u32,
    key: &str,
    reason: &str,
    policy: &LedgerPolicy,
    timezone: Tz,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> TxResult<bool> {
    let index_key = keys::api_idempotency(tx.shop, &format!("bonus:{key}"));
    if points == 0 || tx.index.get(&index_key)?.is_some() {
        return Ok(false);
    }
    let amount = Points(i64::from(points));
    let seq = tx.next_seq()?;
    let mut lots = tx.lots(&member.id)?;
    let (credit, changes) = tx.credit(
        &member.id,
        &mut lots,
        seq,
        Credit {
            amount,
            day: at.with_timezone(&timezone).date_naive(),
            pending_until: None,
            expires_at: policy.lot_expiry(at, timezone),
            earned_at: at,
        },
    )?;
    let posting = Posting {
        seq,
        shop: tx.shop.clone(),
        rules_version: None,
        cash_back: rust_decimal::Decimal::ZERO,
        member: member.id.clone(),
        kind: PostingKind::Bonus,
        entries: vec![
            Entry {
                account: Account::Issued,
                amount: -amount,
            },
            credit,
        ],
        lots: changes,
        occurred_at: at,
        recorded_at: now,
        idempotency_key: format!("bonus:{key}"),
        order_id: None,
        explanation: Vec::new(),
        actor: Some("system".into()),
        reason: Some(reason.to_string()),
        reward: None,
        shortfall: Points::ZERO,
    };
    tx.post(&posting)?;
    tx.save_lots(&member.id, &lots)?;
    tx.index.insert(index_key, &seq.to_be_bytes())?;
    member.lifetime += amount;
    tx.notify_posted(member, &posting, amount, None)?;
    Ok(true)
}

/// The sign-up bonus of a member just created (once per member).
pub(crate) fn welcome(
    tx: &Tx<'_>,
    member: &mut Member,
    points: u32,
    policy: &LedgerPolicy,
    timezone: Tz,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> TxResult<bool> {
    let key = format!("signup:{}", member.id);
    grant_bonus(
        tx, member, points, &key, "welcome", policy, timezone, at, now,
    )
}

/// Whether `birthday` falls on `today` (29 February counts on 28 February in other years).
pub fn is_birthday(birthday: NaiveDate, today: NaiveDate) -> bool {
    if birthday.month() == 2
        && birthday.day() == 29
        && NaiveDate::from_ymd_opt(today.year(), 2, 29).is_none()
    {
        return today.month() == 2 && today.day() == 28;
    }
    birthday.month() == today.month() && birthday.day() == today.day()
}

/// Referral bonuses paid on a referee's first purchase.
#[derive(Debug, Clone, Copy)]
pub struct ReferralBonuses {
    /// To the referrer.
    pub referrer: u32,
    /// To the referee.
    pub referee: u32,
}

/// On a member's first purchase: if one of `identities` was referred, pay both sides
/// once and close the referral. The caller saves `member`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn settle_referral(
    tx: &Tx<'_>,
    member: &mut Member,
    identities: &[crate::member::Identity],
    bonuses: ReferralBonuses,
    policy: &LedgerPolicy,
    timezone: Tz,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> TxResult<()> {
    for ident in identities {
        let key = keys::referral(tx.shop, ident.kind, &ident.value);
        let Some(referrer) = tx.index.get(&key)? else {
            continue;
        };
        tx.index.remove(key)?;
        let Some(referrer_id) = MemberId::parse(std::str::from_utf8(&referrer).unwrap_or_default())
        else {
            continue;
        };
        if referrer_id == member.id {
            continue;
        }
        if let Some(mut referrer) = tx.member(&referrer_id)? {
            let key = format!("referral:{}:referrer", member.id);
            let why = format!("referred {}", member.id);
            grant_bonus(
                tx,
                &mut referrer,
                bonuses.referrer,
                &key,
                &why,
                policy,
                timezone,
                at,
                now,
            )?;
            tx.save_member(&referrer)?;
        }
        let key = format!("referral:{}:referee", member.id);
        let why = format!("referred by {referrer_id}");
        grant_bonus(
            tx,
            member,
            bonuses.referee,
            &key,
            &why,
            policy,
            timezone,
            at,
            now,
        )?;
        break;
    }
    Ok(())
}

impl Ledger {
    /// Record that `referrer` referred whoever holds `identity` (not a member yet).
    /// Returns false when the identity already belongs to a member.
    pub fn register_referral(
        &self,
        shop: &ShopId,
        referrer: &MemberId,
        identity: &crate::member::Identity,
    ) -> Result<bool, LedgerError> {
        if self
            .member_by_identity(shop, identity.kind, &identity.value)?
            .is_some()
        {
            return Ok(false);
        }
        if self.member(shop, referrer)?.is_none() {
            return Err(LedgerError::UnknownMember);
        }
        self.index.insert(
            keys::referral(shop, identity.kind, &identity.value),
            referrer.as_str().as_bytes(),
        )?;
        Ok(true)
    }

    /// Give the birthday bonus to every member whose birthday is today in the shop's
    /// time zone and who has not had it this year. Idempotent (keyed by member and year).
    pub fn birthday_bonuses(
        &self,
        shop: &ShopId,
        points: u32,
        policy: &LedgerPolicy,
        timezone: Tz,
        now: DateTime<Utc>,
    ) -> Result<JobReport, LedgerError> {
        let mut report = JobReport::default();
        if points == 0 {
            return Ok(report);
        }
        let today = now.with_timezone(&timezone).date_naive();
        for record in self.records(shop) {
            if self.birthday_record(shop, &record?.member, points, policy, timezone, today, now)? {
                report.postings += 1;
                report.points += Points(i64::from(points));
            }
        }
        Ok(report)
    }

    /// The birthday bonus for one member, as their record shows them: whether it was
    /// given.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn birthday_record(
        &self,
        shop: &ShopId,
        m: &Member,
        points: u32,
        policy: &LedgerPolicy,
        timezone: Tz,
        today: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<bool, LedgerError> {
        let due = m.birthday.is_some_and(|b| is_birthday(b, today))
            && m.birthday_bonus_year != Some(today.year());
        if !due {
            return Ok(false);
        }
        let id: &MemberId = &m.id;
        self.transact(shop, |tx| {
            let Some(mut member) = tx.member(id)? else {
                return Ok(false);
            };
            let key = format!("birthday:{}:{}", member.id, today.year());
            let given = grant_bonus(
                tx,
                &mut member,
                points,
                &key,
                "happy birthday",
                policy,
                timezone,
                now,
                now,
            )?;
            member.birthday_bonus_year = Some(today.year());
            member.updated_at = now;
            tx.save_member(&member)?;
            Ok(given)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leap_day_birthday_is_celebrated_on_the_28th_in_other_years() {
        let b: NaiveDate = "2000-02-29".parse().unwrap();
        assert!(is_birthday(b, "2027-02-28".parse().unwrap()));
        assert!(!is_birthday(b, "2028-02-28".parse().unwrap()));
        assert!(is_birthday(b, "2028-02-29".parse().unwrap()));
    }
}
