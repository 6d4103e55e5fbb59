//! Reading a definition: TOML text → a checked [`Spec`].
//!
//! Every key is read by hand (not through serde) so that each error names the exact key
//! (`sale.line.quantity`, `rules[2].when[0].in`) and says what was expected. Unknown keys
//! are errors too: a misspelt `time_pointer` must not silently fall back to a default.

use std::collections::BTreeSet;
use std::sync::{Mutex, OnceLock};

use loyaltyd_adapter::signature::{Algorithm, Encoding};
use toml::{Table, Value};

use crate::pointer::Pointer;
use crate::DefinitionError;

/// A whole definition, checked.
#[derive(Debug)]
pub(crate) struct Spec {
    pub name: &'static str,
    pub description: Option<String>,
    pub money: MoneyMode,
    pub signature: SignatureSpec,
    pub event: EventSpec,
    pub rules: Vec<Rule>,
    pub sale: Option<SaleSpec>,
    pub refund: Option<RefundSpec>,
    pub cancel: Option<CancelSpec>,
    pub customer: Option<CustomerSpec>,
}

/// How money amounts are written in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MoneyMode {
    /// `"19.99"` or `19.99`: read exactly from the text.
    Decimal,
    /// `1999`: an integer count of the currency's minor unit.
    MinorUnits,
}

#[derive(Debug)]
pub(crate) struct SignatureSpec {
    pub header: &'static str,
    pub algorithm: Algorithm,
    pub encoding: Encoding,
    pub message: Message,
    pub prefix: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Message {
    Body,
    UrlAndBody,
}

#[derive(Debug)]
pub(crate) struct EventSpec {
    pub id: Source,
    pub kind: Option<Source>,
    pub time: Option<Source>,
}

/// Where one value comes from.
#[derive(Debug)]
pub(crate) struct Source {
    /// The definition key, for messages (`sale.total`).
    pub key: String,
    pub from: Origin,
    /// Values (as text) that mean "none" (e.g. WooCommerce's `customer_id` 0 for guests).
    pub none_if: Vec<String>,
}

#[derive(Debug)]
pub(crate) enum Origin {
    /// The first of these pointers that finds a value.
    Pointers(Vec<Pointer>),
    /// A request header.
    Header(&'static str),
    /// A constant.
    Const(Const),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Const {
    Text(String),
    Bool(bool),
}

#[derive(Debug)]
pub(crate) struct Rule {
    pub key: String,
    pub types: Option<Vec<String>>,
    pub when: Vec<Condition>,
    pub emit: Emit,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Emit {
    Sale,
    Refund,
    Cancel,
    Customer,
    Ignore(Option<String>),
}

#[derive(Debug)]
pub(crate) struct Condition {
    pub source: Source,
    pub test: Test,
}

#[derive(Debug)]
pub(crate) enum Test {
    In(Vec<String>),
    NotIn(Vec<String>),
    Equals(String),
    Present(bool),
}

#[derive(Debug)]
pub(crate) struct SaleSpec {
    pub time: Option<Source>,
    pub order_id: Source,
    pub source_order_id: Option<Source>,
    pub currency: Source,
    pub total: Source,
    pub tax: Option<Source>,
    pub shipping: Option<Source>,
    pub taxes_included: Option<Source>,
    pub location_id: Option<Source>,
    pub channel: Option<Source>,
    pub customer: Option<PersonSpec>,
    pub lines: Source,
    pub line: LineSpec,
}

/// Who: the fields of a `CustomerRef`.
#[derive(Debug)]
pub(crate) struct PersonSpec {
    pub id: Option<Source>,
    pub email: Option<Source>,
    pub phone: Option<Source>,
    pub first_name: Option<Source>,
    pub last_name: Option<Source>,
}

#[derive(Debug)]
pub(crate) struct LineSpec {
    pub id: Source,
    pub sku: Option<Source>,
    pub product_id: Option<Source>,
    pub variant_id: Option<Source>,
    pub title: Option<Source>,
    pub vendor: Option<Source>,
    pub product_type: Option<Source>,
    pub quantity: Source,
    pub price: LinePrice,
    pub discount: LineDiscount,
    pub tax: Option<Source>,
    pub gift_card: Option<Source>,
}

#[derive(Debug)]
pub(crate) enum LinePrice {
    /// Price of one unit before discounts.
    Unit(Source),
    /// The line's amount before discounts (quantity × unit price).
    Subtotal(Source),
}

#[derive(Debug)]
pub(crate) enum LineDiscount {
    None,
    /// The discount on the whole line, as an amount.
    Amount(Source),
    /// The line's amount after discounts (the discount is the difference).
    Total(Source),
}

#[derive(Debug)]
pub(crate) struct RefundSpec {
    pub time: Option<Source>,
    pub refund_id: Source,
    pub order_id: Source,
    pub currency: Source,
    pub amount: Option<Source>,
    pub lines: Option<(Source, RefundLineSpec)>,
}

#[derive(Debug)]
pub(crate) struct RefundLineSpec {
    pub id: Source,
    pub quantity: Source,
    pub subtotal: Source,
    pub tax: Option<Source>,
}

#[derive(Debug)]
pub(crate) struct CancelSpec {
    pub time: Option<Source>,
    pub order_id: Source,
    pub reason: Option<Source>,
}

#[derive(Debug)]
pub(crate) struct CustomerSpec {
    pub time: Option<Source>,
    pub person: PersonSpec,
    pub birthday: Option<Source>,
    pub email_consent: Option<Source>,
    pub sms_consent: Option<Source>,
}

// ---------------------------------------------------------------------------------------
// Reading.

type Result<T> = std::result::Result<T, DefinitionError>;

fn err(key: impl Into<String>, message: impl Into<String>) -> DefinitionError {
    DefinitionError {
        key: key.into(),
        message: message.into(),
    }
}

/// A TOML table being read, with its dotted path and the keys it may hold.
struct Tbl<'a> {
    path: String,
    table: &'a Table,
}

impl<'a> Tbl<'a> {
    fn new(path: impl Into<String>, table: &'a Table, allowed: &[&str]) -> Result<Tbl<'a>> {
        let t = Tbl {
            path: path.into(),
            table,
        };
        for k in table.keys() {
            if !allowed.contains(&k.as_str()) {
                return Err(err(
                    t.key(k),
                    format!("unknown key (expected one of: {})", allowed.join(", ")),
                ));
            }
        }
        Ok(t)
    }

    fn key(&self, k: &str) -> String {
        if self.path.is_empty() {
            k.to_string()
        } else {
            format!("{}.{k}", self.path)
        }
    }

    fn get(&self, k: &str) -> Option<&'a Value> {
        self.table.get(k)
    }

    fn str(&self, k: &str) -> Result<Option<&'a str>> {
        match self.get(k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(err(
                self.key(k),
                format!("expected a string, found {}", v.type_str()),
            )),
        }
    }

    fn req_str(&self, k: &str) -> Result<&'a str> {
        self.str(k)?.ok_or_else(|| err(self.key(k), "is required"))
    }

