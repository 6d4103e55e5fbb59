//! What-if: rescore a shop's stored sales under a candidate rules file, without
//! writing anything, and report per rule and in total how points issued and the
//! liability would differ.
//!
//! The replay keeps its own member state under the candidate rules (first purchase,
//! points per day and month for caps, tier progress when the candidate has tiers), so
//! caps, first-purchase and tier rules behave as they would have. Member tags are
//! those stored with each sale (as they were when it was scored); sales stored before
//! tags were kept fall back to today's member records.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::config::ShopConfig;
use crate::ledger::{Ledger, LedgerError};
use crate::member::MemberId;
use crate::points::Points;
use crate::rules::{self, tiers, RuleSet};

/// Points of one rule, now and under the candidate.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct RuleDiff {
    /// Rule id.
    pub rule_id: String,
    /// Points it gave under the rules in force when each sale was scored.
    pub current: Points,
    /// Points it would give under the candidate.
    pub candidate: Points,
}

/// The what-if report.
#[derive(Debug, Clone, Serialize)]
pub struct WhatIf {
    /// Shop.
    pub shop: String,
    /// Candidate rules version.
    pub candidate_version: String,
    /// Period start (inclusive), by sale time.
    pub from: Option<DateTime<Utc>>,
    /// Period end (exclusive).
    pub to: DateTime<Utc>,
    /// Sales rescored.
    pub sales: u64,
    /// Points those sales earned.
    pub current_points: Points,
    /// Points they would earn under the candidate.
    pub candidate_points: Points,
    /// candidate − current.
    pub difference: Points,
    /// The difference in the shop currency (× `point_value`).
    #[serde(with = "rust_decimal::serde::str")]
    pub liability_difference: Decimal,
    /// Cash back the candidate would pay on those sales.
    #[serde(with = "rust_decimal::serde::str")]
    pub candidate_cash_back: Decimal,
    /// Per rule.
    pub rules: Vec<RuleDiff>,
}

#[derive(Default)]
struct Sim {
    sales: u32,
    day: Option<(chrono::NaiveDate, Points)>,
    month: Option<(String, Points)>,
    buckets: Vec<tiers::MonthBucket>,
    tier: Option<String>,
}

/// Rescore `shop`'s sales in `[from, to)` under `candidate`.
pub fn whatif(
    ledger: &Ledger,
    shop: &ShopConfig,
    candidate: &RuleSet,
    from: Option<DateTime<Utc>>,
    to: DateTime<Utc>,
) -> Result<WhatIf, LedgerError> {
    let tags: HashMap<MemberId, Vec<String>> = ledger
        .all_members(&shop.id)?
        .into_iter()
        .map(|m| (m.id, m.tags))
        .collect();
    let mut sims: HashMap<MemberId, Sim> = HashMap::new();
    let mut per_rule: BTreeMap<String, RuleDiff> = BTreeMap::new();
    let (mut sales, mut current, mut cand, mut cash) =
        (0u64, Points::ZERO, Points::ZERO, Decimal::ZERO);
    for stored in ledger.sale_history(&shop.id) {
        let s = stored?;
        if s.occurred_at >= to {
            break;
        }
        let sim = sims.entry(s.member.clone()).or_default();
        let local = s.occurred_at.with_timezone(&shop.timezone).date_naive();
        let month = local.format("%Y-%m").to_string();
        let snapshot = rules::MemberSnapshot {
            tier: sim.tier.clone(),
            tags: s
                .tags
                .clone()
                .or_else(|| tags.get(&s.member).cloned())
                .unwrap_or_default(),
            first_purchase: sim.sales == 0,
            earned_today: sim
                .day
                .as_ref()
                .filter(|(d, _)| *d == local)
                .map(|(_, p)| *p)
                .unwrap_or_default(),
            earned_this_month: sim
                .month
                .as_ref()
                .filter(|(m, _)| *m == month)
                .map(|(_, p)| *p)
                .unwrap_or_default(),
        };
        let award = rules::score(
            &rules::SaleContext {
                sale: &s.sale,
                adapter: &s.adapter,
                occurred_at: s.occurred_at,
                timezone: shop.timezone,
            },
            &snapshot,
            candidate,
        );
        // Advance the simulated member as the ledger would.
        sim.sales += 1;
        sim.day = Some(match sim.day.take() {
            Some((d, p)) if d == local => (d, p + award.points),
            _ => (local, award.points),
        });
        sim.month = Some(match sim.month.take() {
            Some((m, p)) if m == month => (m, p + award.points),
            _ => (month, award.points),
        });
        if let Some(tp) = &candidate.tiers {
            tiers::record(&mut sim.buckets, local, award.points, award.eligible_spend);
            let target = tp
                .tier_for(tp.qualifying(&sim.buckets, local))
                .map(str::to_string);
            if tp.rank(target.as_deref()) > tp.rank(sim.tier.as_deref()) {
                sim.tier = target;
            }
        }
        if from.is_some_and(|f| s.occurred_at < f) {
            continue;
        }
        sales += 1;
        current += s.points;
        cand += award.points;
        cash += award.cash_back;
        for c in &s.contributions {
            let e = per_rule
                .entry(c.rule_id.clone())
                .or_insert_with(|| RuleDiff {
                    rule_id: c.rule_id.clone(),
                    ..Default::default()
                });
            e.current += c.points;
        }
        for c in &award.contributions {
            let e = per_rule
                .entry(c.rule_id.clone())
                .or_insert_with(|| RuleDiff {
                    rule_id: c.rule_id.clone(),
                    ..Default::default()
                });
            e.candidate += c.points;
        }
    }
    let difference = cand - current;
    Ok(WhatIf {
        shop: shop.id.to_string(),
        candidate_version: candidate.version.clone(),
        from,
        to,
        sales,
        current_points: current,
        candidate_points: cand,
        difference,
        liability_difference: Decimal::from(difference.0) * shop.point_value,
        candidate_cash_back: cash,
        rules: per_rule.into_values().collect(),
    })
}
