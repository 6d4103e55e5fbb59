//! A shop's earning program, read from its rules file, and the pure scoring function.
//!
//! - [`RuleSet`]: the parsed and validated rules file ([`RuleSet::load`], [`RuleSet::parse`]).
//! - [`score`]: `score(sale context, member snapshot, rules) -> Award`, with no I/O and no
//!   clock reads: the same inputs always give the same award.
//!
//! # The rules file
//!
//! Amounts and rates are **decimal strings** (`"1.5"`, `"10.00"`); TOML floats (`1.5`)
//! are refused so that money stays exact. Whole numbers (`points_per_unit = 2`,
//! `bonus = 50`) may be written bare. Every name list (`skus`, `vendors`, `tags`, ...)
//! is compared ignoring ASCII case. An error names the file, the line and the key:
//! `rules.toml:14: rules[1].when.days: "sunday-ish" is not a day (mon..sun)`.
//!
//! ```toml
//! [earn]                   # the base rate: rule id `earn.base`, always applied
//! points_per_unit = "1"    # points per 1 unit of the shop currency of eligible spend
//! rounding = "floor"       # floor (default) | round | ceil
//! combine = "stack"        # stack (default) | multiply | best: how [[rules]] combine
//!
//! [eligible]               # what counts as eligible spend (defaults shown)
//! subtract_discounts = true   # line price x quantity, less the line's discounts
//! include_tax = false         # false: tax is taken out of tax-inclusive prices
//! include_shipping = false    # true: shipping counts for whole-order rules
//! gift_cards = false          # false: selling a gift card earns nothing
//! exclude_skus = ["GIFT-WRAP", "DEPOSIT"]   # lines that never earn
//!
//! [[rules]]
//! id = "weekend-double"    # shown in every explanation; unique; not `earn.*`/`cap.*`
//! # All conditions given must hold (and); within a list, any entry matches (or).
//! when = { days = ["sat", "sun"], hours = "09:00-17:00" }
//! effect = { multiplier = "2" }
//!
//! [caps]                   # optional, whole points
//! per_order = 500
//! per_member_day = 1000
//! per_member_month = 5000
//!
//! [points]                 # ledger terms (see crate::ledger::policy)
//! pending_days = 14
//!
//! [[rewards]]              # what points buy
//! id = "free-drink"
//! name = "Free drink"
//! points = 50
//! ```
//!
//! ## Conditions (`when`)
//!
//! Of the order:
//! - `channels`: the sale's channel as the POS names it (`"pos"`, `"web"`).
//! - `adapters`: which POS sent it (`"shopify"`, `"square"`, `"woocommerce"`).
//! - `locations`: the sale's location id.
//! - `min_spend = "10.00"`: the order's eligible spend is at least this.
//! - `from = "2026-12-01"`, `to = "2026-12-31"`: local dates, both inclusive (a TOML
//!   date `2026-12-01` works too).
//! - `days = ["sat", "sun"]`: local day of the week (`mon` .. `sun`, or full names).
//! - `hours = "16:00-18:00"`: local time, start inclusive, end exclusive; `"22:00-02:00"`
//!   runs past midnight; `"00:00-24:00"` is all day. Dates, days and hours are read in
//!   the shop's time zone at the moment the POS says the sale happened.
//!
//! Of the member:
//! - `tiers = ["gold"]`: the member's current tier.
//! - `tags = ["card"]`: the member has at least one of these tags.
//! - `first_purchase = true`: this is (or, with `false`, is not) their first purchase.
//!
//! Of the lines (a rule with any of these is a *line rule*: its effect applies to the
//! matching lines only, and it fires only if at least one line with eligible spend
//! matches):
//! - `skus`, `product_ids`, `vendors`.
//! - `product_types`, `collections`: matched against the product type and collections
//!   the adapter reports for a line. No adapter reports them yet, so today such a rule
//!   matches no line and never fires (loading it succeeds, with an entry in
//!   [`RuleSet::warnings`]).
//!
//! ## Effects (`effect`), exactly one per rule
//!
//! - `points_per_unit = "1.5"`: extra points per currency unit of the rule's spend (the
//!   matching lines for a line rule, otherwise the order's eligible spend). `per =
//!   "order"` (default) rounds once on the total; `per = "line"` rounds each line.
//! - `multiplier = "2"`: multiplies the base points earned on the rule's spend; `"2"`
//!   adds as many points again as the base rate gives. At least 1.
//! - `bonus = 50`: fixed extra points.
//! - `cash_back_percent = "2"`: store credit of 2 % of the rule's spend, in the sale
//!   currency, rounded down to the currency's minor unit (cents). No points.
//!
//! ## Combining (`[earn] combine`)
//!
//! The base rate always applies. Matching `[[rules]]` then combine:
//! - `stack` (default): every matching rule adds its points; two `x2` multipliers make
//!   x3 (each adds one more base). Cash back percentages add up.
//! - `multiply`: multipliers compound (`x2` and `x3` on the same line make x6, the
//!   extra going to the rules in file order); other effects add. Cash back adds up.
//! - `best` (as Square does): only the one rule giving the most points counts (ties:
//!   the first in the file); the others are listed with 0 points. Likewise only the
//!   largest cash back counts.
//!
//! ## Rounding and caps
//!
//! Points are whole. Rounding (`[earn] rounding`) happens once per contribution: on the
//! base points, and on each rule's points (per line with `per = "line"`). Then caps
//! apply to the total, in order: `per_order`, then what is left of `per_member_day` and
//! `per_member_month` given what the member earned earlier that local day / month. A cap
//! shows as a negative contribution `cap.per_order`, `cap.per_member_day`,
//! `cap.per_member_month`. An award is never negative.
//!
//! ## Eligible spend
//!
//! Per line: `unit_price x quantity`, less `discount` (if `subtract_discounts`), less the
//! line's tax when prices include tax (unless `include_tax`), plus the line's tax when
//! they do not (only if `include_tax`); never below zero. Gift card lines (unless
//! `gift_cards`) and `exclude_skus` lines are zero. The order's eligible spend is the sum
//! of the lines, plus shipping if `include_shipping`. [`Award::lines`] keeps each line's
//! eligible spend for refunds.
//!
//! A file with only `[earn] points_per_unit` scores exactly as before rules existed:
//! lines less discounts, no gift cards, no tax, no shipping, one contribution `earn.base`.

