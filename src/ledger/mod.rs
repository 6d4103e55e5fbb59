//! The points ledger, durable in sled.
//!
//! - [`journal`]: accounts, entries, lot changes, postings (append-only, balanced).
//! - [`lots`]: earned points with dates; oldest-first consumption.
//! - [`policy`]: a shop's returns window, expiry and clawback terms.
//! - [`keys`]: how everything is laid out in sled trees.
//! - [`commit`]: group commit, so an acknowledgement waits for one shared fsync.
//! - [`earn`], [`reverse`], [`spend`], [`jobs`]: the transactions that change the ledger.
//! - [`replay`], [`verify`]: rebuild state from the journal and compare.
//! - this file: the [`Ledger`] handle and read access.
//!
//! Everything one event changes — dedupe record, order record, member and identities,
//! postings, balances, lots, outbox messages — is written in ONE sled transaction, and
//! the caller acknowledges only after [`Ledger::durable`] returns.

pub mod bonus;
pub mod commit;
pub mod contact;
pub mod customer;
pub mod earn;
pub mod import;
pub mod inbox;
pub mod jobs;
pub mod journal;
pub mod keys;
pub mod lots;
pub mod merge;
pub mod pass;
pub mod policy;
pub mod replay;
pub mod retention;
pub mod reverse;
pub mod spend;
pub mod tiers;
pub(crate) mod tx;
pub mod verify;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use loyaltyd_adapter::ShopId;
use rust_decimal::Decimal;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use crate::member::{IdentityKind, Member, MemberId};
use crate::points::Points;
use commit::{FlushError, GroupCommit};
use journal::{Account, Posting};
use lots::MemberLots;
use tx::Tx;

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
    /// The member has fewer available points than the operation needs.
    #[error("insufficient points: {needed} needed, {available} available")]
    InsufficientPoints {
        /// Points the operation needs.
        needed: Points,
        /// Points available.
        available: Points,
    },
    /// No such member.
    #[error("no such member")]
    UnknownMember,
    /// The member changed between reading the snapshot a sale was scored with and
    /// posting it; score again with a fresh snapshot.
    #[error("the member changed while the sale was scored")]
    StaleSnapshot,
    /// The Idempotency-Key was used before with a different request.
    #[error("the Idempotency-Key was already used for a different request")]
    IdempotencyConflict,
}

impl From<TransactionError<LedgerError>> for LedgerError {
    fn from(e: TransactionError<LedgerError>) -> Self {
        match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => LedgerError::Storage(e),
        }
    }
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
    /// Points were taken back for a refund or cancellation.
    Reversed {
        /// The member debited.
        member: MemberId,
        /// Points reversed.
        points: Points,
        /// Points that could not be taken back (clamp policy).
        shortfall: Points,
        /// Redeemed points given back because the order was fully refunded.
        returned: Points,
    },
    /// The order had already been scored (or this refund applied) under another
    /// delivery id.
    AlreadyScored {
        /// The order.
        order_id: String,
    },
    /// A refund or cancellation for an order not scored (yet); kept on the order and
    /// applied if its sale arrives later.
    Deferred {
        /// The order.
        order_id: String,
    },
    /// A POS customer record updated the member's identities, birthday or consent.
    CustomerUpdated {
        /// The member.
        member: MemberId,
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

/// What loyaltyd knows about one external order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRecord {
    /// Whether its sale was scored (earning happens at most once).
    pub scored: bool,
    /// The member it was credited to.
    pub member: Option<MemberId>,
    /// The earn posting and the lot it opened.
    pub earn_seq: Option<u64>,
    /// Lot opened by the earning (its id).
    pub lot: Option<u64>,
    /// Points the sale earned (as posted, whatever today's rules say).
    pub earned: Points,
    /// The sale's eligible spend.
    #[serde(with = "rust_decimal::serde::str")]
    pub eligible: Decimal,
    /// Eligible spend refunded so far.
    #[serde(with = "rust_decimal::serde::str")]
    pub refunded: Decimal,
    /// Points reversed so far.
    pub reversed: Points,
    /// Points a clamped reversal could not take back.
    pub shortfall: Points,
    /// Whether the order was cancelled or fully refunded.
    pub closed: bool,
    /// Whether the sale's prices included tax (refund subtotals then include it too).
    #[serde(default)]
    pub taxes_included: bool,
    /// Eligible spend per sale line still not refunded.
    #[serde(default)]
    pub lines: std::collections::BTreeMap<String, Decimal>,
    /// Refund lines received before the sale was scored.
    #[serde(default)]
    pub early_refund_lines: Vec<loyaltyd_adapter::RefundLine>,
    /// What the customer paid in total (for refunds that give only an amount).
    #[serde(default, with = "rust_decimal::serde::str")]
    pub total: Decimal,
    /// Cash back (store credit) the sale earned, and how much was taken back.
    #[serde(default, with = "rust_decimal::serde::str")]
    pub cash_back: Decimal,
    /// Cash back taken back by refunds so far.
    #[serde(default, with = "rust_decimal::serde::str")]
    pub cash_back_reversed: Decimal,
    /// The local month (`YYYY-MM`) the sale counted towards tier qualification in.
    #[serde(default)]
    pub tier_month: Option<String>,
    /// Points refunds have taken out of that month's tier qualification so far.
    #[serde(default)]
    pub tier_points_removed: Points,
    /// Spend refunds have taken out of that month's tier qualification so far.
    #[serde(default, with = "rust_decimal::serde::str")]
    pub tier_spend_removed: Decimal,
    /// Decimal places of the sale currency (for rounding cash back).
    #[serde(default)]
    pub cash_back_dp: u32,
    /// Amount-only refunds received before the sale was scored.
    #[serde(default)]
    pub early_refund_amounts: Vec<Decimal>,
}

