//! Taking points back for refunds and cancellations.
//!
//! Reversals undo what the sale actually posted (the order record keeps the posted
//! points and the eligible spend per line), never a recomputation under today's rules.
//!
//! Partial refunds are cumulative: after refunds totalling `R` of an order with
//! eligible spend `E` that earned `P` points, the order has had
//! `floor(P × R / E)` points reversed in total (all `P` once fully refunded or
//! cancelled). Each refund reverses the difference from what was reversed before, so
//! rounding never drifts and a refund in several parts reverses exactly `P`.
//!
//! Where the points come from: the sale's own lot while it is still pending, then
//! available lots oldest first, then other pending lots. If the member spent them, the
//! shop's policy decides: `allow` takes the rest from the available balance (it goes
//! negative; later earnings pay it off), `clamp` stops at zero and records the
//! shortfall on the posting and the order.

use chrono::{DateTime, Utc};
use loyaltyd_adapter::{RefundLine, ShopId};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use super::journal::{Account, Entry, Posting, PostingKind};
use super::policy::{LedgerPolicy, NegativeBalance};
use super::tx::{Credit, Tx, TxResult};
use super::{
    keys, Applied, DeliveryOutcome, DeliveryRecord, Ledger, LedgerError, OrderRecord,
    RedemptionLink,
};
use crate::member::{Member, MemberId};
use crate::points::Points;

/// What is being reversed.
#[derive(Debug, Clone)]
pub enum ReversalKind {
    /// The whole order was cancelled.
    Cancel {
        /// The sender's reason.
        reason: Option<String>,
    },
    /// A refund of some lines (or of an amount only).
    Refund {
        /// The sender's refund id (applied at most once).
        refund_id: String,
        /// Refunded lines.
        lines: Vec<RefundLine>,
        /// Money returned; used when there are no lines (in proportion to the total paid).
        amount: Option<Decimal>,
    },
}

/// Everything needed to reverse.
#[derive(Debug, Clone)]
pub struct ReversalCommand<'a> {
    /// Shop.
    pub shop: &'a ShopId,
    /// The shop's time zone (dates of returned redemption lots).
    pub timezone: chrono_tz::Tz,
    /// The shop's ledger terms.
    pub policy: &'a LedgerPolicy,
    /// Adapter that received it.
    pub adapter: &'a str,
    /// Sender's delivery id.
    pub event_id: &'a str,
    /// The order.
    pub order_id: &'a str,
    /// Cancel or refund.
    pub kind: ReversalKind,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
}

/// How much of the order's points a reversal targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReversalAmount {
    /// Everything the sale earned.
    Full,
    /// In proportion to the eligible spend refunded so far.
    Cumulative,
}

impl Ledger {
    /// Apply a refund or cancellation, exactly once per delivery id and refund id.
    pub fn apply_reversal(
        &self,
        cmd: &ReversalCommand<'_>,
        now: DateTime<Utc>,
    ) -> Result<Applied, LedgerError> {
        self.transact(cmd.shop, |tx| reversal(tx, cmd, now))
    }
}

