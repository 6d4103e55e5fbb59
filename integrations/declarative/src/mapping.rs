//! Turning a verified body into a canonical event, as the definition's rules and
//! mappings say.

use std::str::FromStr;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use loyaltyd_adapter::{
    Cancel, Consent, Currency, CustomerRef, CustomerUpsert, EventEnvelope, Money, ParseError,
    Parsed, PosEvent, RawRequest, Refund, RefundLine, Sale, SaleLine,
};
use rust_decimal::{Decimal, RoundingStrategy};

use crate::definition::{
    CancelSpec, Condition, Const, CustomerSpec, Emit, LineDiscount, LinePrice, LineSpec, MoneyMode,
    Origin, PersonSpec, RefundSpec, Rule, SaleSpec, Source, Spec, Test,
};
use crate::json::Json;

type Result<T> = std::result::Result<T, ParseError>;

/// Map a verified request.
pub(crate) fn parse(spec: &Spec, req: &RawRequest) -> Result<Parsed> {
    let body = Json::parse(&req.body).map_err(ParseError::Malformed)?;
    let cx = Cx {
        req,
        root: &body,
        money: spec.money,
    };
    let event_id = cx.required(&spec.event.id, cx.root, "")?.text()?;
    let kind = match &spec.event.kind {
        Some(src) => Some(cx.required(src, cx.root, "")?.text()?),
        None => None,
    };
    let Some(rule) = spec.rules.iter().find(|r| cx.matches(r, kind.as_deref())) else {
        return Ok(Parsed::ignored(
            event_id,
            kind.unwrap_or_else(|| "event".into()),
            format!("no rule of the {} definition matches", spec.name),
        ));
    };
    fn time_src<'s>(own: &'s Option<Source>, spec: &'s Spec) -> Option<&'s Source> {
        own.as_ref().or(spec.event.time.as_ref())
    }
    let (event, time) = match &rule.emit {
        Emit::Ignore(reason) => {
            return Ok(Parsed::ignored(
                event_id,
                kind.unwrap_or_else(|| "event".into()),
                reason
                    .clone()
                    .unwrap_or_else(|| format!("ignored by {}", rule.key)),
            ))
        }
        Emit::Sale => {
            let s = section(&spec.sale)?;
            (PosEvent::Sale(cx.sale(s)?), time_src(&s.time, spec))
        }
        Emit::Refund => {
            let s = section(&spec.refund)?;
            match cx.refund(s)? {
                Some(r) => (PosEvent::Refund(r), time_src(&s.time, spec)),
                None => {
                    return Ok(Parsed::ignored(
                        event_id,
                        kind.unwrap_or_else(|| "event".into()),
                        "refund returned no lines and moved no money",
                    ))
                }
            }
        }
        Emit::Cancel => {
            let s = section(&spec.cancel)?;
            (PosEvent::Cancel(cx.cancel(s)?), time_src(&s.time, spec))
        }
        Emit::Customer => {
            let s = section(&spec.customer)?;
            (
                PosEvent::CustomerUpsert(cx.customer(s)?),
                time_src(&s.time, spec),
            )
        }
    };
    // Definition::parse checked that every emitted kind has a time source.
    let time = time.ok_or_else(|| invalid("time", "the definition gives no time source"))?;
    let occurred_at = cx.required(time, cx.root, "")?.time()?;
    Ok(Parsed::Event(Box::new(EventEnvelope {
        shop: req.shop.clone(),
        adapter: spec.name.to_string(),
        event_id,
        occurred_at,
        event,
    })))
}

fn section<T>(s: &Option<T>) -> Result<&T> {
    // Definition::parse refuses rules that emit a kind without its table.
    s.as_ref().ok_or_else(|| {
        invalid(
            "definition",
            "rule emits a kind the definition does not map",
        )
    })
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ParseError {
    ParseError::InvalidField {
        field: field.into(),
        message: message.into(),
    }
}

/// One request being mapped.
struct Cx<'a> {
    req: &'a RawRequest,
    root: &'a Json,
    money: MoneyMode,
}

/// A value found in the request.
struct Found<'a> {
    value: Val<'a>,
    /// Where it was found, for errors: an absolute JSON pointer, `header X`, or the
    /// definition key of a constant.
    field: String,
}

