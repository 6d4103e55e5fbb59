//! The transactional outbox: notification messages written in the same sled
//! transaction as the postings that cause them, delivered later by the worker.
//!
//! Keys are the message id (big-endian, so the tree iterates oldest first). A message
//! moves from `outbox` to `outbox_sent` in one transaction once delivered, so a message
//! marked sent is never sent again.

use chrono::{DateTime, Utc};
use loyaltyd_adapter::ShopId;
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use crate::ledger::journal::PostingKind;
use crate::member::MemberId;
use crate::points::Points;

/// Tree holding messages still to deliver.
pub const PENDING_TREE: &str = "outbox";
/// Tree holding delivered messages.
pub const SENT_TREE: &str = "outbox_sent";

/// What a member is told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "notice", rename_all = "snake_case")]
pub enum Notice {
    /// A posting changed the member's points.
    Posted {
        /// What kind of posting.
        kind: PostingKind,
        /// Points moved (as a positive number, except for downward adjustments).
        points: Points,
        /// Available balance after the posting.
        available: Points,
        /// Pending balance after the posting.
        pending: Points,
        /// For pending earnings: when they become available.
        pending_until: Option<DateTime<Utc>>,
        /// The posting's reason (`birthday`, `welcome`, an adjustment's reason).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Points will lapse soon (sent once per member and expiry date).
    ExpiringSoon {
        /// Points that lapse.
        points: Points,
        /// When.
        expires_at: DateTime<Utc>,
        /// Available balance now.
        available: Points,
    },
    /// The member's balance reached a reward's cost.
    RewardUnlocked {
        /// Reward id.
        reward: String,
        /// Reward name.
        name: String,
        /// Its cost.
        cost: Points,
        /// Available balance now.
        available: Points,
    },
    /// The member moved to another tier.
    TierChanged {
        /// Tier before (`None`: no tier).
        from: Option<String>,
        /// Tier after (`None`: no tier).
        to: Option<String>,
    },
}

/// One message waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxMessage {
    /// Monotonic id.
    pub id: u64,
    /// Shop.
    pub shop: ShopId,
    /// Recipient.
    pub member: MemberId,
    /// Given name, for the greeting.
    pub first_name: Option<String>,
    /// The journal posting that caused it (`0`: none, e.g. an expiry warning).
    pub posting_id: u64,
    /// What to say.
    pub notice: Notice,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// What the templates say besides the notice itself, as of the posting.
    #[serde(default)]
    pub context: MessageContext,
}

/// The member's standing when the message was queued.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageContext {
    /// Tier name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// The cheapest reward the available balance does not reach yet: (name, cost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_reward: Option<(String, Points)>,
    /// When the member's next points lapse, and how many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_expiry: Option<(DateTime<Utc>, Points)>,
    /// The request id of the webhook or admin call that caused it, so one id follows
    /// an event from the webhook to the notification in the logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

thread_local! {
    static REQUEST_ID: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// While alive, messages queued on this thread carry `id`. Hold it only around
/// synchronous ledger calls (never across an `.await`: the task may change threads).
pub struct RequestScope(());

impl RequestScope {
    /// Start a scope.
    pub fn enter(id: Option<&str>) -> RequestScope {
        REQUEST_ID.with(|r| *r.borrow_mut() = id.map(str::to_string));
        RequestScope(())
    }
}

impl Drop for RequestScope {
    fn drop(&mut self) {
        REQUEST_ID.with(|r| *r.borrow_mut() = None);
    }
}

/// The request id of the current scope.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.with(|r| r.borrow().clone())
}

/// What stays behind once a message was delivered (the full message is not kept
/// twice): enough to show that every posting's notice went out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentRecord {
    /// Shop.
    pub shop: ShopId,
    /// Recipient.
    pub member: MemberId,
    /// The posting announced.
    pub posting_id: u64,
    /// When delivery ended (every channel sent, skipped or dead-lettered).
    pub sent_at: DateTime<Utc>,
    /// What happened on each channel.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outcomes: Vec<String>,
}

/// Queue a message inside the caller's transaction.
pub fn enqueue<E>(
    pending: &TransactionalTree,
    msg: &OutboxMessage,
) -> Result<(), ConflictableTransactionError<E>>
where
    E: From<serde_json::Error>,
{
    let bytes =
        serde_json::to_vec(msg).map_err(|e| ConflictableTransactionError::Abort(e.into()))?;
    pending.insert(&msg.id.to_be_bytes(), bytes)?;
    Ok(())
}