pub mod eval;
pub mod explain;
pub mod live;
mod parse;
pub mod tiers;

#[cfg(test)]
mod examples_tests;
#[cfg(test)]
mod proptests;

use std::cmp::Ordering;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Deserialize;

use crate::ledger::policy::LedgerPolicy;
use crate::points::Points;

pub use eval::{
    line_collections, line_product_type, score, score_sale, Award, Contribution, LineEligible,
    MemberSnapshot, SaleContext, BASE_RULE_ID,
};
pub use explain::Detail;
pub use live::LiveRules;

/// How fractional points are turned into whole points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rounding {
    /// Toward zero for positive amounts: 10.99 points → 10 (the default).
    Floor,
    /// Half away from zero: 10.5 → 11, 10.49 → 10.
    Round,
    /// Up: 10.01 → 11.
    Ceil,
}

impl Rounding {
    /// Apply to a non-negative point amount.
    pub fn apply(self, points: Decimal) -> Decimal {
        match self {
            Rounding::Floor => points.floor(),
            Rounding::Ceil => points.ceil(),
            Rounding::Round => points
                .round_dp_with_strategy(0, rust_decimal::RoundingStrategy::MidpointAwayFromZero),
        }
    }
}

/// How matching `[[rules]]` combine with each other (the base rate always applies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Combine {
    /// Every matching rule adds its points (the default).
    #[default]
    Stack,
    /// Multipliers compound; other effects add.
    Multiply,
    /// Only the rule giving the most points counts (and the largest cash back).
    Best,
}

/// The base earning rule: points per unit of eligible spend.
#[derive(Debug, Clone, PartialEq)]
pub struct EarnRule {
    /// Points per 1 unit of the shop currency.
    pub points_per_unit: Decimal,
    /// How fractions are rounded.
    pub rounding: Rounding,
    /// How `[[rules]]` combine.
    pub combine: Combine,
}

/// What counts as eligible spend (`[eligible]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Eligibility {
    /// Count tax: kept in tax-inclusive prices, added to tax-exclusive ones.
    pub include_tax: bool,
    /// Count shipping (for whole-order rules and the base rate).
    pub include_shipping: bool,
    /// Take line discounts off.
    pub subtract_discounts: bool,
    /// Let gift card sales earn.
    pub gift_cards: bool,
    /// Lines with these SKUs never earn.
    pub exclude_skus: NameSet,
}

impl Default for Eligibility {
    fn default() -> Self {
        Eligibility {
            include_tax: false,
            include_shipping: false,
            subtract_discounts: true,
            gift_cards: false,
            exclude_skus: NameSet::default(),
        }
    }
}