enum Val<'a> {
    Json(&'a Json),
    Header(&'a str),
    Const(&'a Const),
}

/// `null`, `""` and the source's `none_if` values count as absent.
fn absent_json(j: &Json, none_if: &[String]) -> bool {
    match j {
        Json::Null => true,
        Json::String(s) | Json::Number(s) => s.is_empty() || none_if.contains(s),
        Json::Bool(b) => none_if
            .iter()
            .any(|n| n == if *b { "true" } else { "false" }),
        Json::Array(_) | Json::Object(_) => false,
    }
}

impl<'a> Cx<'a> {
    /// The first value `src` finds, relative to `base` (whose absolute path is `base_path`).
    fn find(&self, src: &'a Source, base: &'a Json, base_path: &str) -> Option<Found<'a>> {
        match &src.from {
            Origin::Pointers(ps) => ps.iter().find_map(|p| {
                let j = p.resolve(base)?;
                (!absent_json(j, &src.none_if)).then(|| Found {
                    value: Val::Json(j),
                    field: format!("{base_path}{p}"),
                })
            }),
            Origin::Header(h) => {
                let v = self.req.header(h)?.trim();
                (!v.is_empty() && !src.none_if.iter().any(|n| n == v)).then(|| Found {
                    value: Val::Header(v),
                    field: format!("header {h}"),
                })
            }
            Origin::Const(c) => Some(Found {
                value: Val::Const(c),
                field: src.key.clone(),
            }),
        }
    }

    fn required(&self, src: &'a Source, base: &'a Json, base_path: &str) -> Result<Found<'a>> {
        self.find(src, base, base_path)
            .ok_or_else(|| match &src.from {
                Origin::Header(h) => ParseError::MissingHeader(h),
                Origin::Pointers(ps) => invalid(
                    ps.iter()
                        .map(|p| format!("{base_path}{p}"))
                        .collect::<Vec<_>>()
                        .join(" or "),
                    format!("missing (the definition's {} needs it)", src.key),
                ),
                Origin::Const(_) => invalid(src.key.clone(), "missing"),
            })
    }

    fn optional(
        &self,
        src: &'a Option<Source>,
        base: &'a Json,
        base_path: &str,
    ) -> Option<Found<'a>> {
        src.as_ref().and_then(|s| self.find(s, base, base_path))
    }

    fn opt_text(
        &self,
        src: &'a Option<Source>,
        base: &'a Json,
        path: &str,
    ) -> Result<Option<String>> {
        self.optional(src, base, path).map(|f| f.text()).transpose()
    }

    fn matches(&self, rule: &'a Rule, kind: Option<&str>) -> bool {
        if let Some(types) = &rule.types {
            if !kind.is_some_and(|k| types.iter().any(|t| t == k)) {
                return false;
            }
        }
        rule.when.iter().all(|c| self.holds(c))
    }

    fn holds(&self, c: &'a Condition) -> bool {
        let found = self.find(&c.source, self.root, "");
        let text = found.as_ref().and_then(|f| match f.value {
            Val::Json(Json::String(s)) | Val::Json(Json::Number(s)) => Some(s.as_str()),
            Val::Json(Json::Bool(true)) => Some("true"),
            Val::Json(Json::Bool(false)) => Some("false"),
            Val::Header(h) => Some(h),
            _ => None,
        });
        match &c.test {
            Test::Present(want) => {
                let present = match found.as_ref().map(|f| &f.value) {
                    None => false,
                    Some(Val::Json(Json::Array(a))) => !a.is_empty(),
                    Some(Val::Json(Json::Object(o))) => !o.is_empty(),
                    Some(_) => true,
                };
                present == *want
            }
            Test::In(list) => text.is_some_and(|t| list.iter().any(|v| v == t)),
            Test::NotIn(list) => !text.is_some_and(|t| list.iter().any(|v| v == t)),
            Test::Equals(v) => text == Some(v.as_str()),
        }
    }

    fn money(&self, f: &Found<'_>, currency: Currency) -> Result<Decimal> {
        match self.money {
            MoneyMode::Decimal => f.decimal(),
            MoneyMode::MinorUnits => {
                let text = f.number_text()?;
                let units = i64::from_str(text.trim()).map_err(|_| {
                    invalid(
                        &f.field,
                        format!("expected an integer amount of minor units, found {text:?}"),
                    )
                })?;
                let scale = currency.minor_units().ok_or_else(|| {
                    invalid(
                        &f.field,
                        format!(
                            "the minor unit of {currency} is not known: use money = \"decimal\""
                        ),
                    )
                })?;
                Ok(Decimal::new(units, scale))
            }
        }
    }

    fn opt_money(
        &self,
        src: &'a Option<Source>,
        base: &'a Json,
        path: &str,
        currency: Currency,
        sign: Sign,
    ) -> Result<Option<Decimal>> {
        self.optional(src, base, path)
            .map(|f| sign.apply(&f, self.money(&f, currency)?))
            .transpose()
    }

    fn req_money(
        &self,
        src: &'a Source,
        base: &'a Json,
        path: &str,
        currency: Currency,
        sign: Sign,
    ) -> Result<Decimal> {
        let f = self.required(src, base, path)?;
        sign.apply(&f, self.money(&f, currency)?)
    }

    fn person(&self, p: &'a PersonSpec, base: &'a Json) -> Result<CustomerRef> {
        Ok(CustomerRef {
            email_verified: None,
            external_id: self.opt_text(&p.id, base, "")?,
            email: self.opt_text(&p.email, base, "")?,
            phone: self.opt_text(&p.phone, base, "")?,
            first_name: self.opt_text(&p.first_name, base, "")?,
            last_name: self.opt_text(&p.last_name, base, "")?,
        })
    }

    fn array(&self, src: &'a Source, required: bool) -> Result<(Vec<&'a Json>, String)> {
        let found = if required {
            Some(self.required(src, self.root, "")?)
        } else {
            self.find(src, self.root, "")
        };
        match found {
            None => Ok((Vec::new(), String::new())),
            Some(Found {
                value: Val::Json(Json::Array(items)),
                field,
            }) => Ok((items.iter().collect(), field)),
            Some(f) => Err(invalid(
                &f.field,
                format!("expected an array, found {}", f.kind()),
            )),
        }
    }

    fn sale(&self, s: &'a SaleSpec) -> Result<Sale> {
        let root = self.root;
        let currency = self.required(&s.currency, root, "")?.currency()?;
        let customer = match &s.customer {
            Some(p) => Some(self.person(p, root)?).filter(|c| *c != CustomerRef::default()),
            None => None,
        };
        let (items, lines_path) = self.array(&s.lines, true)?;
        let lines = items
            .into_iter()
            .enumerate()
            .map(|(i, item)| self.sale_line(&s.line, item, &format!("{lines_path}/{i}"), currency))
            .collect::<Result<_>>()?;
        Ok(Sale {
            order_id: self.required(&s.order_id, root, "")?.text()?,
            source_order_id: self.opt_text(&s.source_order_id, root, "")?,
            customer,
            currency,
            lines,
            shipping: self
                .opt_money(&s.shipping, root, "", currency, Sign::NonNegative)?
                .unwrap_or_default(),
            tax: self
                .opt_money(&s.tax, root, "", currency, Sign::NonNegative)?
                .unwrap_or_default(),
            taxes_included: self
                .optional(&s.taxes_included, root, "")
                .map(|f| f.boolean())
                .transpose()?
                .unwrap_or(false),
            total: self.req_money(&s.total, root, "", currency, Sign::NonNegative)?,
            location_id: self.opt_text(&s.location_id, root, "")?,
            channel: self.opt_text(&s.channel, root, "")?,
        })
    }

    fn sale_line(
        &self,
        l: &'a LineSpec,
        item: &'a Json,
        path: &str,
        currency: Currency,
    ) -> Result<SaleLine> {
        let qf = self.required(&l.quantity, item, path)?;
        let quantity = Sign::NonNegative.apply(&qf, qf.decimal()?)?;
        // `before` is the line before discounts; `rounding` is what an inexact
        // subtotal ÷ quantity adds to it (see `unit_price_of`).
        let (unit_price, before, rounding) = match &l.price {
            LinePrice::Unit(src) => {
                let u = self.req_money(src, item, path, currency, Sign::NonNegative)?;
                (u, u * quantity, Decimal::ZERO)
            }
            LinePrice::Subtotal(src) => {
                let f = self.required(src, item, path)?;
                let sub = Sign::NonNegative.apply(&f, self.money(&f, currency)?)?;
                let (u, r) = unit_price_of(sub, quantity).ok_or_else(|| {
                    invalid(
                        &f.field,
                        format!("quantity is 0 but the line's subtotal is {sub}"),
                    )
                })?;
                (u, sub, r)
            }
        };
        let discount = match &l.discount {
            LineDiscount::None => Decimal::ZERO,
            LineDiscount::Amount(src) => match self.find(src, item, path) {
                Some(f) => Sign::Absolute.apply(&f, self.money(&f, currency)?)?,
                None => Decimal::ZERO,
            },
            LineDiscount::Total(src) => {
                let after = self.req_money(src, item, path, currency, Sign::NonNegative)?;
                // A line total above its pre-discount amount is a surcharge, not a discount.
                (before - after).max(Decimal::ZERO)
            }
        } + rounding;
        Ok(SaleLine {
            line_id: self.required(&l.id, item, path)?.text()?,
            sku: self.opt_text(&l.sku, item, path)?,
            product_id: self.opt_text(&l.product_id, item, path)?,
            variant_id: self.opt_text(&l.variant_id, item, path)?,
            title: self.opt_text(&l.title, item, path)?.unwrap_or_default(),
            vendor: self.opt_text(&l.vendor, item, path)?,
            quantity,
            unit_price,
            discount,
            tax: self
                .opt_money(&l.tax, item, path, currency, Sign::NonNegative)?
                .unwrap_or_default(),
            product_type: self.opt_text(&l.product_type, item, path)?,
            categories: Vec::new(),
            gift_card: self
                .optional(&l.gift_card, item, path)
                .map(|f| f.boolean())
                .transpose()?
                .unwrap_or(false),
        })
    }

    fn refund(&self, s: &'a RefundSpec) -> Result<Option<Refund>> {
        let root = self.root;
        let currency = self.required(&s.currency, root, "")?.currency()?;
        let amount = self
            .opt_money(&s.amount, root, "", currency, Sign::Absolute)?
            .filter(|a| !a.is_zero())
            .map(|amount| Money { amount, currency });
        let mut lines = Vec::new();
        if let Some((src, line)) = &s.lines {
            let (items, lines_path) = self.array(src, false)?;
            for (i, item) in items.into_iter().enumerate() {
                let path = format!("{lines_path}/{i}");
                let qf = self.required(&line.quantity, item, &path)?;
                lines.push(RefundLine {
                    line_id: self.required(&line.id, item, &path)?.text()?,
                    quantity: qf.decimal()?.abs(),
                    subtotal: self.req_money(
                        &line.subtotal,
                        item,
                        &path,
                        currency,
                        Sign::Absolute,
                    )?,
                    tax: self
                        .opt_money(&line.tax, item, &path, currency, Sign::Absolute)?
                        .unwrap_or_default(),
                });
            }
        }
        if lines.is_empty() && amount.is_none() {
            return Ok(None);
        }
        Ok(Some(Refund {
            refund_id: self.required(&s.refund_id, root, "")?.text()?,
            order_id: self.required(&s.order_id, root, "")?.text()?,
            currency,
            lines,
            amount,
        }))
    }

    fn cancel(&self, s: &'a CancelSpec) -> Result<Cancel> {
        Ok(Cancel {
            order_id: self.required(&s.order_id, self.root, "")?.text()?,
            reason: self.opt_text(&s.reason, self.root, "")?,
        })
    }

    fn customer(&self, s: &'a CustomerSpec) -> Result<CustomerUpsert> {
        let customer = self.person(&s.person, self.root)?;
        if customer.external_id.is_none() && customer.email.is_none() && customer.phone.is_none() {
            return Err(invalid(
                "customer",
                "the payload has no customer id, email or phone",
            ));
        }
        let flag = |src: &'a Option<Source>| {
            self.optional(src, self.root, "")
                .map(|f| f.boolean())
                .transpose()
        };
        Ok(CustomerUpsert {
            customer,
            birthday: self
                .optional(&s.birthday, self.root, "")
                .map(|f| f.date())
                .transpose()?,
            consent: Consent {
                email: flag(&s.email_consent)?,
                sms: flag(&s.sms_consent)?,
            },
            tags: None,
        })
    }
}

