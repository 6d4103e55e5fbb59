//! The points liability report.
//!
//! Periods use the time each posting was recorded, so a closed period never changes
//! afterwards. Identity checked on every report:
//! `closing = opening + issued − redeemed − expired − reversed + adjusted`, where
//! `redeemed` is net of redemptions returned and `adjusted` is net of manual debits.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::config::ShopConfig;
use crate::ledger::journal::{Account, PostingKind};
use crate::ledger::replay::replay;
use crate::ledger::{Ledger, LedgerError};
use crate::points::Points;

/// One earning cohort (lots earned in one local month).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Cohort {
    /// `YYYY-MM` in the shop's time zone.
    pub month: String,
    /// Points put into lots that month.
    pub issued: Points,
    /// Taken by redemptions.
    pub redeemed: Points,
    /// Lapsed.
    pub expired: Points,
    /// Taken back by refunds.
    pub reversed: Points,
    /// Removed by manual debits.
    pub adjusted: Points,
    /// Still open.
    pub open: Points,
    /// expired ÷ issued, as a decimal string.
    #[serde(with = "rust_decimal::serde::str")]
    pub breakage_rate: Decimal,
}

/// The report.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LiabilityReport {
    /// Shop.
    pub shop: String,
    /// Shop currency.
    pub currency: String,
    /// Period start (inclusive).
    pub from: Option<DateTime<Utc>>,
    /// Period end (exclusive).
    pub to: DateTime<Utc>,
    /// Outstanding points (available + pending) at `from`.
    pub opening_points: Points,
    /// Points earned in the period.
    pub issued: Points,
    /// Points redeemed (net of returned redemptions).
    pub redeemed: Points,
    /// Points expired.
    pub expired: Points,
    /// Points reversed by refunds and cancellations.
    pub reversed: Points,
    /// Net manual adjustments (credits minus debits).
    pub adjusted: Points,
    /// Outstanding points at `to`.
    pub closing_points: Points,
    /// Money per point.
    #[serde(with = "rust_decimal::serde::str")]
    pub point_value: Decimal,
    /// `closing_points × point_value`, in the shop currency.
    #[serde(with = "rust_decimal::serde::str")]
    pub closing_liability: Decimal,
    /// Of all points ever put into lots up to `to`, the share that expired.
    #[serde(with = "rust_decimal::serde::str")]
    pub breakage_rate: Decimal,
    /// Breakage by month earned.
    pub cohorts: Vec<Cohort>,
    /// Open available points by time left before they expire at `to`.
    pub ageing: BTreeMap<String, Points>,
    /// Points still pending at `to`.
    pub pending_points: Points,
}

fn rate(part: Points, whole: Points) -> Decimal {
    if whole.0 <= 0 {
        Decimal::ZERO
    } else {
        (Decimal::from(part.0) / Decimal::from(whole.0)).round_dp(4)
    }
}

/// Round to the currency's minor unit and always show it (`0.00`, `5`, `1.250`).
fn money(v: Decimal, shop: &ShopConfig) -> Decimal {
    let dp = shop.currency.minor_units().unwrap_or(2);
    let mut v = v.round_dp_with_strategy(dp, rust_decimal::RoundingStrategy::MidpointNearestEven);
    v.rescale(dp);
    v
}

/// Build the report for `shop` over `[from, to)`.
pub fn liability(
    ledger: &Ledger,
    shop: &ShopConfig,
    from: Option<DateTime<Utc>>,
    to: DateTime<Utc>,
) -> Result<LiabilityReport, LedgerError> {
    let mut opening = Points::ZERO;
    let mut mv: BTreeMap<&'static str, Points> = BTreeMap::new();
    let mut postings = Vec::new();
    for p in ledger.journal(&shop.id) {
        let p = p?;
        if p.recorded_at >= to {
            break;
        }
        let before = from.is_some_and(|f| p.recorded_at < f);
        for e in &p.entries {
            if e.account.is_member() {
                if before {
                    opening += e.amount;
                }
                continue;
            }
            if before {
                continue;
            }
            // Program accounts carry the other side of every member movement.
            let (name, sign) = match e.account {
                Account::Issued => ("issued", -1),
                Account::Redeemed => ("redeemed", 1),
                Account::Expired => ("expired", 1),
                Account::Reversed => ("reversed", 1),
                Account::Adjusted => ("adjusted", -1),
                _ => continue,
            };
            *mv.entry(name).or_default() += Points(e.amount.0 * sign);
        }
        postings.push(p);
    }
    let get = |k| mv.get(k).copied().unwrap_or_default();
    let (issued, redeemed, expired, reversed, adjusted) = (
        get("issued"),
        get("redeemed"),
        get("expired"),
        get("reversed"),
        get("adjusted"),
    );
    let closing = opening + issued - redeemed - expired - reversed + adjusted;

    let r = replay(postings, None);
    let tz = shop.timezone;
    let mut cohorts: BTreeMap<String, Cohort> = BTreeMap::new();
    let mut total_issued = Points::ZERO;
    let mut total_expired = Points::ZERO;
    for h in r.history.values() {
        let month = h.earned_at.with_timezone(&tz).format("%Y-%m").to_string();
        let c = cohorts.entry(month.clone()).or_insert_with(|| Cohort {
            month,
            ..Default::default()
        });
        let t = |k| h.taken.get(&k).copied().unwrap_or_default();
        c.issued += h.original;
        c.redeemed += t(PostingKind::Redeem);
        c.expired += t(PostingKind::Expire);
        c.reversed += t(PostingKind::Reverse);
        c.adjusted += t(PostingKind::Adjust);
        c.open += h.remaining();
        total_issued += h.original;
        total_expired += t(PostingKind::Expire);
    }
    for c in cohorts.values_mut() {
        c.breakage_rate = rate(c.expired, c.issued);
    }

    let mut ageing: BTreeMap<String, Points> = BTreeMap::new();
    let mut pending = Points::ZERO;
    for lots in r.lots.values() {
        for l in &lots.lots {
            if l.is_pending() {
                pending += l.remaining;
                continue;
            }
            let bucket = match l.expires_at {
                None => "no_expiry",
                Some(t) => match (t - to).num_days() {
                    d if t <= to || d < 0 => "due_now",
                    0..=30 => "0_30_days",
                    31..=90 => "31_90_days",
                    91..=180 => "91_180_days",
                    181..=365 => "181_365_days",
                    _ => "over_365_days",
                },
            };
            *ageing.entry(bucket.to_string()).or_default() += l.remaining;
        }
    }

    Ok(LiabilityReport {
        shop: shop.id.to_string(),
        currency: shop.currency.to_string(),
        from,
        to,
        opening_points: opening,
        issued,
        redeemed,
        expired,
        reversed,
        adjusted,
        closing_points: closing,
        point_value: shop.point_value,
        closing_liability: money(Decimal::from(closing.0) * shop.point_value, shop),
        breakage_rate: rate(total_expired, total_issued),
        cohorts: cohorts.into_values().collect(),
        ageing,
        pending_points: pending,
    })
}
