//! Delivery state kept beside the outbox: what happened on each channel of each
//! message, the dead letters, and the phones that opted out.
//!
//! A message stays in the outbox until every one of its channels is settled (sent,
//! skipped, coalesced into another message or dead-lettered); then it moves to the sent
//! tree in the same transaction that records the last outcome, so it is never sent
//! again. Dead letters keep a copy of the message so staff can retry them later.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use loyaltyd_adapter::ShopId;
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use super::outbox::{OutboxMessage, SentRecord, PENDING_TREE, SENT_TREE};
use crate::member::MemberId;

/// Per-message channel states.
pub const STATE_TREE: &str = "outbox_state";
/// Dead letters, by shop, message id and route.
pub const DEAD_TREE: &str = "deadletters";
/// Phones that replied STOP or that Twilio reports as unsubscribed, by shop.
pub const SUPPRESSED_TREE: &str = "sms_suppressed";
/// Inbound provider webhooks already applied (Twilio retries deliveries).
pub const SEEN_TREE: &str = "inbound_seen";

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    /// The console/file sink (the offline default).
    Console,
    /// SMS through the configured provider.
    Sms,
    /// E-mail through the configured provider.
    Email,
}

impl Route {
    /// Name used in URLs, metrics and dead letters.
    pub fn name(self) -> &'static str {
        match self {
            Route::Console => "console",
            Route::Sms => "sms",
            Route::Email => "email",
        }
    }

    /// Parse a route name.
    pub fn parse(s: &str) -> Option<Route> {
        match s {
            "console" => Some(Route::Console),
            "sms" => Some(Route::Sms),
            "email" => Some(Route::Email),
            _ => None,
        }
    }
}

/// Where one channel of one message stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ChannelStatus {
    /// To be tried at `next_at`.
    Pending {
        /// Attempts made so far.
        attempts: u32,
        /// Not before.
        next_at: DateTime<Utc>,
        /// Why the last attempt failed, or why it is held (quiet hours).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_error: Option<String>,
        /// Since when an attempt may have reached the provider without an answer saying
        /// so (a timeout, a 500): before sending again, the worker asks the provider
        /// whether it took the message after all.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ambiguous_since: Option<DateTime<Utc>>,
    },
    /// Accepted by the provider.
    Sent {
        /// Provider name.
        provider: String,
        /// The provider's id (Twilio sid, SendGrid X-Message-Id, …).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_id: Option<String>,
        /// When.
        at: DateTime<Utc>,
        /// Attempts it took.
        attempts: u32,
    },
    /// Not sent, on purpose (no consent, no phone, opted out).
    Skipped {
        /// Why.
        reason: String,
    },
    /// Said in another message (coalescing).
    Coalesced {
        /// The message that carried it.
        into: u64,
    },
    /// Given up; see the dead letter.
    Dead {
        /// When.
        at: DateTime<Utc>,
    },
}

impl ChannelStatus {
    /// Whether nothing more will happen on this channel.
    pub fn settled(&self) -> bool {
        !matches!(self, ChannelStatus::Pending { .. })
    }

    /// One word, for sent records and metrics.
    pub fn word(&self) -> &'static str {
        match self {
            ChannelStatus::Pending { .. } => "pending",
            ChannelStatus::Sent { .. } => "sent",
            ChannelStatus::Skipped { .. } => "skipped",
            ChannelStatus::Coalesced { .. } => "coalesced",
            ChannelStatus::Dead { .. } => "dead",
        }
    }
}

/// The channels of one message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryState {
    /// By route.
    pub channels: BTreeMap<Route, ChannelStatus>,
}

/// A message that could not be delivered on one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The message.
    pub message: OutboxMessage,
    /// The channel.
    pub route: Route,
    /// Provider name.
    pub provider: String,
    /// HTTP status, when there was a response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The provider's error code (Twilio `21610`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// What went wrong.
    pub error: String,
    /// Attempts made.
    pub attempts: u32,
    /// When it was given up.
    pub at: DateTime<Utc>,
}

/// Key of a dead letter: shop, message id, route.
pub fn dead_key(shop: &ShopId, id: u64, route: Route) -> Vec<u8> {
    let mut k = format!("{shop}/").into_bytes();
    k.extend_from_slice(&id.to_be_bytes());
    k.extend_from_slice(route.name().as_bytes());
    k
}

/// Key of a suppressed phone.
pub fn suppressed_key(shop: &ShopId, phone: &str) -> Vec<u8> {
    format!("{shop}/{phone}").into_bytes()
}

/// A delivery-store error.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryStoreError {
    /// sled failed.
    #[error("storage: {0}")]
    Storage(#[from] sled::Error),
    /// A stored value did not decode.
    #[error("stored value: {0}")]
    Decode(#[from] serde_json::Error),
    /// No such dead letter.
    #[error("no dead letter {0}")]
    NotFound(String),
}

impl From<TransactionError<DeliveryStoreError>> for DeliveryStoreError {
    fn from(e: TransactionError<DeliveryStoreError>) -> Self {
        match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => DeliveryStoreError::Storage(e),
        }
    }
}

