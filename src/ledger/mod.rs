//! The points ledger, durable in sled.
//!
//! - [`journal`]: accounts, entries, postings (append-only, balanced).
//! - [`keys`]: how everything is laid out in sled trees.
//! - [`commit`]: group commit, so an acknowledgement waits for one shared fsync.
//! - this file: the [`Ledger`] handle and the transactions that change it.
//!
//! Everything one event changes — dedupe record, order key, member and identities,
//! posting, balances, outbox message — is written in ONE sled transaction, and the
//! caller acknowledges only after [`Ledger::durable`] returns.

pub mod commit;
pub mod journal;
pub mod keys;

use std::path::Path;

use chrono::{DateTime, Utc};
use loyaltyd_adapter::ShopId;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::Transactional;

use crate::member::{Identity, IdentityClaims, IdentityKind, Member, MemberId};
use crate::notify::outbox::{self, Notice, OutboxMessage};
use crate::points::Points;
use crate::rules::Award;
use commit::{FlushError, GroupCommit};
use journal::{Account, Entry, Posting, PostingKind};

/// Ledger failures. None of them leaves a partial write behind.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// sled reported an I/O or corruption error.
    #[error("storage error: {0}")]
    Storage(#[from] sled::Error),
    /// A stored record could not be (de)serialised.
    #[error("record encoding error: {0}")]
    Encoding(#[from] serde_json::Error),
    /// The write is committed in memory but could not be made durable.
    #[error(transparent)]
    Flush(#[from] FlushError),
    /// A posting would break the journal's invariants.
    #[error("invariant violated: {0}")]
    Invariant(String),
}

impl From<TransactionError<LedgerError>> for LedgerError {
    fn from(e: TransactionError<LedgerError>) -> Self {
        match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => LedgerError::Storage(e),
        }
    }
}

type TxResult<T> = Result<T, ConflictableTransactionError<LedgerError>>;

fn abort(e: impl Into<LedgerError>) -> ConflictableTransactionError<LedgerError> {
    ConflictableTransactionError::Abort(e.into())
}

/// What a delivery did, kept under its dedupe key so a retry gets the same answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum DeliveryOutcome {
    /// Points were posted (or the sale earned zero).
    Applied {
        /// The member credited.
        member: MemberId,
        /// The posting, when points were earned.
        posting_id: Option<u64>,
        /// Points earned.
        points: Points,
    },
    /// The order had already been scored under another delivery id.
    AlreadyScored {
        /// The order.
        order_id: String,
    },
    /// Nothing to do, and why (topic not used, guest with no contact, ...).
    Ignored {
        /// The sender's event kind.
        kind: String,
        /// Why.
        reason: String,
    },
}

/// A dedupe record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    /// What happened.
    #[serde(flatten)]
    pub outcome: DeliveryOutcome,
    /// When it was first recorded.
    pub recorded_at: DateTime<Utc>,
}

/// Result of applying an event: either new, or what an earlier delivery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Recorded now.
    New(DeliveryRecord),
    /// A duplicate delivery; nothing changed.
    Duplicate(DeliveryRecord),
}

/// Everything needed to credit a sale.
#[derive(Debug, Clone)]
pub struct EarnCommand<'a> {
    /// Shop.
    pub shop: &'a ShopId,
    /// Adapter that received it.
    pub adapter: &'a str,
    /// Sender's delivery id.
    pub event_id: &'a str,
    /// Sender's order id.
    pub order_id: &'a str,
    /// When the sale happened.
    pub occurred_at: DateTime<Utc>,
    /// Who bought.
    pub claims: &'a IdentityClaims,
    /// What the rules awarded.
    pub award: &'a Award,
}

/// A member's point balances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balances {
    /// Spendable.
    pub available: Points,
    /// Held in a returns window.
    pub pending: Points,
    /// Ever earned.
    pub lifetime: Points,
}

/// The ledger handle; cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    db: sled::Db,
    members: sled::Tree,
    index: sled::Tree,
    journal: sled::Tree,
    member_journal: sled::Tree,
    balances: sled::Tree,
    outbox: sled::Tree,
    commit: GroupCommit,
}

