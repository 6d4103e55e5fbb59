//! From an outbox message to the template event kind and context.

use chrono_tz::Tz;

use super::outbox::{Notice, OutboxMessage};
use super::templates::{EventKind, NextReward, TemplateContext};
use crate::ledger::journal::PostingKind;

/// What the shop says about itself in messages.
#[derive(Debug, Clone)]
pub struct ShopVoice {
    /// Shop name.
    pub name: String,
    /// Time zone dates are written in.
    pub timezone: Tz,
}

/// The template kind for a message.
pub fn kind(msg: &OutboxMessage) -> EventKind {
    match &msg.notice {
        Notice::Posted {
            kind,
            pending_until,
            reason,
            ..
        } => match kind {
            PostingKind::Earn if pending_until.is_some() => EventKind::EarnedPending,
            PostingKind::Earn => EventKind::Earned,
            PostingKind::Mature => EventKind::Matured,
            PostingKind::Reverse => EventKind::Reversed,
            PostingKind::Redeem => EventKind::Redeemed,
            PostingKind::RedemptionReturn => EventKind::RedemptionReturned,
            PostingKind::Adjust => EventKind::Adjusted,
            PostingKind::Expire => EventKind::Expired,
            PostingKind::Bonus if reason.as_deref() == Some("happy birthday") => {
                EventKind::BirthdayBonus
            }
            PostingKind::Bonus => EventKind::Bonus,
            PostingKind::TierChange => EventKind::TierChanged,
            // Imports queue no message (see `verify`); an opening balance reads as a
            // credit by staff should one ever be rendered.
            PostingKind::Imported | PostingKind::Merge => EventKind::Adjusted,
        },
        Notice::RewardUnlocked { .. } => EventKind::RewardUnlocked,
        Notice::TierChanged { .. } => EventKind::TierChanged,
        Notice::ExpiringSoon { .. } => EventKind::ExpiringSoon,
    }
}

/// The template context of `msg` (the latest of `coalesced` messages whose points
/// add up to `points_sum`).
pub fn context(
    msg: &OutboxMessage,
    shop: &ShopVoice,
    first_name: Option<String>,
    coalesced: usize,
    points_sum: Option<i64>,
) -> TemplateContext {
    let date = |t: chrono::DateTime<chrono::Utc>| {
        t.with_timezone(&shop.timezone)
            .format("%Y-%m-%d")
            .to_string()
    };
    let mut ctx = TemplateContext {
        shop_name: shop.name.clone(),
        member_name: first_name.or_else(|| msg.first_name.clone()),
        points: 0,
        balance: 0,
        pending: 0,
        next_reward: None,
        tier: msg.context.tier.clone(),
        tier_from: None,
        tier_to: None,
        reward_name: None,
        expiry_date: msg.context.next_expiry.map(|(t, _)| date(t)),
        expiring_points: msg.context.next_expiry.map(|(_, p)| p.0),
        pending_until: None,
        coalesced: coalesced.max(1),
    };
    match &msg.notice {
        Notice::Posted {
            points,
            available,
            pending,
            pending_until,
            ..
        } => {
            ctx.points = points.0;
            ctx.balance = available.0;
            ctx.pending = pending.0;
            ctx.pending_until = pending_until.map(date);
        }
        Notice::RewardUnlocked {
            name,
            cost,
            available,
            ..
        } => {
            ctx.points = cost.0;
            ctx.balance = available.0;
            ctx.reward_name = Some(name.clone());
        }
        Notice::TierChanged { from, to } => {
            ctx.tier_from = from.clone();
            ctx.tier_to = to.clone();
            ctx.tier = to.clone();
        }
        Notice::ExpiringSoon {
            points,
            expires_at,
            available,
        } => {
            ctx.points = points.0;
            ctx.balance = available.0;
            ctx.expiry_date = Some(date(*expires_at));
            ctx.expiring_points = Some(points.0);
        }
    }
    if let Some(sum) = points_sum {
        ctx.points = sum;
    }
    ctx.next_reward = msg
        .context
        .next_reward
        .as_ref()
        .map(|(name, cost)| NextReward {
            name: name.clone(),
            cost: cost.0,
            missing: (cost.0 - ctx.balance).max(0),
        });
    ctx
}
