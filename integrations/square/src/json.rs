//! Reading Square JSON with errors that name the field by its dotted path
//! (`data.object.payment.amount_money.amount`), so an operator can find it in the body.
//!
//! Square's payloads are read as a [`serde_json::Value`] tree rather than through derived
//! structs: a wrong field then fails with its full path instead of serde's line/column.

use chrono::{DateTime, NaiveDate, Utc};
use loyaltyd_adapter::{Currency, Money, ParseError};
use rust_decimal::Decimal;
use serde_json::{Map, Value};

/// A JSON object and where it sits in the document.
#[derive(Debug, Clone)]
pub(crate) struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> ParseError {
    ParseError::InvalidField {
        field: field.into(),
        message: message.into(),
    }
}

impl<'a> Obj<'a> {
    /// The document's root, which must be an object.
    pub(crate) fn root(value: &'a Value) -> Result<Self, ParseError> {
        match value {
            Value::Object(map) => Ok(Obj {
                map,
                path: String::new(),
            }),
            _ => Err(ParseError::Malformed("expected a JSON object".into())),
        }
    }

    /// `value` (found at `path`) as an object.
    pub(crate) fn at(value: &'a Value, path: String) -> Result<Self, ParseError> {
        match value {
            Value::Object(map) => Ok(Obj { map, path }),
            _ => Err(invalid(path, "expected an object")),
        }
    }

    /// The dotted path of `key` inside this object.
    pub(crate) fn path_of(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The value of `key`; `None` when absent or `null`.
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// An optional string; blank strings count as absent.
    pub(crate) fn opt_str(&self, key: &str) -> Result<Option<&'a str>, ParseError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(invalid(self.path_of(key), "expected a string")),
        }
    }

    /// A required, non-blank string.
    pub(crate) fn str(&self, key: &str) -> Result<&'a str, ParseError> {
        self.opt_str(key)?
            .ok_or_else(|| invalid(self.path_of(key), "missing"))
    }

    /// An optional boolean.
    pub(crate) fn opt_bool(&self, key: &str) -> Result<Option<bool>, ParseError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(invalid(self.path_of(key), "expected true or false")),
        }
    }

    /// An optional nested object.
    pub(crate) fn opt_obj(&self, key: &str) -> Result<Option<Obj<'a>>, ParseError> {
        self.get(key)
            .map(|v| Obj::at(v, self.path_of(key)))
            .transpose()
    }

    /// A required nested object.
    pub(crate) fn obj(&self, key: &str) -> Result<Obj<'a>, ParseError> {
        self.opt_obj(key)?
            .ok_or_else(|| invalid(self.path_of(key), "missing"))
    }

    /// The objects of an optional array (absent = empty), each with its indexed path.
    pub(crate) fn objects(&self, key: &str) -> Result<Vec<Obj<'a>>, ParseError> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| Obj::at(v, format!("{}[{i}]", self.path_of(key))))
                .collect(),
            Some(_) => Err(invalid(self.path_of(key), "expected an array")),
        }
    }

    /// An optional RFC 3339 timestamp.
    pub(crate) fn opt_time(&self, key: &str) -> Result<Option<DateTime<Utc>>, ParseError> {
        self.opt_str(key)?
            .map(|s| {
                DateTime::parse_from_rfc3339(s)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| {
                        invalid(
                            self.path_of(key),
                            format!("{s:?} is not an RFC 3339 time: {e}"),
                        )
                    })
            })
            .transpose()
    }

    /// An optional Square `Money` (`{"amount": <integer minor units>, "currency": "USD"}`),
    /// converted exactly to a decimal in major units. Negative amounts are refused: none
    /// of the fields loyaltyd reads may be negative.
    pub(crate) fn opt_money(&self, key: &str) -> Result<Option<Money>, ParseError> {
        let Some(m) = self.opt_obj(key)? else {
            return Ok(None);
        };
        let currency_path = m.path_of("currency");
        let code = m.str("currency")?;
        let currency: Currency =
            code.parse()
                .map_err(|e: loyaltyd_adapter::event::InvalidCurrency| {
                    invalid(&currency_path, e.to_string())
                })?;
        let amount_path = m.path_of("amount");
        let minor = match m.get("amount") {
            None => return Err(invalid(amount_path, "missing")),
            Some(Value::Number(n)) => n.as_i64().ok_or_else(|| {
                invalid(
                    &amount_path,
                    format!("{n} is not an integer number of minor units"),
                )
            })?,
            Some(_) => {
                return Err(invalid(
                    amount_path,
                    "expected an integer number of minor units",
                ))
            }
        };
        if minor < 0 {
            return Err(invalid(amount_path, format!("{minor} is negative")));
        }
        let amount = crate::money_from_minor_units(minor, currency).ok_or_else(|| {
            invalid(
                &currency_path,
                format!(
                    "{code}: unknown number of decimal places, cannot convert minor units exactly"
                ),
            )
        })?;
        Ok(Some(Money { amount, currency }))
    }

    /// A required Square `Money`.
    pub(crate) fn money(&self, key: &str) -> Result<Money, ParseError> {
        self.opt_money(key)?
            .ok_or_else(|| invalid(self.path_of(key), "missing"))
    }

    /// An optional non-negative decimal given as a string (Square quantities: `"2"`,
    /// `"0.5"`), parsed exactly.
    pub(crate) fn opt_decimal_str(&self, key: &str) -> Result<Option<Decimal>, ParseError> {
        self.opt_str(key)?
            .map(|s| {
                let d: Decimal = s.trim().parse().map_err(|e| {
                    invalid(self.path_of(key), format!("{s:?} is not a decimal: {e}"))
                })?;
                if d.is_sign_negative() && !d.is_zero() {
                    return Err(invalid(self.path_of(key), format!("{s:?} is negative")));
                }
                Ok(d)
            })
            .transpose()
    }

    /// An optional date `YYYY-MM-DD` (the older RFC 3339 form `YYYY-MM-DDT00:00:00-00:00`
    /// is accepted too: only its date part is read). Year `0000` is kept as year 0.
    pub(crate) fn opt_date(&self, key: &str) -> Result<Option<NaiveDate>, ParseError> {
        self.opt_str(key)?
            .map(|s| {
                let date_part = s.split_once('T').map_or(s, |(d, _)| d);
                NaiveDate::parse_from_str(date_part, "%Y-%m-%d").map_err(|e| {
                    invalid(
                        self.path_of(key),
                        format!("{s:?} is not a YYYY-MM-DD date: {e}"),
                    )
                })
            })
            .transpose()
    }
}

/// Check that `money` is in `currency`; `path` names the money field.
pub(crate) fn same_currency(
    money: &Money,
    currency: Currency,
    path: impl Into<String>,
) -> Result<(), ParseError> {
    if money.currency == currency {
        Ok(())
    } else {
        Err(invalid(
            format!("{}.currency", path.into()),
            format!(
                "{} differs from the sale's currency {currency}",
                money.currency
            ),
        ))
    }
}