impl Ledger {
    /// Open (or create) the ledger in `path`. Needs a tokio runtime for the flusher.
    pub fn open(path: &Path) -> Result<Ledger, LedgerError> {
        let db = sled::Config::new().path(path).open()?;
        Ok(Ledger {
            members: db.open_tree("members")?,
            index: db.open_tree("index")?,
            journal: db.open_tree("journal")?,
            member_journal: db.open_tree("member_journal")?,
            balances: db.open_tree("balances")?,
            outbox: db.open_tree(outbox::PENDING_TREE)?,
            commit: GroupCommit::start(db.clone()),
            db,
        })
    }

    /// The underlying database (for the notifier's outbox and for shutdown).
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// Wait until every write made so far is on disk (group-committed).
    pub async fn durable(&self) -> Result<(), LedgerError> {
        Ok(self.commit.durable().await?)
    }

    /// Flush synchronously (shutdown).
    pub fn flush_now(&self) -> Result<(), LedgerError> {
        self.db.flush()?;
        Ok(())
    }

    /// Group-commit counters.
    pub fn commit_stats(&self) -> &commit::CommitStats {
        self.commit.stats()
    }

    /// What an earlier delivery with this id did, if any.
    pub fn delivery(
        &self,
        shop: &ShopId,
        adapter: &str,
        event_id: &str,
    ) -> Result<Option<DeliveryRecord>, LedgerError> {
        get_json(&self.index, &keys::dedupe(shop, adapter, event_id))
    }

