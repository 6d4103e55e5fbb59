//! Scoring: a pure function from a sale and a rule set to an [`Award`].

use loyaltyd_adapter::Sale;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::RuleSet;
use crate::points::Points;

/// What a sale earns, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Award {
    /// Total points earned.
    pub points: Points,
    /// The spend the rules counted, in the sale's currency.
    #[serde(with = "rust_decimal::serde::str")]
    pub eligible_spend: Decimal,
    /// One entry per rule that fired.
    pub contributions: Vec<Contribution>,
    /// Eligible spend per sale line (zero for lines that never earn), kept with the
    /// order so refunds reverse in proportion to what they take back.
    pub lines: Vec<LineEligible>,
}

/// The eligible spend of one sale line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineEligible {
    /// The sender's line id.
    pub line_id: String,
    /// Its eligible spend.
    #[serde(with = "rust_decimal::serde::str")]
    pub eligible: Decimal,
}

impl Award {
    /// Ids of the rules that contributed.
    pub fn rule_ids(&self) -> Vec<String> {
        self.contributions
            .iter()
            .map(|c| c.rule_id.clone())
            .collect()
    }
}

/// One rule's part in an award.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contribution {
    /// The rule's id.
    pub rule_id: String,
    /// Points it contributed.
    pub points: Points,
    /// A human-readable account of the arithmetic.
    pub detail: String,
}

/// The id of the base earning rule in explanations.
pub const BASE_RULE_ID: &str = "earn.base";

/// Score a sale. Eligible spend is the sum over non-gift-card lines of
/// `unit_price × quantity − discount`, less the line's tax when prices include tax;
/// shipping and tax are never eligible. Points are `rounding(eligible × points_per_unit)`.
pub fn score(sale: &Sale, rules: &RuleSet) -> Award {
    let lines: Vec<LineEligible> = sale
        .lines
        .iter()
        .map(|l| LineEligible {
            line_id: l.line_id.clone(),
            eligible: if l.gift_card {
                Decimal::ZERO
            } else if sale.taxes_included {
                (l.net() - l.tax).max(Decimal::ZERO)
            } else {
                l.net().max(Decimal::ZERO)
            },
        })
        .collect();
    let eligible: Decimal = lines.iter().map(|l| l.eligible).sum();
    let raw = eligible * rules.earn.points_per_unit;
    let whole = rules.earn.rounding.apply(raw);
    // Saturate rather than wrap on absurd inputs; such sales are still bounded by the
    // adapter's parsing of amounts.
    let points = Points(whole.to_i64().unwrap_or(i64::MAX));
    Award {
        points,
        eligible_spend: eligible,
        contributions: vec![Contribution {
            rule_id: BASE_RULE_ID.to_string(),
            points,
            detail: format!(
                "eligible spend {eligible} {cur} x {ppu} points per {cur} = {raw}, {rounding:?} -> {points}",
                cur = sale.currency,
                ppu = rules.earn.points_per_unit,
                rounding = rules.earn.rounding,
                points = points.0,
            ),
        }],
        lines,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{EarnRule, Rounding};
    use loyaltyd_adapter::SaleLine;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn line(price: &str, qty: i64, discount: &str, tax: &str, gift_card: bool) -> SaleLine {
        SaleLine {
            line_id: "l".into(),
            sku: None,
            product_id: None,
            variant_id: None,
            title: "t".into(),
            vendor: None,
            quantity: Decimal::from(qty),
            unit_price: d(price),
            discount: d(discount),
            tax: d(tax),
            gift_card,
        }
    }

    fn sale(lines: Vec<SaleLine>, taxes_included: bool) -> Sale {
        Sale {
            order_id: "o".into(),
            source_order_id: None,
            customer: None,
            currency: "USD".parse().unwrap(),
            lines,
            shipping: d("7.50"),
            tax: d("3.00"),
            taxes_included,
            total: d("0"),
            location_id: None,
            channel: None,
        }
    }

    fn rules(ppu: &str, rounding: Rounding) -> RuleSet {
        RuleSet {
            earn: EarnRule {
                points_per_unit: d(ppu),
                rounding,
            },
            policy: Default::default(),
            rewards: Vec::new(),
            version: "test".into(),
        }
    }

    #[test]
    fn the_reference_pos_basket_earns_eleven_points_at_one_per_dollar() {
        // 2 x 4.50 - 0.92 + 3.25 - 0.33 = 11.00; tax and shipping excluded.
        let s = sale(
            vec![
                line("4.50", 2, "0.92", "0.65", false),
                line("3.25", 1, "0.33", "0.23", false),
            ],
            false,
        );
        let a = score(&s, &rules("1", Rounding::Floor));
        assert_eq!(a.eligible_spend, d("11.00"));
        assert_eq!(a.points, Points(11));
        assert_eq!(a.rule_ids(), vec!["earn.base".to_string()]);
    }

    #[test]
    fn fractions_are_floored_by_default() {
        let s = sale(vec![line("10.99", 1, "0", "0", false)], false);
        assert_eq!(score(&s, &rules("1", Rounding::Floor)).points, Points(10));
        assert_eq!(score(&s, &rules("1", Rounding::Round)).points, Points(11));
    }

    #[test]
    fn gift_cards_earn_nothing() {
        let s = sale(vec![line("50.00", 1, "0", "0", true)], false);
        assert_eq!(score(&s, &rules("1", Rounding::Floor)).points, Points(0));
    }

    #[test]
    fn included_tax_is_taken_out_of_eligible_spend() {
        let s = sale(vec![line("35.00", 1, "5.00", "4.79", false)], true);
        let a = score(&s, &rules("1", Rounding::Floor));
        assert_eq!(a.eligible_spend, d("25.21"));
        assert_eq!(a.points, Points(25));
    }

    #[test]
    fn a_discount_larger_than_the_basket_earns_zero_not_negative() {
        let s = sale(vec![line("5.00", 1, "9.00", "0", false)], false);
        assert_eq!(score(&s, &rules("2", Rounding::Floor)).points, Points(0));
    }

    #[test]
    fn a_fractional_rate_is_exact() {
        // 0.1 as f64 would give 29.999...; Decimal gives exactly 30.
        let s = sale(vec![line("300.00", 1, "0", "0", false)], false);
        assert_eq!(score(&s, &rules("0.1", Rounding::Floor)).points, Points(30));
    }
}
