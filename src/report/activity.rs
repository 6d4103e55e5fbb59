//! Program activity for owners: points issued, redeemed, expired, reversed and adjusted
//! per local day, and the rules that issued the most points.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::config::ShopConfig;
use crate::ledger::journal::Account;
use crate::ledger::{Ledger, LedgerError};
use crate::points::Points;

/// One local day's movements.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Day {
    /// The day in the shop's time zone.
    pub date: NaiveDate,
    /// Points issued (earnings, bonuses).
    pub issued: Points,
    /// Points redeemed.
    pub redeemed: Points,
    /// Points expired.
    pub expired: Points,
    /// Points reversed by refunds.
    pub reversed: Points,
    /// Net points adjusted by staff (positive: credited).
    pub adjusted: Points,
    /// Postings that day.
    pub postings: u64,
}

/// A rule's share of the points issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleTotal {
    /// Rule id (`earn.base` for the base rate).
    pub rule_id: String,
    /// Points it contributed (caps count negative).
    pub points: Points,
    /// Earnings it contributed to.
    pub sales: u64,
}

/// Activity over `[from, to)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Activity {
    /// Days with postings, oldest first.
    pub days: Vec<Day>,
    /// Rules by points issued, most first.
    pub top_rules: Vec<RuleTotal>,
}

/// Read the journal once.
pub fn activity(
    ledger: &Ledger,
    shop: &ShopConfig,
    from: Option<DateTime<Utc>>,
    to: DateTime<Utc>,
) -> Result<Activity, LedgerError> {
    let mut days: BTreeMap<NaiveDate, Day> = BTreeMap::new();
    let mut rules: BTreeMap<String, (Points, u64)> = BTreeMap::new();
    for p in ledger.journal(&shop.id) {
        let p = p?;
        if p.recorded_at >= to {
            break;
        }
        if from.is_some_and(|f| p.recorded_at < f) {
            continue;
        }
        let date = p.recorded_at.with_timezone(&shop.timezone).date_naive();
        let day = days.entry(date).or_insert_with(|| Day {
            date,
            ..Day::default()
        });
        day.postings += 1;
        for e in &p.entries {
            let a = e.amount;
            match e.account {
                Account::Issued => day.issued += Points(-a.0),
                Account::Redeemed => day.redeemed += a,
                Account::Expired => day.expired += a,
                Account::Reversed => day.reversed += a,
                Account::Adjusted => day.adjusted += Points(-a.0),
                _ => {}
            }
        }
        for c in &p.explanation {
            let r = rules.entry(c.rule_id.clone()).or_default();
            r.0 += c.points;
            r.1 += 1;
        }
    }
    let mut top_rules: Vec<RuleTotal> = rules
        .into_iter()
        .map(|(rule_id, (points, sales))| RuleTotal {
            rule_id,
            points,
            sales,
        })
        .collect();
    top_rules.sort_by(|a, b| b.points.cmp(&a.points).then(a.rule_id.cmp(&b.rule_id)));
    Ok(Activity {
        days: days.into_values().collect(),
        top_rules,
    })
}
