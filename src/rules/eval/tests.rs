//! Table tests: every condition and effect, combining, caps, eligibility, and the
//! behaviour of a base-only file before rules existed.

use super::*;
use crate::rules::Rounding;
use chrono::TimeZone;
use loyaltyd_adapter::SaleLine;
use std::str::FromStr;

pub(crate) fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

pub(crate) fn line(price: &str, qty: i64, discount: &str, tax: &str, gift_card: bool) -> SaleLine {
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
        product_type: None,
        categories: Vec::new(),
        gift_card,
    }
}

/// A line with a SKU, product id and vendor.
pub(crate) fn item(id: &str, sku: &str, vendor: &str, price: &str) -> SaleLine {
    SaleLine {
        line_id: id.into(),
        sku: Some(sku.into()),
        product_id: Some(format!("p-{sku}")),
        vendor: Some(vendor.into()),
        ..line(price, 1, "0", "0", false)
    }
}

pub(crate) fn sale(lines: Vec<SaleLine>, taxes_included: bool) -> Sale {
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
    RuleSet::base(d(ppu), rounding)
}

fn parse(extra: &str) -> RuleSet {
    RuleSet::parse(
        &format!("[earn]\npoints_per_unit = \"1\"\n{extra}"),
        "t.toml",
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Saturday 2026-12-05 10:30 in New York (15:30 UTC).
fn saturday_morning() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 5, 15, 30, 0).unwrap()
}

fn ctx(s: &Sale) -> SaleContext<'_> {
    SaleContext {
        sale: s,
        adapter: "square",
        occurred_at: saturday_morning(),
        timezone: chrono_tz::America::New_York,
    }
}

// ---- base rate: exactly as before rules existed ----

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
    let a = score_sale(&s, &rules("1", Rounding::Floor));
    assert_eq!(a.eligible_spend, d("11.00"));
    assert_eq!(a.points, Points(11));
    assert_eq!(a.rule_ids(), vec!["earn.base".to_string()]);
    assert_eq!(
        a.contributions[0].detail,
        "eligible spend 11.00 USD x 1 points per USD = 11.00, Floor -> 11"
    );
    assert_eq!(a.cash_back, Decimal::ZERO);
}

#[test]
fn a_base_only_file_scores_like_the_base_rules() {
    let s = sale(
        vec![
            line("4.50", 2, "0.92", "0.65", false),
            line("20", 1, "0", "0", true),
        ],
        true,
    );
    let file = parse("");
    let a = score(&ctx(&s), &MemberSnapshot::default(), &file);
    let b = score_sale(&s, &rules("1", Rounding::Floor));
    assert_eq!(a, b);
    assert_eq!(a.eligible_spend, d("7.43"));
}

#[test]
fn fractions_are_floored_by_default() {
    let s = sale(vec![line("10.99", 1, "0", "0", false)], false);
    assert_eq!(
        score_sale(&s, &rules("1", Rounding::Floor)).points,
        Points(10)
    );
    assert_eq!(
        score_sale(&s, &rules("1", Rounding::Round)).points,
        Points(11)
    );
    assert_eq!(
        score_sale(&s, &rules("1", Rounding::Ceil)).points,
        Points(11)
    );
}

#[test]
fn rounding_modes_round_as_documented() {
    assert_eq!(Rounding::Floor.apply(d("10.99")), d("10"));
    assert_eq!(Rounding::Round.apply(d("10.5")), d("11"));
    assert_eq!(Rounding::Round.apply(d("10.49")), d("10"));
    assert_eq!(Rounding::Ceil.apply(d("10.01")), d("11"));
}

#[test]
fn gift_cards_earn_nothing() {
    let s = sale(vec![line("50.00", 1, "0", "0", true)], false);
    assert_eq!(
        score_sale(&s, &rules("1", Rounding::Floor)).points,
        Points(0)
    );
}

#[test]
fn included_tax_is_taken_out_of_eligible_spend() {
    let s = sale(vec![line("35.00", 1, "5.00", "4.79", false)], true);
    let a = score_sale(&s, &rules("1", Rounding::Floor));
    assert_eq!(a.eligible_spend, d("25.21"));
    assert_eq!(a.points, Points(25));
}

#[test]
fn a_discount_larger_than_the_basket_earns_zero_not_negative() {
    let s = sale(vec![line("5.00", 1, "9.00", "0", false)], false);
    assert_eq!(
        score_sale(&s, &rules("2", Rounding::Floor)).points,
        Points(0)
    );
}

