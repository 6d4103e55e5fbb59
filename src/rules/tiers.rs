//! Tiers: named levels a member reaches by points earned or money spent over a window
//! (the last 12 months, or the calendar year), in the shop's time zone.
//!
//! A sale that crosses a threshold earns at the member's old tier; the upgrade applies
//! from the next sale. Downgrades happen only in the review job, when the window no
//! longer holds enough.

use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::points::Points;

/// What qualifies a member for a tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TierBasis {
    /// Points earned.
    Points,
    /// Eligible spend, in the shop currency.
    Spend,
}

/// Over which period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TierWindow {
    /// This month and the 11 before it.
    #[serde(rename = "rolling_12_months", alias = "rolling12_months")]
    Rolling12Months,
    /// Since 1 January.
    CalendarYear,
}

/// At which tier the sale that crosses a threshold earns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CrossingSale {
    /// At the tier the member had (the default).
    #[default]
    OldTier,
    /// At the tier it reaches.
    NewTier,
}

/// One level.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TierLevel {
    /// Name rules test with `tiers = [...]`.
    pub name: String,
    /// Points or money needed in the window (a decimal string or an integer).
    #[serde(with = "rust_decimal::serde::str")]
    pub threshold: Decimal,
}

/// A shop's tier program (`[tiers]` in the rules file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TierProgram {
    /// Points or spend.
    pub basis: TierBasis,
    /// Rolling 12 months or calendar year.
    pub window: TierWindow,
    /// At which tier the crossing sale earns.
    pub crossing_sale: CrossingSale,
    /// Levels, lowest threshold first.
    pub levels: Vec<TierLevel>,
}

/// What a member earned and spent in one local month (`YYYY-MM`).
pub type MonthBucket = (String, Points, Decimal);

impl TierProgram {
    /// The highest level whose threshold `qualifying` reaches.
    pub fn tier_for(&self, qualifying: Decimal) -> Option<&str> {
        self.levels
            .iter()
            .rev()
            .find(|l| qualifying >= l.threshold)
            .map(|l| l.name.as_str())
    }

    /// Position of a level (higher is better); `None` for no tier or an unknown name.
    pub fn rank(&self, tier: Option<&str>) -> Option<usize> {
        let name = tier?;
        self.levels.iter().position(|l| l.name == name)
    }

    /// What counts towards tiers at local date `today`, from monthly buckets.
    pub fn qualifying(&self, buckets: &[MonthBucket], today: NaiveDate) -> Decimal {
        let current = today.year() * 12 + today.month0() as i32;
        buckets
            .iter()
            .filter(|(month, _, _)| {
                let Some((y, m)) = month.split_once('-') else {
                    return false;
                };
                let (Ok(y), Ok(m)) = (y.parse::<i32>(), m.parse::<i32>()) else {
                    return false;
                };
                match self.window {
                    TierWindow::Rolling12Months => {
                        let idx = y * 12 + (m - 1);
                        idx <= current && current - idx < 12
                    }
                    TierWindow::CalendarYear => y == today.year(),
                }
            })
            .map(|(_, points, spend)| match self.basis {
                TierBasis::Points => Decimal::from(points.0),
                TierBasis::Spend => *spend,
            })
            .sum()
    }
}

/// Add a sale to the member's monthly buckets, keeping the last 24 months.
pub fn record(buckets: &mut Vec<MonthBucket>, day: NaiveDate, points: Points, spend: Decimal) {
    let month = day.format("%Y-%m").to_string();
    match buckets.iter_mut().find(|(m, _, _)| *m == month) {
        Some(b) => {
            b.1 += points;
            b.2 += spend;
        }
        None => buckets.push((month, points, spend)),
    }
    buckets.sort_by(|a, b| a.0.cmp(&b.0));
    let excess = buckets.len().saturating_sub(24);
    buckets.drain(..excess);
}

/// Take a refund out of a month's bucket (never below zero; a month already dropped
/// from the kept window is left alone).
pub fn remove(buckets: &mut [MonthBucket], month: &str, points: Points, spend: Decimal) {
    if let Some(b) = buckets.iter_mut().find(|(m, _, _)| m == month) {
        b.1 = Points((b.1 - points).0.max(0));
        b.2 = (b.2 - spend).max(Decimal::ZERO);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program(window: TierWindow) -> TierProgram {
        TierProgram {
            basis: TierBasis::Points,
            window,
            crossing_sale: CrossingSale::OldTier,
            levels: vec![
                TierLevel {
                    name: "silver".into(),
                    threshold: Decimal::from(500),
                },
                TierLevel {
                    name: "gold".into(),
                    threshold: Decimal::from(1500),
                },
            ],
        }
    }

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn the_highest_threshold_reached_is_the_tier() {
        let p = program(TierWindow::Rolling12Months);
        assert_eq!(p.tier_for(Decimal::from(499)), None);
        assert_eq!(p.tier_for(Decimal::from(500)), Some("silver"));
        assert_eq!(p.tier_for(Decimal::from(2000)), Some("gold"));
        assert!(p.rank(Some("gold")) > p.rank(Some("silver")));
    }

    #[test]
    fn a_rolling_window_drops_months_older_than_twelve() {
        let p = program(TierWindow::Rolling12Months);
        let mut b = Vec::new();
        record(&mut b, day("2025-11-30"), Points(1000), Decimal::ZERO);
        record(&mut b, day("2026-06-01"), Points(600), Decimal::ZERO);
        assert_eq!(p.qualifying(&b, day("2026-10-31")), Decimal::from(1600));
        assert_eq!(p.qualifying(&b, day("2026-11-01")), Decimal::from(600));
    }

    #[test]
    fn a_calendar_year_starts_again_on_the_first_of_january() {
        let p = program(TierWindow::CalendarYear);
        let mut b = Vec::new();
        record(&mut b, day("2026-12-31"), Points(900), Decimal::ZERO);
        assert_eq!(p.qualifying(&b, day("2026-12-31")), Decimal::from(900));
        assert_eq!(p.qualifying(&b, day("2027-01-01")), Decimal::ZERO);
    }
}