/// The unit price for a line whose sender gives the amount before discounts, and the
/// rounding to add to the line's discount so that `unit_price × quantity − discount` is
/// exactly what the sender charged. `None` when the quantity is 0 and the subtotal not.
///
/// When the subtotal divides exactly (nearly always: it is the unit price times the
/// quantity), there is no rounding. When it does not (3 for 10.00), the unit price is
/// rounded up to the subtotal's decimal places (at least 2) and the excess counted as
/// discount: 3.34 × 3 − 0.02 = 10.00.
fn unit_price_of(subtotal: Decimal, quantity: Decimal) -> Option<(Decimal, Decimal)> {
    if quantity.is_zero() {
        return subtotal.is_zero().then_some((Decimal::ZERO, Decimal::ZERO));
    }
    let scale = subtotal.scale().max(2);
    let quotient = subtotal.checked_div(quantity)?;
    // Decimal arithmetic rounds at 28 digits, so 10 / 3 × 3 would compare equal to 10:
    // check a quotient cut to a few more places than the subtotal's instead.
    let mut unit = quotient.round_dp(subtotal.scale() + 8);
    if unit * quantity == subtotal {
        unit = unit.normalize();
        if unit.scale() < subtotal.scale() {
            unit.rescale(subtotal.scale());
        }
        return Some((unit, Decimal::ZERO));
    }
    let unit = quotient.round_dp_with_strategy(scale, RoundingStrategy::ToPositiveInfinity);
    Some((unit, unit * quantity - subtotal))
}

