//! Crediting a sale: find or create the buyer, post the earning (pending or
//! available), open its lot, record the order, queue the notification — one
//! transaction, at most once per delivery id and per order.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use loyaltyd_adapter::ShopId;

use super::journal::{Account, Entry, LotChange, Posting, PostingKind};
use super::policy::LedgerPolicy;
use super::reverse::{self, ReversalAmount};
use super::tx::{invariant, Credit, Tx, TxResult};
use super::{keys, Applied, DeliveryOutcome, DeliveryRecord, Ledger, LedgerError, OrderRecord};
use crate::member::{IdentityClaims, IdentityKind, LinkedIdentity, Member, MemberId};
use crate::points::Points;
use crate::rules::Award;

/// A scored sale as kept for what-if replays.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StoredSale {
    /// Adapter.
    pub adapter: String,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// Who bought.
    pub member: MemberId,
    /// The canonical sale.
    pub sale: loyaltyd_adapter::Sale,
    /// Points it earned.
    pub points: Points,
    /// What each rule contributed.
    pub contributions: Vec<crate::rules::Contribution>,
    /// The member's tags when the sale was scored (what-if replays test tags as they
    /// were, not as they are today). `None` in sales stored before tags were kept.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
}

impl Ledger {
    /// Every scored sale of a shop, oldest first.
    pub fn sale_history(
        &self,
        shop: &ShopId,
    ) -> impl Iterator<Item = Result<StoredSale, LedgerError>> + '_ {
        self.index
            .scan_prefix(keys::sale_history_prefix(shop))
            .map(|item| Ok(serde_json::from_slice(&item?.1)?))
    }
}

/// Everything needed to credit a sale.
#[derive(Debug, Clone)]
pub struct EarnCommand<'a> {
    /// Shop.
    pub shop: &'a ShopId,
    /// The shop's time zone (lot dates).
    pub timezone: Tz,
    /// The shop's ledger terms.
    pub policy: &'a LedgerPolicy,
    /// Adapter that received it.
    pub adapter: &'a str,
    /// Sender's delivery id.
    pub event_id: &'a str,
    /// Sender's order id.
    pub order_id: &'a str,
    /// When the sale happened.
    pub occurred_at: DateTime<Utc>,
    /// Who bought (at least one identity).
    pub claims: &'a IdentityClaims,
    /// What the rules awarded.
    pub award: &'a Award,
    /// Version of the rules that scored it.
    pub rules_version: &'a str,
    /// Revision of the member snapshot the award was scored with (`None`: no member
    /// existed). The posting is refused with [`LedgerError::StaleSnapshot`] if the
    /// member changed since.
    pub expected_revision: Option<u64>,
    /// Sign-up bonus for a member this sale creates (0: none).
    pub signup_bonus: u32,
    /// Referral bonuses paid on a referred member's first purchase.
    pub referral: super::bonus::ReferralBonuses,
    /// The shop's tier program, if any.
    pub tiers: Option<&'a crate::rules::tiers::TierProgram>,
    /// The sale itself, kept for what-if replays of new rules on history.
    pub sale: Option<&'a loyaltyd_adapter::Sale>,
    /// Whether the sale's prices include tax (so refund subtotals do too).
    pub taxes_included: bool,
    /// What the customer paid in total.
    pub total: rust_decimal::Decimal,
}

impl Ledger {
    /// Credit a sale to its buyer, exactly once per delivery id and per order.
    pub fn apply_earn(
        &self,
        cmd: &EarnCommand<'_>,
        now: DateTime<Utc>,
    ) -> Result<Applied, LedgerError> {
        if cmd.claims.identities.is_empty() {
            return Err(LedgerError::Invariant(
                "a sale needs at least one buyer identity".into(),
            ));
        }
        self.transact(cmd.shop, |tx| earn(tx, cmd, now))
    }
}

