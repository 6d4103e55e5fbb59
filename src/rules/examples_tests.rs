//! Tests of the example rule files in `config/examples/`: each loads and scores a few
//! sales to exact numbers.

use std::path::Path;

use chrono::{TimeZone, Utc};
use loyaltyd_adapter::{Sale, SaleLine};
use rust_decimal::Decimal;

use super::eval::tests::{d, item, sale};
use super::*;

fn example(name: &str) -> RuleSet {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config/examples")
        .join(name);
    let rules = RuleSet::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(rules.warnings.is_empty(), "{:?}", rules.warnings);
    rules
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

fn at(s: &Sale, y: i32, m: u32, day: u32, h: u32, min: u32, tz: chrono_tz::Tz) -> SaleContext<'_> {
    SaleContext {
        sale: s,
        adapter: "square",
        occurred_at: tz
            .with_ymd_and_hms(y, m, day, h, min, 0)
            .unwrap()
            .with_timezone(&Utc),
        timezone: tz,
    }
}

fn coffee_order() -> Sale {
    // Two lattes less a 0.92 discount (8.08), a muffin less 0.33 (2.92), a cup deposit.
    sale(
        vec![
            SaleLine {
                quantity: Decimal::from(2),
                discount: d("0.92"),
                ..item("1", "LATTE", "house", "4.50")
            },
            SaleLine {
                discount: d("0.33"),
                ..item("2", "MUFFIN", "house", "3.25")
            },
            item("3", "CUP-DEPOSIT", "house", "0.50"),
        ],
        false,
    )
}

#[test]
fn coffee_stars_per_dollar_afternoon_double_and_first_visit() {
    let rules = example("coffee.toml");
    assert_eq!(rules.reward("free-drink").map(|r| r.points), Some(50));
    let ny = chrono_tz::America::New_York;
    let s = coffee_order();
    let regular = MemberSnapshot::default();

    // Saturday morning: 11.00 eligible (deposit excluded) x 2 stars = 22.
    let a = score(&at(&s, 2026, 12, 5, 10, 30, ny), &regular, &rules);
    assert_eq!(a.eligible_spend, d("11.00"));
    assert_eq!(a.lines[2].eligible, Decimal::ZERO);
    assert_eq!(parts(&a), want(&[("earn.base", 22)]));

    // Tuesday 15:00: afternoon double.
    let a = score(&at(&s, 2026, 12, 8, 15, 0, ny), &regular, &rules);
    assert_eq!(a.points, Points(44));
    assert_eq!(
        parts(&a),
        want(&[("earn.base", 22), ("afternoon-double", 22)])
    );

    // Tuesday 17:00 is outside the window; a first visit adds 25.
    let first = MemberSnapshot {
        first_purchase: true,
        ..Default::default()
    };
    let a = score(&at(&s, 2026, 12, 8, 17, 0, ny), &first, &rules);
    assert_eq!(parts(&a), want(&[("earn.base", 22), ("first-visit", 25)]));
    assert_eq!(a.points, Points(47));
}

#[test]
fn coffee_catering_order_is_capped_at_200_stars() {
    let rules = example("coffee.toml");
    let s = sale(vec![item("1", "CATERING-BOX", "house", "150.00")], false);
    let first = MemberSnapshot {
        first_purchase: true,
        ..Default::default()
    };
    let a = score(
        &at(&s, 2026, 12, 8, 15, 0, chrono_tz::America::New_York),
        &first,
        &rules,
    );
    assert_eq!(a.points, Points(200));
    assert_eq!(
        parts(&a),
        want(&[
            ("earn.base", 300),
            ("afternoon-double", 300),
            ("first-visit", 25),
            ("cap.per_order", -425),
        ])
    );
}

fn fashion_order(channel: &str, lines: Vec<SaleLine>) -> Sale {
    Sale {
        currency: "EUR".parse().unwrap(),
        channel: Some(channel.into()),
        ..sale(lines, true)
    }
}

fn dress() -> SaleLine {
    SaleLine {
        tax: d("19.00"),
        ..item("1", "DRESS-42", "Acme", "119.00")
    }
}

fn scarf() -> SaleLine {
    SaleLine {
        tax: d("5.70"),
        ..item("2", "SCARF-7", "maison nord", "35.70")
    }
}

