//! Scoring: a pure function from a sale, a member snapshot and a rule set to an
//! [`Award`]. No I/O, no clock reads: the sale's time comes from the context.
//!
//! See the [module docs](super) for the rules file and how rules combine.

use chrono::{DateTime, Datelike, Timelike, Utc};
use chrono_tz::Tz;
use loyaltyd_adapter::{Sale, SaleLine};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use super::explain::{Detail, How, Scope};
use super::{Combine, Conditions, Effect, Per, Rounding, Rule, RuleSet};
use crate::points::Points;

/// What a sale earns, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Award {
    /// Total points earned, after caps; never negative.
    pub points: Points,
    /// The spend the rules counted, in the sale's currency.
    #[serde(with = "rust_decimal::serde::str")]
    pub eligible_spend: Decimal,
    /// One entry per rule that fired (the base rate first), then caps as negative
    /// entries. The points add up to [`Award::points`].
    pub contributions: Vec<Contribution>,
    /// Eligible spend per sale line (zero for lines that never earn), kept with the
    /// order so refunds reverse in proportion to what they take back.
    pub lines: Vec<LineEligible>,
    /// Store credit earned, in the sale currency (`>= 0`).
    #[serde(default, with = "rust_decimal::serde::str")]
    pub cash_back: Decimal,
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
    /// Ids of the rules that contributed (including caps).
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
    /// Points it contributed (negative for a cap).
    pub points: Points,
    /// A human-readable account of the arithmetic (rendered when first read; serialised
    /// as a string).
    pub detail: Detail,
}

/// The id of the base earning rule in explanations.
pub const BASE_RULE_ID: &str = "earn.base";

/// What the daemon knows about the member when the sale is scored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberSnapshot {
    /// Current tier, if the shop has tiers.
    pub tier: Option<String>,
    /// Tags (`card`, `staff`, ...).
    pub tags: Vec<String>,
    /// Whether this sale is the member's first purchase.
    pub first_purchase: bool,
    /// Points earned earlier on the sale's local day (for `per_member_day`).
    pub earned_today: Points,
    /// Points earned earlier in the sale's local month (for `per_member_month`).
    pub earned_this_month: Points,
}

/// The sale and where and when it happened.
#[derive(Debug, Clone, Copy)]
pub struct SaleContext<'a> {
    /// The sale.
    pub sale: &'a Sale,
    /// The adapter that produced it (`shopify`, `square`, ...).
    pub adapter: &'a str,
    /// When the POS says it happened.
    pub occurred_at: DateTime<Utc>,
    /// The shop's time zone: dates, days and hours are read in it.
    pub timezone: Tz,
}

/// The product type of a line, for `product_types` conditions (`None` when the adapter
/// does not report one: such conditions then do not match the line).
pub fn line_product_type(line: &SaleLine) -> Option<&str> {
    line.product_type.as_deref()
}

/// The collections / categories of a line, for `collections` conditions (empty when the
/// adapter reports none).
pub fn line_collections(line: &SaleLine) -> &[String] {
    &line.categories
}

/// Score a sale the way the daemon did before conditions existed: a new member, no
/// adapter, at the Unix epoch in UTC. Rules with conditions on the adapter, the member
/// or the date see those values.
pub fn score_sale(sale: &Sale, rules: &RuleSet) -> Award {
    let ctx = SaleContext {
        sale,
        adapter: "",
        occurred_at: DateTime::<Utc>::UNIX_EPOCH,
        timezone: Tz::UTC,
    };
    score(&ctx, &MemberSnapshot::default(), rules)
}

fn mul(a: Decimal, b: Decimal) -> Decimal {
    a.checked_mul(b).unwrap_or(Decimal::MAX)
}

fn add(a: Decimal, b: Decimal) -> Decimal {
    a.checked_add(b).unwrap_or(Decimal::MAX)
}

/// Whole part of `d`, saturating. Small non-negative amounts (all real ones) take a
/// single 64-bit division instead of `Decimal::trunc`.
fn whole(d: Decimal) -> i64 {
    if !d.is_sign_negative() && d.scale() <= 19 {
        if let Ok(m) = u64::try_from(d.mantissa()) {
            return i64::try_from(m / 10u64.pow(d.scale())).unwrap_or(i64::MAX);
        }
    }
    d.to_i64().unwrap_or(if d.is_sign_negative() {
        i64::MIN
    } else {
        i64::MAX
    })
}