#[test]
fn a_fractional_rate_is_exact() {
    // 0.1 as f64 would give 29.999...; Decimal gives exactly 30.
    let s = sale(vec![line("300.00", 1, "0", "0", false)], false);
    assert_eq!(
        score_sale(&s, &rules("0.1", Rounding::Floor)).points,
        Points(30)
    );
}

// ---- eligibility ----

#[test]
fn eligibility_options_change_what_counts() {
    let lines = || {
        vec![
            line("10.00", 1, "2.00", "1.00", false),
            line("25.00", 1, "0", "0", true),
            SaleLine {
                sku: Some("gift-wrap".into()),
                ..line("3.00", 1, "0", "0", false)
            },
        ]
    };
    // (eligible table, taxes_included, expected eligible spend)
    let cases = [
        ("", false, "8.00"),
        ("", true, "7.00"),
        ("[eligible]\ninclude_tax = true\n", false, "9.00"),
        ("[eligible]\ninclude_tax = true\n", true, "8.00"),
        ("[eligible]\nsubtract_discounts = false\n", false, "10.00"),
        ("[eligible]\ngift_cards = true\n", false, "33.00"),
        ("[eligible]\ninclude_shipping = true\n", false, "15.50"),
        (
            "[eligible]\nexclude_skus = [\"GIFT-WRAP\"]\ngift_cards = true\n",
            false,
            "33.00",
        ),
    ];
    // Without exclude_skus the gift-wrap line counts (3.00).
    for (table, incl, want) in cases {
        let s = sale(lines(), incl);
        let r = parse(table);
        let a = score(&ctx(&s), &MemberSnapshot::default(), &r);
        let wrap = if table.contains("exclude_skus") {
            "0"
        } else {
            "3"
        };
        let want = d(want) + d(wrap);
        assert_eq!(a.eligible_spend, want, "{table:?} taxes_included={incl}");
        assert_eq!(
            a.points,
            Points(a.eligible_spend.floor().try_into().unwrap())
        );
    }
}

#[test]
fn excluded_lines_and_gift_cards_record_zero_per_line() {
    let s = sale(
        vec![
            item("a", "LATTE", "house", "4.00"),
            item("b", "DEPOSIT", "house", "0.50"),
        ],
        false,
    );
    let r = parse("[eligible]\nexclude_skus = [\"deposit\"]\n");
    let a = score(&ctx(&s), &MemberSnapshot::default(), &r);
    assert_eq!(
        a.lines,
        vec![
            LineEligible {
                line_id: "a".into(),
                eligible: d("4.00")
            },
            LineEligible {
                line_id: "b".into(),
                eligible: Decimal::ZERO
            },
        ]
    );
}

// ---- conditions: one table, each with a matching and a non-matching case ----

#[test]
fn every_condition_matches_and_fails_as_documented() {
    let gold = MemberSnapshot {
        tier: Some("Gold".into()),
        tags: vec!["card".into(), "staff".into()],
        first_purchase: true,
        ..Default::default()
    };
    let new = MemberSnapshot::default();
    // (when, member, fires?)
    let cases: &[(&str, &MemberSnapshot, bool)] = &[
        ("channels = [\"POS\"]", &new, true),
        ("channels = [\"web\"]", &new, false),
        ("adapters = [\"square\"]", &new, true),
        ("adapters = [\"shopify\"]", &new, false),
        ("locations = [\"loc-1\"]", &new, true),
        ("locations = [\"loc-2\"]", &new, false),
        ("skus = [\"latte\"]", &new, true),
        ("skus = [\"mocha\"]", &new, false),
        ("product_ids = [\"p-LATTE\"]", &new, true),
        ("product_ids = [\"p-MOCHA\"]", &new, false),
        ("vendors = [\"house\"]", &new, true),
        ("vendors = [\"acme\"]", &new, false),
        ("product_types = [\"coffee\"]", &new, false),
        ("collections = [\"drinks\"]", &new, false),
        ("min_spend = \"20.00\"", &new, true),
        ("min_spend = \"20.01\"", &new, false),
        ("from = \"2026-12-05\"", &new, true),
        ("from = \"2026-12-06\"", &new, false),
        ("to = \"2026-12-05\"", &new, true),
        ("to = 2026-12-04", &new, false),
        ("from = 2026-12-01, to = 2026-12-31", &new, true),
        ("days = [\"sat\"]", &new, true),
        ("days = [\"sun\", \"fri\"]", &new, false),
        ("hours = \"10:30-11:00\"", &new, true),
        ("hours = \"09:00-10:30\"", &new, false),
        ("hours = \"22:00-11:00\"", &new, true),
        ("tiers = [\"gold\"]", &gold, true),
        ("tiers = [\"gold\"]", &new, false),
        ("tags = [\"CARD\"]", &gold, true),
        ("tags = [\"card\"]", &new, false),
        ("first_purchase = true", &gold, true),
        ("first_purchase = true", &new, false),
        ("first_purchase = false", &new, true),
        ("days = [\"sat\"], tiers = [\"silver\"]", &gold, false),
    ];
    let s = Sale {
        channel: Some("pos".into()),
        location_id: Some("loc-1".into()),
        ..sale(
            vec![
                item("a", "LATTE", "House", "4.00"),
                item("b", "BEANS", "Roaster", "16.00"),
            ],
            false,
        )
    };
    for (when, member, fires) in cases {
        let r = parse(&format!(
            "[[rules]]\nid = \"r\"\nwhen = {{ {when} }}\neffect = {{ bonus = 7 }}\n"
        ));
        let a = score(&ctx(&s), member, &r);
        let fired = a.rule_ids().contains(&"r".to_string());
        assert_eq!(fired, *fires, "when = {{ {when} }}: {:?}", a.contributions);
        assert_eq!(a.points, Points(if *fires { 27 } else { 20 }), "{when}");
    }
}