    fn table(&self, k: &str, allowed: &[&str]) -> Result<Option<Tbl<'a>>> {
        match self.get(k) {
            None => Ok(None),
            Some(Value::Table(t)) => Tbl::new(self.key(k), t, allowed).map(Some),
            Some(v) => Err(err(
                self.key(k),
                format!("expected a table, found {}", v.type_str()),
            )),
        }
    }

    fn req_table(&self, k: &str, allowed: &[&str]) -> Result<Tbl<'a>> {
        self.table(k, allowed)?
            .ok_or_else(|| err(self.key(k), "is required (a table)"))
    }

    /// A value source (see the crate docs): `"/pointer"`, `["/a", "/b"]`, a constant
    /// boolean or integer, or `{ pointer | header | value, none_if }`.
    fn source(&self, k: &str) -> Result<Option<Source>> {
        let Some(v) = self.get(k) else {
            return Ok(None);
        };
        read_source(self.key(k), v).map(Some)
    }

    fn req_source(&self, k: &str) -> Result<Source> {
        self.source(k)?
            .ok_or_else(|| err(self.key(k), "is required"))
    }
}

fn read_source(key: String, v: &Value) -> Result<Source> {
    let from = match v {
        Value::String(s) => Origin::Pointers(vec![pointer(&key, s)?]),
        Value::Array(items) => pointers(&key, items)?,
        Value::Boolean(b) => Origin::Const(Const::Bool(*b)),
        Value::Integer(i) => Origin::Const(Const::Text(i.to_string())),
        Value::Table(t) => {
            let t = Tbl::new(key.clone(), t, &["pointer", "header", "value", "none_if"])?;
            let given: Vec<&str> = ["pointer", "header", "value"]
                .into_iter()
                .filter(|k| t.get(k).is_some())
                .collect();
            if given.len() != 1 {
                return Err(err(
                    key,
                    "give exactly one of pointer, header or value".to_string(),
                ));
            }
            let from = match given[0] {
                "pointer" => match t.get("pointer") {
                    Some(Value::String(s)) => {
                        Origin::Pointers(vec![pointer(&t.key("pointer"), s)?])
                    }
                    Some(Value::Array(items)) => pointers(&t.key("pointer"), items)?,
                    Some(v) => {
                        return Err(err(
                            t.key("pointer"),
                            format!(
                                "expected a JSON pointer or a list of them, found {}",
                                v.type_str()
                            ),
                        ))
                    }
                    None => unreachable!("checked above"),
                },
                "header" => Origin::Header(header_name(&t.key("header"), t.req_str("header")?)?),
                _ => Origin::Const(match t.get("value") {
                    Some(Value::String(s)) => Const::Text(s.clone()),
                    Some(Value::Integer(i)) => Const::Text(i.to_string()),
                    Some(Value::Boolean(b)) => Const::Bool(*b),
                    Some(v) => {
                        return Err(err(
                            t.key("value"),
                            format!(
                                "expected a string, integer or boolean, found {}",
                                v.type_str()
                            ),
                        ))
                    }
                    None => unreachable!("checked above"),
                }),
            };
            let none_if = match t.get("none_if") {
                None => Vec::new(),
                Some(v) => texts(&t.key("none_if"), v)?,
            };
            return Ok(Source { key, from, none_if });
        }
        other => {
            return Err(err(
                key,
                format!(
                    "expected a JSON pointer such as \"/id\", a list of pointers, a constant, or a \
                     table {{ pointer | header | value }}; found {}",
                    other.type_str()
                ),
            ))
        }
    };
    Ok(Source {
        key,
        from,
        none_if: Vec::new(),
    })
}

