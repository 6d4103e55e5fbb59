//! Scoring speed: a 20-line sale against a generated 50-rule program mixing every
//! condition and effect kind. Target: well under 20 µs per score. A last benchmark adds
//! rendering every explanation, as the ingest path does when it stores the posting.

use std::hint::black_box;

use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion};
use loyaltyd::rules::{score, MemberSnapshot, RuleSet, SaleContext};
use loyaltyd_adapter::{Sale, SaleLine};
use rust_decimal::Decimal;

fn program(combine: &str) -> RuleSet {
    let mut text = format!(
        "[earn]\npoints_per_unit = \"1\"\ncombine = \"{combine}\"\n\
         [eligible]\nexclude_skus = [\"SKU-99\", \"DEPOSIT\"]\n\
         [caps]\nper_order = 5000\nper_member_day = 10000\nper_member_month = 50000\n"
    );
    for i in 0..50 {
        let when = match i % 10 {
            0 => "when = { days = [\"sat\", \"sun\"], hours = \"08:00-20:00\" }".to_string(),
            1 => format!(
                "when = {{ skus = [\"SKU-{}\", \"SKU-{}\", \"SKU-{}\"] }}",
                i % 20,
                (i + 7) % 20,
                (i + 13) % 20
            ),
            2 => format!("when = {{ vendors = [\"vendor-{}\"] }}", i % 5),
            3 => "when = { min_spend = \"50.00\", channels = [\"pos\", \"web\"] }".to_string(),
            4 => "when = { tiers = [\"gold\", \"silver\"] }".to_string(),
            5 => "when = { tags = [\"card\", \"staff\"], locations = [\"loc-1\"] }".to_string(),
            6 => format!(
                "when = {{ product_ids = [\"p{}\", \"p{}\", \"p{}\", \"p{}\", \"p{}\", \"p{}\"] }}",
                i % 20,
                i % 20 + 1,
                i % 20 + 2,
                30,
                31,
                32
            ),
            7 => "when = { from = \"2026-01-01\", to = \"2026-12-31\", adapters = [\"square\"] }"
                .to_string(),
            8 => "when = { first_purchase = false, days = [\"mon\", \"sat\"] }".to_string(),
            _ => String::new(),
        };
        let effect = match i % 4 {
            0 => "effect = { multiplier = \"2\" }".to_string(),
            1 => "effect = { points_per_unit = \"0.5\", per = \"line\" }".to_string(),
            2 => format!("effect = {{ bonus = {} }}", 5 + i),
            _ => "effect = { cash_back_percent = \"1.5\" }".to_string(),
        };
        text.push_str(&format!("[[rules]]\nid = \"rule-{i}\"\n{when}\n{effect}\n"));
    }
    RuleSet::parse(&text, "bench.toml").expect("bench program is valid")
}

fn sale() -> Sale {
    let lines = (0..20)
        .map(|i| SaleLine {
            line_id: format!("line-{i}"),
            sku: Some(format!("SKU-{i}")),
            product_id: Some(format!("p{i}")),
            variant_id: Some(format!("v{i}")),
            title: format!("Item {i}"),
            vendor: Some(format!("Vendor-{}", i % 5)),
            quantity: Decimal::from(1 + i % 3),
            unit_price: Decimal::new(499 + 137 * i, 2),
            discount: Decimal::new(if i % 4 == 0 { 50 } else { 0 }, 2),
            tax: Decimal::new(40 + i, 2),
            product_type: None,
            categories: Vec::new(),
            gift_card: i == 19,
        })
        .collect();
    Sale {
        order_id: "bench".into(),
        source_order_id: None,
        customer: None,
        currency: "USD".parse().unwrap(),
        lines,
        shipping: Decimal::new(750, 2),
        tax: Decimal::new(900, 2),
        taxes_included: false,
        total: Decimal::ZERO,
        location_id: Some("loc-1".into()),
        channel: Some("pos".into()),
    }
}

fn bench(c: &mut Criterion) {
    let s = sale();
    let member = MemberSnapshot {
        tier: Some("gold".into()),
        tags: vec!["card".into()],
        first_purchase: false,
        ..Default::default()
    };
    let ctx = SaleContext {
        sale: &s,
        adapter: "square",
        // Saturday 2026-06-13, 14:30 in New York.
        occurred_at: Utc.with_ymd_and_hms(2026, 6, 13, 18, 30, 0).unwrap(),
        timezone: chrono_tz::America::New_York,
    };
    for combine in ["stack", "multiply", "best"] {
        let rules = program(combine);
        let fired = score(&ctx, &member, &rules).contributions.len();
        assert!(fired > 20, "{combine}: only {fired} contributions");
        c.bench_function(&format!("score 20 lines x 50 rules ({combine})"), |b| {
            b.iter(|| score(black_box(&ctx), black_box(&member), black_box(&rules)))
        });
    }
    // What the ingest path pays: the score plus the explanation text it stores.
    let rules = program("stack");
    c.bench_function("score and render explanations (stack)", |b| {
        b.iter(|| {
            let award = score(black_box(&ctx), black_box(&member), black_box(&rules));
            for c in &award.contributions {
                black_box(c.detail.as_str());
            }
            award
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