#[test]
fn a_line_rule_needs_a_matching_line_with_eligible_spend() {
    // The latte is free (fully discounted): a latte rule does not fire.
    let s = sale(
        vec![SaleLine {
            discount: d("4.00"),
            ..item("a", "LATTE", "house", "4.00")
        }],
        false,
    );
    let r = parse("[[rules]]\nid = \"r\"\nwhen = { skus = [\"latte\"] }\neffect = { bonus = 5 }\n");
    assert_eq!(
        score(&ctx(&s), &MemberSnapshot::default(), &r).points,
        Points(0)
    );
}

#[test]
fn dates_and_hours_are_read_in_the_shop_time_zone() {
    // 2026-12-06 02:00 UTC is still Saturday 21:00 in New York.
    let s = sale(vec![line("10", 1, "0", "0", false)], false);
    let c = SaleContext {
        occurred_at: Utc.with_ymd_and_hms(2026, 12, 6, 2, 0, 0).unwrap(),
        ..ctx(&s)
    };
    let r = parse(
        "[[rules]]\nid = \"r\"\nwhen = { days = [\"sat\"], hours = \"20:00-22:00\", to = \"2026-12-05\" }\neffect = { bonus = 1 }\n",
    );
    assert_eq!(score(&c, &MemberSnapshot::default(), &r).points, Points(11));
    let utc = SaleContext {
        timezone: chrono_tz::UTC,
        ..c
    };
    assert_eq!(
        score(&utc, &MemberSnapshot::default(), &r).points,
        Points(10)
    );
}

// ---- effects ----

fn basket() -> Sale {
    // 11.00 eligible: a 4.50 latte x2 less 0.92, a 3.25 muffin less 0.33.
    sale(
        vec![
            SaleLine {
                quantity: Decimal::from(2),
                discount: d("0.92"),
                ..item("a", "LATTE", "house", "4.50")
            },
            SaleLine {
                discount: d("0.33"),
                ..item("b", "MUFFIN", "bakery", "3.25")
            },
        ],
        false,
    )
}