/// Whole points from a fractional amount. Floor of a non-negative amount is the
/// truncation `to_i64` already does, so it skips a second division.
fn round_points(rounding: Rounding, raw: Decimal) -> i64 {
    if rounding == Rounding::Floor && !raw.is_sign_negative() {
        whole(raw)
    } else {
        whole(rounding.apply(raw))
    }
}

/// The eligible spend of one line under the rules' `[eligible]` table.
fn line_eligible(sale: &Sale, l: &SaleLine, rules: &RuleSet) -> Decimal {
    let e = &rules.eligible;
    if (l.gift_card && !e.gift_cards)
        || l.sku.as_deref().is_some_and(|s| e.exclude_skus.contains(s))
    {
        return Decimal::ZERO;
    }
    let mut amount = mul(l.unit_price, l.quantity);
    if e.subtract_discounts {
        amount -= l.discount;
    }
    if sale.taxes_included && !e.include_tax {
        amount -= l.tax;
    } else if !sale.taxes_included && e.include_tax {
        amount = add(amount, l.tax);
    }
    amount.max(Decimal::ZERO)
}

fn line_matches(w: &Conditions, l: &SaleLine) -> bool {
    fn opt(set: &Option<super::NameSet>, v: Option<&str>) -> bool {
        match set {
            None => true,
            Some(s) => v.is_some_and(|v| s.contains(v)),
        }
    }
    opt(&w.skus, l.sku.as_deref())
        && opt(&w.product_ids, l.product_id.as_deref())
        && opt(&w.vendors, l.vendor.as_deref())
        && opt(&w.product_types, line_product_type(l))
        && w.collections
            .as_ref()
            .is_none_or(|s| s.contains_any(line_collections(l).iter().map(String::as_str)))
}

/// The sale's local time, computed at most once per score.
struct Local<'a> {
    ctx: &'a SaleContext<'a>,
    at: Option<DateTime<Tz>>,
}

impl Local<'_> {
    fn get(&mut self) -> DateTime<Tz> {
        *self
            .at
            .get_or_insert_with(|| self.ctx.occurred_at.with_timezone(&self.ctx.timezone))
    }
}

fn order_matches(
    w: &Conditions,
    ctx: &SaleContext<'_>,
    member: &MemberSnapshot,
    eligible: Decimal,
    local: &mut Local<'_>,
) -> bool {
    let sale = ctx.sale;
    let opt = |set: &Option<super::NameSet>, v: Option<&str>| match set {
        None => true,
        Some(s) => v.is_some_and(|v| s.contains(v)),
    };
    if !(opt(&w.channels, sale.channel.as_deref())
        && opt(&w.adapters, Some(ctx.adapter))
        && opt(&w.locations, sale.location_id.as_deref())
        && opt(&w.tiers, member.tier.as_deref()))
    {
        return false;
    }
    if let Some(tags) = &w.tags {
        if !tags.contains_any(member.tags.iter().map(String::as_str)) {
            return false;
        }
    }
    if w.first_purchase.is_some_and(|f| f != member.first_purchase) {
        return false;
    }
    if w.min_spend.is_some_and(|m| eligible < m) {
        return false;
    }
    if w.needs_local_time() {
        let t = local.get();
        let date = t.date_naive();
        if w.from.is_some_and(|f| date < f) || w.to.is_some_and(|to| date > to) {
            return false;
        }
        if w.days.is_some_and(|d| !d.contains(t.weekday())) {
            return false;
        }
        let minute = (t.hour() * 60 + t.minute()) as u16;
        if w.hours.is_some_and(|h| !h.contains(minute)) {
            return false;
        }
    }
    true
}

/// The base points of each line (and shipping) times the multipliers applied so far,
/// for `combine = "multiply"`: a line's points are `all * lines[i]`, where `all` holds
/// the whole-order multipliers and `lines[i]` the base points times the line rules'.
struct Compound {
    all: Decimal,
    lines: Vec<Decimal>,
    /// The sum of `lines`, until a line rule changes one.
    total: Option<Decimal>,
}

impl Compound {
    fn new(spend: &[Decimal], ppu: Decimal) -> Compound {
        Compound {
            all: Decimal::ONE,
            lines: spend.iter().map(|e| mul(*e, ppu)).collect(),
            total: None,
        }
    }
}

/// A rule that fired, before combining.
struct Fired<'r> {
    rule: &'r Rule,
    points: i64,
    cash: Decimal,
    detail: Detail,
}