fn earn(tx: &Tx<'_>, cmd: &EarnCommand<'_>, now: DateTime<Utc>) -> TxResult<Applied> {
    let dedupe_key = keys::dedupe(cmd.shop, cmd.adapter, cmd.event_id);
    if let Some(existing) = tx.get::<DeliveryRecord>(tx.index, &dedupe_key)? {
        return Ok(Applied::Duplicate(existing));
    }
    let order_key = keys::earned_order(cmd.shop, cmd.adapter, cmd.order_id);
    let mut order: OrderRecord = tx.get(tx.index, &order_key)?.unwrap_or_default();
    let record = |outcome| DeliveryRecord {
        outcome,
        recorded_at: now,
    };
    if order.scored {
        let r = record(DeliveryOutcome::AlreadyScored {
            order_id: cmd.order_id.to_string(),
        });
        tx.put(tx.index, &dedupe_key, &r)?;
        return Ok(Applied::New(r));
    }

    let (mut member, existed) = find_or_create_member(tx, cmd.claims, now)?;
    let found_revision = existed.then_some(member.revision);
    if found_revision != cmd.expected_revision {
        return Err(super::tx::abort(LedgerError::StaleSnapshot));
    }
    if !existed {
        super::bonus::welcome(
            tx,
            &mut member,
            cmd.signup_bonus,
            cmd.policy,
            cmd.timezone,
            cmd.occurred_at,
            now,
        )?;
    }
    order.scored = true;
    order.member = Some(member.id.clone());
    order.eligible = cmd.award.eligible_spend;
    order.taxes_included = cmd.taxes_included;
    order.total = cmd.total;
    order.lines = cmd
        .award
        .lines
        .iter()
        .map(|l| (l.line_id.clone(), l.eligible))
        .collect();
    let points = if order.closed {
        // Cancelled before it was paid: nothing to earn.
        Points::ZERO
    } else {
        cmd.award.points
    };
    let mut posting_id = None;
    if points.0 > 0 {
        let seq = tx.next_seq()?;
        let mut lots = tx.lots(&member.id)?;
        let pending_until = cmd.policy.pending_until(cmd.occurred_at, cmd.timezone);
        let (credit, changes) = tx.credit(
            &member.id,
            &mut lots,
            seq,
            Credit {
                amount: points,
                pending_until,
                expires_at: cmd.policy.lot_expiry(cmd.occurred_at, cmd.timezone),
                earned_at: cmd.occurred_at,
                day: cmd.occurred_at.with_timezone(&cmd.timezone).date_naive(),
            },
        )?;
        let lot = changes.iter().find_map(|c| match c {
            LotChange::Open { lot, .. } | LotChange::TopUp { lot, .. } => Some(*lot),
            _ => None,
        });
        let posting = Posting {
            seq,
            shop: tx.shop.clone(),
            rules_version: Some(cmd.rules_version.to_string()),
            cash_back: cmd.award.cash_back,
            member: member.id.clone(),
            kind: PostingKind::Earn,
            entries: vec![
                Entry {
                    account: Account::Issued,
                    amount: -points,
                },
                credit,
            ],
            lots: changes,
            occurred_at: cmd.occurred_at,
            recorded_at: now,
            idempotency_key: format!("{}:{}", cmd.adapter, cmd.event_id),
            order_id: Some(cmd.order_id.to_string()),
            explanation: cmd.award.contributions.clone(),
            actor: None,
            reason: None,
            reward: None,
            shortfall: Points::ZERO,
        };
        tx.post(&posting)?;
        tx.save_lots(&member.id, &lots)?;
        member.lifetime += points;
        let local = cmd.occurred_at.with_timezone(&cmd.timezone).date_naive();
        let month = local.format("%Y-%m").to_string();
        member.earned_day = Some(match member.earned_day.take() {
            Some((d, p)) if d == local => (d, p + points),
            _ => (local, points),
        });
        member.earned_month = Some(match member.earned_month.take() {
            Some((m, p)) if m == month => (m, p + points),
            _ => (month, points),
        });
        member.last_activity_at = Some(
            member
                .last_activity_at
                .map_or(cmd.occurred_at, |t| t.max(cmd.occurred_at)),
        );
        member.updated_at = now;
        tx.notify_posted(&member, &posting, points, pending_until)?;
        order.earn_seq = Some(seq);
        order.lot = lot;
        order.earned = points;
        posting_id = Some(seq);
    } else if cmd.award.cash_back > rust_decimal::Decimal::ZERO && !order.closed {
        // Cash back without points: journaled all the same (no point entries).
        let seq = tx.next_seq()?;
        let posting = Posting {
            seq,
            shop: tx.shop.clone(),
            rules_version: Some(cmd.rules_version.to_string()),
            cash_back: cmd.award.cash_back,
            member: member.id.clone(),
            kind: PostingKind::Earn,
            entries: Vec::new(),
            lots: Vec::new(),
            occurred_at: cmd.occurred_at,
            recorded_at: now,
            idempotency_key: format!("{}:{}", cmd.adapter, cmd.event_id),
            order_id: Some(cmd.order_id.to_string()),
            explanation: cmd.award.contributions.clone(),
            actor: None,
            reason: None,
            reward: None,
            shortfall: Points::ZERO,
        };
        tx.post(&posting)?;
        posting_id = Some(seq);
    }
    if member.sales == 0 && points.0 > 0 {
        super::bonus::settle_referral(
            tx,
            &mut member,
            &cmd.claims.identities,
            cmd.referral,
            cmd.policy,
            cmd.timezone,
            cmd.occurred_at,
            now,
        )?;
    }
    member.sales += 1;
    if let (Some(tp), false) = (cmd.tiers, order.closed) {
        let day = cmd.occurred_at.with_timezone(&cmd.timezone).date_naive();
        crate::rules::tiers::record(
            &mut member.tier_buckets,
            day,
            points,
            cmd.award.eligible_spend,
        );
        order.tier_month = Some(day.format("%Y-%m").to_string());
        let target = tp
            .tier_for(tp.qualifying(&member.tier_buckets, day))
            .map(str::to_string);
        // Only upward here: this sale earned at the old tier; the next earns at the new.
        if tp.rank(target.as_deref()) > tp.rank(member.tier.as_deref()) {
            super::tiers::change_tier(
                tx,
                &mut member,
                target,
                "threshold reached",
                cmd.occurred_at,
                now,
            )?;
        }
    }
    if posting_id.is_some() {
        member.store_credit += cmd.award.cash_back;
        order.cash_back = cmd.award.cash_back;
        order.cash_back_dp = cmd.sale.and_then(|s| s.currency.minor_units()).unwrap_or(2);
    }
    tx.save_member(&member)?;

    // Refunds that arrived before the sale are applied now, from the journal's numbers.
    if (!order.early_refund_lines.is_empty() || !order.early_refund_amounts.is_empty())
        && points.0 > 0
    {
        let key = format!("{}:{}:early-refunds", cmd.adapter, cmd.event_id);
        reverse::claw_back(
            tx,
            &mut order,
            &member,
            ReversalAmount::Cumulative,
            cmd.policy,
            &key,
            cmd.order_id,
            "refunds received before the sale",
            cmd.occurred_at,
            now,
        )?;
    }
    if let Some(sale) = cmd.sale {
        let stored = StoredSale {
            adapter: cmd.adapter.to_string(),
            occurred_at: cmd.occurred_at,
            member: member.id.clone(),
            sale: sale.clone(),
            points,
            contributions: cmd.award.contributions.clone(),
            tags: Some(member.tags.clone()),
        };
        let at = cmd
            .occurred_at
            .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        tx.put(
            tx.index,
            &keys::sale_history(cmd.shop, &at, cmd.adapter, cmd.order_id),
            &stored,
        )?;
    }
    tx.put(tx.index, &order_key, &order)?;
    let r = record(DeliveryOutcome::Applied {
        member: member.id.clone(),
        posting_id,
        points,
    });
    tx.put(tx.index, &dedupe_key, &r)?;
    Ok(Applied::New(r))
}

