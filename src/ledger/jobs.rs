//! Time-driven postings: pending points maturing at the end of the returns window,
//! and points expiring. Both are idempotent: they act on the state of each member's
//! lots (a matured or expired lot is no longer due), one member per transaction, so
//! running twice, or again after a crash half way, changes nothing more.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use loyaltyd_adapter::ShopId;

use super::journal::{Account, Entry, LotChange, Posting, PostingKind};
use super::lots::Lot;
use super::policy::{ExpiryPolicy, LedgerPolicy};
use super::tx::{MemberRecord, Tx, TxResult};
use super::{Ledger, LedgerError};
use crate::member::{Member, MemberId};
use crate::points::Points;

/// What a job run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobReport {
    /// Postings made.
    pub postings: u64,
    /// Points moved.
    pub points: Points,
}

impl Ledger {
    /// Move every pending lot whose returns window ended by `now` to available.
    pub fn mature_due(&self, shop: &ShopId, now: DateTime<Utc>) -> Result<JobReport, LedgerError> {
        let mut report = JobReport::default();
        for record in self.records(shop) {
            report.add(self.mature_record(shop, &record?, now)?);
        }
        Ok(report)
    }

    /// Maturation for one member, as `record` shows them (a transaction only when
    /// something is due).
    pub(super) fn mature_record(
        &self,
        shop: &ShopId,
        record: &MemberRecord,
        now: DateTime<Utc>,
    ) -> Result<Option<Points>, LedgerError> {
        if !record
            .lots
            .iter()
            .any(|l| l.pending_until.is_some_and(|t| t <= now))
        {
            return Ok(None);
        }
        let member = &record.member.id;
        self.transact(shop, |tx| mature_member(tx, member, now))
    }

    /// Expire every lot due by `now` under the shop's policy.
    pub fn expire_due(
        &self,
        shop: &ShopId,
        policy: &LedgerPolicy,
        timezone: Tz,
        now: DateTime<Utc>,
    ) -> Result<JobReport, LedgerError> {
        let mut report = JobReport::default();
        if policy.expiry == ExpiryPolicy::Never {
            return Ok(report);
        }
        for record in self.records(shop) {
            report.add(self.expire_record(shop, &record?, policy, timezone, now)?);
        }
        Ok(report)
    }

    /// Expiry for one member, as `record` shows them.
    pub(super) fn expire_record(
        &self,
        shop: &ShopId,
        record: &MemberRecord,
        policy: &LedgerPolicy,
        timezone: Tz,
        now: DateTime<Utc>,
    ) -> Result<Option<Points>, LedgerError> {
        // Most members have nothing due: look before opening a transaction.
        if expiring_lots(&record.member, &record.lots, policy, timezone, now).is_empty() {
            return Ok(None);
        }
        let member = &record.member.id;
        self.transact(shop, |tx| expire_member(tx, member, policy, timezone, now))
    }
}

impl JobReport {
    /// Count one member's posting, if a job made one.
    pub(super) fn add(&mut self, moved: Option<Points>) {
        if let Some(points) = moved {
            self.postings += 1;
            self.points += points;
        }
    }
}

fn mature_member(
    tx: &Tx<'_>,
    member_id: &MemberId,
    now: DateTime<Utc>,
) -> TxResult<Option<Points>> {
    let member = match tx.member(member_id)? {
        Some(m) => m,
        None => return Ok(None),
    };
    let mut lots = tx.lots(member_id)?;
    let due: Vec<(u64, Points)> = lots
        .lots
        .iter()
        .filter(|l| l.pending_until.is_some_and(|t| t <= now))
        .map(|l| (l.id, l.remaining))
        .collect();
    if due.is_empty() {
        return Ok(None);
    }
    let amount = due.iter().fold(Points::ZERO, |a, (_, p)| a + *p);
    let mut changes = Vec::new();
    for (lot, _) in &due {
        let c = LotChange::Mature { lot: *lot };
        lots.apply(&c, now).map_err(super::tx::invariant)?;
        changes.push(c);
    }
    // A negative available balance (debt from an earlier clawback) is paid first.
    let available_acc = Account::MemberAvailable(member_id.clone());
    let debt = Points((-tx.balance(&available_acc)?.0).max(0));
    if debt.0 > 0 {
        let mut left = debt;
        for (lot, _) in &due {
            let (c, t) = lots.take_from(*lot, left);
            changes.extend(c);
            left = left - t;
        }
    }
    let seq = tx.next_seq()?;
    let first = due.first().map(|d| d.0).unwrap_or_default();
    let posting = Posting {
        seq,
        shop: tx.shop.clone(),
        rules_version: None,
        cash_back: rust_decimal::Decimal::ZERO,
        member: member_id.clone(),
        kind: PostingKind::Mature,
        entries: vec![
            Entry {
                account: Account::MemberPending(member_id.clone()),
                amount: -amount,
            },
            Entry {
                account: available_acc.clone(),
                amount,
            },
        ],
        lots: changes,
        occurred_at: now,
        recorded_at: now,
        idempotency_key: format!("job:mature:lot:{first}"),
        order_id: None,
        explanation: Vec::new(),
        actor: Some("system".into()),
        reason: Some("returns window ended".into()),
        reward: None,
        shortfall: Points::ZERO,
    };
    tx.post(&posting)?;
    tx.save_lots(member_id, &lots)?;
    tx.notify_posted(&member, &posting, amount, None)?;
    Ok(Some(amount))
}

