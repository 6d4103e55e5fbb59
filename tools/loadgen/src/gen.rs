//! Deterministic members and `orders/paid` webhooks.
//!
//! Members depend only on `--id-prefix` and `--seed`, so every round of a crash test
//! (same prefix and seed) hits the same members, while another prefix or seed gives
//! disjoint ones. Webhook ids and order ids also depend on a per-process run id, so
//! successive runs never reuse an order or a webhook id.

use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

/// The most members one run may create: each (prefix, seed) pair owns a block of
/// this many consecutive Shopify customer ids.
pub const MAX_MEMBERS: u64 = 1_000_000;

/// SplitMix64 finaliser: a bijective 64-bit mixer.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a over the parts (with a separator), then mixed.
pub fn hash_parts(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.iter().chain(std::iter::once(&0xffu8)) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    splitmix64(h)
}

/// A small deterministic random stream.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        splitmix64(self.0)
    }

    /// Uniform-ish in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// Keep ids to `a-z 0-9 - _` so they are safe in headers, e-mails and log lines.
pub fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// The run's members.
#[derive(Debug, Clone)]
pub struct Members {
    prefix: String,
    seed: u64,
    base: u64,
    count: u64,
}

impl Members {
    pub fn new(prefix: &str, seed: u64, count: u64) -> Members {
        assert!((1..=MAX_MEMBERS).contains(&count));
        let prefix = sanitize(prefix);
        let h = hash_parts(&[b"members", prefix.as_bytes(), &seed.to_le_bytes()]);
        // 1e12 + k * 1e6 with k < 8e6: 13–16 digit ids like Shopify's, all below 2^53.
        let base = 1_000_000_000_000 + (h % 8_000_000) * MAX_MEMBERS;
        Members {
            prefix,
            seed,
            base,
            count,
        }
    }

    pub fn customer_id(&self, i: u64) -> u64 {
        self.base + i
    }

    pub fn email(&self, i: u64) -> String {
        format!("{}-{}-{}@loadgen.example", self.prefix, self.seed, i)
    }

    /// A valid NANP mobile-shaped number in E.164, distinct per member:
    /// `+1 514 NXX XXXX` with the seven digits `2000000 + i` (exchange 200–999).
    pub fn phone(&self, i: u64) -> String {
        format!("+1514{}", 2_000_000 + i)
    }
}

/// One signed webhook, ready to send.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub id: String,
    pub order_id: u64,
    pub customer_id: u64,
    pub expected_points: u64,
    pub body: Bytes,
    pub signature: String,
}

/// base64(HMAC-SHA256(secret, body)), as Shopify's `X-Shopify-Hmac-Sha256`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn money(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// Makes the run's webhooks.
#[derive(Debug, Clone)]
pub struct Generator {
    members: Members,
    prefix: String,
    run: String,
    run_hash: u64,
    secret: Vec<u8>,
    currency: String,
    processed_at: String,
    sms: bool,
}

impl Generator {
    pub fn new(members: Members, prefix: &str, run: &str, secret: &str, currency: &str) -> Self {
        let prefix = sanitize(prefix);
        let run = sanitize(run);
        let run_hash = hash_parts(&[
            b"run",
            prefix.as_bytes(),
            &members.seed.to_le_bytes(),
            run.as_bytes(),
        ]);
        Generator {
            members,
            prefix,
            run,
            run_hash,
            secret: secret.as_bytes().to_vec(),
            currency: currency.to_string(),
            processed_at: now_rfc3339(),
            sms: false,
        }
    }

    /// SMS mode: the `seq`-th order goes to member `seq % members` (round robin, so with
    /// as many members as orders each member gets one), and the order's customer carries
    /// the member's phone. Everything else about the orders is unchanged.
    pub fn with_sms_members(mut self, on: bool) -> Self {
        self.sms = on;
        self
    }

    /// The member's phone in SMS mode.
    pub fn phone_of(&self, customer_id: u64) -> Option<String> {
        self.sms.then(|| {
            self.members
                .phone(customer_id - self.members.customer_id(0))
        })
    }

    /// A signed `customers/update` for member `i`: id, e-mail and phone as in this
    /// generator's orders, SMS marketing consent subscribed.
    pub fn customer_update(&self, i: u64) -> Webhook {
        let customer_id = self.members.customer_id(i);
        let email = self.members.email(i);
        let phone = self.members.phone(i);
        let id = format!(
            "{}-cust-{}-{}-{}",
            self.prefix, self.members.seed, self.run, i
        );
        let body = json!({
            "id": customer_id,
            "admin_graphql_api_id": format!("gid://shopify/Customer/{customer_id}"),
            "email": email,
            "phone": phone,
            "first_name": "Load",
            "last_name": format!("Member{i}"),
            "state": "enabled",
            "verified_email": true,
            "currency": self.currency,
            "note": null,
            "tax_exempt": false,
            "tags": "",
            "email_marketing_consent": {
                "state": "not_subscribed",
                "opt_in_level": "single_opt_in",
                "consent_updated_at": null,
            },
            "sms_marketing_consent": {
                "state": "subscribed",
                "opt_in_level": "single_opt_in",
                "consent_updated_at": self.processed_at,
                "consent_collected_from": "SHOPIFY",
            },
            "created_at": self.processed_at,
            "updated_at": self.processed_at,
            "addresses": [],
        });
        let body = Bytes::from(serde_json::to_vec(&body).expect("JSON values serialise"));
        let signature = sign(&self.secret, &body);
        Webhook {
            id,
            order_id: 0,
            customer_id,
            expected_points: 0,
            body,
            signature,
        }
    }