/// A set of names compared ignoring ASCII case; lookups do not allocate.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NameSet(Vec<String>);

/// Compares a stored (already lower-case) name with a name of any case.
fn cmp_lower_with(lower: &str, b: &str) -> Ordering {
    lower.bytes().cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
}

/// Whether a stored (already lower-case) name equals a name of any case.
fn eq_lower_with(lower: &str, b: &str) -> bool {
    lower.len() == b.len()
        && lower
            .bytes()
            .zip(b.bytes())
            .all(|(x, y)| x == y.to_ascii_lowercase())
}

impl NameSet {
    /// A set of these names.
    pub fn new<I: IntoIterator<Item = S>, S: AsRef<str>>(names: I) -> NameSet {
        let mut v: Vec<String> = names
            .into_iter()
            .map(|s| s.as_ref().trim().to_ascii_lowercase())
            .collect();
        v.sort();
        v.dedup();
        NameSet(v)
    }

    /// Whether `name` is in the set, ignoring ASCII case.
    pub fn contains(&self, name: &str) -> bool {
        match self.0.len() {
            0 => false,
            1..=4 => self.0.iter().any(|n| eq_lower_with(n, name)),
            _ => self.0.binary_search_by(|n| cmp_lower_with(n, name)).is_ok(),
        }
    }

    /// Whether any of `names` is in the set.
    pub fn contains_any<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> bool {
        names.into_iter().any(|n| self.contains(n))
    }

    /// The names, lower case, sorted.
    pub fn names(&self) -> &[String] {
        &self.0
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Days of the week as a bit set (bit 0 = Monday).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Weekdays(pub u8);

impl Weekdays {
    /// Whether `day` is in the set.
    pub fn contains(self, day: chrono::Weekday) -> bool {
        self.0 & (1 << day.num_days_from_monday()) != 0
    }
}

/// A daily time window in minutes after local midnight: start inclusive, end
/// exclusive; `start > end` runs past midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hours {
    /// First minute in the window (0..1440).
    pub start: u16,
    /// First minute after the window (1..=1440).
    pub end: u16,
}

impl Hours {
    /// Whether `minute` (after local midnight) is in the window.
    pub fn contains(self, minute: u16) -> bool {
        if self.start < self.end {
            self.start <= minute && minute < self.end
        } else {
            minute >= self.start || minute < self.end
        }
    }
}

/// When a rule applies; `None` means "any".
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Conditions {
    /// Sale channels.
    pub channels: Option<NameSet>,
    /// Adapters (`shopify`, `square`, ...).
    pub adapters: Option<NameSet>,
    /// Location ids.
    pub locations: Option<NameSet>,
    /// Line SKUs.
    pub skus: Option<NameSet>,
    /// Line product ids.
    pub product_ids: Option<NameSet>,
    /// Line vendors.
    pub vendors: Option<NameSet>,
    /// Line product types (see [`line_product_type`]).
    pub product_types: Option<NameSet>,
    /// Line collections / categories (see [`line_collections`]).
    pub collections: Option<NameSet>,
    /// Minimum eligible spend of the order.
    pub min_spend: Option<Decimal>,
    /// First local date (inclusive).
    pub from: Option<NaiveDate>,
    /// Last local date (inclusive).
    pub to: Option<NaiveDate>,
    /// Local days of the week.
    pub days: Option<Weekdays>,
    /// Local time window.
    pub hours: Option<Hours>,
    /// Member tiers.
    pub tiers: Option<NameSet>,
    /// Member tags (any).
    pub tags: Option<NameSet>,
    /// First purchase or not.
    pub first_purchase: Option<bool>,
}

impl Conditions {
    /// Whether the rule looks at lines (its effect then applies to matching lines only).
    pub fn has_line_conditions(&self) -> bool {
        self.skus.is_some()
            || self.product_ids.is_some()
            || self.vendors.is_some()
            || self.product_types.is_some()
            || self.collections.is_some()
    }

    /// Whether the rule needs the local date or time of the sale.
    pub fn needs_local_time(&self) -> bool {
        self.from.is_some() || self.to.is_some() || self.days.is_some() || self.hours.is_some()
    }
}

/// Whether a rate rule rounds once per order or once per line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Per {
    /// Round the rule's total once.
    #[default]
    Order,
    /// Round each line's points.
    Line,
}