/// The lots `policy` expires at `now`: fixed-age lots past their date, or, after the
/// member's inactivity deadline, every available lot. A job never acts on lots from
/// after its own clock (`jobs run --at`).
fn expiring_lots(
    member: &Member,
    lots: &[Lot],
    policy: &LedgerPolicy,
    timezone: Tz,
    now: DateTime<Utc>,
) -> Vec<u64> {
    let open = |l: &&Lot| !l.is_pending() && l.earned_at <= now;
    match policy.expiry {
        ExpiryPolicy::Never => Vec::new(),
        ExpiryPolicy::Fixed { .. } => lots
            .iter()
            .filter(open)
            .filter(|l| l.expires_at.is_some_and(|t| t <= now))
            .map(|l| l.id)
            .collect(),
        ExpiryPolicy::Inactivity { .. } => {
            let last = member.last_activity_at.unwrap_or(member.created_at);
            match policy.inactivity_deadline(last, timezone) {
                Some(deadline) if deadline <= now => {
                    lots.iter().filter(open).map(|l| l.id).collect()
                }
                _ => Vec::new(),
            }
        }
    }
}

fn expire_member(
    tx: &Tx<'_>,
    member_id: &MemberId,
    policy: &LedgerPolicy,
    timezone: Tz,
    now: DateTime<Utc>,
) -> TxResult<Option<Points>> {
    let member = match tx.member(member_id)? {
        Some(m) => m,
        None => return Ok(None),
    };
    let mut lots = tx.lots(member_id)?;
    let due = expiring_lots(&member, &lots.lots, policy, timezone, now);
    if due.is_empty() {
        return Ok(None);
    }
    let mut changes = Vec::new();
    let mut amount = Points::ZERO;
    for lot in &due {
        let (c, t) = lots.take_from(*lot, Points(i64::MAX));
        changes.extend(c);
        amount += t;
    }
    let seq = tx.next_seq()?;
    let available_acc = Account::MemberAvailable(member_id.clone());
    let posting = Posting {
        seq,
        shop: tx.shop.clone(),
        rules_version: None,
        cash_back: rust_decimal::Decimal::ZERO,
        member: member_id.clone(),
        kind: PostingKind::Expire,
        entries: vec![
            Entry {
                account: available_acc.clone(),
                amount: -amount,
            },
            Entry {
                account: Account::Expired,
                amount,
            },
        ],
        lots: changes,
        occurred_at: now,
        recorded_at: now,
        idempotency_key: format!("job:expire:lot:{}", due[0]),
        order_id: None,
        explanation: Vec::new(),
        actor: Some("system".into()),
        reason: Some(match policy.expiry {
            ExpiryPolicy::Inactivity { days } => format!("no activity for {days} days"),
            ExpiryPolicy::Fixed { days } => format!("points older than {days} days"),
            ExpiryPolicy::Never => String::new(),
        }),
        reward: None,
        shortfall: Points::ZERO,
    };
    tx.post(&posting)?;
    tx.save_lots(member_id, &lots)?;
    tx.notify_posted(&member, &posting, amount, None)?;
    Ok(Some(amount))
}

impl Ledger {
    /// Queue an "expiring soon" notice for every member with points lapsing within
    /// `days` of `now`: once per member and expiry date (the key is remembered, so
    /// running again queues nothing new). Returns how many notices were queued.
    pub fn warn_expiring(
        &self,
        shop: &ShopId,
        days: u32,
        now: DateTime<Utc>,
    ) -> Result<u64, LedgerError> {
        if days == 0 {
            return Ok(0);
        }
        let horizon = now + chrono::Duration::days(i64::from(days));
        let mut queued = 0;
        for record in self.records(shop) {
            if self.warn_record(shop, &record?, horizon, now)? {
                queued += 1;
            }
        }
        Ok(queued)
    }

    /// The "expiring soon" notice for one member, as `record` shows them: whether one
    /// was queued.
    pub(super) fn warn_record(
        &self,
        shop: &ShopId,
        record: &MemberRecord,
        horizon: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, LedgerError> {
        let member = &record.member.id;
        // The earliest expiry inside the horizon, with every point lapsing then.
        let mut due: Option<(DateTime<Utc>, Points)> = None;
        for l in record
            .lots
            .iter()
            .filter(|l| !l.is_pending() && l.remaining.0 > 0)
        {
            let Some(at) = l.expires_at.filter(|t| *t > now && *t <= horizon) else {
                continue;
            };
            due = match due {
                Some((t, p)) if t == at => Some((t, p + l.remaining)),
                Some((t, p)) if t < at => Some((t, p)),
                _ => Some((at, l.remaining)),
            };
        }
        let Some((expires_at, points)) = due else {
            return Ok(false);
        };
        let key = super::keys::api_idempotency(
            shop,
            &format!("expiry-warning:{member}:{}", expires_at.timestamp()),
        );
        self.transact(shop, |tx| {
            if tx.index.get(&key)?.is_some() {
                return Ok(false);
            }
            let Some(m) = tx.member(member)? else {
                return Ok(false);
            };
            let available = tx.balance(&Account::MemberAvailable(member.clone()))?;
            let msg = crate::notify::outbox::OutboxMessage {
                id: tx.outbox.generate_id()?,
                shop: shop.clone(),
                member: member.clone(),
                first_name: m.first_name.clone(),
                posting_id: 0,
                notice: crate::notify::outbox::Notice::ExpiringSoon {
                    points,
                    expires_at,
                    available,
                },
                created_at: now,
                context: tx.message_context(&m)?,
            };
            crate::notify::outbox::enqueue(tx.outbox, &msg)?;
            tx.index.insert(key.as_slice(), &[1u8][..])?;
            Ok(true)
        })
    }
}