fn reversal(tx: &Tx<'_>, cmd: &ReversalCommand<'_>, now: DateTime<Utc>) -> TxResult<Applied> {
    let dedupe_key = keys::dedupe(cmd.shop, cmd.adapter, cmd.event_id);
    if let Some(existing) = tx.get::<DeliveryRecord>(tx.index, &dedupe_key)? {
        return Ok(Applied::Duplicate(existing));
    }
    let record = |outcome| DeliveryRecord {
        outcome,
        recorded_at: now,
    };
    let already = || {
        record(DeliveryOutcome::AlreadyScored {
            order_id: cmd.order_id.to_string(),
        })
    };
    let order_key = keys::earned_order(cmd.shop, cmd.adapter, cmd.order_id);
    let mut order: OrderRecord = tx.get(tx.index, &order_key)?.unwrap_or_default();
    let was_closed = order.closed;
    let (amount, reason) = match &cmd.kind {
        ReversalKind::Cancel { reason } => {
            if order.closed {
                let r = already();
                tx.put(tx.index, &dedupe_key, &r)?;
                return Ok(Applied::New(r));
            }
            order.closed = true;
            (
                ReversalAmount::Full,
                format!(
                    "order cancelled{}",
                    reason
                        .as_deref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                ),
            )
        }
        ReversalKind::Refund {
            refund_id,
            lines,
            amount,
        } => {
            let refund_key = keys::refund(cmd.shop, cmd.adapter, refund_id);
            if tx.index.get(&refund_key)?.is_some() {
                let r = already();
                tx.put(tx.index, &dedupe_key, &r)?;
                return Ok(Applied::New(r));
            }
            tx.index.insert(refund_key, cmd.event_id.as_bytes())?;
            match (order.scored, lines.is_empty(), amount) {
                (true, false, _) => apply_refund_lines(&mut order, lines),
                (true, true, Some(a)) => apply_refund_amount(&mut order, *a),
                (false, false, _) => order.early_refund_lines.extend(lines.iter().cloned()),
                (false, true, Some(a)) => order.early_refund_amounts.push(*a),
                (_, true, None) => {}
            }
            (ReversalAmount::Cumulative, format!("refund {refund_id}"))
        }
    };

    let mut reversed = Points::ZERO;
    let mut shortfall = Points::ZERO;
    let mut member_id = order.member.clone();
    if order.scored {
        if let Some(buyer) = order.member.clone() {
            let mut member = tx
                .member(&buyer)?
                .ok_or_else(|| super::tx::invariant(format!("order member {buyer} missing")))?;
            // A merged buyer's points live with the member it was merged into.
            for _ in 0..8 {
                let Some(next) = member.merged_into.clone() else {
                    break;
                };
                member = tx
                    .member(&next)?
                    .ok_or_else(|| super::tx::invariant(format!("merged member {next} missing")))?;
            }
            let mid = member.id.clone();
            let key = format!("{}:{}", cmd.adapter, cmd.event_id);
            let (r, s) = claw_back(
                tx,
                &mut order,
                &member,
                amount,
                cmd.policy,
                &key,
                cmd.order_id,
                &reason,
                cmd.occurred_at,
                now,
            )?;
            reversed = r;
            shortfall = s;
            untier(tx, &mut order, &mid)?;
        }
    }
    let mut returned = Points::ZERO;
    if order.closed && !was_closed {
        let (r, m) = return_redemptions(tx, cmd, now)?;
        returned = r;
        member_id = member_id.or(m);
    }
    tx.put(tx.index, &order_key, &order)?;
    let outcome = match member_id {
        Some(member) if order.scored || returned.0 > 0 => DeliveryOutcome::Reversed {
            member,
            points: reversed,
            shortfall,
            returned,
        },
        _ => DeliveryOutcome::Deferred {
            order_id: cmd.order_id.to_string(),
        },
    };
    let r = record(outcome);
    tx.put(tx.index, &dedupe_key, &r)?;
    Ok(Applied::New(r))
}

/// Take what refunds returned out of the tier qualification of the sale's month: a
/// refunded purchase must not keep a member in a tier (the review job then decides).
fn untier(tx: &Tx<'_>, order: &mut OrderRecord, member: &MemberId) -> TxResult<()> {
    let Some(month) = order.tier_month.clone() else {
        return Ok(());
    };
    let points_target = order.reversed + order.shortfall;
    let spend_target = if order.closed {
        order.eligible
    } else {
        order.refunded.min(order.eligible)
    };
    let points = Points((points_target - order.tier_points_removed).0.max(0));
    let spend = (spend_target - order.tier_spend_removed).max(Decimal::ZERO);
    if points.0 == 0 && spend.is_zero() {
        return Ok(());
    }
    order.tier_points_removed += points;
    order.tier_spend_removed += spend;
    if let Some(mut m) = tx.member(member)? {
        crate::rules::tiers::remove(&mut m.tier_buckets, &month, points, spend);
        tx.save_member(&m)?;
    }
    Ok(())
}