/// Find the buyer by their identities (in claim order) or create them, then link any
/// identity not yet claimed by someone else.
pub(crate) fn find_or_create_member(
    tx: &Tx<'_>,
    claims: &IdentityClaims,
    now: DateTime<Utc>,
) -> TxResult<(Member, bool)> {
    let mut found = None;
    for ident in &claims.identities {
        if let Some(id) = tx
            .index
            .get(keys::identity(tx.shop, ident.kind, &ident.value))?
        {
            let id = MemberId::parse(std::str::from_utf8(&id).unwrap_or_default())
                .ok_or_else(|| invariant("corrupt identity index"))?;
            found = tx.member(&id)?;
            if found.is_some() {
                break;
            }
        }
    }
    let existed = found.is_some();
    let mut member = found.unwrap_or_else(|| Member {
        id: MemberId::generate(),
        email: None,
        phone: None,
        first_name: None,
        last_name: None,
        identities: Vec::new(),
        birthday: None,
        consent: Default::default(),
        tier: None,
        tags: Vec::new(),
        sales: 0,
        earned_day: None,
        earned_month: None,
        tier_buckets: Vec::new(),
        birthday_bonus_year: None,
        merged_into: None,
        store_credit: rust_decimal::Decimal::ZERO,
        revision: 0,
        lifetime: Points::ZERO,
        last_activity_at: None,
        created_at: now,
        updated_at: now,
    });
    for ident in &claims.identities {
        let key = keys::identity(tx.shop, ident.kind, &ident.value);
        if tx.index.get(&key)?.is_none() {
            tx.index.insert(key, member.id.as_str().as_bytes())?;
            if !member
                .identities
                .iter()
                .any(|l| l.kind == ident.kind && l.value == ident.value)
            {
                member.identities.push(LinkedIdentity {
                    kind: ident.kind,
                    value: ident.value.clone(),
                    source: claims.source.clone(),
                    linked_at: Some(now),
                });
            }
            match ident.kind {
                IdentityKind::Email if member.email.is_none() => {
                    member.email = Some(ident.value.clone())
                }
                IdentityKind::Phone if member.phone.is_none() => {
                    member.phone = Some(ident.value.clone())
                }
                _ => {}
            }
        }
    }
    if member.email.is_none() {
        member.email = claims.unverified_email.clone();
    }
    if member.first_name.is_none() {
        member.first_name = claims.first_name.clone();
    }
    if member.last_name.is_none() {
        member.last_name = claims.last_name.clone();
    }
    Ok((member, existed))
}
