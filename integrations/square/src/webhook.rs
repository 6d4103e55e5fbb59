//! Square's webhook envelope and the payment, refund and customer objects inside it.

use chrono::{DateTime, Utc};
use loyaltyd_adapter::{
    Consent, CustomerRef, CustomerUpsert, EventEnvelope, Money, ParseError, Parsed, PosEvent,
    RawRequest, Refund, Sale, SaleLine,
};
use rust_decimal::Decimal;
use serde_json::Value;

use crate::json::{invalid, same_currency, Obj};
use crate::{NAME, PAYMENT_LINE_TITLE};

/// What the envelope says about every event.
struct Envelope<'a> {
    event_id: &'a str,
    kind: &'a str,
    created_at: Option<DateTime<Utc>>,
    root: Obj<'a>,
}

pub(crate) fn parse(req: &RawRequest) -> Result<Parsed, ParseError> {
    let value: Value =
        serde_json::from_slice(&req.body).map_err(|e| ParseError::Malformed(e.to_string()))?;
    let root = Obj::root(&value)?;
    let env = Envelope {
        event_id: root.str("event_id")?,
        kind: root.str("type")?,
        created_at: root.opt_time("created_at")?,
        root,
    };
    match env.kind {
        "payment.created" | "payment.updated" => payment(req, &env),
        "refund.created" | "refund.updated" => refund(req, &env),
        "customer.created" | "customer.updated" => customer(req, &env),
        "webhooks.test_notification" => Ok(env.ignored(
            "Square test notification (sent from the Developer Console); carries no event",
        )),
        kind if kind.starts_with("order.") => Ok(env.ignored(
            "order events carry no amounts; sales are read from payment events \
             (COMPLETED) and their order is fetched from the Orders API",
        )),
        "customer.deleted" => {
            Ok(env.ignored("customer deletions are not applied: the loyalty member is kept"))
        }
        _ => Ok(env.ignored("event type not used by the loyalty program")),
    }
}

impl<'a> Envelope<'a> {
    fn ignored(&self, reason: impl Into<String>) -> Parsed {
        Parsed::ignored(self.event_id, self.kind, reason)
    }

    /// `data.object.<key>`: the object the event is about.
    fn object(&self, key: &str) -> Result<Obj<'a>, ParseError> {
        self.root.obj("data")?.obj("object")?.obj(key)
    }

    /// The object's `updated_at`, else its `created_at`, else the envelope's `created_at`.
    fn occurred_at(&self, object: &Obj<'_>) -> Result<DateTime<Utc>, ParseError> {
        let t = match object.opt_time("updated_at")? {
            Some(t) => Some(t),
            None => object.opt_time("created_at")?,
        };
        t.or(self.created_at).ok_or_else(|| {
            invalid(
                object.path_of("updated_at"),
                "no time in the object (updated_at, created_at) nor in the envelope (created_at)",
            )
        })
    }

    fn event(&self, req: &RawRequest, occurred_at: DateTime<Utc>, event: PosEvent) -> Parsed {
        Parsed::Event(Box::new(EventEnvelope {
            shop: req.shop.clone(),
            adapter: NAME.to_string(),
            event_id: self.event_id.to_string(),
            occurred_at,
            event,
        }))
    }
}