/// The trees the notifier keeps.
#[derive(Clone)]
pub struct DeliveryStore {
    pub(crate) pending: sled::Tree,
    pub(crate) state: sled::Tree,
    pub(crate) sent: sled::Tree,
    pub(crate) dead: sled::Tree,
    pub(crate) suppressed: sled::Tree,
    pub(crate) seen: sled::Tree,
    /// Unix seconds of the worker's last pass (0: none yet), for `/readyz`.
    heartbeat: std::sync::Arc<std::sync::atomic::AtomicI64>,
    /// The outbox's ids, kept by the worker's subscription, for `depth`.
    pub(crate) waiting: std::sync::Arc<super::waiting::Waiting>,
}

/// What to record for one message after an attempt.
pub struct Outcome {
    /// The message.
    pub message: OutboxMessage,
    /// Its channels after the attempt.
    pub state: DeliveryState,
    /// Dead letters to add.
    pub dead: Vec<DeadLetter>,
}

impl DeliveryStore {
    /// Open the trees.
    pub fn open(db: &sled::Db) -> Result<DeliveryStore, sled::Error> {
        Ok(DeliveryStore {
            pending: db.open_tree(PENDING_TREE)?,
            state: db.open_tree(STATE_TREE)?,
            sent: db.open_tree(SENT_TREE)?,
            dead: db.open_tree(DEAD_TREE)?,
            suppressed: db.open_tree(SUPPRESSED_TREE)?,
            seen: db.open_tree(SEEN_TREE)?,
            heartbeat: Default::default(),
            waiting: Default::default(),
        })
    }

    /// The channels of message `id`, if any were recorded.
    pub fn state(&self, id: u64) -> Result<Option<DeliveryState>, DeliveryStoreError> {
        Ok(match self.state.get(id.to_be_bytes())? {
            Some(v) => Some(serde_json::from_slice(&v)?),
            None => None,
        })
    }

    /// Record outcomes: each message either keeps its new state or, once every channel
    /// is settled, leaves the outbox for the sent tree. One transaction for the batch.
    pub fn record(
        &self,
        outcomes: &[Outcome],
        now: DateTime<Utc>,
    ) -> Result<(), DeliveryStoreError> {
        let encoded: Vec<_> = outcomes
            .iter()
            .map(|o| {
                let key = o.message.id.to_be_bytes();
                let settled = o.state.channels.values().all(ChannelStatus::settled);
                let state = serde_json::to_vec(&o.state)?;
                let sent = serde_json::to_vec(&SentRecord {
                    shop: o.message.shop.clone(),
                    member: o.message.member.clone(),
                    posting_id: o.message.posting_id,
                    sent_at: now,
                    outcomes: o
                        .state
                        .channels
                        .iter()
                        .map(|(r, s)| format!("{}:{}", r.name(), s.word()))
                        .collect(),
                })?;
                let dead = o
                    .dead
                    .iter()
                    .map(|d| {
                        Ok((
                            dead_key(&d.message.shop, d.message.id, d.route),
                            serde_json::to_vec(d)?,
                        ))
                    })
                    .collect::<Result<Vec<_>, serde_json::Error>>()?;
                Ok((key, settled, state, sent, dead))
            })
            .collect::<Result<Vec<_>, serde_json::Error>>()?;
        (&self.pending, &self.state, &self.sent, &self.dead).transaction(
            |(pending, state, sent, dead)| {
                for (key, settled, st, rec, letters) in &encoded {
                    // Only messages still in the outbox: a concurrent retry may have
                    // moved it already.
                    if pending.get(key)?.is_none() {
                        continue;
                    }
                    if *settled {
                        pending.remove(key)?;
                        state.remove(key)?;
                        sent.insert(key, rec.as_slice())?;
                    } else {
                        state.insert(key, st.as_slice())?;
                    }
                    for (k, v) in letters {
                        dead.insert(k.as_slice(), v.as_slice())?;
                    }
                }
                Ok::<(), ConflictableTransactionError<DeliveryStoreError>>(())
            },
        )?;
        Ok(())
    }

    /// Dead letters of a shop, oldest message first.
    pub fn dead_letters(&self, shop: &ShopId) -> Result<Vec<DeadLetter>, DeliveryStoreError> {
        self.dead
            .scan_prefix(format!("{shop}/").as_bytes())
            .map(|item| Ok(serde_json::from_slice(&item?.1)?))
            .collect()
    }