/// A redemption that named the external order it paid for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedemptionLink {
    /// The redeem posting.
    pub seq: u64,
    /// The member.
    pub member: MemberId,
    /// Points redeemed.
    pub points: Points,
    /// Whether they were given back after a full refund.
    pub returned: bool,
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

/// The writer gate: every ledger write holds it shared; a backup holds it exclusively
/// while it copies the trees, so the copy sees no transaction half-way.
#[derive(Clone, Default)]
pub struct WriterGate(Arc<std::sync::RwLock<()>>);

impl WriterGate {
    /// Held by a write for its duration (shared with other writes).
    pub fn write(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        // The lock guards no data, so a panic while it was held poisons nothing.
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Held while nothing may write (a consistent copy); waits for writes in flight.
    pub fn pause(&self) -> std::sync::RwLockWriteGuard<'_, ()> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// A sled tree whose direct (non-transactional) writes go through the writer gate.
/// Reads, and the tree itself for transactions, are reached through `Deref`; the
/// inherent write methods below shadow sled's, so `tree.insert(..)` anywhere in the
/// ledger is gated without its caller knowing.
#[derive(Clone)]
pub struct GatedTree {
    tree: sled::Tree,
    gate: WriterGate,
}

impl std::ops::Deref for GatedTree {
    type Target = sled::Tree;
    fn deref(&self) -> &sled::Tree {
        &self.tree
    }
}

impl GatedTree {
    /// `sled::Tree::insert` under the gate.
    pub fn insert<K: AsRef<[u8]>, V: Into<sled::IVec>>(
        &self,
        key: K,
        value: V,
    ) -> sled::Result<Option<sled::IVec>> {
        let _w = self.gate.write();
        self.tree.insert(key, value)
    }

    /// `sled::Tree::remove` under the gate.
    pub fn remove<K: AsRef<[u8]>>(&self, key: K) -> sled::Result<Option<sled::IVec>> {
        let _w = self.gate.write();
        self.tree.remove(key)
    }

    /// `sled::Tree::compare_and_swap` under the gate.
    pub fn compare_and_swap<K, OV, NV>(
        &self,
        key: K,
        old: Option<OV>,
        new: Option<NV>,
    ) -> sled::Result<Result<(), sled::CompareAndSwapError>>
    where
        K: AsRef<[u8]>,
        OV: AsRef<[u8]>,
        NV: Into<sled::IVec>,
    {
        let _w = self.gate.write();
        self.tree.compare_and_swap(key, old, new)
    }
}

/// The ledger handle; cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    db: sled::Db,
    index: GatedTree,
    members: sled::Tree,
    journal: sled::Tree,
    member_journal: sled::Tree,
    outbox: sled::Tree,
    inbox: GatedTree,
    commit: Option<GroupCommit>,
    /// Shared by every write; taken exclusively by [`Ledger::pause_writes`].
    gate: WriterGate,
    /// Each shop's rewards catalogue, for "reward unlocked" notices (set from the
    /// rules at start and on every reload).
    catalogues: Arc<std::sync::RwLock<HashMap<ShopId, Arc<Vec<crate::rules::Reward>>>>>,
    /// Where the retention job's sweeps stand.
    retention: Arc<retention::Sweeps>,
}

/// sled's page cache unless `storage.cache_capacity_mib` says otherwise. sled overshoots
/// it several times over (docs/hardening.md, "Memory and retention"); 16 MiB served
/// the same latency as 64 MiB at a third less memory.
pub const DEFAULT_CACHE_MIB: u64 = 16;

impl Ledger {
    /// Open (or create) the ledger in `path` for the daemon, with group commit (needs a
    /// tokio runtime) and the default cache.
    pub fn open(path: &Path) -> Result<Ledger, LedgerError> {
        Self::open_with_cache(path, DEFAULT_CACHE_MIB << 20)
    }