fn payment(req: &RawRequest, env: &Envelope<'_>) -> Result<Parsed, ParseError> {
    let p = env.object("payment")?;
    let status = p.str("status")?;
    if status != "COMPLETED" {
        return Ok(env.ignored(format!("payment {status}; earns when COMPLETED")));
    }
    let id = p.str("id")?;
    let amount = p.money("amount_money")?;
    let currency = amount.currency;
    // total_money = amount_money + tip_money; computed the same way if Square left it out.
    let total = match p.opt_money("total_money")? {
        Some(t) => {
            same_currency(&t, currency, p.path_of("total_money"))?;
            t.amount
        }
        None => {
            let tip = p.opt_money("tip_money")?;
            if let Some(tip) = &tip {
                same_currency(tip, currency, p.path_of("tip_money"))?;
            }
            amount.amount + tip.map_or(Decimal::ZERO, |t| t.amount)
        }
    };

    let external_id = p.opt_str("customer_id")?.map(str::to_string);
    let email = p.opt_str("buyer_email_address")?.map(str::to_string);
    let customer = (external_id.is_some() || email.is_some()).then(|| CustomerRef {
        email_verified: None,
        external_id,
        email,
        ..CustomerRef::default()
    });

    let channel = match p.opt_obj("application_details")? {
        Some(details) => details.opt_str("square_product")?,
        None => None,
    }
    .map_or_else(|| NAME.to_string(), str::to_ascii_lowercase);

    let sale = Sale {
        order_id: id.to_string(),
        source_order_id: p.opt_str("order_id")?.map(str::to_string),
        customer,
        currency,
        lines: vec![payment_line(id, &amount)],
        shipping: Decimal::ZERO,
        tax: Decimal::ZERO,
        taxes_included: false,
        total,
        location_id: p.opt_str("location_id")?.map(str::to_string),
        channel: Some(channel),
    };
    let occurred_at = env.occurred_at(&p)?;
    Ok(env.event(req, occurred_at, PosEvent::Sale(sale)))
}

/// The one line a payment has before its order is fetched: the whole `amount_money`
/// (tip excluded, tax included), untaxed as far as loyaltyd can tell.
fn payment_line(payment_id: &str, amount: &Money) -> SaleLine {
    SaleLine {
        line_id: payment_id.to_string(),
        sku: None,
        product_id: None,
        variant_id: None,
        title: PAYMENT_LINE_TITLE.to_string(),
        vendor: None,
        quantity: Decimal::ONE,
        unit_price: amount.amount,
        discount: Decimal::ZERO,
        tax: Decimal::ZERO,
        product_type: None,
        categories: Vec::new(),
        gift_card: false,
    }
}

fn refund(req: &RawRequest, env: &Envelope<'_>) -> Result<Parsed, ParseError> {
    let r = env.object("refund")?;
    let status = r.str("status")?;
    if status != "COMPLETED" {
        return Ok(env.ignored(format!("refund {status}; applies when COMPLETED")));
    }
    let amount = r.money("amount_money")?;
    let refund = Refund {
        refund_id: r.str("id")?.to_string(),
        // The sale's business key is the payment id (see `Sale::order_id`); the refund's
        // own `order_id` names the separate order Square makes for every refund.
        order_id: r.str("payment_id")?.to_string(),
        currency: amount.currency,
        lines: Vec::new(),
        amount: Some(amount),
    };
    let occurred_at = env.occurred_at(&r)?;
    Ok(env.event(req, occurred_at, PosEvent::Refund(refund)))
}

fn customer(req: &RawRequest, env: &Envelope<'_>) -> Result<Parsed, ParseError> {
    let c = env.object("customer")?;
    let text = |key: &str| -> Result<Option<String>, ParseError> {
        Ok(c.opt_str(key)?.map(str::to_string))
    };
    let customer = CustomerRef {
        email_verified: None,
        external_id: Some(c.str("id")?.to_string()),
        email: text("email_address")?,
        phone: text("phone_number")?,
        first_name: text("given_name")?,
        last_name: text("family_name")?,
    };
    let email_unsubscribed = match c.opt_obj("preferences")? {
        Some(prefs) => prefs.opt_bool("email_unsubscribed")?,
        None => None,
    };
    let upsert = CustomerUpsert {
        customer,
        birthday: c.opt_date("birthday")?,
        consent: Consent {
            email: email_unsubscribed.map(|unsubscribed| !unsubscribed),
            sms: None,
        },
        tags: None,
    };
    let occurred_at = env.occurred_at(&c)?;
    Ok(env.event(req, occurred_at, PosEvent::CustomerUpsert(upsert)))
}