    /// The `seq`-th webhook of this run: 1–3 lines, decimal-string prices, sometimes a
    /// discount; no tax inclusion, no gift cards, so the points are
    /// `floor(Σ price × qty − discount)` at 1 point per unit.
    pub fn webhook(&self, seq: u64) -> Webhook {
        let mut rng = Rng(self.run_hash ^ splitmix64(seq));
        let member = rng.next() % self.members.count;
        let member = if self.sms {
            seq % self.members.count
        } else {
            member
        };
        let customer_id = self.members.customer_id(member);
        let email = self.members.email(member);
        // Mixing run_hash + seq is a bijection per run: no repeated order id in a run;
        // across runs a collision needs two 63-bit hashes to meet.
        let order_id = (splitmix64(self.run_hash.wrapping_add(seq)) >> 1).max(1);
        let id = format!("{}-{}-{}", self.prefix, self.run, seq);

        let n_lines = rng.range(1, 3);
        let mut lines = Vec::with_capacity(n_lines as usize);
        let mut gross = 0u64;
        let mut discounts = 0u64;
        for l in 0..n_lines {
            let price = rng.range(100, 4_999);
            let qty = rng.range(1, 3);
            let line_total = price * qty;
            // One line in four gets a discount of up to 20% of the line.
            let discount = if rng.next() % 4 == 0 {
                rng.range(1, line_total / 5)
            } else {
                0
            };
            gross += line_total;
            discounts += discount;
            let allocations = if discount > 0 {
                json!([{"amount": money(discount), "discount_application_index": 0}])
            } else {
                json!([])
            };
            let product = 8_000_000_000_000 + rng.range(0, 999);
            lines.push(json!({
                "id": splitmix64(order_id ^ (l << 56)) >> 12,
                "product_id": product,
                "variant_id": product + 40_000_000_000_000,
                "sku": format!("LG-{}", product % 1000),
                "title": format!("Load item {}", product % 1000),
                "vendor": "Loadgen",
                "quantity": qty,
                "current_quantity": qty,
                "price": money(price),
                "gift_card": false,
                "taxable": false,
                "total_discount": "0.00",
                "discount_allocations": allocations,
                "tax_lines": [],
            }));
        }
        let net = gross - discounts;
        let expected_points = net / 100;
        let phone = if self.sms {
            json!(self.members.phone(member))
        } else {
            json!(null)
        };
        let mut body = json!({
            "id": order_id,
            "admin_graphql_api_id": format!("gid://shopify/Order/{order_id}"),
            "name": format!("#LG{seq}"),
            "created_at": self.processed_at,
            "processed_at": self.processed_at,
            "currency": self.currency,
            "presentment_currency": self.currency,
            "taxes_included": false,
            "test": false,
            "financial_status": "paid",
            "source_name": "pos",
            "email": email,
            "phone": phone,
            "total_line_items_price": money(gross),
            "total_discounts": money(discounts),
            "subtotal_price": money(net),
            "total_tax": "0.00",
            "total_price": money(net),
            "customer": {
                "id": customer_id,
                "email": email,
                "first_name": "Load",
                "last_name": format!("Member{member}"),
                "state": "enabled",
                "currency": self.currency,
            },
            "line_items": lines,
            "shipping_lines": [],
            "refunds": [],
        });
        if self.sms {
            body["customer"]["phone"] = phone;
        }
        let body = Bytes::from(serde_json::to_vec(&body).expect("JSON values serialise"));
        let signature = sign(&self.secret, &body);
        Webhook {
            id,
            order_id,
            customer_id,
            expected_points,
            body,
            signature,
        }
    }
}

/// The current time as RFC 3339 UTC, without a date library.
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_deterministic_and_distinct() {
        let a = Members::new("lg", 7, 100);
        let b = Members::new("lg", 7, 100);
        let c = Members::new("other", 7, 100);
        assert_eq!(a.customer_id(5), b.customer_id(5));
        assert_eq!(a.email(5), b.email(5));
        assert_ne!(a.customer_id(5), c.customer_id(5));
        assert_ne!(a.customer_id(5), a.customer_id(6));
        assert!(a.customer_id(99) < (1 << 53));
    }

    #[test]
    fn webhooks_are_deterministic_and_points_match_the_body() {
        let g = Generator::new(Members::new("lg", 1, 10), "lg", "r1", "s", "USD");
        let w1 = g.webhook(3);
        let w2 = g.webhook(3);
        assert_eq!(w1.id, "lg-r1-3");
        assert_eq!(w1.order_id, w2.order_id);
        assert_ne!(g.webhook(4).order_id, w1.order_id);
        for seq in 0..200 {
            let w = g.webhook(seq);
            let v: serde_json::Value = serde_json::from_slice(&w.body).unwrap();
            let mut cents = 0i64;
            for l in v["line_items"].as_array().unwrap() {
                let c = |s: &str| -> i64 { s.replace('.', "").parse().unwrap() };
                cents += c(l["price"].as_str().unwrap()) * l["quantity"].as_i64().unwrap();
                for d in l["discount_allocations"].as_array().unwrap() {
                    cents -= c(d["amount"].as_str().unwrap());
                }
            }
            assert_eq!(cents / 100, w.expected_points as i64);
            assert_eq!(v["customer"]["id"].as_u64().unwrap(), w.customer_id);
            assert_eq!(w.signature, sign(b"s", &w.body));
        }
    }

    #[test]
    fn signature_matches_known_vector() {
        // openssl dgst -sha256 -hmac Jefe -binary | base64 (RFC 4231 test case 2).
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM="
        );
    }

    #[test]
    fn rfc3339_is_well_formed() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 20);
        assert!(t.ends_with('Z'));
    }
}
