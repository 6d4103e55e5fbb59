//! A shop's earning program, read from its rules file, and the pure scoring function.
//!
//! - [`RuleSet`]: the parsed rules file (`[earn] points_per_unit`, `rounding`).
//! - [`eval`]: `score(sale, rules) -> Award`, no I/O and no clock reads.

pub mod eval;
pub mod live;

use std::path::Path;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::Deserialize;

use crate::ledger::policy::{ExpiryPolicy, LedgerPolicy, NegativeBalance};

pub use eval::{score, Award, Contribution, LineEligible};
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

/// The base earning rule: points per unit of eligible spend.
#[derive(Debug, Clone, PartialEq)]
pub struct EarnRule {
    /// Points per 1 unit of the shop currency.
    pub points_per_unit: Decimal,
    /// How fractions are rounded.
    pub rounding: Rounding,
}

/// A shop's parsed rules file.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSet {
    /// `[earn]`
    pub earn: EarnRule,
    /// `[points]`: returns window, expiry, clawback policy.
    pub policy: LedgerPolicy,
    /// `[[rewards]]`: what points can buy.
    pub rewards: Vec<Reward>,
    /// First 12 hex digits of the SHA-256 of the file: recorded on every earning, so
    /// any award can be traced to the exact rules that produced it.
    pub version: String,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRules {
    earn: Option<RawEarn>,
    #[serde(default)]
    points: RawPoints,
    #[serde(default)]
    rewards: Vec<Reward>,
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
    points_per_unit: Option<toml::Value>,
    rounding: Option<Rounding>,
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
        let err = |key: &str, line: Option<usize>, message: String| RulesError {
            file: file.to_string(),
            line: line.or_else(|| crate::config::find_key_line(text, key)),
            key: key.to_string(),
            message,
        };
        let raw: RawRules = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            err("-", line, e.message().to_string())
        })?;
        let earn = raw
            .earn
            .ok_or_else(|| err("earn", None, "an [earn] table is required".into()))?;
        // Accept "1.5" (exact) and integers; floats are refused so rates stay exact.
        let ppu = match earn.points_per_unit {
            Some(toml::Value::String(s)) => Decimal::from_str(s.trim()).map_err(|_| {
                err(
                    "earn.points_per_unit",
                    None,
                    format!("{s:?} is not a decimal number"),
                )
            })?,
            Some(toml::Value::Integer(i)) => Decimal::from(i),
            Some(other) => {
                return Err(err(
                    "earn.points_per_unit",
                    None,
                    format!(
                        "expected a decimal string like \"1.5\", found {}",
                        other.type_str()
                    ),
                ))
            }
            None => return Err(err("earn.points_per_unit", None, "is required".into())),
        };
        if ppu.is_sign_negative() || ppu > Decimal::from(1_000_000) {
            return Err(err(
                "earn.points_per_unit",
                None,
                "must be between 0 and 1000000".into(),
            ));
        }
        let p = raw.points;
        let pending_days = p.pending_days.unwrap_or(0);
        if pending_days > 366 {
            return Err(err(
                "points.pending_days",
                None,
                "must be at most 366".into(),
            ));
        }
        let days = |what: &str| -> Result<u32, RulesError> {
            match p.expiry_days {
                Some(d) if (1..=36_600).contains(&d) => Ok(d),
                Some(_) => Err(err(
                    "points.expiry_days",
                    None,
                    "must be between 1 and 36600".into(),
                )),
                None => Err(err(
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
                return Err(err(
                    "points.expiry",
                    None,
                    format!("{other:?} is not one of \"never\", \"fixed\", \"inactivity\""),
                ))
            }
        };
        let mut seen = std::collections::HashSet::new();
        for (i, r) in raw.rewards.iter().enumerate() {
            if r.id.trim().is_empty() || !seen.insert(r.id.clone()) {
                return Err(err(
                    &format!("rewards[{i}].id"),
                    None,
                    format!("{:?} is empty or used twice", r.id),
                ));
            }
            if r.points <= 0 {
                return Err(err(
                    &format!("rewards[{i}].points"),
                    None,
                    "must be a positive number of points".into(),
                ));
            }
        }
        use sha2::Digest;
        let digest = sha2::Sha256::digest(text.as_bytes());
        let version: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
        Ok(RuleSet {
            version,
            rewards: raw.rewards,
            earn: EarnRule {
                points_per_unit: ppu,
                rounding: earn.rounding.unwrap_or(Rounding::Floor),
            },
            policy: LedgerPolicy {
                pending_days,
                expiry,
                negative_balance: p.negative_balance.unwrap_or(NegativeBalance::Allow),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_rate_is_read_exactly_from_a_string() {
        let r = RuleSet::parse("[earn]\npoints_per_unit = \"1.25\"\n", "r.toml").unwrap();
        assert_eq!(r.earn.points_per_unit, Decimal::new(125, 2));
        assert_eq!(r.earn.rounding, Rounding::Floor);
    }

    #[test]
    fn a_float_rate_is_refused_with_its_line() {
        let e = RuleSet::parse("\n[earn]\npoints_per_unit = 1.5\n", "r.toml").unwrap_err();
        assert_eq!(e.key, "earn.points_per_unit");
        assert_eq!(e.line, Some(3));
    }

    #[test]
    fn an_unknown_rounding_is_refused() {
        let e = RuleSet::parse(
            "[earn]\npoints_per_unit = \"1\"\nrounding = \"sideways\"\n",
            "r.toml",
        )
        .unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
    }

    #[test]
    fn the_points_table_sets_the_ledger_policy() {
        let r = RuleSet::parse(
            "[earn]\npoints_per_unit = \"1\"\n[points]\npending_days = 14\nexpiry = \"fixed\"\nexpiry_days = 365\nnegative_balance = \"clamp\"\n",
            "r.toml",
        )
        .unwrap();
        assert_eq!(r.policy.pending_days, 14);
        assert_eq!(r.policy.expiry, ExpiryPolicy::Fixed { days: 365 });
        assert_eq!(r.policy.negative_balance, NegativeBalance::Clamp);
    }

    #[test]
    fn an_expiry_without_days_is_refused() {
        let e = RuleSet::parse(
            "[earn]\npoints_per_unit = \"1\"\n[points]\nexpiry = \"inactivity\"\n",
            "r.toml",
        )
        .unwrap_err();
        assert_eq!(e.key, "points.expiry_days");
    }

    #[test]
    fn rounding_modes_round_as_documented() {
        let d = |s: &str| Decimal::from_str(s).unwrap();
        assert_eq!(Rounding::Floor.apply(d("10.99")), d("10"));
        assert_eq!(Rounding::Round.apply(d("10.5")), d("11"));
        assert_eq!(Rounding::Round.apply(d("10.49")), d("10"));
        assert_eq!(Rounding::Ceil.apply(d("10.01")), d("11"));
    }
}
