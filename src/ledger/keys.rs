//! Byte layout of sled keys. Shop ids and member ids never contain `\0`, and values
//! from outside (event ids, e-mails) only ever appear as the last component.

use loyaltyd_adapter::ShopId;

use crate::member::{IdentityKind, MemberId};

fn join(parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            k.push(0);
        }
        k.extend_from_slice(p);
    }
    k
}

/// `members`: shop, member.
pub fn member(shop: &ShopId, m: &MemberId) -> Vec<u8> {
    join(&[shop.as_str().as_bytes(), m.as_str().as_bytes()])
}

/// `index`: identity → member id.
pub fn identity(shop: &ShopId, kind: IdentityKind, value: &str) -> Vec<u8> {
    join(&[
        b"i",
        shop.as_str().as_bytes(),
        kind.as_str().as_bytes(),
        value.as_bytes(),
    ])
}

/// `index`: a sender's delivery id → what it did.
pub fn dedupe(shop: &ShopId, adapter: &str, event_id: &str) -> Vec<u8> {
    join(&[
        b"d",
        shop.as_str().as_bytes(),
        adapter.as_bytes(),
        event_id.as_bytes(),
    ])
}

/// `index`: an order's record (scored, refunded, cancelled).
pub fn earned_order(shop: &ShopId, adapter: &str, order_id: &str) -> Vec<u8> {
    join(&[
        b"e",
        shop.as_str().as_bytes(),
        adapter.as_bytes(),
        order_id.as_bytes(),
    ])
}

/// `journal`: shop, posting id (big-endian, so iteration is chronological).
pub fn posting(shop: &ShopId, id: u64) -> Vec<u8> {
    join(&[shop.as_str().as_bytes(), &id.to_be_bytes()])
}

/// `member_journal`: the prefix of a member's postings.
pub fn member_postings_prefix(shop: &ShopId, m: &MemberId) -> Vec<u8> {
    let mut k = join(&[shop.as_str().as_bytes(), m.as_str().as_bytes()]);
    k.push(0);
    k
}

/// `member_journal`: one of a member's postings.
pub fn member_posting(shop: &ShopId, m: &MemberId, id: u64) -> Vec<u8> {
    let mut k = member_postings_prefix(shop, m);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// `index`: the shop's state (journal sequence counter and program balances).
pub fn seq(shop: &ShopId) -> Vec<u8> {
    join(&[b"s", shop.as_str().as_bytes()])
}

/// `index`: a refund already applied.
pub fn refund(shop: &ShopId, adapter: &str, refund_id: &str) -> Vec<u8> {
    join(&[
        b"f",
        shop.as_str().as_bytes(),
        adapter.as_bytes(),
        refund_id.as_bytes(),
    ])
}

/// `index`: redemptions applied to an external order (any adapter).
pub fn order_redemptions(shop: &ShopId, order_id: &str) -> Vec<u8> {
    join(&[b"r", shop.as_str().as_bytes(), order_id.as_bytes()])
}

/// `index`: a pending referral of someone not yet a member (identity → referrer).
pub fn referral(shop: &ShopId, kind: IdentityKind, value: &str) -> Vec<u8> {
    join(&[
        b"R",
        shop.as_str().as_bytes(),
        kind.as_str().as_bytes(),
        value.as_bytes(),
    ])
}

/// `index`: a scored sale kept for what-if replays, in time order.
pub fn sale_history(shop: &ShopId, occurred_at: &str, adapter: &str, order_id: &str) -> Vec<u8> {
    join(&[
        b"h",
        shop.as_str().as_bytes(),
        occurred_at.as_bytes(),
        adapter.as_bytes(),
        order_id.as_bytes(),
    ])
}

/// Prefix of a shop's sale history.
pub fn sale_history_prefix(shop: &ShopId) -> Vec<u8> {
    let mut k = join(&[b"h", shop.as_str().as_bytes()]);
    k.push(0);
    k
}

/// `index`: an admin API Idempotency-Key.
pub fn api_idempotency(shop: &ShopId, key: &str) -> Vec<u8> {
    join(&[b"k", shop.as_str().as_bytes(), key.as_bytes()])
}

/// Prefix of all of a shop's entries in a tree keyed `shop\0…`.
pub fn shop_prefix(shop: &ShopId) -> Vec<u8> {
    let mut k = shop.as_str().as_bytes().to_vec();
    k.push(0);
    k
}