#[test]
fn every_effect_gives_the_documented_points_and_detail() {
    // (rule body, points, cash back, detail of the rule's contribution)
    let cases = [
        (
            "effect = { multiplier = \"2\" }",
            22,
            "0",
            "r: x2 on 11.00 base points of the order = 11.00, Floor -> +11",
        ),
        (
            "effect = { multiplier = \"1.5\" }",
            16,
            "0",
            "r: x1.5 on 11.00 base points of the order = 5.500, Floor -> +5",
        ),
        (
            "when = { vendors = [\"bakery\"] }\neffect = { multiplier = \"3\" }",
            16,
            "0",
            "r: x3 on 2.92 base points of matching lines = 5.84, Floor -> +5",
        ),
        (
            "effect = { points_per_unit = \"0.3\" }",
            14,
            "0",
            "r: 0.3 points per USD on 11.00 USD of the order = 3.300, Floor -> +3",
        ),
        (
            "effect = { points_per_unit = \"0.3\", per = \"line\" }",
            13,
            "0",
            "r: 0.3 points per USD on 11.00 USD of the order, Floor per line -> +2",
        ),
        (
            "when = { skus = [\"latte\"] }\neffect = { points_per_unit = \"2\" }",
            27,
            "0",
            "r: 2 points per USD on 8.08 USD of matching lines = 16.16, Floor -> +16",
        ),
        ("effect = { bonus = 50 }", 61, "0", "r: bonus +50"),
        (
            "effect = { cash_back_percent = \"2\" }",
            11,
            "0.22",
            "r: 2% cash back on 11.00 USD of the order = 0.22 USD store credit",
        ),
        (
            "effect = { cash_back_percent = \"3.33\" }",
            11,
            "0.36",
            "r: 3.33% cash back on 11.00 USD of the order = 0.36 USD store credit",
        ),
        (
            "when = { skus = [\"muffin\"] }\neffect = { cash_back_percent = \"10\" }",
            11,
            "0.29",
            "r: 10% cash back on 2.92 USD of matching lines = 0.29 USD store credit",
        ),
    ];
    for (body, points, cash, detail) in cases {
        let r = parse(&format!("[[rules]]\nid = \"r\"\n{body}\n"));
        let a = score(&ctx(&basket()), &MemberSnapshot::default(), &r);
        assert_eq!(a.points, Points(points), "{body}: {:?}", a.contributions);
        assert_eq!(a.cash_back, d(cash), "{body}");
        assert_eq!(a.contributions[1].rule_id, "r");
        assert_eq!(a.contributions[1].detail, detail, "{body}");
        let sum: i64 = a.contributions.iter().map(|c| c.points.0).sum();
        assert_eq!(sum, a.points.0, "{body}");
    }
}

#[test]
fn cash_back_rounds_down_to_the_currency_minor_unit() {
    let s = Sale {
        currency: "JPY".parse().unwrap(),
        ..sale(vec![line("1999", 1, "0", "0", false)], false)
    };
    let r = parse("[[rules]]\nid = \"r\"\neffect = { cash_back_percent = \"2\" }\n");
    assert_eq!(
        score(&ctx(&s), &MemberSnapshot::default(), &r).cash_back,
        d("39")
    );
}

// ---- combining ----

const TWO_MULTIPLIERS_AND_A_BONUS: &str =
    "[[rules]]\nid = \"x2\"\neffect = { multiplier = \"2\" }\n\
     [[rules]]\nid = \"x3\"\neffect = { multiplier = \"3\" }\n\
     [[rules]]\nid = \"b\"\neffect = { bonus = 5 }\n\
     [[rules]]\nid = \"c1\"\neffect = { cash_back_percent = \"1\" }\n\
     [[rules]]\nid = \"c2\"\neffect = { cash_back_percent = \"2\" }\n";

fn combined(mode: &str) -> Award {
    let r = parse(&format!(
        "combine = \"{mode}\"\n{TWO_MULTIPLIERS_AND_A_BONUS}"
    ));
    score(&ctx(&basket()), &MemberSnapshot::default(), &r)
}

fn parts(a: &Award) -> Vec<(String, i64)> {
    a.contributions
        .iter()
        .map(|c| (c.rule_id.clone(), c.points.0))
        .collect()
}

fn want(v: &[(&str, i64)]) -> Vec<(String, i64)> {
    v.iter().map(|(k, p)| (k.to_string(), *p)).collect()
}

#[test]
fn stack_adds_every_rule() {
    let a = combined("stack");
    // 11 + 11 (x2) + 22 (x3) + 5 = 49; cash back 1 % + 2 % of 11.00.
    assert_eq!(a.points, Points(49));
    assert_eq!(a.cash_back, d("0.33"));
    assert_eq!(
        parts(&a),
        want(&[
            ("earn.base", 11),
            ("x2", 11),
            ("x3", 22),
            ("b", 5),
            ("c1", 0),
            ("c2", 0)
        ])
    );
}

#[test]
fn multiply_compounds_multipliers_in_file_order() {
    let a = combined("multiply");
    // x2 then x3 = x6: 11 + 11 + 44 = 66, plus the bonus.
    assert_eq!(a.points, Points(71));
    assert_eq!(a.cash_back, d("0.33"));
    assert_eq!(
        parts(&a),
        want(&[
            ("earn.base", 11),
            ("x2", 11),
            ("x3", 44),
            ("b", 5),
            ("c1", 0),
            ("c2", 0)
        ])
    );
}