fn pointer(key: &str, text: &str) -> Result<Pointer> {
    Pointer::parse(text).map_err(|m| err(key, m))
}

fn pointers(key: &str, items: &[Value]) -> Result<Origin> {
    if items.is_empty() {
        return Err(err(key, "an empty list of pointers finds nothing"));
    }
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match item {
            Value::String(s) => out.push(pointer(&format!("{key}[{i}]"), s)?),
            v => {
                return Err(err(
                    format!("{key}[{i}]"),
                    format!("expected a JSON pointer, found {}", v.type_str()),
                ))
            }
        }
    }
    Ok(Origin::Pointers(out))
}

/// A list of strings / integers / booleans, compared as text.
fn texts(key: &str, v: &Value) -> Result<Vec<String>> {
    let items = match v {
        Value::Array(items) => items.as_slice(),
        single => std::slice::from_ref(single),
    };
    items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            scalar_text(v).ok_or_else(|| {
                err(
                    format!("{key}[{i}]"),
                    format!(
                        "expected a string, integer or boolean, found {}",
                        v.type_str()
                    ),
                )
            })
        })
        .collect()
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Integer(i) => Some(i.to_string()),
        Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn header_name(key: &str, name: &str) -> Result<&'static str> {
    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(err(
            key,
            format!("{name:?} is not a valid HTTP header name"),
        ));
    }
    Ok(intern(name))
}

/// Leak `s` once per distinct value, so definition-chosen names can be `&'static str`
/// (the `Adapter` trait and the SDK's error types want them). Loading the same
/// definition again leaks nothing new; the total is bounded by the distinct names ever
/// loaded, a few bytes each.
pub(crate) fn intern(s: &str) -> &'static str {
    static NAMES: OnceLock<Mutex<BTreeSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(existing) = names.get(s) {
        return existing;
    }
    let leaked: &'static str = Box::leak(s.to_string().into_boxed_str());
    names.insert(leaked);
    leaked
}