/// Count refunded lines against the order's eligible spend per line (never more than a
/// line's eligible spend; lines the sale did not have count zero).
pub(crate) fn apply_refund_lines(order: &mut OrderRecord, lines: &[RefundLine]) {
    for rl in lines {
        if let Some(left) = order.lines.get_mut(&rl.line_id) {
            let base = if order.taxes_included {
                rl.subtotal - rl.tax
            } else {
                rl.subtotal
            };
            let take = base.max(Decimal::ZERO).min(*left);
            *left -= take;
            order.refunded += take;
        }
    }
    if order.eligible > Decimal::ZERO && order.refunded >= order.eligible {
        order.closed = true;
    }
}

/// Count an amount-only refund (no lines: Square, goodwill refunds) against the order's
/// eligible spend in proportion to the money returned: `amount × eligible ÷ total`.
pub(crate) fn apply_refund_amount(order: &mut OrderRecord, amount: Decimal) {
    if order.total > Decimal::ZERO && amount > Decimal::ZERO {
        let share = (amount * order.eligible / order.total)
            .min(order.eligible - order.refunded)
            .max(Decimal::ZERO);
        order.refunded += share;
    }
    if order.eligible > Decimal::ZERO && order.refunded >= order.eligible {
        order.closed = true;
    }
}

