//! Tier changes: journaled as a posting with no entries (the reason says from and to)
//! and announced to the member. Upgrades happen after the sale that crosses a
//! threshold; downgrades only in the review job.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use loyaltyd_adapter::ShopId;

use super::jobs::JobReport;
use super::journal::{Posting, PostingKind};
use super::tx::{Tx, TxResult};
use super::{Ledger, LedgerError};
use crate::member::{Member, MemberId};
use crate::notify::outbox::Notice;
use crate::points::Points;
use crate::rules::tiers::TierProgram;

/// Move `member` to tier `to` (no-op if already there); the caller saves the member.
pub(crate) fn change_tier(
    tx: &Tx<'_>,
    member: &mut Member,
    to: Option<String>,
    why: &str,
    occurred_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> TxResult<()> {
    let from = member.tier.clone();
    if from == to {
        return Ok(());
    }
    let seq = tx.next_seq()?;
    let name = |t: &Option<String>| t.clone().unwrap_or_else(|| "none".into());
    let posting = Posting {
        seq,
        shop: tx.shop.clone(),
        rules_version: None,
        cash_back: rust_decimal::Decimal::ZERO,
        member: member.id.clone(),
        kind: PostingKind::TierChange,
        entries: Vec::new(),
        lots: Vec::new(),
        occurred_at,
        recorded_at: now,
        idempotency_key: format!("tier:{seq}"),
        order_id: None,
        explanation: Vec::new(),
        actor: Some("system".into()),
        reason: Some(format!("tier {} -> {}: {why}", name(&from), name(&to))),
        reward: None,
        shortfall: Points::ZERO,
    };
    tx.post(&posting)?;
    member.tier = to.clone();
    tx.notify(member, &posting, Notice::TierChanged { from, to })
}

impl Ledger {
    /// Re-evaluate every tiered member at `now`: members whose window no longer
    /// qualifies move down (and any who qualify higher move up). State-based, one
    /// member per transaction: running it twice changes nothing more.
    pub fn review_tiers(
        &self,
        shop: &ShopId,
        tiers: &TierProgram,
        timezone: Tz,
        now: DateTime<Utc>,
    ) -> Result<JobReport, LedgerError> {
        let today = now.with_timezone(&timezone).date_naive();
        let mut report = JobReport::default();
        for record in self.records(shop) {
            if self.review_record(shop, &record?.member, tiers, today, now)? {
                report.postings += 1;
            }
        }
        Ok(report)
    }

    /// The tier review for one member, as their record shows them: whether the tier
    /// changed.
    pub(super) fn review_record(
        &self,
        shop: &ShopId,
        m: &Member,
        tiers: &TierProgram,
        today: chrono::NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<bool, LedgerError> {
        let target = tiers
            .tier_for(tiers.qualifying(&m.tier_buckets, today))
            .map(str::to_string);
        if target == m.tier {
            return Ok(false);
        }
        let id: &MemberId = &m.id;
        self.transact(shop, |tx| {
            let Some(mut member) = tx.member(id)? else {
                return Ok(false);
            };
            let target = tiers
                .tier_for(tiers.qualifying(&member.tier_buckets, today))
                .map(str::to_string);
            if target == member.tier {
                return Ok(false);
            }
            change_tier(tx, &mut member, target, "tier review", now, now)?;
            member.updated_at = now;
            tx.save_member(&member)?;
            Ok(true)
        })
    }
}