    /// Put a dead letter back in the outbox, to be tried again at once on its channel
    /// (its other channels are left as they ended). Returns the message id.
    pub fn retry(
        &self,
        shop: &ShopId,
        id: u64,
        route: Route,
        now: DateTime<Utc>,
    ) -> Result<u64, DeliveryStoreError> {
        let key = dead_key(shop, id, route);
        let letter: DeadLetter = match self.dead.get(&key)? {
            Some(v) => serde_json::from_slice(&v)?,
            None => {
                return Err(DeliveryStoreError::NotFound(format!(
                    "{id}/{}",
                    route.name()
                )))
            }
        };
        let msg_key = letter.message.id.to_be_bytes();
        let message = serde_json::to_vec(&letter.message)?;
        (&self.pending, &self.state, &self.sent, &self.dead).transaction(
            |(pending, state, sent, dead)| {
                let mut st: DeliveryState = match state.get(msg_key)? {
                    Some(v) => serde_json::from_slice(&v).map_err(|e| {
                        ConflictableTransactionError::Abort(DeliveryStoreError::Decode(e))
                    })?,
                    None => DeliveryState::default(),
                };
                st.channels.insert(
                    route,
                    ChannelStatus::Pending {
                        attempts: 0,
                        next_at: now,
                        last_error: Some("retried by staff".into()),
                        ambiguous_since: None,
                    },
                );
                let encoded = serde_json::to_vec(&st).map_err(|e| {
                    ConflictableTransactionError::Abort(DeliveryStoreError::Decode(e))
                })?;
                sent.remove(&msg_key)?;
                pending.insert(&msg_key, message.as_slice())?;
                state.insert(&msg_key, encoded)?;
                dead.remove(key.as_slice())?;
                Ok::<(), ConflictableTransactionError<DeliveryStoreError>>(())
            },
        )?;
        Ok(letter.message.id)
    }

    /// Mark a phone opted out (`true`) or back in (`false`).
    pub fn set_suppressed(
        &self,
        shop: &ShopId,
        phone: &str,
        suppressed: bool,
        now: DateTime<Utc>,
    ) -> Result<(), DeliveryStoreError> {
        let key = suppressed_key(shop, phone);
        if suppressed {
            self.suppressed.insert(key, now.to_rfc3339().as_bytes())?;
        } else {
            self.suppressed.remove(key)?;
        }
        Ok(())
    }

    /// `true` the first time an inbound delivery id is seen for a shop (empty ids are
    /// always new: nothing to dedupe on).
    pub fn first_sighting(&self, shop: &ShopId, id: &str) -> Result<bool, DeliveryStoreError> {
        if id.ends_with(':') || id.is_empty() {
            return Ok(true);
        }
        let key = format!("{shop}/{id}");
        Ok(self
            .seen
            .compare_and_swap(key.as_bytes(), None as Option<&[u8]>, Some(&b"1"[..]))?
            .is_ok())
    }

    /// Whether a phone opted out.
    pub fn is_suppressed(&self, shop: &ShopId, phone: &str) -> Result<bool, DeliveryStoreError> {
        Ok(self.suppressed.contains_key(suppressed_key(shop, phone))?)
    }

    /// The worker finished a pass now.
    pub fn beat(&self, now: DateTime<Utc>) {
        self.heartbeat
            .store(now.timestamp(), std::sync::atomic::Ordering::Relaxed);
    }

    /// When the worker last finished a pass.
    pub fn last_beat(&self) -> Option<DateTime<Utc>> {
        match self.heartbeat.load(std::sync::atomic::Ordering::Relaxed) {
            0 => None,
            t => DateTime::from_timestamp(t, 0),
        }
    }

    /// Messages waiting and the age of the oldest. O(1) while the worker runs (it keeps
    /// the count); else one walk of the outbox.
    pub fn depth(&self, now: DateTime<Utc>) -> (usize, Option<chrono::Duration>) {
        let oldest = self
            .pending
            .first()
            .ok()
            .flatten()
            .and_then(|(_, v)| serde_json::from_slice::<OutboxMessage>(&v).ok())
            .map(|m| now - m.created_at);
        let n = self.waiting.count().unwrap_or_else(|| self.pending.len());
        (n, oldest)
    }
}

/// Who a message goes to, as the member store knows them now.
#[derive(Debug, Clone, Default)]
pub struct Contact {
    /// E.164 phone.
    pub phone: Option<String>,
    /// E-mail.
    pub email: Option<String>,
    /// Given name.
    pub first_name: Option<String>,
    /// Consent per channel.
    pub consent: loyaltyd_adapter::Consent,
}

/// The member store, as the notifier needs it (implemented by the ledger, which
/// keeps members): contacts, and consent withdrawn when a provider says so.
pub trait Directory: Send + Sync + 'static {
    /// The member's contact details and consent now.
    fn contact(&self, shop: &ShopId, member: &MemberId) -> Option<Contact>;
    /// Record that the member withdrew SMS consent (Twilio 21610).
    fn withdraw_sms_consent(&self, shop: &ShopId, member: &MemberId);
    /// Wait until everything written so far is on disk. The worker sees a message as
    /// soon as its transaction commits in memory, before the group commit flushes it; a
    /// crash in between would undo the posting (the POS then resends the sale, and the
    /// member would get a second text). So the worker waits for this before sending.
    /// `Err` (storage failed): nothing is sent.
    fn durable(&self) -> DurableFuture<'_> {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// What [`Directory::durable`] returns.
pub type DurableFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>>;