#[test]
fn multiply_compounds_only_on_the_lines_both_rules_match() {
    let r = parse(
        "combine = \"multiply\"\n[[rules]]\nid = \"all\"\neffect = { multiplier = \"2\" }\n\
         [[rules]]\nid = \"muffins\"\nwhen = { skus = [\"muffin\"] }\neffect = { multiplier = \"3\" }\n",
    );
    let a = score(&ctx(&basket()), &MemberSnapshot::default(), &r);
    // Muffin 2.92 base, x2 already: x3 adds 2 x 2.92 x 2 = 11.68 -> 11.
    assert_eq!(
        parts(&a),
        want(&[("earn.base", 11), ("all", 11), ("muffins", 11)])
    );
}

#[test]
fn best_keeps_only_the_biggest_rule_and_lists_the_others_at_zero() {
    let a = combined("best");
    assert_eq!(a.points, Points(33));
    assert_eq!(a.cash_back, d("0.22"));
    assert_eq!(
        parts(&a),
        want(&[
            ("earn.base", 11),
            ("x2", 0),
            ("x3", 22),
            ("b", 0),
            ("c1", 0),
            ("c2", 0)
        ])
    );
    assert!(a.contributions[1]
        .detail
        .ends_with("(not applied: best rule wins, x3 gives more)"));
    assert!(a.contributions[5].detail.contains("0.22 USD store credit"));
}

#[test]
fn best_breaks_ties_by_file_order() {
    let r = parse(
        "combine = \"best\"\n[[rules]]\nid = \"first\"\neffect = { bonus = 5 }\n[[rules]]\nid = \"second\"\neffect = { bonus = 5 }\n",
    );
    let a = score(&ctx(&basket()), &MemberSnapshot::default(), &r);
    assert_eq!(
        parts(&a),
        want(&[("earn.base", 11), ("first", 5), ("second", 0)])
    );
}

// ---- caps ----