    /// Record a delivery that changes no points (ignored topic, guest without contact).
    pub fn record_ignored(
        &self,
        shop: &ShopId,
        adapter: &str,
        event_id: &str,
        kind: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Applied, LedgerError> {
        let key = keys::dedupe(shop, adapter, event_id);
        let record = DeliveryRecord {
            outcome: DeliveryOutcome::Ignored {
                kind: kind.to_string(),
                reason: reason.to_string(),
            },
            recorded_at: now,
        };
        let bytes = serde_json::to_vec(&record)?;
        match self
            .index
            .compare_and_swap(&key, None as Option<&[u8]>, Some(bytes))?
        {
            Ok(()) => Ok(Applied::New(record)),
            Err(cas) => {
                let existing = match cas.current {
                    Some(b) => serde_json::from_slice(&b)?,
                    None => record,
                };
                Ok(Applied::Duplicate(existing))
            }
        }
    }

    /// Credit a sale to its buyer, exactly once per delivery id and per order.
    pub fn apply_earn(
        &self,
        cmd: &EarnCommand<'_>,
        now: DateTime<Utc>,
    ) -> Result<Applied, LedgerError> {
        let result = (
            &self.index,
            &self.members,
            &self.journal,
            &self.member_journal,
            &self.balances,
            &self.outbox,
        )
            .transaction(
                |(index, members, journal, member_journal, balances, outbox)| {
                    let dedupe_key = keys::dedupe(cmd.shop, cmd.adapter, cmd.event_id);
                    if let Some(existing) = tx_get_json::<DeliveryRecord>(index, &dedupe_key)? {
                        return Ok(Applied::Duplicate(existing));
                    }
                    let order_key = keys::earned_order(cmd.shop, cmd.adapter, cmd.order_id);
                    if index.get(&order_key)?.is_some() {
                        let record = DeliveryRecord {
                            outcome: DeliveryOutcome::AlreadyScored {
                                order_id: cmd.order_id.to_string(),
                            },
                            recorded_at: now,
                        };
                        tx_put_json(index, &dedupe_key, &record)?;
                        return Ok(Applied::New(record));
                    }

                    let mut member =
                        find_or_create_member(index, members, cmd.shop, cmd.claims, now)?;
                    let points = cmd.award.points;
                    let mut posting_id = None;
                    if points.0 > 0 {
                        let id = journal.generate_id()?;
                        let posting = Posting {
                            id,
                            member: member.id.clone(),
                            kind: PostingKind::Earn,
                            entries: vec![
                                Entry {
                                    account: Account::Issued,
                                    amount: -points,
                                },
                                Entry {
                                    account: Account::MemberAvailable(member.id.clone()),
                                    amount: points,
                                },
                            ],
                            occurred_at: cmd.occurred_at,
                            recorded_at: now,
                            idempotency_key: format!("{}:{}", cmd.adapter, cmd.event_id),
                            order_id: Some(cmd.order_id.to_string()),
                            explanation: cmd.award.contributions.clone(),
                        };
                        let balance = post(journal, member_journal, balances, cmd.shop, &posting)?;
                        member.lifetime += points;
                        member.updated_at = now;
                        let msg = OutboxMessage {
                            id: outbox.generate_id()?,
                            shop: cmd.shop.clone(),
                            member: member.id.clone(),
                            first_name: member.first_name.clone(),
                            posting_id: id,
                            notice: Notice::Earned { points, balance },
                            created_at: now,
                        };
                        outbox::enqueue(outbox, &msg)?;
                        posting_id = Some(id);
                    }
                    tx_put_json(members, &keys::member(cmd.shop, &member.id), &member)?;
                    tx_put_json(index, &order_key, &posting_id)?;
                    let record = DeliveryRecord {
                        outcome: DeliveryOutcome::Applied {
                            member: member.id.clone(),
                            posting_id,
                            points,
                        },
                        recorded_at: now,
                    };
                    tx_put_json(index, &dedupe_key, &record)?;
                    Ok(Applied::New(record))
                },
            );
        Ok(result?)
    }

    /// A member by id.
    pub fn member(&self, shop: &ShopId, id: &MemberId) -> Result<Option<Member>, LedgerError> {
        get_json(&self.members, &keys::member(shop, id))
    }

    /// The member an identity belongs to.
    pub fn member_by_identity(
        &self,
        shop: &ShopId,
        kind: IdentityKind,
        value: &str,
    ) -> Result<Option<Member>, LedgerError> {
        match self.index.get(keys::identity(shop, kind, value))? {
            Some(id) => {
                let id = MemberId::parse(std::str::from_utf8(&id).unwrap_or_default())
                    .ok_or_else(|| LedgerError::Invariant("corrupt identity index".into()))?;
                self.member(shop, &id)
            }
            None => Ok(None),
        }
    }

    /// A member's balances.
    pub fn balances(&self, shop: &ShopId, member: &Member) -> Result<Balances, LedgerError> {
        let read = |a: Account| -> Result<Points, LedgerError> {
            Ok(decode_points(
                self.balances.get(keys::balance(shop, &a.key()))?.as_deref(),
            ))
        };
        Ok(Balances {
            available: read(Account::MemberAvailable(member.id.clone()))?,
            pending: read(Account::MemberPending(member.id.clone()))?,
            lifetime: member.lifetime,
        })
    }

    /// A program account's balance (e.g. `Account::Issued`).
    pub fn account_balance(&self, shop: &ShopId, account: &Account) -> Result<Points, LedgerError> {
        Ok(decode_points(
            self.balances
                .get(keys::balance(shop, &account.key()))?
                .as_deref(),
        ))
    }

    /// A member's postings, newest first, at most `limit`.
    pub fn member_postings(
        &self,
        shop: &ShopId,
        member: &MemberId,
        limit: usize,
    ) -> Result<Vec<Posting>, LedgerError> {
        let prefix = keys::member_postings_prefix(shop, member);
        let mut out = Vec::new();
        for item in self.member_journal.scan_prefix(&prefix).rev().take(limit) {
            let (k, _) = item?;
            let id_bytes: [u8; 8] = k[prefix.len()..]
                .try_into()
                .map_err(|_| LedgerError::Invariant("corrupt member journal key".into()))?;
            let id = u64::from_be_bytes(id_bytes);
            let p: Posting = get_json(&self.journal, &keys::posting(shop, id))?
                .ok_or_else(|| LedgerError::Invariant(format!("posting {id} missing")))?;
            out.push(p);
        }
        Ok(out)
    }
}

/// Append a balanced posting and update the balances of its accounts. Returns the
/// member's new available balance.
fn post(
    journal: &TransactionalTree,
    member_journal: &TransactionalTree,
    balances: &TransactionalTree,
    shop: &ShopId,
    posting: &Posting,
) -> TxResult<Points> {
    if !posting.is_balanced() {
        return Err(abort(LedgerError::Invariant(format!(
            "posting {} does not sum to zero",
            posting.id
        ))));
    }
    tx_put_json(journal, &keys::posting(shop, posting.id), posting)?;
    member_journal.insert(keys::member_posting(shop, &posting.member, posting.id), &[])?;
    let mut member_available = None;
    for e in &posting.entries {
        let key = keys::balance(shop, &e.account.key());
        let old = decode_points(balances.get(&key)?.as_deref());
        let new = old.checked_add(e.amount).ok_or_else(|| {
            abort(LedgerError::Invariant(format!(
                "balance of {} would overflow",
                e.account.key()
            )))
        })?;
        balances.insert(key, &new.0.to_be_bytes())?;
        if e.account == Account::MemberAvailable(posting.member.clone()) {
            member_available = Some(new);
        }
    }
    match member_available {
        Some(b) => Ok(b),
        None => {
            let key = keys::balance(
                shop,
                &Account::MemberAvailable(posting.member.clone()).key(),
            );
            Ok(decode_points(balances.get(&key)?.as_deref()))
        }
    }
}

/// Find the buyer by their identities (in claim order) or create them, then link any
/// identity not yet claimed by someone else.
fn find_or_create_member(
    index: &TransactionalTree,
    members: &TransactionalTree,
    shop: &ShopId,
    claims: &IdentityClaims,
    now: DateTime<Utc>,
) -> TxResult<Member> {
    let mut found = None;
    for ident in &claims.identities {
        if let Some(id) = index.get(keys::identity(shop, ident.kind, &ident.value))? {
            let id = MemberId::parse(std::str::from_utf8(&id).unwrap_or_default())
                .ok_or_else(|| abort(LedgerError::Invariant("corrupt identity index".into())))?;
            found = tx_get_json::<Member>(members, &keys::member(shop, &id))?;
            if found.is_some() {
                break;
            }
        }
    }
    let mut member = found.unwrap_or_else(|| Member {
        id: MemberId::generate(),
        email: None,
        phone: None,
        first_name: None,
        last_name: None,
        identities: Vec::new(),
        tier: None,
        lifetime: Points::ZERO,
        created_at: now,
        updated_at: now,
    });
    for ident in &claims.identities {
        let key = keys::identity(shop, ident.kind, &ident.value);
        if index.get(&key)?.is_none() {
            index.insert(key, member.id.as_str().as_bytes())?;
            if !member.identities.contains(ident) {
                member.identities.push(Identity {
                    kind: ident.kind,
                    value: ident.value.clone(),
                });
            }
            match ident.kind {
                IdentityKind::Email if member.email.is_none() => {
                    member.email = Some(ident.value.clone())
                }
                IdentityKind::Phone if member.phone.is_none() => {
                    member.phone = Some(ident.value.clone())
                }
                _ => {}
            }
        }
    }
    if member.first_name.is_none() {
        member.first_name = claims.first_name.clone();
    }
    if member.last_name.is_none() {
        member.last_name = claims.last_name.clone();
    }
    Ok(member)
}

fn decode_points(bytes: Option<&[u8]>) -> Points {
    match bytes.and_then(|b| <[u8; 8]>::try_from(b).ok()) {
        Some(b) => Points(i64::from_be_bytes(b)),
        None => Points::ZERO,
    }
}

fn get_json<T: DeserializeOwned>(tree: &sled::Tree, key: &[u8]) -> Result<Option<T>, LedgerError> {
    match tree.get(key)? {
        Some(b) => Ok(Some(serde_json::from_slice(&b)?)),
        None => Ok(None),
    }
}

fn tx_get_json<T: DeserializeOwned>(tree: &TransactionalTree, key: &[u8]) -> TxResult<Option<T>> {
    match tree.get(key)? {
        Some(b) => Ok(Some(serde_json::from_slice(&b).map_err(abort)?)),
        None => Ok(None),
    }
}

fn tx_put_json<T: Serialize>(tree: &TransactionalTree, key: &[u8], value: &T) -> TxResult<()> {
    let bytes = serde_json::to_vec(value).map_err(abort)?;
    tree.insert(key, bytes)?;
    Ok(())
}