    /// [`Ledger::open`] with a page cache of `cache_bytes`.
    pub fn open_with_cache(path: &Path, cache_bytes: u64) -> Result<Ledger, LedgerError> {
        let mut l = Self::open_offline_with_cache(path, cache_bytes)?;
        l.commit = Some(GroupCommit::start(l.db.clone()));
        Ok(l)
    }

    /// Open for offline tools (verify, export, jobs from the CLI): no async runtime;
    /// [`Ledger::durable`] flushes directly.
    pub fn open_offline(path: &Path) -> Result<Ledger, LedgerError> {
        Self::open_offline_with_cache(path, DEFAULT_CACHE_MIB << 20)
    }

    /// [`Ledger::open_offline`] with a page cache of `cache_bytes`.
    pub fn open_offline_with_cache(path: &Path, cache_bytes: u64) -> Result<Ledger, LedgerError> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .open()
            .map_err(|e| match e {
                sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
                    LedgerError::Storage(sled::Error::Io(std::io::Error::other(format!(
                        "{io} (is a loyaltyd daemon already using {}?)",
                        path.display()
                    ))))
                }
                other => LedgerError::Storage(other),
            })?;
        let gate = WriterGate::default();
        let gated = |name: &str| -> Result<GatedTree, LedgerError> {
            Ok(GatedTree {
                tree: db.open_tree(name)?,
                gate: gate.clone(),
            })
        };
        Ok(Ledger {
            index: gated("index")?,
            members: db.open_tree("members")?,
            journal: db.open_tree("journal")?,
            member_journal: db.open_tree("member_journal")?,
            outbox: db.open_tree(crate::notify::outbox::PENDING_TREE)?,
            inbox: gated(inbox::INBOX_TREE)?,
            commit: None,
            gate,
            catalogues: Default::default(),
            retention: Default::default(),
            db,
        })
    }

    /// The underlying database (for the notifier's outbox and for shutdown).
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// Stop every ledger write until the guard is dropped: waits for the writes in
    /// flight, then holds new ones (for a consistent backup). Do not write to the
    /// ledger from the thread holding it.
    pub fn pause_writes(&self) -> std::sync::RwLockWriteGuard<'_, ()> {
        self.gate.pause()
    }

    /// Wait until every write made so far is on disk (group-committed).
    pub async fn durable(&self) -> Result<(), LedgerError> {
        match &self.commit {
            Some(c) => Ok(c.durable().await?),
            None => self.flush_now(),
        }
    }

    /// Flush synchronously (shutdown, offline tools).
    pub fn flush_now(&self) -> Result<(), LedgerError> {
        self.db.flush()?;
        Ok(())
    }

    /// Group-commit counters, when running as a daemon.
    pub fn commit_stats(&self) -> Option<&commit::CommitStats> {
        self.commit.as_ref().map(|c| c.stats())
    }

    /// Use `rewards` as `shop`'s catalogue for "reward unlocked" notices from now on.
    pub fn set_rewards(&self, shop: &ShopId, rewards: Vec<crate::rules::Reward>) {
        if let Ok(mut c) = self.catalogues.write() {
            c.insert(shop.clone(), Arc::new(rewards));
        }
    }

    /// Run `f` in one transaction over every ledger tree, bound to `shop`.
    pub(crate) fn transact<T>(
        &self,
        shop: &ShopId,
        f: impl Fn(&Tx<'_>) -> Result<T, ConflictableTransactionError<LedgerError>>,
    ) -> Result<T, LedgerError> {
        let rewards = self
            .catalogues
            .read()
            .ok()
            .and_then(|c| c.get(shop).cloned())
            .unwrap_or_default();
        let _w = self.gate.write();
        let r = (
            &*self.index,
            &self.members,
            &self.journal,
            &self.member_journal,
            &self.outbox,
        )
            .transaction(|(index, members, journal, member_journal, outbox)| {
                let tx = Tx::new(
                    shop,
                    index,
                    members,
                    journal,
                    member_journal,
                    outbox,
                    &rewards,
                );
                let out = f(&tx)?;
                tx.write_back()?;
                Ok(out)
            });
        Ok(r?)
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

    fn record(
        &self,
        shop: &ShopId,
        id: &MemberId,
    ) -> Result<Option<tx::MemberRecord>, LedgerError> {
        get_json(&self.members, &keys::member(shop, id))
    }

    fn shop_state(&self, shop: &ShopId) -> Result<tx::ShopState, LedgerError> {
        Ok(get_json(&self.index, &keys::seq(shop))?.unwrap_or_default())
    }

    /// A member by id.
    pub fn member(&self, shop: &ShopId, id: &MemberId) -> Result<Option<Member>, LedgerError> {
        Ok(self.record(shop, id)?.map(|r| r.member))
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

    /// The member the first of `claims`' identities belongs to (as the earn transaction
    /// would find them), for scoring snapshots.
    pub fn find_member(
        &self,
        shop: &ShopId,
        claims: &crate::member::IdentityClaims,
    ) -> Result<Option<Member>, LedgerError> {
        for ident in &claims.identities {
            if let Some(m) = self.member_by_identity(shop, ident.kind, &ident.value)? {
                return Ok(Some(m));
            }
        }
        Ok(None)
    }

    /// A member's balances.
    pub fn balances(&self, shop: &ShopId, member: &Member) -> Result<Balances, LedgerError> {
        let r = self.record(shop, &member.id)?;
        Ok(Balances {
            available: r.as_ref().map(|r| r.available).unwrap_or_default(),
            pending: r.as_ref().map(|r| r.pending).unwrap_or_default(),
            lifetime: member.lifetime,
        })
    }

    /// Any account's balance.
    pub fn account_balance(&self, shop: &ShopId, account: &Account) -> Result<Points, LedgerError> {
        Ok(match account {
            Account::MemberAvailable(m) => self
                .record(shop, m)?
                .map(|r| r.available)
                .unwrap_or_default(),
            Account::MemberPending(m) => {
                self.record(shop, m)?.map(|r| r.pending).unwrap_or_default()
            }
            program => self
                .shop_state(shop)?
                .balances
                .get(&program.key())
                .copied()
                .unwrap_or_default(),
        })
    }

    /// A member's open lots, oldest first.
    pub fn member_lots(&self, shop: &ShopId, member: &MemberId) -> Result<MemberLots, LedgerError> {
        Ok(MemberLots {
            lots: self
                .record(shop, member)?
                .map(|r| r.lots)
                .unwrap_or_default(),
        })
    }

    /// A shop's member records, read one at a time. The jobs walk every member each
    /// pass: collecting them first held the whole member table in memory once a minute.
    pub(crate) fn records(
        &self,
        shop: &ShopId,
    ) -> impl Iterator<Item = Result<tx::MemberRecord, LedgerError>> + use<> {
        self.members
            .scan_prefix(keys::shop_prefix(shop))
            .map(|item| Ok(serde_json::from_slice(&item?.1)?))
    }

    fn all_records(&self, shop: &ShopId) -> Result<Vec<tx::MemberRecord>, LedgerError> {
        self.records(shop).collect()
    }

    /// Every member with open lots in a shop, with those lots (for jobs and verify).
    pub fn all_lots(&self, shop: &ShopId) -> Result<Vec<(MemberId, MemberLots)>, LedgerError> {
        Ok(self
            .all_records(shop)?
            .into_iter()
            .filter(|r| !r.lots.is_empty())
            .map(|r| (r.member.id, MemberLots { lots: r.lots }))
            .collect())
    }

    /// Every member of a shop.
    pub fn all_members(&self, shop: &ShopId) -> Result<Vec<Member>, LedgerError> {
        Ok(self
            .all_records(shop)?
            .into_iter()
            .map(|r| r.member)
            .collect())
    }

    /// The program's accounts (`program/issued`, `program/redeemed`, …) and their
    /// balances: one read, however many members the shop has.
    pub fn program_balances(
        &self,
        shop: &ShopId,
    ) -> Result<std::collections::BTreeMap<String, Points>, LedgerError> {
        Ok(self.shop_state(shop)?.balances)
    }

    /// Every stored non-zero balance of a shop, by account key.
    pub fn all_balances(&self, shop: &ShopId) -> Result<Vec<(String, Points)>, LedgerError> {
        let mut out: Vec<(String, Points)> = self.program_balances(shop)?.into_iter().collect();
        for r in self.all_records(shop)? {
            out.push((
                Account::MemberAvailable(r.member.id.clone()).key(),
                r.available,
            ));
            out.push((Account::MemberPending(r.member.id.clone()).key(), r.pending));
        }
        out.retain(|(_, b)| b.0 != 0);
        Ok(out)
    }

    /// The shop's whole journal in order.
    pub fn journal(
        &self,
        shop: &ShopId,
    ) -> impl Iterator<Item = Result<Posting, LedgerError>> + '_ {
        self.journal
            .scan_prefix(keys::shop_prefix(shop))
            .map(|item| Ok(serde_json::from_slice(&item?.1)?))
    }

    /// Number of postings in the shop's journal (the last seq).
    pub fn journal_len(&self, shop: &ShopId) -> Result<u64, LedgerError> {
        Ok(self.shop_state(shop)?.seq)
    }

    /// Ids of every outbox message (pending, sent, or sent and pruned by retention)
    /// with the posting they announce.
    pub fn outbox_postings(&self) -> Result<Vec<(ShopId, u64)>, LedgerError> {
        let mut out = Vec::new();
        for tree in [
            crate::notify::outbox::PENDING_TREE,
            crate::notify::outbox::SENT_TREE,
        ] {
            for item in self.db.open_tree(tree)?.iter() {
                let (_, v) = item?;
                #[derive(Deserialize)]
                struct Announces {
                    shop: ShopId,
                    posting_id: u64,
                }
                let m: Announces = serde_json::from_slice(&v)?;
                // 0: a notice about no posting (an expiry warning).
                if m.posting_id != 0 {
                    out.push((m.shop, m.posting_id));
                }
            }
        }
        // Sent records the retention job pruned still count: their posting ids are kept.
        out.extend(retention::pruned_notices(self)?);
        Ok(out)
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
            let seq = u64::from_be_bytes(id_bytes);
            let p: Posting = get_json(&self.journal, &keys::posting(shop, seq))?
                .ok_or_else(|| LedgerError::Invariant(format!("posting {seq} missing")))?;
            out.push(p);
        }
        Ok(out)
    }
}

fn get_json<T: DeserializeOwned>(tree: &sled::Tree, key: &[u8]) -> Result<Option<T>, LedgerError> {
    match tree.get(key)? {
        Some(b) => Ok(Some(serde_json::from_slice(&b)?)),
        None => Ok(None),
    }
}

#[cfg(test)]
pub(crate) mod tests;

#[cfg(test)]
mod proptests;