#[test]
fn caps_cut_the_total_and_show_as_negative_contributions() {
    let r = parse(
        "[[rules]]\nid = \"b\"\neffect = { bonus = 100 }\n[caps]\nper_order = 50\nper_member_day = 80\nper_member_month = 1000\n",
    );
    let s = basket();
    // (earned today, earned this month, points, contributions after the rules)
    type Case<'a> = (i64, i64, i64, &'a [(&'a str, i64)]);
    let cases: &[Case<'_>] = &[
        (0, 0, 50, &[("cap.per_order", -61)]),
        (
            40,
            40,
            40,
            &[("cap.per_order", -61), ("cap.per_member_day", -10)],
        ),
        (
            100,
            100,
            0,
            &[("cap.per_order", -61), ("cap.per_member_day", -50)],
        ),
        (
            0,
            990,
            10,
            &[("cap.per_order", -61), ("cap.per_member_month", -40)],
        ),
    ];
    for (today, month, points, caps) in cases {
        let m = MemberSnapshot {
            earned_today: Points(*today),
            earned_this_month: Points(*month),
            ..Default::default()
        };
        let a = score(&ctx(&s), &m, &r);
        assert_eq!(
            a.points,
            Points(*points),
            "{today}/{month}: {:?}",
            a.contributions
        );
        let mut w = vec![("earn.base", 11), ("b", 100)];
        w.extend_from_slice(caps);
        assert_eq!(parts(&a), want(&w));
        let sum: i64 = a.contributions.iter().map(|c| c.points.0).sum();
        assert_eq!(sum, a.points.0);
    }
    let a = score(&ctx(&s), &MemberSnapshot::default(), &r);
    assert_eq!(
        a.contributions[2].detail,
        "cap.per_order: at most 50 points per order: -61"
    );
}

#[test]
fn an_award_under_the_caps_is_not_touched() {
    let r = parse("[caps]\nper_order = 50\n");
    let a = score(&ctx(&basket()), &MemberSnapshot::default(), &r);
    assert_eq!(parts(&a), want(&[("earn.base", 11)]));
}

#[test]
fn score_reads_no_clock_and_is_repeatable() {
    let r = parse(TWO_MULTIPLIERS_AND_A_BONUS);
    let s = basket();
    let a = score(&ctx(&s), &MemberSnapshot::default(), &r);
    let b = score(&ctx(&s), &MemberSnapshot::default(), &r);
    assert_eq!(a, b);
}

#[test]
fn an_award_without_cash_back_still_reads_from_old_json() {
    let json = r#"{"points":3,"eligible_spend":"3.50","contributions":[],"lines":[]}"#;
    let a: Award = serde_json::from_str(json).unwrap();
    assert_eq!(a.cash_back, Decimal::ZERO);
}

#[test]
fn product_type_and_collection_conditions_match_what_the_adapter_reports() {
    let rules = crate::rules::RuleSet::parse(
        "[earn]\npoints_per_unit = \"1\"\n\n[[rules]]\nid = \"beans\"\nwhen = { product_types = [\"Coffee Beans\"] }\neffect = { bonus = 5 }\n\n[[rules]]\nid = \"holiday\"\nwhen = { collections = [\"holiday\"] }\neffect = { bonus = 7 }\n",
        "r.toml",
    )
    .unwrap();
    let mut beans = line("10.00", 1, "0", "0", false);
    beans.product_type = Some("coffee beans".into());
    let mut mug = line("10.00", 1, "0", "0", false);
    mug.categories = vec!["Holiday".into()];
    let plain = line("10.00", 1, "0", "0", false);
    for (l, want) in [(beans, 15), (mug, 17), (plain, 10)] {
        let s = sale(vec![l], false);
        let ctx = crate::rules::SaleContext {
            sale: &s,
            adapter: "woocommerce",
            occurred_at: chrono::Utc::now(),
            timezone: chrono_tz::Tz::UTC,
        };
        let a = crate::rules::score(&ctx, &Default::default(), &rules);
        assert_eq!(a.points.0, want, "{:?}", a.contributions);
    }
}

proptest::proptest! {
    #[test]
    fn whole_points_are_the_truncated_decimal_saturating(
        lo: u32, mid: u32, hi in 0u32..2, neg: bool, scale in 0u32..=28
    ) {
        let d = Decimal::from_parts(lo, mid, hi, neg, scale);
        let expected = d.to_i64().unwrap_or(if neg { i64::MIN } else { i64::MAX });
        proptest::prop_assert_eq!(whole(d), expected);
    }
}

proptest::proptest! {
    /// `combine = "multiply"` against the definition, computed line by line: each
    /// multiplier adds `m - 1` times the base points of its lines as already multiplied.
    #[test]
    fn multiply_mode_matches_compounding_line_by_line(
        prices in proptest::collection::vec(1i64..100_000, 1..6),
        rules in proptest::collection::vec((0usize..4, proptest::option::of(1u8..64)), 1..6),
    ) {
        let factors = ["1", "1.5", "2", "3"];
        let lines: Vec<SaleLine> = prices
            .iter()
            .enumerate()
            .map(|(i, p)| item(&format!("l{i}"), &format!("S{i}"), "v", &Decimal::new(*p, 2).to_string()))
            .collect();
        let mut text = String::from("combine = \"multiply\"\n");
        for (k, (f, mask)) in rules.iter().enumerate() {
            text.push_str(&format!("[[rules]]\nid = \"m{k}\"\n"));
            if let Some(mask) = mask {
                let skus: Vec<String> = (0..6).filter(|i| mask & (1 << i) != 0).map(|i| format!("\"S{i}\"")).collect();
                text.push_str(&format!("when = {{ skus = [{}] }}\n", skus.join(", ")));
            }
            text.push_str(&format!("effect = {{ multiplier = \"{}\" }}\n", factors[*f]));
        }
        let r = parse(&text);
        let s = sale(lines, false);
        let a = score(&ctx(&s), &MemberSnapshot::default(), &r);

        let mut per_line: Vec<Decimal> = prices.iter().map(|p| Decimal::new(*p, 2)).collect();
        let mut expected = Vec::new();
        for (f, mask) in &rules {
            let m = d(factors[*f]);
            let in_scope = |i: usize| mask.is_none_or(|mask| mask & (1 << i) != 0);
            let on: Decimal = (0..per_line.len()).filter(|i| in_scope(*i)).map(|i| per_line[i]).sum();
            if mask.is_some() && on.is_zero() {
                continue; // a line rule matching no line does not fire
            }
            expected.push(((on * (m - Decimal::ONE)).floor()).to_i64().unwrap());
            for (i, l) in per_line.iter_mut().enumerate() {
                if in_scope(i) {
                    *l *= m;
                }
            }
        }
        let got: Vec<i64> = a.contributions[1..].iter().map(|c| c.points.0).collect();
        proptest::prop_assert_eq!(got, expected);
    }
}
