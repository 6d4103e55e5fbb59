//! The journal's vocabulary: accounts, entries, lot changes and postings.
//!
//! Invariants (checked by `verify` and asserted when posting):
//! - the entries of every posting sum to zero;
//! - postings of a shop are numbered 1, 2, 3, … with no gaps (`seq`);
//! - member accounts hold what the shop owes its members; program accounts
//!   (`issued`, `redeemed`, …) hold the other side, so their sum is minus the liability.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::member::MemberId;
use crate::points::Points;
use crate::rules::Contribution;

/// An account in a shop's points journal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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
    /// Stable key used in the balance table and exports.
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

    /// The account's name without the member (`available`, `issued`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Account::MemberAvailable(_) => "available",
            Account::MemberPending(_) => "pending",
            Account::Issued => "issued",
            Account::Redeemed => "redeemed",
            Account::Expired => "expired",
            Account::Adjusted => "adjusted",
            Account::Reversed => "reversed",
        }
    }

    /// Whether this is one of a member's accounts.
    pub fn is_member(&self) -> bool {
        matches!(
            self,
            Account::MemberAvailable(_) | Account::MemberPending(_)
        )
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PostingKind {
    /// Points earned from a sale.
    Earn,
    /// Pending points became available at the end of the returns window.
    Mature,
    /// Points spent on a reward.
    Redeem,
    /// Redeemed points given back because the order they paid for was refunded.
    RedemptionReturn,
    /// A manual correction by staff.
    Adjust,
    /// Points taken back by a refund or cancellation.
    Reverse,
    /// Points that lapsed under the expiry policy.
    Expire,
    /// The member moved to another tier (no points move; the reason says from/to).
    TierChange,
    /// Points given for an event other than a sale (sign-up, birthday).
    Bonus,
    /// An opening balance brought from another loyalty program by
    /// `loyaltyd import balances` (program `issued` → member `available`).
    Imported,
    /// Staff merged two members: points and lots leave one (through program
    /// `adjusted`) and arrive at the other in the same transaction.
    Merge,
}

impl PostingKind {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            PostingKind::Earn => "earn",
            PostingKind::Mature => "mature",
            PostingKind::Redeem => "redeem",
            PostingKind::RedemptionReturn => "redemption_return",
            PostingKind::Adjust => "adjust",
            PostingKind::Reverse => "reverse",
            PostingKind::Expire => "expire",
            PostingKind::TierChange => "tier_change",
            PostingKind::Bonus => "bonus",
            PostingKind::Imported => "imported",
            PostingKind::Merge => "merge",
        }
    }
}

/// How a posting changed the member's lots. Replaying these over the journal
/// rebuilds every lot exactly (`verify` does).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum LotChange {
    /// A new lot.
    Open {
        /// Lot id (the seq of the posting that opened it).
        lot: u64,
        /// Points in it.
        amount: Points,
        /// Held as pending until then.
        pending_until: Option<DateTime<Utc>>,
        /// Lapses then (fixed-term expiry); `None` for no expiry or inactivity expiry.
        expires_at: Option<DateTime<Utc>>,
        /// The local day it was earned (points of one day share a lot).
        #[serde(default)]
        day: Option<chrono::NaiveDate>,
    },
    /// More points earned the same local day, on the same terms, added to its lot.
    TopUp {
        /// Lot id.
        lot: u64,
        /// Points added.
        amount: Points,
    },
    /// Points taken out of a lot (redeemed, reversed, expired, or paying a debt).
    Take {
        /// Lot id.
        lot: u64,
        /// Points taken.
        amount: Points,
    },
    /// A pending lot became available.
    Mature {
        /// Lot id.
        lot: u64,
    },
}

/// An append-only, balanced journal posting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Posting {
    /// Gap-free sequence number within the shop, from 1.
    pub seq: u64,
    /// The shop whose journal it is in.
    pub shop: loyaltyd_adapter::ShopId,
    /// The member concerned.
    pub member: MemberId,
    /// Why.
    pub kind: PostingKind,
    /// The legs, summing to zero.
    pub entries: Vec<Entry>,
    /// How lots changed.
    #[serde(default)]
    pub lots: Vec<LotChange>,
    /// When the sender (or the job clock) says it happened.
    pub occurred_at: DateTime<Utc>,
    /// When loyaltyd recorded it.
    pub recorded_at: DateTime<Utc>,
    /// The key that makes it happen at most once (`shopify:<webhook id>`,
    /// `api:<Idempotency-Key>`, `job:expire:<lot>` …).
    pub idempotency_key: String,
    /// The external order it is about, if any.
    pub order_id: Option<String>,
    /// Rules that produced it, with what each contributed (earnings).
    #[serde(default)]
    pub explanation: Vec<Contribution>,
    /// Version (hash) of the rules file that scored it (earnings).
    #[serde(default)]
    pub rules_version: Option<String>,
    /// Store credit (shop currency) the sale earned as cash back, alongside its points.
    #[serde(default, with = "rust_decimal::serde::str")]
    pub cash_back: rust_decimal::Decimal,
    /// Who did it (API token name or `system`), for manual postings.
    #[serde(default)]
    pub actor: Option<String>,
    /// Why, in words (adjustments, reversals).
    #[serde(default)]
    pub reason: Option<String>,
    /// The reward redeemed, if any.
    #[serde(default)]
    pub reward: Option<String>,
    /// Points a reversal could not take back because the member had spent them and
    /// the shop clamps balances at zero.
    #[serde(default)]
    pub shortfall: Points,
}

impl Posting {
    /// Whether the entries sum to zero.
    pub fn is_balanced(&self) -> bool {
        self.entries
            .iter()
            .try_fold(0i64, |acc, e| acc.checked_add(e.amount.0))
            == Some(0)
    }

    /// Net change to one of the member's accounts.
    pub fn delta(&self, account: &Account) -> Points {
        self.entries
            .iter()
            .filter(|e| &e.account == account)
            .fold(Points::ZERO, |acc, e| acc + e.amount)
    }

    /// Net change to the member's available points.
    pub fn member_available_delta(&self) -> Points {
        self.delta(&Account::MemberAvailable(self.member.clone()))
    }

    /// Net change to the member's pending points.
    pub fn member_pending_delta(&self) -> Points {
        self.delta(&Account::MemberPending(self.member.clone()))
    }
}