/// What sign an amount may have.
#[derive(Clone, Copy)]
enum Sign {
    /// Negative is an error (prices, totals, tax of a sale).
    NonNegative,
    /// Senders differ on the sign of refunds and discounts: take the absolute value.
    Absolute,
}

impl Sign {
    fn apply(self, f: &Found<'_>, d: Decimal) -> Result<Decimal> {
        match self {
            Sign::Absolute => Ok(d.abs()),
            Sign::NonNegative if d.is_sign_negative() && !d.is_zero() => Err(invalid(
                &f.field,
                format!("must not be negative, found {d}"),
            )),
            Sign::NonNegative => Ok(d),
        }
    }
}

impl Found<'_> {
    fn kind(&self) -> &'static str {
        match self.value {
            Val::Json(j) => j.kind(),
            Val::Header(_) => "a header",
            Val::Const(Const::Text(_)) => "a string",
            Val::Const(Const::Bool(_)) => "a boolean",
        }
    }

    /// Ids and names: strings as they are, numbers by their text (`727` → `"727"`).
    fn text(&self) -> Result<String> {
        match self.value {
            Val::Json(Json::String(s)) | Val::Json(Json::Number(s)) => Ok(s.clone()),
            Val::Header(h) => Ok(h.to_string()),
            Val::Const(Const::Text(s)) => Ok(s.clone()),
            _ => Err(invalid(
                &self.field,
                format!("expected a string or a number, found {}", self.kind()),
            )),
        }
    }

    /// The text of a string or number, for reading as a decimal.
    fn number_text(&self) -> Result<&str> {
        match self.value {
            Val::Json(Json::String(s)) | Val::Json(Json::Number(s)) => Ok(s),
            Val::Header(h) => Ok(h),
            Val::Const(Const::Text(s)) => Ok(s),
            _ => Err(invalid(
                &self.field,
                format!(
                    "expected a number or a numeric string, found {}",
                    self.kind()
                ),
            )),
        }
    }

    /// An exact decimal from `"19.90"`, `19.90`, `-5`, `1.5e2`. Never through a float.
    fn decimal(&self) -> Result<Decimal> {
        let text = self.number_text()?.trim();
        let parsed = if text.contains(['e', 'E']) {
            Decimal::from_scientific(text)
        } else {
            Decimal::from_str_exact(text)
        };
        parsed.map_err(|_| invalid(&self.field, format!("{text:?} is not a decimal number")))
    }

    fn currency(&self) -> Result<Currency> {
        let text = self.text()?;
        text.trim()
            .parse()
            .map_err(|e: loyaltyd_adapter::event::InvalidCurrency| {
                invalid(&self.field, e.to_string())
            })
    }

    fn boolean(&self) -> Result<bool> {
        match self.value {
            Val::Json(Json::Bool(b)) | Val::Const(Const::Bool(b)) => Ok(*b),
            Val::Json(Json::String(s)) | Val::Const(Const::Text(s))
                if s == "true" || s == "false" =>
            {
                Ok(s == "true")
            }
            Val::Header(h) if h == "true" || h == "false" => Ok(h == "true"),
            _ => Err(invalid(
                &self.field,
                format!("expected true or false, found {}", self.kind()),
            )),
        }
    }

    /// RFC 3339 (`2026-11-20T15:14:03Z`, `…+02:00`), RFC 2822 (HTTP dates), a date-time
    /// without zone read as UTC (`2026-11-20T15:14:03`, `2026-11-20 15:14:03.5`), or an
    /// integer number of seconds since 1970 (a JSON number, not a string).
    fn time(&self) -> Result<DateTime<Utc>> {
        if let Val::Json(Json::Number(n)) = self.value {
            return i64::from_str(n)
                .ok()
                .and_then(|secs| DateTime::from_timestamp(secs, 0))
                .ok_or_else(|| {
                    invalid(
                        &self.field,
                        format!("{n} is not a whole number of seconds since 1970"),
                    )
                });
        }
        let text = self.text()?;
        let t = text.trim();
        DateTime::parse_from_rfc3339(t)
            .or_else(|_| DateTime::parse_from_rfc2822(t))
            .map(|d| d.with_timezone(&Utc))
            .or_else(|_| {
                NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f")
                    .or_else(|_| NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f"))
                    .map(|n| n.and_utc())
            })
            .map_err(|_| {
                invalid(
                    &self.field,
                    format!(
                        "{t:?} is not a time (expected RFC 3339 or YYYY-MM-DDTHH:MM:SS in UTC)"
                    ),
                )
            })
    }

    fn date(&self) -> Result<NaiveDate> {
        let text = self.text()?;
        let t = text.trim();
        NaiveDate::parse_from_str(t.get(..10).unwrap_or(t), "%Y-%m-%d")
            .map_err(|_| invalid(&self.field, format!("{t:?} is not a date (YYYY-MM-DD)")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn an_exact_subtotal_divides_without_rounding() {
        assert_eq!(
            unit_price_of(d("24.00"), d("2")),
            Some((d("12.00"), d("0")))
        );
        assert_eq!(
            unit_price_of(d("24.00"), d("2")).unwrap().0.to_string(),
            "12.00"
        );
        assert_eq!(
            unit_price_of(d("7.50"), d("1.5")),
            Some((d("5.00"), d("0")))
        );
        assert_eq!(
            unit_price_of(d("10.00"), d("4")).unwrap().0.to_string(),
            "2.50"
        );
        assert_eq!(
            unit_price_of(d("1.00"), d("8")).unwrap().0.to_string(),
            "0.125"
        );
    }

    #[test]
    fn an_inexact_subtotal_rounds_the_unit_price_up_and_counts_the_excess_as_discount() {
        let (u, r) = unit_price_of(d("10.00"), d("3")).unwrap();
        assert_eq!(
            (u.to_string(), r.to_string()),
            ("3.34".into(), "0.02".into())
        );
        assert_eq!(u * d("3") - r, d("10.00"));
        let (u, r) = unit_price_of(d("10"), d("3")).unwrap();
        assert_eq!(u * d("3") - r, d("10"));
    }

    #[test]
    fn odd_number_texts_are_errors_not_panics() {
        let field = |text: &'static str| Found {
            value: Val::Header(text),
            field: "f".into(),
        };
        assert_eq!(field("1.5e2").decimal(), Ok(d("150")));
        assert_eq!(field("-0").decimal(), Ok(d("0")));
        for bad in [
            "1e999999999",
            "1e-999999999",
            "99999999999999999999999999999999",
            "",
            "NaN",
            "0x10",
        ] {
            assert!(field(bad).decimal().is_err(), "{bad}");
        }
        assert!(field("1.0000000000000000000000000000001")
            .decimal()
            .is_err());
        let number = |n: &str| Json::Number(n.into());
        for bad in ["99999999999999999999", "1.5", "-99999999999999"] {
            let j = number(bad);
            let f = Found {
                value: Val::Json(&j),
                field: "t".into(),
            };
            assert!(f.time().is_err(), "{bad}");
        }
    }

    #[test]
    fn zero_quantity() {
        assert_eq!(unit_price_of(d("0.00"), d("0")), Some((d("0"), d("0"))));
        assert_eq!(unit_price_of(d("1.00"), d("0")), None);
    }
}