/// Score a sale for a member under `rules`. See the [module docs](super) for the
/// arithmetic; every fired rule and every cap is listed in [`Award::contributions`].
pub fn score(ctx: &SaleContext<'_>, member: &MemberSnapshot, rules: &RuleSet) -> Award {
    let sale = ctx.sale;
    let cur = sale.currency;
    let n = sale.lines.len();
    let rounding = rules.earn.rounding;
    let ppu = rules.earn.points_per_unit;

    // Eligible spend per line; index `n` of `spend` is shipping (whole-order rules only).
    let mut spend: Vec<Decimal> = Vec::with_capacity(n + 1);
    let mut lines: Vec<LineEligible> = Vec::with_capacity(n);
    for l in &sale.lines {
        let e = line_eligible(sale, l, rules);
        spend.push(e);
        lines.push(LineEligible {
            line_id: l.line_id.clone(),
            eligible: e,
        });
    }
    let shipping = if rules.eligible.include_shipping {
        sale.shipping.max(Decimal::ZERO)
    } else {
        Decimal::ZERO
    };
    spend.push(shipping);
    let eligible = spend.iter().fold(Decimal::ZERO, |a, b| add(a, *b));

    let raw = mul(eligible, ppu);
    let base = Points(round_points(rounding, raw).max(0));
    let mut contributions = Vec::with_capacity(1 + rules.rules.len().min(8));
    contributions.push(Contribution {
        rule_id: BASE_RULE_ID.to_string(),
        points: base,
        detail: Detail::new(How::Base {
            eligible,
            cur,
            ppu,
            raw,
            rounding,
            points: base.0,
        }),
    });

    let mut local = Local { ctx, at: None };
    let mut fired: Vec<Fired<'_>> = Vec::new();
    // Base points per line times the multipliers so far (`combine = "multiply"` only).
    let mut compound: Option<Compound> = None;
    let mut matched: Vec<bool> = Vec::new();
    let minor = cur.minor_units().unwrap_or(2);
    for rule in &rules.rules {
        let w = &rule.when;
        if !order_matches(w, ctx, member, eligible, &mut local) {
            continue;
        }
        let line_rule = w.has_line_conditions();
        let scope_spend = if line_rule {
            matched.clear();
            let mut sum = Decimal::ZERO;
            let mut any = false;
            for (l, e) in sale.lines.iter().zip(&spend) {
                let m = !e.is_zero() && line_matches(w, l);
                matched.push(m);
                if m {
                    any = true;
                    sum = add(sum, *e);
                }
            }
            if !any {
                continue;
            }
            matched.push(false); // shipping
            sum
        } else {
            eligible
        };
        let in_scope = |i: usize| !line_rule || matched[i];
        let scope = if line_rule {
            Scope::Lines
        } else {
            Scope::Order
        };
        let id = || rule.id.clone();
        let (points, cash, detail) = match &rule.effect {
            Effect::PointsPerUnit { rate, per } => {
                let rate = *rate;
                match per {
                    Per::Order => {
                        let raw = mul(scope_spend, rate);
                        let p = round_points(rounding, raw);
                        let how = How::Rate {
                            id: id(),
                            rate,
                            cur,
                            spend: scope_spend,
                            scope,
                            raw: Some(raw),
                            rounding,
                            points: p,
                        };
                        (p, Decimal::ZERO, how)
                    }
                    Per::Line => {
                        let mut p = 0i64;
                        for (i, e) in spend.iter().enumerate() {
                            if in_scope(i) && !e.is_zero() {
                                p = p.saturating_add(round_points(rounding, mul(*e, rate)));
                            }
                        }
                        let how = How::Rate {
                            id: id(),
                            rate,
                            cur,
                            spend: scope_spend,
                            scope,
                            raw: None,
                            rounding,
                            points: p,
                        };
                        (p, Decimal::ZERO, how)
                    }
                }
            }
            Effect::Multiplier(m) => {
                let extra = m - Decimal::ONE;
                let (raw, on_base) = if rules.earn.combine == Combine::Multiply {
                    let c = compound.get_or_insert_with(|| Compound::new(&spend, ppu));
                    // This rule adds `m - 1` times the base points its lines have after
                    // the multipliers so far, and leaves them `m` times larger.
                    let base_on = if line_rule {
                        let mut sum = Decimal::ZERO;
                        for (i, l) in c.lines.iter_mut().enumerate() {
                            if matched[i] && !spend[i].is_zero() {
                                sum = add(sum, *l);
                                *l = mul(*l, *m);
                            }
                        }
                        c.total = None;
                        mul(c.all, sum)
                    } else {
                        // Every line at once: one factor instead of a product per line.
                        let total = *c.total.get_or_insert_with(|| {
                            c.lines.iter().fold(Decimal::ZERO, |a, l| add(a, *l))
                        });
                        let on = mul(c.all, total);
                        c.all = mul(c.all, *m);
                        on
                    };
                    (mul(base_on, extra), base_on)
                } else {
                    let b = mul(scope_spend, ppu);
                    (mul(b, extra), b)
                };
                let p = round_points(rounding, raw);
                let how = How::Multiplier {
                    id: id(),
                    m: *m,
                    on_base,
                    scope,
                    raw,
                    rounding,
                    points: p,
                };
                (p, Decimal::ZERO, how)
            }
            Effect::Bonus(b) => (
                b.0,
                Decimal::ZERO,
                How::Bonus {
                    id: id(),
                    bonus: *b,
                },
            ),
            Effect::CashBackPercent(pct) => {
                let raw = mul(scope_spend, *pct) / Decimal::ONE_HUNDRED;
                let cash = raw.round_dp_with_strategy(minor, RoundingStrategy::ToZero);
                let how = How::CashBack {
                    id: id(),
                    pct: *pct,
                    spend: scope_spend,
                    cur,
                    scope,
                    cash,
                };
                (0, cash, how)
            }
        };
        fired.push(Fired {
            rule,
            points: points.max(0),
            cash,
            detail: Detail::new(detail),
        });
    }

    let mut total = base;
    let mut cash_back = Decimal::ZERO;
    if rules.earn.combine == Combine::Best {
        let is_cash = |f: &Fired<'_>| matches!(f.rule.effect, Effect::CashBackPercent(_));
        let best_points = best_of(fired.iter().filter(|f| !is_cash(f)), |f| f.points.into());
        let best_cash = best_of(fired.iter().filter(|f| is_cash(f)), |f| f.cash);
        for f in fired {
            let winner = if is_cash(&f) { best_cash } else { best_points };
            if winner == Some(f.rule.id.as_str()) {
                total += Points(f.points);
                cash_back = add(cash_back, f.cash);
                contributions.push(Contribution {
                    rule_id: f.rule.id.clone(),
                    points: Points(f.points),
                    detail: f.detail,
                });
            } else {
                contributions.push(Contribution {
                    rule_id: f.rule.id.clone(),
                    points: Points::ZERO,
                    detail: f.detail.not_applied(winner.unwrap_or("-")),
                });
            }
        }
    } else {
        for f in fired {
            total += Points(f.points);
            cash_back = add(cash_back, f.cash);
            contributions.push(Contribution {
                rule_id: f.rule.id.clone(),
                points: Points(f.points),
                detail: f.detail,
            });
        }
    }

    let caps = &rules.caps;
    let limits = [
        ("cap.per_order", caps.per_order, Points::ZERO, "per order"),
        (
            "cap.per_member_day",
            caps.per_member_day,
            member.earned_today,
            "per member per day",
        ),
        (
            "cap.per_member_month",
            caps.per_member_month,
            member.earned_this_month,
            "per member per month",
        ),
    ];
    for (id, cap, earlier, what) in limits {
        let Some(cap) = cap else { continue };
        let room = (cap - earlier.max(Points::ZERO)).max(Points::ZERO);
        if total > room {
            let cut = room - total;
            contributions.push(Contribution {
                rule_id: id.to_string(),
                points: cut,
                detail: Detail::new(How::Cap {
                    id,
                    cap,
                    what,
                    earlier,
                    cut,
                }),
            });
            total = room;
        }
    }

    Award {
        points: total.max(Points::ZERO),
        eligible_spend: eligible,
        contributions,
        lines,
        cash_back: cash_back.max(Decimal::ZERO),
    }
}

/// The id of the fired rule with the largest value; ties go to the first in the file.
fn best_of<'a, 'r: 'a>(
    fired: impl Iterator<Item = &'a Fired<'r>>,
    value: impl Fn(&Fired<'r>) -> Decimal,
) -> Option<&'r str> {
    let mut best: Option<(&Fired<'r>, Decimal)> = None;
    for f in fired {
        let v = value(f);
        if best.as_ref().is_none_or(|(_, b)| v > *b) {
            best = Some((f, v));
        }
    }
    best.map(|(f, _)| f.rule.id.as_str())
}

#[cfg(test)]
pub(super) mod tests;