pub(crate) fn parse(text: &str) -> Result<Spec> {
    let table: Table = text.parse().map_err(|e: toml::de::Error| {
        err("", format!("not valid TOML: {}", e.to_string().trim_end()))
    })?;
    let top = Tbl::new(
        "",
        &table,
        &[
            "name",
            "description",
            "money",
            "signature",
            "event",
            "rules",
            "sale",
            "refund",
            "cancel",
            "customer",
        ],
    )?;

    let name = top.req_str("name")?;
    let name_ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !name_ok {
        return Err(err(
            "name",
            format!(
                "{name:?} cannot be a URL segment: use 1-64 characters of a-z, 0-9, '-' and '_'"
            ),
        ));
    }
    let description = top.str("description")?.map(str::to_string);
    let money = match top.str("money")? {
        None | Some("decimal") => MoneyMode::Decimal,
        Some("minor_units") => MoneyMode::MinorUnits,
        Some(other) => {
            return Err(err(
                "money",
                format!("unknown money format {other:?} (expected \"decimal\" or \"minor_units\")"),
            ))
        }
    };

    let signature = read_signature(&top)?;
    let event = read_event(&top)?;
    let sale = top.table("sale", SALE_KEYS)?.map(read_sale).transpose()?;
    let refund = top
        .table("refund", REFUND_KEYS)?
        .map(read_refund)
        .transpose()?;
    let cancel = top
        .table("cancel", &["time", "order_id", "reason"])?
        .map(|t| {
            Ok(CancelSpec {
                time: t.source("time")?,
                order_id: t.req_source("order_id")?,
                reason: t.source("reason")?,
            })
        })
        .transpose()?;
    let customer = top
        .table("customer", CUSTOMER_KEYS)?
        .map(|t| {
            Ok(CustomerSpec {
                time: t.source("time")?,
                person: read_person(&t)?,
                birthday: t.source("birthday")?,
                email_consent: t.source("email_consent")?,
                sms_consent: t.source("sms_consent")?,
            })
        })
        .transpose()?;

    let rules = read_rules(&top, &event)?;
    let spec = Spec {
        name: intern(name),
        description,
        money,
        signature,
        event,
        rules,
        sale,
        refund,
        cancel,
        customer,
    };
    check_emits(&spec)?;
    Ok(spec)
}

fn read_signature(top: &Tbl<'_>) -> Result<SignatureSpec> {
    let t = top.req_table(
        "signature",
        &["header", "algorithm", "encoding", "message", "prefix"],
    )?;
    let header = header_name(&t.key("header"), t.req_str("header")?)?;
    let algorithm = match t.req_str("algorithm")? {
        "hmac-sha256" | "sha256" => Algorithm::Sha256,
        "hmac-sha1" | "sha1" => Algorithm::Sha1,
        other => {
            return Err(err(
                t.key("algorithm"),
                format!("unknown algorithm {other:?} (expected \"hmac-sha256\" or \"hmac-sha1\")"),
            ))
        }
    };
    let encoding = match t.req_str("encoding")? {
        "base64" => Encoding::Base64,
        "hex" => Encoding::Hex,
        other => {
            return Err(err(
                t.key("encoding"),
                format!("unknown encoding {other:?} (expected \"base64\" or \"hex\")"),
            ))
        }
    };
    let message = match t.str("message")? {
        None | Some("body") => Message::Body,
        Some("url+body") => Message::UrlAndBody,
        Some(other) => {
            return Err(err(
                t.key("message"),
                format!("unknown message {other:?} (expected \"body\" or \"url+body\")"),
            ))
        }
    };
    let prefix = t
        .str("prefix")?
        .filter(|p| !p.is_empty())
        .map(str::to_string);
    Ok(SignatureSpec {
        header,
        algorithm,
        encoding,
        message,
        prefix,
    })
}

fn read_event(top: &Tbl<'_>) -> Result<EventSpec> {
    let t = top.req_table("event", &["id", "type", "time"])?;
    Ok(EventSpec {
        id: t.req_source("id")?,
        kind: t.source("type")?,
        time: t.source("time")?,
    })
}

const SALE_KEYS: &[&str] = &[
    "time",
    "order_id",
    "source_order_id",
    "currency",
    "total",
    "tax",
    "shipping",
    "taxes_included",
    "location_id",
    "channel",
    "customer",
    "lines",
    "line",
];

const PERSON_KEYS: &[&str] = &["id", "email", "phone", "first_name", "last_name"];

const LINE_KEYS: &[&str] = &[
    "id",
    "sku",
    "product_id",
    "variant_id",
    "title",
    "vendor",
    "product_type",
    "quantity",
    "unit_price",
    "subtotal",
    "discount",
    "total",
    "tax",
    "gift_card",
];

const REFUND_KEYS: &[&str] = &[
    "time",
    "refund_id",
    "order_id",
    "currency",
    "amount",
    "lines",
    "line",
];

const CUSTOMER_KEYS: &[&str] = &[
    "time",
    "id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "birthday",
    "email_consent",
    "sms_consent",
];

fn read_person(t: &Tbl<'_>) -> Result<PersonSpec> {
    Ok(PersonSpec {
        id: t.source("id")?,
        email: t.source("email")?,
        phone: t.source("phone")?,
        first_name: t.source("first_name")?,
        last_name: t.source("last_name")?,
    })
}