fn tier(t: &str) -> MemberSnapshot {
    MemberSnapshot {
        tier: Some(t.into()),
        ..Default::default()
    }
}

#[test]
fn fashion_gold_member_online_with_house_label() {
    let rules = example("fashion.toml");
    let s = fashion_order(
        "web",
        vec![dress(), scarf(), item("3", "ALTERATION", "Acme", "10.00")],
    );
    let paris = chrono_tz::Europe::Paris;
    let a = score(&at(&s, 2026, 3, 14, 12, 0, paris), &tier("gold"), &rules);
    // 100.00 + 30.00 without tax; the alteration never earns.
    assert_eq!(a.eligible_spend, d("130.00"));
    assert_eq!(
        parts(&a),
        want(&[
            ("earn.base", 130),
            ("tier-gold", 130),
            ("house-label", 30),
            ("online-100", 100),
        ])
    );
    assert_eq!(a.points, Points(390));

    // The same order for a gold member who already earned 1900 today.
    let busy = MemberSnapshot {
        earned_today: Points(1900),
        ..tier("gold")
    };
    let a = score(&at(&s, 2026, 3, 14, 12, 0, paris), &busy, &rules);
    assert_eq!(a.points, Points(100));
    assert_eq!(
        a.contributions.last().unwrap().rule_id,
        "cap.per_member_day"
    );
    assert_eq!(a.contributions.last().unwrap().points, Points(-290));
}

#[test]
fn fashion_silver_in_store_and_a_member_without_tier() {
    let rules = example("fashion.toml");
    let paris = chrono_tz::Europe::Paris;
    let s = fashion_order("pos", vec![scarf()]);
    let a = score(&at(&s, 2026, 3, 14, 12, 0, paris), &tier("silver"), &rules);
    assert_eq!(
        parts(&a),
        want(&[("earn.base", 30), ("tier-silver", 15), ("house-label", 30)])
    );
    // No tier, online, under 100 EUR after tax: the base rate only.
    let s = fashion_order(
        "web",
        vec![SaleLine {
            tax: d("16.00"),
            ..item("1", "SHIRT", "Acme", "96.00")
        }],
    );
    let a = score(
        &at(&s, 2026, 3, 14, 12, 0, paris),
        &MemberSnapshot::default(),
        &rules,
    );
    assert_eq!(parts(&a), want(&[("earn.base", 80)]));
}

#[test]
fn cashback_two_percent_and_five_for_card_members() {
    let rules = example("cashback.toml");
    let s = sale(
        vec![
            item("1", "SHOES", "Acme", "40.00"),
            SaleLine {
                product_type: None,
                categories: Vec::new(),
                gift_card: true,
                ..item("2", "GIFT-CARD", "shop", "25.00")
            },
        ],
        false,
    );
    let utc = chrono_tz::UTC;
    let a = score(
        &at(&s, 2026, 5, 1, 9, 0, utc),
        &MemberSnapshot::default(),
        &rules,
    );
    assert_eq!(a.points, Points(0));
    assert_eq!(a.cash_back, d("0.80"));
    assert_eq!(parts(&a), want(&[("earn.base", 0), ("cash-back", 0)]));

    let card = MemberSnapshot {
        tags: vec!["card".into()],
        ..Default::default()
    };
    let a = score(&at(&s, 2026, 5, 1, 9, 0, utc), &card, &rules);
    assert_eq!(a.cash_back, d("2.00"));
    assert_eq!(
        parts(&a),
        want(&[("earn.base", 0), ("cash-back", 0), ("card-cash-back", 0)])
    );
    assert!(a.contributions[1].detail.contains("not applied"));
    assert_eq!(
        a.contributions[2].detail,
        "card-cash-back: 5% cash back on 40.00 USD of the order = 2.00 USD store credit"
    );

    // 5 % of 33.33 is 1.6665: rounded down to the cent.
    let s = sale(vec![item("1", "SOCKS", "Acme", "33.33")], false);
    let a = score(&at(&s, 2026, 5, 1, 9, 0, utc), &card, &rules);
    assert_eq!(a.cash_back, d("1.66"));
}