/// Post the reversal the order now calls for. Returns (points reversed, shortfall).
#[allow(clippy::too_many_arguments)]
pub(crate) fn claw_back(
    tx: &Tx<'_>,
    order: &mut OrderRecord,
    member: &Member,
    amount: ReversalAmount,
    policy: &LedgerPolicy,
    idempotency_key: &str,
    order_id: &str,
    reason: &str,
    occurred_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> TxResult<(Points, Points)> {
    if !order.early_refund_lines.is_empty() {
        let early = std::mem::take(&mut order.early_refund_lines);
        apply_refund_lines(order, &early);
    }
    for a in std::mem::take(&mut order.early_refund_amounts) {
        apply_refund_amount(order, a);
    }
    let target = if amount == ReversalAmount::Full || order.closed {
        order.earned
    } else if order.eligible > Decimal::ZERO {
        let share = Decimal::from(order.earned.0) * order.refunded / order.eligible;
        Points(share.floor().to_i64().unwrap_or(0).clamp(0, order.earned.0))
    } else {
        Points::ZERO
    };
    let due = Points((target - order.reversed - order.shortfall).0.max(0));
    // Cash back (store credit) is taken back in the same proportion, rounded toward
    // zero in the currency's minor unit.
    let cash_target = if amount == ReversalAmount::Full || order.closed {
        order.cash_back
    } else if order.eligible > Decimal::ZERO {
        (order.cash_back * order.refunded / order.eligible)
            .round_dp_with_strategy(order.cash_back_dp, rust_decimal::RoundingStrategy::ToZero)
            .min(order.cash_back)
    } else {
        Decimal::ZERO
    };
    let cash_due = (cash_target - order.cash_back_reversed).max(Decimal::ZERO);
    if due.0 == 0 && cash_due.is_zero() {
        return Ok((Points::ZERO, Points::ZERO));
    }

    let mut lots = tx.lots(&member.id)?;
    let mut changes = Vec::new();
    let mut from_pending = Points::ZERO;
    // 1. the sale's own lot while it is still pending
    if let Some(lot) = order.lot {
        if lots.lots.iter().any(|l| l.id == lot && l.is_pending()) {
            let (c, t) = lots.take_from(lot, due);
            changes.extend(c);
            from_pending += t;
        }
    }
    // 2. available lots, oldest first
    let (c, mut from_available) = lots.take_available(due - from_pending);
    changes.extend(c);
    // 3. other pending lots
    let (c, t) = lots.take_pending(due - from_pending - from_available);
    changes.extend(c);
    from_pending += t;
    // 4. what the member already spent
    let left = due - from_pending - from_available;
    let shortfall = match policy.negative_balance {
        NegativeBalance::Allow => {
            from_available += left;
            Points::ZERO
        }
        NegativeBalance::Clamp => left,
    };
    let taken = from_pending + from_available;
    order.reversed += taken;
    order.shortfall += shortfall;
    if taken.0 == 0 && shortfall.0 == 0 && cash_due.is_zero() {
        return Ok((Points::ZERO, Points::ZERO));
    }
    if !cash_due.is_zero() {
        order.cash_back_reversed += cash_due;
        if let Some(mut m) = tx.member(&member.id)? {
            m.store_credit -= cash_due;
            tx.save_member(&m)?;
        }
    }

    let seq = tx.next_seq()?;
    let mut entries = Vec::new();
    if from_pending.0 > 0 {
        entries.push(Entry {
            account: Account::MemberPending(member.id.clone()),
            amount: -from_pending,
        });
    }
    if from_available.0 > 0 {
        entries.push(Entry {
            account: Account::MemberAvailable(member.id.clone()),
            amount: -from_available,
        });
    }
    if taken.0 > 0 {
        entries.push(Entry {
            account: Account::Reversed,
            amount: taken,
        });
    }
    let posting = Posting {
        seq,
        shop: tx.shop.clone(),
        rules_version: None,
        cash_back: -cash_due,
        member: member.id.clone(),
        kind: PostingKind::Reverse,
        entries,
        lots: changes,
        occurred_at,
        recorded_at: now,
        idempotency_key: idempotency_key.to_string(),
        order_id: Some(order_id.to_string()),
        explanation: Vec::new(),
        actor: None,
        reason: Some(reason.to_string()),
        reward: None,
        shortfall,
    };
    tx.post(&posting)?;
    tx.save_lots(&member.id, &lots)?;
    if taken.0 > 0 {
        tx.notify_posted(member, &posting, taken, None)?;
    }
    Ok((taken, shortfall))
}

/// Give back, once, the points redeemed against an order that is now fully refunded
/// or cancelled.
fn return_redemptions(
    tx: &Tx<'_>,
    cmd: &ReversalCommand<'_>,
    now: DateTime<Utc>,
) -> TxResult<(Points, Option<crate::member::MemberId>)> {
    let key = keys::order_redemptions(cmd.shop, cmd.order_id);
    let mut links: Vec<RedemptionLink> = match tx.get(tx.index, &key)? {
        Some(l) => l,
        None => return Ok((Points::ZERO, None)),
    };
    let mut total = Points::ZERO;
    let mut who = None;
    for link in links.iter_mut().filter(|l| !l.returned) {
        let mut member = match tx.member(&link.member)? {
            Some(m) => m,
            None => continue,
        };
        let seq = tx.next_seq()?;
        let mut lots = tx.lots(&member.id)?;
        let (credit, changes) = tx.credit(
            &member.id,
            &mut lots,
            seq,
            Credit {
                amount: link.points,
                pending_until: None,
                expires_at: cmd.policy.lot_expiry(cmd.occurred_at, cmd.timezone),
                earned_at: cmd.occurred_at,
                day: cmd.occurred_at.with_timezone(&cmd.timezone).date_naive(),
            },
        )?;
        let posting = Posting {
            seq,
            shop: tx.shop.clone(),
            rules_version: None,
            cash_back: rust_decimal::Decimal::ZERO,
            member: member.id.clone(),
            kind: PostingKind::RedemptionReturn,
            entries: vec![
                Entry {
                    account: Account::Redeemed,
                    amount: -link.points,
                },
                credit,
            ],
            lots: changes,
            occurred_at: cmd.occurred_at,
            recorded_at: now,
            idempotency_key: format!("{}:{}:return:{}", cmd.adapter, cmd.event_id, link.seq),
            order_id: Some(cmd.order_id.to_string()),
            explanation: Vec::new(),
            actor: None,
            reason: Some(format!(
                "order {} refunded in full; redemption {} returned",
                cmd.order_id, link.seq
            )),
            reward: None,
            shortfall: Points::ZERO,
        };
        tx.post(&posting)?;
        tx.save_lots(&member.id, &lots)?;
        member.updated_at = now;
        tx.save_member(&member)?;
        tx.notify_posted(&member, &posting, link.points, None)?;
        link.returned = true;
        total += link.points;
        who = Some(member.id.clone());
    }
    tx.put(tx.index, &key, &links)?;
    Ok((total, who))
}
