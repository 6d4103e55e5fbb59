//! Property tests of scoring: deterministic, never negative, monotone in spend for
//! programs without caps, and caps always hold.

use chrono::{TimeZone, Utc};
use loyaltyd_adapter::{Sale, SaleLine};
use proptest::prelude::*;
use rust_decimal::Decimal;

use super::eval::tests::sale;
use super::*;

/// Rule snippets a program is drawn from: every condition and effect kind.
const SNIPPETS: &[&str] = &[
    "when = { days = [\"sat\", \"sun\"] }\neffect = { multiplier = \"2\" }",
    "when = { skus = [\"SKU-1\", \"SKU-3\"] }\neffect = { multiplier = \"3\" }",
    "when = { vendors = [\"v0\"] }\neffect = { points_per_unit = \"1.5\", per = \"line\" }",
    "when = { min_spend = \"50.00\" }\neffect = { bonus = 25 }",
    "when = { hours = \"09:00-17:00\" }\neffect = { points_per_unit = \"0.3\" }",
    "when = { tags = [\"card\"] }\neffect = { cash_back_percent = \"5\" }",
    "effect = { cash_back_percent = \"2\" }",
    "when = { tiers = [\"gold\"], channels = [\"pos\"] }\neffect = { multiplier = \"1.25\" }",
    "when = { first_purchase = true }\neffect = { bonus = 10 }",
    "when = { product_ids = [\"p2\"], from = \"2020-01-01\", to = \"2030-12-31\" }\neffect = { multiplier = \"2\" }",
];

fn program(mask: u16, combine: usize, eligible: &str, caps: &str) -> RuleSet {
    let mut text = format!(
        "[earn]\npoints_per_unit = \"1.1\"\ncombine = \"{}\"\n{eligible}\n{caps}\n",
        ["stack", "multiply", "best"][combine % 3]
    );
    for (i, s) in SNIPPETS.iter().enumerate() {
        if mask & (1 << i) != 0 {
            text.push_str(&format!("[[rules]]\nid = \"r{i}\"\n{s}\n"));
        }
    }
    RuleSet::parse(&text, "p.toml").unwrap_or_else(|e| panic!("{e}\n{text}"))
}

const ELIGIBLE: &[&str] = &[
    "",
    "[eligible]\ninclude_tax = true\ninclude_shipping = true\ngift_cards = true\n",
    "[eligible]\nsubtract_discounts = false\nexclude_skus = [\"SKU-0\"]\n",
];

fn line_strategy() -> impl Strategy<Value = SaleLine> {
    (
        0u8..5,
        0i64..50_000,
        1i64..4,
        0i64..100,
        0i64..2_000,
        any::<bool>(),
    )
        .prop_map(|(k, cents, qty, disc_pct, tax, gift)| {
            let price = Decimal::new(cents, 2);
            SaleLine {
                line_id: format!("l{k}"),
                sku: Some(format!("SKU-{k}")),
                product_id: Some(format!("p{k}")),
                variant_id: None,
                title: "t".into(),
                vendor: Some(format!("v{}", k % 2)),
                quantity: Decimal::from(qty),
                unit_price: price,
                discount: (price * Decimal::from(qty) * Decimal::new(disc_pct, 2)).round_dp(2),
                tax: Decimal::new(tax, 2),
                product_type: None,
                categories: Vec::new(),
                gift_card: gift && k == 4,
            }
        })
}

fn member_strategy() -> impl Strategy<Value = MemberSnapshot> {
    (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(gold, card, first)| MemberSnapshot {
        tier: gold.then(|| "gold".to_string()),
        tags: if card { vec!["card".into()] } else { vec![] },
        first_purchase: first,
        ..Default::default()
    })
}

fn context(s: &Sale, hour: u32, day: u32) -> SaleContext<'_> {
    SaleContext {
        sale: s,
        adapter: "square",
        occurred_at: Utc.with_ymd_and_hms(2026, 6, day, hour, 15, 0).unwrap(),
        timezone: chrono_tz::Europe::Berlin,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn scoring_is_deterministic_never_negative_and_monotone_in_spend(
        lines in prop::collection::vec(line_strategy(), 1..8),
        mask in any::<u16>(),
        combine in 0usize..3,
        elig in 0usize..3,
        member in member_strategy(),
        hour in 0u32..24,
        day in 1u32..29,
        taxes_included in any::<bool>(),
        pos in any::<bool>(),
        bump_line in any::<prop::sample::Index>(),
        bump in 1i64..10_000,
    ) {
        let rules = program(mask, combine, ELIGIBLE[elig], "");
        let mut s = sale(lines, taxes_included);
        s.channel = pos.then(|| "pos".to_string());
        let a = score(&context(&s, hour, day), &member, &rules);
        let again = score(&context(&s, hour, day), &member, &rules);
        prop_assert_eq!(&a, &again);
        prop_assert!(a.points >= Points::ZERO);
        prop_assert!(a.cash_back >= Decimal::ZERO);
        prop_assert!(a.eligible_spend >= Decimal::ZERO);
        prop_assert!(a.lines.iter().all(|l| l.eligible >= Decimal::ZERO));
        let sum: i64 = a.contributions.iter().map(|c| c.points.0).sum();
        prop_assert_eq!(sum, a.points.0);

        // More spend on one line never earns less.
        let mut more = s.clone();
        let i = bump_line.index(more.lines.len());
        more.lines[i].unit_price += Decimal::new(bump, 2);
        let b = score(&context(&more, hour, day), &member, &rules);
        prop_assert!(b.points >= a.points, "{:?}\n{:?}", a.contributions, b.contributions);
        prop_assert!(b.cash_back >= a.cash_back);
        prop_assert!(b.eligible_spend >= a.eligible_spend);
    }

    #[test]
    fn caps_always_hold(
        lines in prop::collection::vec(line_strategy(), 1..8),
        mask in any::<u16>(),
        combine in 0usize..3,
        member in member_strategy(),
        today in 0i64..300,
        month in 0i64..2_000,
        hour in 0u32..24,
    ) {
        let rules = program(mask, combine, "", "[caps]\nper_order = 150\nper_member_day = 200\nper_member_month = 1500\n");
        let s = sale(lines, false);
        let m = MemberSnapshot { earned_today: Points(today), earned_this_month: Points(month), ..member };
        let a = score(&context(&s, hour, 10), &m, &rules);
        prop_assert!(a.points >= Points::ZERO);
        prop_assert!(a.points.0 <= 150);
        prop_assert!(a.points.0 <= (200 - today).max(0));
        prop_assert!(a.points.0 <= (1_500 - month).max(0));
        let sum: i64 = a.contributions.iter().map(|c| c.points.0).sum();
        prop_assert_eq!(sum, a.points.0);
    }
}
