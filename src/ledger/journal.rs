//! The journal's vocabulary: accounts, entries and postings.
//!
//! Invariant: the entries of every posting sum to zero. Member accounts hold what
//! the shop owes its members; program accounts (`issued`, ...) hold the other side.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::member::MemberId;
use crate::points::Points;
use crate::rules::Contribution;

/// An account in a shop's points journal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "account", content = "member", rename_all = "snake_case")]
pub enum Account {
    /// Points the member can spend.
    MemberAvailable(MemberId),
    /// Points held during a returns window.
    MemberPending(MemberId),
    /// Points the program has issued (negative: the program's side of earning).
    Issued,
    /// Points members have spent.
    Redeemed,
    /// Points that lapsed.
    Expired,
    /// Manual corrections.
    Adjusted,
    /// Points taken back by refunds and cancellations.
    Reversed,
}

impl Account {
    /// Stable key used in the balance table.
    pub fn key(&self) -> String {
        match self {
            Account::MemberAvailable(m) => format!("member/{m}/available"),
            Account::MemberPending(m) => format!("member/{m}/pending"),
            Account::Issued => "program/issued".into(),
            Account::Redeemed => "program/redeemed".into(),
            Account::Expired => "program/expired".into(),
            Account::Adjusted => "program/adjusted".into(),
            Account::Reversed => "program/reversed".into(),
        }
    }
}

/// One leg of a posting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Which account.
    #[serde(flatten)]
    pub account: Account,
    /// Signed amount; the entries of a posting sum to zero.
    pub amount: Points,
}

/// Why a posting was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PostingKind {
    /// Points earned from a sale.
    Earn,
}

/// An append-only, balanced journal posting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Posting {
    /// Monotonic id (sled's id generator), unique across the database.
    pub id: u64,
    /// The member concerned.
    pub member: MemberId,
    /// Why.
    pub kind: PostingKind,
    /// The legs, summing to zero.
    pub entries: Vec<Entry>,
    /// When the sender says it happened.
    pub occurred_at: DateTime<Utc>,
    /// When loyaltyd recorded it.
    pub recorded_at: DateTime<Utc>,
    /// The key that makes it happen at most once (e.g. `shopify:<webhook id>`).
    pub idempotency_key: String,
    /// The external order it is about, if any.
    pub order_id: Option<String>,
    /// Rules that produced it, with what each contributed.
    pub explanation: Vec<Contribution>,
}

impl Posting {
    /// Whether the entries sum to zero.
    pub fn is_balanced(&self) -> bool {
        self.entries
            .iter()
            .try_fold(0i64, |acc, e| acc.checked_add(e.amount.0))
            == Some(0)
    }

    /// The net change to the member's available points.
    pub fn member_available_delta(&self) -> Points {
        self.entries
            .iter()
            .filter(|e| matches!(&e.account, Account::MemberAvailable(m) if *m == self.member))
            .fold(Points::ZERO, |acc, e| acc + e.amount)
    }
}
