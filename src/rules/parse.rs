//! Reading and validating a rules file: every error names the file, the line and the key.

use std::path::Path;
use std::str::FromStr;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Deserialize;
use toml::Spanned;

use super::{
    Caps, Combine, Conditions, EarnRule, Effect, Eligibility, Hours, NameSet, Per, Reward,
    Rounding, Rule, RuleSet, RulesError, Weekdays,
};
use crate::ledger::policy::{ExpiryPolicy, LedgerPolicy, NegativeBalance};
use crate::points::Points;

type Sp<T> = Option<Spanned<T>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRules {
    earn: Option<RawEarn>,
    tiers: Option<RawTiers>,
    #[serde(default)]
    points: RawPoints,
    #[serde(default)]
    rewards: Vec<Reward>,
    #[serde(default)]
    eligible: RawEligible,
    #[serde(default)]
    rules: Vec<RawRule>,
    #[serde(default)]
    caps: RawCaps,
    #[serde(default)]
    bonuses: super::Bonuses,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTiers {
    basis: Option<super::tiers::TierBasis>,
    window: Option<super::tiers::TierWindow>,
    crossing_sale: Option<super::tiers::CrossingSale>,
    #[serde(default)]
    levels: Vec<RawLevel>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLevel {
    name: String,
    threshold: toml::Value,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPoints {
    pending_days: Option<u32>,
    expiry: Option<String>,
    expiry_days: Option<u32>,
    negative_balance: Option<NegativeBalance>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEarn {
    points_per_unit: Sp<toml::Value>,
    rounding: Option<Rounding>,
    combine: Option<Combine>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawEligible {
    include_tax: Option<bool>,
    include_shipping: Option<bool>,
    subtract_discounts: Option<bool>,
    gift_cards: Option<bool>,
    exclude_skus: Sp<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: Sp<String>,
    #[serde(default)]
    when: RawWhen,
    effect: Sp<RawEffect>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWhen {
    channels: Sp<Vec<String>>,
    adapters: Sp<Vec<String>>,
    locations: Sp<Vec<String>>,
    skus: Sp<Vec<String>>,
    product_ids: Sp<Vec<String>>,
    vendors: Sp<Vec<String>>,
    product_types: Sp<Vec<String>>,
    collections: Sp<Vec<String>>,
    min_spend: Sp<toml::Value>,
    from: Sp<toml::Value>,
    to: Sp<toml::Value>,
    days: Sp<Vec<String>>,
    hours: Sp<String>,
    tiers: Sp<Vec<String>>,
    tags: Sp<Vec<String>>,
    first_purchase: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEffect {
    points_per_unit: Sp<toml::Value>,
    per: Sp<String>,
    multiplier: Sp<toml::Value>,
    bonus: Sp<i64>,
    cash_back_percent: Sp<toml::Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCaps {
    per_order: Sp<i64>,
    per_member_day: Sp<i64>,
    per_member_month: Sp<i64>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The dotted key of the value at `offset`, for serde errors that only give a span:
/// the latest table header before it (`rules[2]`) and the nearest `key =` on its line.
fn key_at(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let mut table = String::new();
    let mut counts: std::collections::HashMap<String, usize> = Default::default();
    let line_start = text[..offset].rfind('\n').map(|i| i + 1).unwrap_or(0);
    for line in text[..line_start].lines() {
        let l = line.trim();
        if let Some(inner) = l.strip_prefix("[[").and_then(|l| l.split("]]").next()) {
            let name = inner.trim().to_string();
            let n = counts.entry(name.clone()).or_insert(0);
            table = format!("{name}[{n}]");
            *n += 1;
        } else if let Some(inner) = l.strip_prefix('[').and_then(|l| l.split(']').next()) {
            table = inner.trim().to_string();
        }
    }
    let before = &text[line_start..offset];
    // An unknown key's span is the key itself.
    let after = &text[offset..];
    let ident = after
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(after.len());
    let key_here = (ident > 0 && after[ident..].trim_start().starts_with('='))
        .then(|| after[..ident].to_string());
    let key = key_here.or_else(|| {
        before.rfind('=').map(|eq| {
            let head = before[..eq].trim_end();
            // Just after the last character that cannot be part of a key (which may be
            // several bytes long: `i + 1` would split it).
            let start = head
                .char_indices()
                .rfind(|&(_, c)| !(c.is_alphanumeric() || c == '_' || c == '-' || c == '"'))
                .map(|(i, c)| i + c.len_utf8())
                .unwrap_or(0);
            head[start..].trim_matches('"').to_string()
        })
    });
    let inline = before.find('=').and_then(|eq| {
        let first = before[..eq].trim();
        (before.contains('{') && key.as_deref() != Some(first)).then(|| first.to_string())
    });
    let mut parts: Vec<String> = Vec::new();
    if !table.is_empty() {
        parts.push(table);
    }
    parts.extend(inline);
    parts.extend(key.filter(|k| !k.is_empty()));
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(".")
    }
}

struct Ctx<'a> {
    text: &'a str,
    file: &'a str,
}

impl Ctx<'_> {
    fn err(&self, key: &str, line: Option<usize>, message: impl Into<String>) -> RulesError {
        RulesError {
            file: self.file.to_string(),
            line: line.or_else(|| crate::config::find_key_line(self.text, key)),
            key: key.to_string(),
            message: message.into(),
        }
    }

    fn at<T>(&self, key: &str, v: &Spanned<T>, message: impl Into<String>) -> RulesError {
        self.err(key, Some(line_of(self.text, v.span().start)), message)
    }

    /// A decimal written as a string (`"1.5"`) or a whole number; floats are refused.
    fn decimal(&self, key: &str, v: &Spanned<toml::Value>) -> Result<Decimal, RulesError> {
        match v.get_ref() {
            toml::Value::String(s) => Decimal::from_str(s.trim())
                .map_err(|_| self.at(key, v, format!("{s:?} is not a decimal number"))),
            toml::Value::Integer(i) => Ok(Decimal::from(*i)),
            toml::Value::Float(f) => Err(self.at(
                key,
                v,
                format!(
                    "write {f} as a decimal string like \"{f}\": floats are refused so amounts stay exact"
                ),
            )),
            other => Err(self.at(
                key,
                v,
                format!(
                    "expected a decimal string like \"1.5\", found {}",
                    other.type_str()
                ),
            )),
        }
    }

    fn decimal_in(
        &self,
        key: &str,
        v: &Spanned<toml::Value>,
        min: Decimal,
        max: Decimal,
    ) -> Result<Decimal, RulesError> {
        let d = self.decimal(key, v)?;
        if d < min || d > max {
            return Err(self.at(key, v, format!("must be between {min} and {max}")));
        }
        Ok(d)
    }

    fn names(&self, key: &str, v: &Sp<Vec<String>>) -> Result<Option<NameSet>, RulesError> {
        let Some(v) = v else { return Ok(None) };
        if v.get_ref().is_empty() {
            return Err(self.at(
                key,
                v,
                "an empty list matches nothing; remove the key to match anything",
            ));
        }
        if v.get_ref().iter().any(|s| s.trim().is_empty()) {
            return Err(self.at(key, v, "names must not be empty"));
        }
        Ok(Some(NameSet::new(v.get_ref())))
    }

    fn date(&self, key: &str, v: &Sp<toml::Value>) -> Result<Option<NaiveDate>, RulesError> {
        let Some(v) = v else { return Ok(None) };
        let text = match v.get_ref() {
            toml::Value::String(s) => s.trim().to_string(),
            toml::Value::Datetime(d) if d.time.is_none() && d.offset.is_none() => d.to_string(),
            _ => String::new(),
        };
        NaiveDate::parse_from_str(&text, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| self.at(key, v, "expected a date like \"2026-12-31\""))
    }

    fn points(&self, key: &str, v: &Sp<i64>, min: i64) -> Result<Option<Points>, RulesError> {
        let Some(v) = v else { return Ok(None) };
        let n = *v.get_ref();
        if n < min || n > 1_000_000_000 {
            return Err(self.at(key, v, format!("must be between {min} and 1000000000")));
        }
        Ok(Some(Points(n)))
    }
}

fn parse_day(s: &str) -> Option<u8> {
    let d = match s.trim().to_ascii_lowercase().as_str() {
        "mon" | "monday" => 0,
        "tue" | "tues" | "tuesday" => 1,
        "wed" | "wednesday" => 2,
        "thu" | "thur" | "thurs" | "thursday" => 3,
        "fri" | "friday" => 4,
        "sat" | "saturday" => 5,
        "sun" | "sunday" => 6,
        _ => return None,
    };
    Some(d)
}

fn parse_hhmm(s: &str, allow_24: bool) -> Option<u16> {
    let (h, m) = s.trim().split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let h: u16 = h.parse().ok()?;
    let m: u16 = m.parse().ok()?;
    if m > 59 || h > 24 || (h == 24 && (m != 0 || !allow_24)) {
        return None;
    }
    Some(h * 60 + m)
}

fn parse_hours(s: &str) -> Option<Hours> {
    let (a, b) = s.split_once('-')?;
    let start = parse_hhmm(a, false)?;
    let end = parse_hhmm(b, true)?;
    (start != end).then_some(Hours { start, end })
}

impl RuleSet {
    /// Read and validate a rules file.
    pub fn load(path: &Path) -> Result<RuleSet, RulesError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| RulesError {
            file: file.clone(),
            line: None,
            key: "-".into(),
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, &file)
    }

    /// Parse rules from text; `file` is only used in error messages.
    pub fn parse(text: &str, file: &str) -> Result<RuleSet, RulesError> {
        let c = Ctx { text, file };
        let raw: RawRules = toml::from_str(text).map_err(|e| {
            let (line, key) = match e.span() {
                Some(s) => (Some(line_of(text, s.start)), key_at(text, s.start)),
                None => (None, "-".into()),
            };
            c.err(&key, line, e.message().to_string())
        })?;
        let earn = raw
            .earn
            .ok_or_else(|| c.err("earn", None, "an [earn] table is required"))?;
        let ppu = match &earn.points_per_unit {
            Some(v) => c.decimal_in(
                "earn.points_per_unit",
                v,
                Decimal::ZERO,
                Decimal::from(1_000_000),
            )?,
            None => return Err(c.err("earn.points_per_unit", None, "is required")),
        };
        let policy = ledger_policy(&c, raw.points)?;
        let mut seen = std::collections::HashSet::new();
        for (i, r) in raw.rewards.iter().enumerate() {
            if r.id.trim().is_empty() || !seen.insert(r.id.clone()) {
                return Err(c.err(
                    &format!("rewards[{i}].id"),
                    None,
                    format!("{:?} is empty or used twice", r.id),
                ));
            }
            if r.points <= 0 {
                return Err(c.err(
                    &format!("rewards[{i}].points"),
                    None,
                    "must be a positive number of points",
                ));
            }
            let needs_value = matches!(
                r.kind,
                super::RewardKind::AmountOff | super::RewardKind::PercentOff
            );
            let value_ok = r
                .value
                .as_deref()
                .and_then(|v| v.trim().parse::<Decimal>().ok())
                .is_some_and(|v| v > Decimal::ZERO);
            if needs_value && !value_ok {
                return Err(c.err(
                    &format!("rewards[{i}].value"),
                    None,
                    "amount_off and percent_off rewards need a positive decimal string value",
                ));
            }
        }
        let e = raw.eligible;
        let eligible = Eligibility {
            include_tax: e.include_tax.unwrap_or(false),
            include_shipping: e.include_shipping.unwrap_or(false),
            subtract_discounts: e.subtract_discounts.unwrap_or(true),
            gift_cards: e.gift_cards.unwrap_or(false),
            exclude_skus: c
                .names("eligible.exclude_skus", &e.exclude_skus)?
                .unwrap_or_default(),
        };
        let caps = Caps {
            per_order: c.points("caps.per_order", &raw.caps.per_order, 0)?,
            per_member_day: c.points("caps.per_member_day", &raw.caps.per_member_day, 0)?,
            per_member_month: c.points("caps.per_member_month", &raw.caps.per_member_month, 0)?,
        };
        let mut warnings = Vec::new();
        let mut ids = std::collections::HashSet::new();
        let mut rules = Vec::with_capacity(raw.rules.len());
        for (i, r) in raw.rules.into_iter().enumerate() {
            let rule = rule(&c, i, r, &mut warnings)?;
            if !ids.insert(rule.id.clone()) {
                return Err(c.err(
                    &format!("rules[{i}].id"),
                    None,
                    format!("{:?} is used by an earlier rule", rule.id),
                ));
            }
            rules.push(rule);
        }
        use sha2::Digest;
        let digest = sha2::Sha256::digest(text.as_bytes());
        let version: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
        let tiers = match raw.tiers {
            None => None,
            Some(t) => {
                let mut levels = Vec::new();
                for (i, l) in t.levels.into_iter().enumerate() {
                    let key = format!("tiers.levels[{i}]");
                    let threshold = match &l.threshold {
                        toml::Value::String(s) => s.trim().parse::<rust_decimal::Decimal>().ok(),
                        toml::Value::Integer(n) => Some(rust_decimal::Decimal::from(*n)),
                        _ => None,
                    }
                    .filter(|d| !d.is_sign_negative())
                    .ok_or_else(|| RulesError {
                        file: file.to_string(),
                        line: crate::config::find_key_line(text, &format!("{key}.threshold")),
                        key: format!("{key}.threshold"),
                        message: "must be a non-negative integer or decimal string".into(),
                    })?;
                    let prev: Option<&super::tiers::TierLevel> = levels.last();
                    if l.name.trim().is_empty()
                        || levels
                            .iter()
                            .any(|x: &super::tiers::TierLevel| x.name == l.name)
                        || prev.is_some_and(|p| p.threshold >= threshold)
                    {
                        return Err(RulesError {
                            file: file.to_string(),
                            line: crate::config::find_key_line(text, &format!("{key}.name")),
                            key: format!("{key}.name"),
                            message: "tier names must be unique and thresholds strictly increasing"
                                .into(),
                        });
                    }
                    levels.push(super::tiers::TierLevel {
                        name: l.name,
                        threshold,
                    });
                }
                if levels.is_empty() {
                    return Err(RulesError {
                        file: file.to_string(),
                        line: crate::config::find_key_line(text, "tiers"),
                        key: "tiers.levels".into(),
                        message: "a [tiers] table needs at least one [[tiers.levels]]".into(),
                    });
                }
                Some(super::tiers::TierProgram {
                    basis: t.basis.unwrap_or(super::tiers::TierBasis::Points),
                    window: t
                        .window
                        .unwrap_or(super::tiers::TierWindow::Rolling12Months),
                    crossing_sale: t.crossing_sale.unwrap_or_default(),
                    levels,
                })
            }
        };
        Ok(RuleSet {
            tiers,
            version,
            rewards: raw.rewards,
            bonuses: raw.bonuses,
            earn: EarnRule {
                points_per_unit: ppu,
                rounding: earn.rounding.unwrap_or(Rounding::Floor),
                combine: earn.combine.unwrap_or_default(),
            },
            eligible,
            rules,
            caps,
            policy,
            warnings,
        })
    }
}

fn ledger_policy(c: &Ctx<'_>, p: RawPoints) -> Result<LedgerPolicy, RulesError> {
    let pending_days = p.pending_days.unwrap_or(0);
    if pending_days > 366 {
        return Err(c.err("points.pending_days", None, "must be at most 366"));
    }
    let days = |what: &str| -> Result<u32, RulesError> {
        match p.expiry_days {
            Some(d) if (1..=36_600).contains(&d) => Ok(d),
            Some(_) => Err(c.err("points.expiry_days", None, "must be between 1 and 36600")),
            None => Err(c.err(
                "points.expiry_days",
                None,
                format!("is required when expiry = {what:?}"),
            )),
        }
    };
    let expiry = match p.expiry.as_deref().unwrap_or("never") {
        "never" => ExpiryPolicy::Never,
        "fixed" => ExpiryPolicy::Fixed {
            days: days("fixed")?,
        },
        "inactivity" => ExpiryPolicy::Inactivity {
            days: days("inactivity")?,
        },
        other => {
            return Err(c.err(
                "points.expiry",
                None,
                format!("{other:?} is not one of \"never\", \"fixed\", \"inactivity\""),
            ))
        }
    };
    Ok(LedgerPolicy {
        pending_days,
        expiry,
        negative_balance: p.negative_balance.unwrap_or(NegativeBalance::Allow),
    })
}

fn rule(c: &Ctx<'_>, i: usize, r: RawRule, warnings: &mut Vec<String>) -> Result<Rule, RulesError> {
    let k = |s: &str| format!("rules[{i}].{s}");
    let id = match &r.id {
        Some(id) => {
            let s = id.get_ref().trim();
            let ok = !s.is_empty()
                && s.len() <= 64
                && s.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch));
            if !ok {
                return Err(c.at(
                    &k("id"),
                    id,
                    "use 1-64 characters of letters, digits, '-', '_' and '.'",
                ));
            }
            if s.starts_with("earn.") || s.starts_with("cap.") {
                return Err(c.at(
                    &k("id"),
                    id,
                    "ids starting with \"earn.\" or \"cap.\" are reserved",
                ));
            }
            s.to_string()
        }
        None => return Err(c.err(&k("id"), None, "every rule needs an id")),
    };
    let named = |e: RulesError| RulesError {
        message: format!("rule {id:?}: {}", e.message),
        ..e
    };
    let w = &r.when;
    let mut when = Conditions {
        channels: c.names(&k("when.channels"), &w.channels)?,
        adapters: c.names(&k("when.adapters"), &w.adapters)?,
        locations: c.names(&k("when.locations"), &w.locations)?,
        skus: c.names(&k("when.skus"), &w.skus)?,
        product_ids: c.names(&k("when.product_ids"), &w.product_ids)?,
        vendors: c.names(&k("when.vendors"), &w.vendors)?,
        product_types: c.names(&k("when.product_types"), &w.product_types)?,
        collections: c.names(&k("when.collections"), &w.collections)?,
        tiers: c.names(&k("when.tiers"), &w.tiers)?,
        tags: c.names(&k("when.tags"), &w.tags)?,
        first_purchase: w.first_purchase,
        min_spend: None,
        from: c.date(&k("when.from"), &w.from).map_err(named)?,
        to: c.date(&k("when.to"), &w.to).map_err(named)?,
        days: None,
        hours: None,
    };
    if let Some(v) = &w.min_spend {
        when.min_spend = Some(
            c.decimal_in(
                &k("when.min_spend"),
                v,
                Decimal::ZERO,
                Decimal::from(1_000_000_000),
            )
            .map_err(named)?,
        );
    }
    if let (Some(from), Some(to), Some(v)) = (when.from, when.to, &w.to) {
        if to < from {
            return Err(named(c.at(
                &k("when.to"),
                v,
                format!("{to} is before from = {from}"),
            )));
        }
    }
    if let Some(v) = &w.days {
        let mut bits = 0u8;
        for d in v.get_ref() {
            match parse_day(d) {
                Some(b) => bits |= 1 << b,
                None => {
                    return Err(named(c.at(
                        &k("when.days"),
                        v,
                        format!("{d:?} is not a day (mon, tue, wed, thu, fri, sat, sun)"),
                    )))
                }
            }
        }
        if bits == 0 {
            return Err(named(c.at(
                &k("when.days"),
                v,
                "an empty list matches no day; remove the key to match every day",
            )));
        }
        when.days = Some(Weekdays(bits));
    }
    if let Some(v) = &w.hours {
        when.hours = Some(parse_hours(v.get_ref()).ok_or_else(|| {
            named(c.at(
                &k("when.hours"),
                v,
                format!(
                    "{:?} is not a window like \"16:00-18:00\" (\"00:00-24:00\" is all day)",
                    v.get_ref()
                ),
            ))
        })?);
    }
    for (key, v) in [
        ("when.product_types", &w.product_types),
        ("when.collections", &w.collections),
    ] {
        if let Some(v) = v {
            warnings.push(
                c.at(
                    &k(key),
                    v,
                    format!(
                        "rule {id:?} fires only on lines whose adapter reports product types or collections (declarative adapters can map `product_type`; Shopify and Square webhooks carry neither)"
                    ),
                )
                .to_string(),
            );
        }
    }
    let effect = match &r.effect {
        Some(e) => effect(c, i, e).map_err(named)?,
        None => return Err(named(c.err(
            &k("effect"),
            None,
            "every rule needs an effect: points_per_unit, multiplier, bonus or cash_back_percent",
        ))),
    };
    Ok(Rule { id, when, effect })
}

fn effect(c: &Ctx<'_>, i: usize, e: &Spanned<RawEffect>) -> Result<Effect, RulesError> {
    let k = |s: &str| format!("rules[{i}].effect.{s}");
    let raw = e.get_ref();
    let given = [
        raw.points_per_unit.is_some(),
        raw.multiplier.is_some(),
        raw.bonus.is_some(),
        raw.cash_back_percent.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if given != 1 {
        return Err(c.at(
            &format!("rules[{i}].effect"),
            e,
            "give exactly one of points_per_unit, multiplier, bonus, cash_back_percent (one effect per rule)",
        ));
    }
    if let (Some(per), None) = (&raw.per, &raw.points_per_unit) {
        return Err(c.at(&k("per"), per, "only applies to points_per_unit"));
    }
    let effect = if let Some(v) = &raw.points_per_unit {
        let per = match raw.per.as_ref().map(|p| (p, p.get_ref().as_str())) {
            None | Some((_, "order")) => Per::Order,
            Some((_, "line")) => Per::Line,
            Some((p, other)) => {
                return Err(c.at(
                    &k("per"),
                    p,
                    format!("{other:?} is not \"order\" or \"line\""),
                ))
            }
        };
        Effect::PointsPerUnit {
            rate: c.decimal_in(
                &k("points_per_unit"),
                v,
                Decimal::ZERO,
                Decimal::from(1_000_000),
            )?,
            per,
        }
    } else if let Some(v) = &raw.multiplier {
        Effect::Multiplier(c.decimal_in(&k("multiplier"), v, Decimal::ONE, Decimal::from(1000))?)
    } else if let Some(v) = &raw.cash_back_percent {
        Effect::CashBackPercent(c.decimal_in(
            &k("cash_back_percent"),
            v,
            Decimal::ZERO,
            Decimal::from(100),
        )?)
    } else {
        Effect::Bonus(
            c.points(&k("bonus"), &raw.bonus, 0)?
                .unwrap_or(Points::ZERO),
        )
    };
    Ok(effect)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<RuleSet, RulesError> {
        RuleSet::parse(s, "r.toml")
    }

    const BASE: &str = "[earn]\npoints_per_unit = \"1\"\n";

    #[test]
    fn the_base_rate_is_read_exactly_from_a_string() {
        let r = parse("[earn]\npoints_per_unit = \"1.25\"\n").unwrap();
        assert_eq!(r.earn.points_per_unit, Decimal::new(125, 2));
        assert_eq!(r.earn.rounding, Rounding::Floor);
        assert_eq!(r.earn.combine, Combine::Stack);
        assert!(r.rules.is_empty());
        assert_eq!(r.eligible, Eligibility::default());
    }

    #[test]
    fn a_float_rate_is_refused_with_its_line() {
        let e = parse("\n[earn]\npoints_per_unit = 1.5\n").unwrap_err();
        assert_eq!(e.key, "earn.points_per_unit");
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("decimal string"), "{e}");
    }

    #[test]
    fn an_unknown_rounding_is_refused() {
        let e = parse("[earn]\npoints_per_unit = \"1\"\nrounding = \"sideways\"\n").unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        assert_eq!(e.key, "earn.rounding", "{e}");
    }

    #[test]
    fn the_points_table_sets_the_ledger_policy() {
        let r = parse(
            "[earn]\npoints_per_unit = \"1\"\n[points]\npending_days = 14\nexpiry = \"fixed\"\nexpiry_days = 365\nnegative_balance = \"clamp\"\n",
        )
        .unwrap();
        assert_eq!(r.policy.pending_days, 14);
        assert_eq!(r.policy.expiry, ExpiryPolicy::Fixed { days: 365 });
        assert_eq!(r.policy.negative_balance, NegativeBalance::Clamp);
    }

    #[test]
    fn an_expiry_without_days_is_refused() {
        let e = parse("[earn]\npoints_per_unit = \"1\"\n[points]\nexpiry = \"inactivity\"\n")
            .unwrap_err();
        assert_eq!(e.key, "points.expiry_days");
    }

    #[test]
    fn a_full_rule_is_read() {
        let r = parse(&format!(
            "{BASE}combine = \"best\"\n[eligible]\ninclude_shipping = true\nexclude_skus = [\"Gift-Wrap\"]\n\
             [[rules]]\nid = \"w\"\nwhen = {{ days = [\"sat\", \"Sunday\"], hours = \"22:00-02:00\", from = 2026-12-01, to = \"2026-12-31\", min_spend = \"10.00\", tags = [\"Card\"] }}\n\
             effect = {{ points_per_unit = \"1.5\", per = \"line\" }}\n[caps]\nper_order = 500\n"
        ))
        .unwrap();
        assert_eq!(r.earn.combine, Combine::Best);
        assert!(r.eligible.include_shipping);
        assert!(r.eligible.exclude_skus.contains("GIFT-WRAP"));
        let w = &r.rules[0].when;
        assert_eq!(w.days, Some(Weekdays(0b110_0000)));
        assert_eq!(
            w.hours,
            Some(Hours {
                start: 22 * 60,
                end: 120
            })
        );
        assert_eq!(w.from, NaiveDate::from_ymd_opt(2026, 12, 1));
        assert_eq!(w.to, NaiveDate::from_ymd_opt(2026, 12, 31));
        assert_eq!(w.min_spend, Some(Decimal::new(1000, 2)));
        assert!(w.tags.as_ref().unwrap().contains("card"));
        assert_eq!(
            r.rules[0].effect,
            Effect::PointsPerUnit {
                rate: Decimal::new(15, 1),
                per: Per::Line
            }
        );
        assert_eq!(r.caps.per_order, Some(Points(500)));
    }

    fn rule_err(rule: &str) -> RulesError {
        parse(&format!("{BASE}\n[[rules]]\nid = \"x\"\n{rule}\n")).unwrap_err()
    }

    #[test]
    fn rule_errors_name_the_line_and_the_key() {
        // Line 6 is the rule body line in `rule_err`'s text.
        let cases = [
            (
                "when = { days = [\"someday\"] }\neffect = { bonus = 1 }",
                "rules[0].when.days",
            ),
            (
                "when = { hours = \"9-17\" }\neffect = { bonus = 1 }",
                "rules[0].when.hours",
            ),
            (
                "when = { hours = \"10:00-10:00\" }\neffect = { bonus = 1 }",
                "rules[0].when.hours",
            ),
            (
                "when = { min_spend = 10.5 }\neffect = { bonus = 1 }",
                "rules[0].when.min_spend",
            ),
            (
                "when = { from = \"2026-13-01\" }\neffect = { bonus = 1 }",
                "rules[0].when.from",
            ),
            (
                "when = { from = \"2026-12-02\", to = \"2026-12-01\" }\neffect = { bonus = 1 }",
                "rules[0].when.to",
            ),
            (
                "when = { skus = [] }\neffect = { bonus = 1 }",
                "rules[0].when.skus",
            ),
            (
                "when = { colour = [\"red\"] }\neffect = { bonus = 1 }",
                "rules[0].when.colour",
            ),
        ];
        for (body, key) in cases {
            let e = rule_err(body);
            assert_eq!(e.key, key, "{body}: {e}");
            assert_eq!(e.line, Some(6), "{body}: {e}");
            assert!(e.to_string().starts_with("r.toml:6: rules[0]."), "{e}");
        }
    }

    #[test]
    fn effect_errors_name_the_line_and_the_key() {
        let cases = [
            (
                "effect = { multiplier = \"0.5\" }",
                "rules[0].effect.multiplier",
            ),
            (
                "effect = { multiplier = 2.0 }",
                "rules[0].effect.multiplier",
            ),
            (
                "effect = { points_per_unit = \"abc\" }",
                "rules[0].effect.points_per_unit",
            ),
            (
                "effect = { points_per_unit = \"1\", per = \"week\" }",
                "rules[0].effect.per",
            ),
            ("effect = { bonus = 5, per = \"line\" }", "rules[0].effect"),
            ("effect = { bonus = -5 }", "rules[0].effect.bonus"),
            (
                "effect = { cash_back_percent = \"101\" }",
                "rules[0].effect.cash_back_percent",
            ),
            (
                "effect = { bonus = 5, multiplier = \"2\" }",
                "rules[0].effect",
            ),
            ("effect = {}", "rules[0].effect"),
        ];
        for (body, key) in cases {
            let e = rule_err(body);
            assert!(e.key.starts_with(key), "{body}: {e}");
            assert_eq!(e.line, Some(6), "{body}: {e}");
        }
    }

    #[test]
    fn a_rule_without_effect_or_with_a_duplicate_or_reserved_id_is_refused() {
        let e = parse(&format!("{BASE}[[rules]]\nid = \"x\"\n")).unwrap_err();
        assert_eq!(e.key, "rules[0].effect");
        assert_eq!(e.line, Some(3), "{e}");
        let e = parse(&format!(
            "{BASE}[[rules]]\nid = \"x\"\neffect = {{ bonus = 1 }}\n[[rules]]\nid = \"x\"\neffect = {{ bonus = 2 }}\n"
        ))
        .unwrap_err();
        assert_eq!(e.key, "rules[1].id");
        assert_eq!(e.line, Some(7), "{e}");
        let e = parse(&format!(
            "{BASE}[[rules]]\nid = \"earn.base\"\neffect = {{ bonus = 1 }}\n"
        ))
        .unwrap_err();
        assert_eq!(e.key, "rules[0].id");
        let e = parse(&format!("{BASE}[[rules]]\neffect = {{ bonus = 1 }}\n")).unwrap_err();
        assert_eq!(e.key, "rules[0].id");
    }

    #[test]
    fn caps_and_eligibility_are_validated() {
        let e = parse(&format!("{BASE}[caps]\nper_order = -1\n")).unwrap_err();
        assert_eq!((e.key.as_str(), e.line), ("caps.per_order", Some(4)));
        let e = parse(&format!("{BASE}[eligible]\ninclude_tax = \"yes\"\n")).unwrap_err();
        assert_eq!((e.key.as_str(), e.line), ("eligible.include_tax", Some(4)));
        let e = parse(&format!("{BASE}[eligible]\nexclude_skus = []\n")).unwrap_err();
        assert_eq!(e.key, "eligible.exclude_skus");
    }

    #[test]
    fn a_product_type_rule_loads_with_a_warning() {
        let r = parse(&format!(
            "{BASE}[[rules]]\nid = \"beans\"\nwhen = {{ product_types = [\"coffee beans\"] }}\neffect = {{ bonus = 5 }}\n"
        ))
        .unwrap();
        assert_eq!(r.warnings.len(), 1);
        assert!(
            r.warnings[0].starts_with("r.toml:5: rules[0].when.product_types"),
            "{:?}",
            r.warnings
        );
    }

    #[test]
    fn names_match_ignoring_case_in_small_and_large_sets() {
        let small = NameSet::new(["A", "b"]);
        assert!(small.contains("a") && small.contains("B") && !small.contains("c"));
        let big = NameSet::new(["sku-1", "SKU-2", "sku-3", "sku-4", "sku-5", "sku-6"]);
        assert!(big.contains("Sku-6") && big.contains("sku-2") && !big.contains("sku-7"));
    }

    #[test]
    fn hours_windows_include_the_start_and_exclude_the_end() {
        let h = parse_hours("16:00-18:00").unwrap();
        assert!(h.contains(960) && h.contains(1079) && !h.contains(1080) && !h.contains(959));
        let night = parse_hours("22:00-02:00").unwrap();
        assert!(night.contains(23 * 60) && night.contains(60) && !night.contains(120));
        let all = parse_hours("00:00-24:00").unwrap();
        assert!(all.contains(0) && all.contains(1439));
        assert!(parse_hours("24:00-10:00").is_none());
        assert!(parse_hours("10:60-11:00").is_none());
    }
}