fn read_sale(t: Tbl<'_>) -> Result<SaleSpec> {
    let customer = t
        .table("customer", PERSON_KEYS)?
        .map(|c| read_person(&c))
        .transpose()?;
    let line = t.req_table("line", LINE_KEYS)?;
    let price = match (line.source("unit_price")?, line.source("subtotal")?) {
        (Some(u), None) => LinePrice::Unit(u),
        (None, Some(s)) => LinePrice::Subtotal(s),
        (Some(_), Some(_)) => {
            return Err(err(
                line.key("subtotal"),
                "give either unit_price or subtotal, not both",
            ))
        }
        (None, None) => {
            return Err(err(
                line.key("unit_price"),
                "is required (or subtotal: the line before discounts)",
            ))
        }
    };
    let discount = match (line.source("discount")?, line.source("total")?) {
        (None, None) => LineDiscount::None,
        (Some(d), None) => LineDiscount::Amount(d),
        (None, Some(total)) => LineDiscount::Total(total),
        (Some(_), Some(_)) => {
            return Err(err(
                line.key("total"),
                "give either discount or total (after discounts), not both",
            ))
        }
    };
    Ok(SaleSpec {
        time: t.source("time")?,
        order_id: t.req_source("order_id")?,
        source_order_id: t.source("source_order_id")?,
        currency: t.req_source("currency")?,
        total: t.req_source("total")?,
        tax: t.source("tax")?,
        shipping: t.source("shipping")?,
        taxes_included: t.source("taxes_included")?,
        location_id: t.source("location_id")?,
        channel: t.source("channel")?,
        customer,
        lines: t.req_source("lines")?,
        line: LineSpec {
            id: line.req_source("id")?,
            sku: line.source("sku")?,
            product_id: line.source("product_id")?,
            variant_id: line.source("variant_id")?,
            title: line.source("title")?,
            vendor: line.source("vendor")?,
            product_type: line.source("product_type")?,
            quantity: line.req_source("quantity")?,
            price,
            discount,
            tax: line.source("tax")?,
            gift_card: line.source("gift_card")?,
        },
    })
}

fn read_refund(t: Tbl<'_>) -> Result<RefundSpec> {
    let lines = match (
        t.source("lines")?,
        t.table("line", &["id", "quantity", "subtotal", "tax"])?,
    ) {
        (None, None) => None,
        (Some(lines), Some(line)) => Some((
            lines,
            RefundLineSpec {
                id: line.req_source("id")?,
                quantity: line.req_source("quantity")?,
                subtotal: line.req_source("subtotal")?,
                tax: line.source("tax")?,
            },
        )),
        (Some(_), None) => return Err(err(t.key("line"), "is required when lines is given")),
        (None, Some(_)) => return Err(err(t.key("lines"), "is required when line is given")),
    };
    let amount = t.source("amount")?;
    if amount.is_none() && lines.is_none() {
        return Err(err(
            t.key("amount"),
            "a refund needs an amount, lines, or both",
        ));
    }
    Ok(RefundSpec {
        time: t.source("time")?,
        refund_id: t.req_source("refund_id")?,
        order_id: t.req_source("order_id")?,
        currency: t.req_source("currency")?,
        amount,
        lines,
    })
}