/// What a matching rule does.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Extra points per currency unit of the rule's spend.
    PointsPerUnit {
        /// Points per unit.
        rate: Decimal,
        /// Where rounding happens.
        per: Per,
    },
    /// Multiply the base points earned on the rule's spend (at least 1).
    Multiplier(Decimal),
    /// Fixed extra points.
    Bonus(Points),
    /// Store credit: this percentage of the rule's spend.
    CashBackPercent(Decimal),
}

/// One `[[rules]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Its id, shown in explanations.
    pub id: String,
    /// When it applies.
    pub when: Conditions,
    /// What it does.
    pub effect: Effect,
}

/// `[caps]`: most points that may be earned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Caps {
    /// Per order.
    pub per_order: Option<Points>,
    /// Per member and local day, counting `MemberSnapshot::earned_today`.
    pub per_member_day: Option<Points>,
    /// Per member and local month, counting `MemberSnapshot::earned_this_month`.
    pub per_member_month: Option<Points>,
}

/// A shop's parsed rules file.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSet {
    /// `[earn]`
    pub earn: EarnRule,
    /// `[eligible]`
    pub eligible: Eligibility,
    /// `[[rules]]`, in file order.
    pub rules: Vec<Rule>,
    /// `[caps]`
    pub caps: Caps,
    /// `[tiers]`, when the program has tiers.
    pub tiers: Option<tiers::TierProgram>,
    /// `[bonuses]`: points for events other than sales.
    pub bonuses: Bonuses,
    /// `[points]`: returns window, expiry, clawback policy.
    pub policy: LedgerPolicy,
    /// `[[rewards]]`: what points can buy.
    pub rewards: Vec<Reward>,
    /// First 12 hex digits of the SHA-256 of the file: recorded on every earning, so
    /// any award can be traced to the exact rules that produced it.
    pub version: String,
    /// Things that load but probably do not do what the owner meant (a rule on product
    /// types, which no adapter reports yet), as `file:line: key: message`.
    pub warnings: Vec<String>,
}

impl RuleSet {
    /// Rules with only a base rate (as a file with only `[earn]`).
    pub fn base(points_per_unit: Decimal, rounding: Rounding) -> RuleSet {
        RuleSet {
            earn: EarnRule {
                points_per_unit,
                rounding,
                combine: Combine::Stack,
            },
            eligible: Eligibility::default(),
            rules: Vec::new(),
            caps: Caps::default(),
            tiers: None,
            bonuses: Bonuses::default(),
            policy: LedgerPolicy::default(),
            rewards: Vec::new(),
            version: String::new(),
            warnings: Vec::new(),
        }
    }
}

/// Points for events other than sales (`[bonuses]`); each fires once per its key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Bonuses {
    /// When a member is first created (by a sale or a POS customer record); once.
    #[serde(default)]
    pub signup: u32,
    /// On the member's birthday in the shop's time zone (29 February: on 28 February
    /// in other years); once a year, by the jobs.
    #[serde(default)]
    pub birthday: u32,
    /// To a referrer when the friend they referred completes a first purchase.
    #[serde(default)]
    pub referral_referrer: u32,
    /// To that friend, on the same purchase.
    #[serde(default)]
    pub referral_referee: u32,
}

/// A reward in the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Reward {
    /// Id used by the redemption API (`free-coffee`).
    pub id: String,
    /// Name shown to staff and members.
    pub name: String,
    /// Points it costs.
    pub points: i64,
    /// What the member gets: `item` (a free product, the default), `amount_off` (money
    /// off, `value` in the shop currency), `percent_off` (`value` percent off) or
    /// `free_shipping`. The POS applies it; loyaltyd records the redemption.
    #[serde(default)]
    pub kind: RewardKind,
    /// Amount or percentage for `amount_off` / `percent_off` (a decimal string).
    #[serde(default)]
    pub value: Option<String>,
}

/// What a reward gives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RewardKind {
    /// A free item.
    #[default]
    Item,
    /// Money off the order.
    AmountOff,
    /// A percentage off the order.
    PercentOff,
    /// Free shipping.
    FreeShipping,
}

impl RuleSet {
    /// A reward by id.
    pub fn reward(&self, id: &str) -> Option<&Reward> {
        self.rewards.iter().find(|r| r.id == id)
    }
}

/// A rules file that cannot be used, with where the problem is.
#[derive(Debug, thiserror::Error)]
#[error("{file}{}: {key}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct RulesError {
    /// The rules file.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// Dotted key at fault, or `-`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}