fn read_rules(top: &Tbl<'_>, event: &EventSpec) -> Result<Vec<Rule>> {
    let items = match top.get("rules") {
        Some(Value::Array(items)) => items,
        Some(v) => {
            return Err(err(
                "rules",
                format!("expected [[rules]] tables, found {}", v.type_str()),
            ))
        }
        None => {
            return Err(err(
                "rules",
                "is required: at least one [[rules]] saying which events become what",
            ))
        }
    };
    let mut rules = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let key = format!("rules[{i}]");
        let Value::Table(table) = item else {
            return Err(err(
                key,
                format!("expected a table, found {}", item.type_str()),
            ));
        };
        let t = Tbl::new(key.clone(), table, &["types", "when", "emit", "reason"])?;
        let types = match t.get("types") {
            None => None,
            Some(v) => {
                if event.kind.is_none() {
                    return Err(err(
                        t.key("types"),
                        "matching on types needs [event] type (where the event type is)",
                    ));
                }
                Some(texts(&t.key("types"), v)?)
            }
        };
        let when = match t.get("when") {
            None => Vec::new(),
            Some(Value::Array(conds)) => conds
                .iter()
                .enumerate()
                .map(|(j, c)| read_condition(&format!("{key}.when[{j}]"), c))
                .collect::<Result<_>>()?,
            Some(single @ Value::Table(_)) => vec![read_condition(&t.key("when"), single)?],
            Some(v) => {
                return Err(err(
                    t.key("when"),
                    format!("expected a list of conditions, found {}", v.type_str()),
                ))
            }
        };
        let emit = match t.req_str("emit")? {
            "sale" => Emit::Sale,
            "refund" => Emit::Refund,
            "cancel" => Emit::Cancel,
            "customer" => Emit::Customer,
            "ignore" => Emit::Ignore(t.str("reason")?.map(str::to_string)),
            other => {
                return Err(err(
                    t.key("emit"),
                    format!(
                    "unknown event {other:?} (expected sale, refund, cancel, customer or ignore)"
                ),
                ))
            }
        };
        if t.get("reason").is_some() && !matches!(emit, Emit::Ignore(_)) {
            return Err(err(
                t.key("reason"),
                "only rules with emit = \"ignore\" take a reason",
            ));
        }
        rules.push(Rule {
            key,
            types,
            when,
            emit,
        });
    }
    Ok(rules)
}

fn read_condition(key: &str, v: &Value) -> Result<Condition> {
    let Value::Table(table) = v else {
        return Err(err(
            key,
            format!(
                "expected a condition such as {{ pointer = \"/status\", in = [\"completed\"] }}, found {}",
                v.type_str()
            ),
        ));
    };
    let t = Tbl::new(
        key,
        table,
        &["pointer", "header", "in", "not_in", "equals", "present"],
    )?;
    let source = match (t.get("pointer"), t.get("header")) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(err(key, "give exactly one of pointer or header"))
        }
        (Some(p), None) => read_source(t.key("pointer"), p)?,
        (None, Some(_)) => Source {
            key: t.key("header"),
            from: Origin::Header(header_name(&t.key("header"), t.req_str("header")?)?),
            none_if: Vec::new(),
        },
    };
    if matches!(source.from, Origin::Const(_)) {
        return Err(err(t.key("pointer"), "expected a JSON pointer"));
    }
    let ops: Vec<&str> = ["in", "not_in", "equals", "present"]
        .into_iter()
        .filter(|k| t.get(k).is_some())
        .collect();
    if ops.len() != 1 {
        return Err(err(
            key,
            "give exactly one test: in, not_in, equals or present",
        ));
    }
    let op = ops[0];
    let value = t.get(op).expect("checked above");
    let test = match op {
        "in" => Test::In(texts(&t.key(op), value)?),
        "not_in" => Test::NotIn(texts(&t.key(op), value)?),
        "equals" => Test::Equals(scalar_text(value).ok_or_else(|| {
            err(
                t.key(op),
                format!(
                    "expected a string, integer or boolean, found {}",
                    value.type_str()
                ),
            )
        })?),
        _ => match value {
            Value::Boolean(b) => Test::Present(*b),
            v => {
                return Err(err(
                    t.key(op),
                    format!("expected true or false, found {}", v.type_str()),
                ))
            }
        },
    };
    Ok(Condition { source, test })
}

/// Every emitted kind has its section, and a time to date it.
fn check_emits(spec: &Spec) -> Result<()> {
    for rule in &spec.rules {
        let (section, has, time) = match rule.emit {
            Emit::Sale => (
                "sale",
                spec.sale.is_some(),
                spec.sale.as_ref().and_then(|s| s.time.as_ref()),
            ),
            Emit::Refund => (
                "refund",
                spec.refund.is_some(),
                spec.refund.as_ref().and_then(|s| s.time.as_ref()),
            ),
            Emit::Cancel => (
                "cancel",
                spec.cancel.is_some(),
                spec.cancel.as_ref().and_then(|s| s.time.as_ref()),
            ),
            Emit::Customer => (
                "customer",
                spec.customer.is_some(),
                spec.customer.as_ref().and_then(|s| s.time.as_ref()),
            ),
            Emit::Ignore(_) => continue,
        };
        if !has {
            return Err(err(
                format!("{}.emit", rule.key),
                format!("emits {section:?} but the definition has no [{section}] table"),
            ));
        }
        if time.is_none() && spec.event.time.is_none() {
            return Err(err(
                format!("{section}.time"),
                format!("a {section} needs a time: set [{section}] time or [event] time"),
            ));
        }
    }
    Ok(())
}
