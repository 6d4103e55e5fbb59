//! One sled transaction over the ledger's trees, with the few operations every
//! posting needs. The closure sled runs may be retried on conflict, so nothing here
//! has side effects outside the transaction.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use loyaltyd_adapter::ShopId;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use super::journal::{Account, Entry, LotChange, Posting};
use super::lots::MemberLots;
use super::{keys, LedgerError};
use crate::member::{Member, MemberId};
use crate::notify::outbox::{self, MessageContext, Notice, OutboxMessage};
use crate::points::Points;

pub(crate) type TxResult<T> = Result<T, ConflictableTransactionError<LedgerError>>;

pub(crate) fn abort(e: impl Into<LedgerError>) -> ConflictableTransactionError<LedgerError> {
    ConflictableTransactionError::Abort(e.into())
}

pub(crate) fn invariant(msg: impl Into<String>) -> ConflictableTransactionError<LedgerError> {
    abort(LedgerError::Invariant(msg.into()))
}

/// Points to credit and the terms of the lot they open.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Credit {
    pub amount: Points,
    /// The local day earned: points of one day on the same terms share a lot, which
    /// keeps a member's open lots few however often they buy.
    pub day: chrono::NaiveDate,
    pub pending_until: Option<chrono::DateTime<chrono::Utc>>,
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    pub earned_at: chrono::DateTime<chrono::Utc>,
}

/// The trees of one transaction, bound to one shop.
///
/// A member's record, lots and balances, and the shop's sequence counter and program
/// balances, are each ONE sled value: they are read once into the caches below,
/// changed there, and written back once when the transaction's work is done
/// ([`Tx::write_back`]). Fewer keys per sale is most of what sled costs.
pub(crate) struct Tx<'a> {
    pub shop: &'a ShopId,
    pub index: &'a TransactionalTree,
    pub members: &'a TransactionalTree,
    pub journal: &'a TransactionalTree,
    pub member_journal: &'a TransactionalTree,
    pub outbox: &'a TransactionalTree,
    /// The shop's rewards catalogue: a balance that reaches a reward's cost in this
    /// transaction, whatever raised it, is announced once at write-back.
    pub rewards: &'a [crate::rules::Reward],
    pub(crate) states: RefCell<HashMap<MemberId, MemberState>>,
    pub(crate) shop_state: RefCell<Option<(ShopState, bool)>>,
}

/// A member's stored record: who, what they hold, and their open lots.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberRecord {
    /// The member.
    pub member: Member,
    /// Available balance.
    pub available: Points,
    /// Pending balance.
    pub pending: Points,
    /// Open lots, oldest first.
    #[serde(default)]
    pub lots: Vec<super::lots::Lot>,
}

/// A shop's journal counter and program account balances.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ShopState {
    /// Last posting number used.
    pub seq: u64,
    /// Program account balances by account key (`program/issued`, …).
    pub balances: BTreeMap<String, Points>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct MemberState {
    member: Option<Member>,
    lots: MemberLots,
    available: Points,
    pending: Points,
    dirty: bool,
    /// Available balance when the transaction first read it.
    opening: Points,
    /// The last posting for this member in the transaction (number, recorded at).
    last_posting: Option<(u64, chrono::DateTime<chrono::Utc>)>,
}

impl<'a> Tx<'a> {
    pub fn get<T: DeserializeOwned>(
        &self,
        tree: &TransactionalTree,
        key: &[u8],
    ) -> TxResult<Option<T>> {
        match tree.get(key)? {
            Some(b) => Ok(Some(serde_json::from_slice(&b).map_err(abort)?)),
            None => Ok(None),
        }
    }

    pub fn put<T: Serialize>(
        &self,
        tree: &TransactionalTree,
        key: &[u8],
        value: &T,
    ) -> TxResult<()> {
        let bytes = serde_json::to_vec(value).map_err(abort)?;
        tree.insert(key, bytes)?;
        Ok(())
    }

    /// Build over the trees of one transaction attempt.
    pub fn new(
        shop: &'a ShopId,
        index: &'a TransactionalTree,
        members: &'a TransactionalTree,
        journal: &'a TransactionalTree,
        member_journal: &'a TransactionalTree,
        outbox: &'a TransactionalTree,
        rewards: &'a [crate::rules::Reward],
    ) -> Tx<'a> {
        Tx {
            shop,
            index,
            members,
            journal,
            member_journal,
            outbox,
            rewards,
            states: RefCell::default(),
            shop_state: RefCell::default(),
        }
    }

    fn with_shop<T>(&self, f: impl FnOnce(&mut ShopState, &mut bool) -> T) -> TxResult<T> {
        let mut cell = self.shop_state.borrow_mut();
        if cell.is_none() {
            let st: ShopState = self
                .get(self.index, &keys::seq(self.shop))?
                .unwrap_or_default();
            *cell = Some((st, false));
        }
        match cell.as_mut() {
            Some((st, dirty)) => Ok(f(st, dirty)),
            None => Err(invariant("shop state missing")),
        }
    }

    fn with_member<T>(&self, id: &MemberId, f: impl FnOnce(&mut MemberState) -> T) -> TxResult<T> {
        let mut states = self.states.borrow_mut();
        if !states.contains_key(id) {
            let st = match self.get::<MemberRecord>(self.members, &keys::member(self.shop, id))? {
                Some(r) => MemberState {
                    member: Some(r.member),
                    lots: MemberLots { lots: r.lots },
                    available: r.available,
                    pending: r.pending,
                    dirty: false,
                    opening: r.available,
                    last_posting: None,
                },
                None => MemberState::default(),
            };
            states.insert(id.clone(), st);
        }
        match states.get_mut(id) {
            Some(st) => Ok(f(st)),
            None => Err(invariant("member state missing")),
        }
    }

    /// Write every changed member record and the shop state back, once each, after
    /// announcing the rewards each member's balance reached in this transaction.
    pub fn write_back(&self) -> TxResult<()> {
        // Collected first: announcing reads member state through the same RefCell.
        let unlocks: Vec<_> = self
            .states
            .borrow()
            .values()
            .filter(|st| st.dirty && st.available > st.opening)
            .filter_map(|st| {
                let (posting_id, at) = st.last_posting?;
                Some((st.member.clone()?, st.opening, st.available, posting_id, at))
            })
            .collect();
        for (member, before, after, posting_id, at) in unlocks {
            self.announce_unlocks(&member, before, after, posting_id, at)?;
        }
        for (id, st) in self.states.borrow().iter() {
            if !st.dirty {
                continue;
            }
            let member = st
                .member
                .clone()
                .ok_or_else(|| invariant(format!("postings for member {id} without a record")))?;
            let record = MemberRecord {
                member,
                available: st.available,
                pending: st.pending,
                lots: st.lots.lots.clone(),
            };
            self.put(self.members, &keys::member(self.shop, id), &record)?;
        }
        if let Some((st, true)) = self.shop_state.borrow().as_ref() {
            self.put(self.index, &keys::seq(self.shop), st)?;
        }
        Ok(())
    }

    /// "Reward unlocked" for every reward whose cost lies in `(before, after]`: once
    /// per crossing, whether an earning, a bonus, maturing points or an adjustment
    /// raised the balance.
    fn announce_unlocks(
        &self,
        member: &Member,
        before: Points,
        after: Points,
        posting_id: u64,
        at: chrono::DateTime<chrono::Utc>,
    ) -> TxResult<()> {
        for r in self.rewards {
            if before.0 < r.points && after.0 >= r.points {
                let msg = OutboxMessage {
                    id: self.outbox.generate_id()?,
                    shop: self.shop.clone(),
                    member: member.id.clone(),
                    first_name: member.first_name.clone(),
                    posting_id,
                    notice: Notice::RewardUnlocked {
                        reward: r.id.clone(),
                        name: r.name.clone(),
                        cost: Points(r.points),
                        available: after,
                    },
                    created_at: at,
                    context: self.message_context(member)?,
                };
                outbox::enqueue(self.outbox, &msg)?;
            }
        }
        Ok(())
    }

    /// The last posting number used so far.
    pub fn journal_len_in_tx(&self) -> TxResult<u64> {
        self.with_shop(|st, _| st.seq)
    }

    /// The next gap-free posting number of the shop (our own counter, not sled's
    /// `generate_id`, which skips numbers).
    pub fn next_seq(&self) -> TxResult<u64> {
        self.with_shop(|st, dirty| {
            st.seq += 1;
            *dirty = true;
            st.seq
        })
    }

    pub fn balance(&self, account: &Account) -> TxResult<Points> {
        match account {
            Account::MemberAvailable(m) => self.with_member(m, |st| st.available),
            Account::MemberPending(m) => self.with_member(m, |st| st.pending),
            program => {
                let key = program.key();
                self.with_shop(|st, _| st.balances.get(&key).copied().unwrap_or_default())
            }
        }
    }

    pub fn member(&self, id: &MemberId) -> TxResult<Option<Member>> {
        self.with_member(id, |st| st.member.clone())
    }

    pub fn save_member(&self, m: &Member) -> TxResult<()> {
        self.with_member(&m.id, |st| {
            let mut m = m.clone();
            // Every save moves the revision forward.
            let stored = st.member.as_ref().map(|s| s.revision).unwrap_or(0);
            if m.revision <= stored {
                m.revision = stored + 1;
            }
            st.member = Some(m);
            st.dirty = true;
        })
    }

    pub fn lots(&self, member: &MemberId) -> TxResult<MemberLots> {
        self.with_member(member, |st| st.lots.clone())
    }

    pub fn save_lots(&self, member: &MemberId, lots: &MemberLots) -> TxResult<()> {
        self.with_member(member, |st| {
            st.lots = lots.clone();
            st.dirty = true;
        })
    }

    /// Append a balanced posting and update the balances of its accounts.
    pub fn post(&self, posting: &Posting) -> TxResult<()> {
        if !posting.is_balanced() {
            return Err(invariant(format!(
                "posting {} does not sum to zero",
                posting.seq
            )));
        }
        self.put(
            self.journal,
            &keys::posting(self.shop, posting.seq),
            posting,
        )?;
        self.member_journal.insert(
            keys::member_posting(self.shop, &posting.member, posting.seq),
            &[],
        )?;
        self.with_member(&posting.member, |st| {
            st.last_posting = Some((posting.seq, posting.recorded_at));
        })?;
        for e in &posting.entries {
            let overflow = || invariant(format!("balance of {} would overflow", e.account.key()));
            match &e.account {
                Account::MemberAvailable(m) => self.with_member(m, |st| {
                    st.dirty = true;
                    st.available.checked_add(e.amount).map(|v| st.available = v)
                })?,
                Account::MemberPending(m) => self.with_member(m, |st| {
                    st.dirty = true;
                    st.pending.checked_add(e.amount).map(|v| st.pending = v)
                })?,
                program => {
                    let key = program.key();
                    self.with_shop(|st, dirty| {
                        *dirty = true;
                        let b = st.balances.entry(key).or_default();
                        b.checked_add(e.amount).map(|v| *b = v)
                    })?
                }
            }
            .ok_or_else(overflow)?;
        }
        Ok(())
    }

    /// Queue the standard notice about `posting` (its kind, the points moved and the
    /// member's balances after it).
    pub fn notify_posted(
        &self,
        member: &Member,
        posting: &Posting,
        points: Points,
        pending_until: Option<chrono::DateTime<chrono::Utc>>,
    ) -> TxResult<()> {
        let notice = Notice::Posted {
            kind: posting.kind,
            points,
            available: self.balance(&Account::MemberAvailable(member.id.clone()))?,
            pending: self.balance(&Account::MemberPending(member.id.clone()))?,
            pending_until,
            reason: posting.reason.clone(),
        };
        self.notify(member, posting, notice)
    }

    /// Queue a notification about `posting` for its member.
    pub fn notify(&self, member: &Member, posting: &Posting, notice: Notice) -> TxResult<()> {
        let msg = OutboxMessage {
            id: self.outbox.generate_id()?,
            shop: self.shop.clone(),
            member: member.id.clone(),
            first_name: member.first_name.clone(),
            posting_id: posting.seq,
            notice,
            created_at: posting.recorded_at,
            context: self.message_context(member)?,
        };
        outbox::enqueue(self.outbox, &msg)
    }

    /// The member's tier, next reward and next expiry, for templates.
    pub fn message_context(&self, member: &Member) -> TxResult<MessageContext> {
        let available = self.balance(&Account::MemberAvailable(member.id.clone()))?;
        let next_reward = self
            .rewards
            .iter()
            .filter(|r| r.points > available.0)
            .min_by_key(|r| r.points)
            .map(|r| (r.name.clone(), Points(r.points)));
        // Read in place: this runs for every message on the ingest path.
        let next_expiry = self.with_member(&member.id, |st| {
            st.lots
                .lots
                .iter()
                .filter(|l| !l.is_pending() && l.remaining.0 > 0)
                .filter_map(|l| l.expires_at.map(|at| (at, l.remaining)))
                .fold(
                    None,
                    |acc: Option<(chrono::DateTime<chrono::Utc>, Points)>, (at, p)| match acc {
                        Some((t, sum)) if t == at => Some((t, sum + p)),
                        Some((t, sum)) if t < at => Some((t, sum)),
                        _ => Some((at, p)),
                    },
                )
        })?;
        Ok(MessageContext {
            tier: member.tier.clone(),
            next_reward,
            next_expiry,
            request_id: outbox::current_request_id(),
        })
    }

    /// Entries and lot changes that credit `amount` to a member: into pending when
    /// `pending_until` is set, else into available, where a negative balance (debt) is
    /// paid off before a lot is opened.
    pub fn credit(
        &self,
        member: &MemberId,
        lots: &mut MemberLots,
        seq: u64,
        c: Credit,
    ) -> TxResult<(Entry, Vec<LotChange>)> {
        let Credit {
            amount,
            day,
            pending_until,
            expires_at,
            earned_at,
        } = c;
        let (account, lot_amount) = if pending_until.is_some() {
            (Account::MemberPending(member.clone()), amount)
        } else {
            let available = self.balance(&Account::MemberAvailable(member.clone()))?;
            let debt = Points((-available.0).max(0));
            (
                Account::MemberAvailable(member.clone()),
                Points((amount.0 - debt.0).max(0)),
            )
        };
        let mut changes = Vec::new();
        if lot_amount.0 > 0 {
            let change = match lots.same_day_lot(day, pending_until, expires_at) {
                Some(lot) => LotChange::TopUp {
                    lot,
                    amount: lot_amount,
                },
                None => LotChange::Open {
                    lot: seq,
                    amount: lot_amount,
                    pending_until,
                    expires_at,
                    day: Some(day),
                },
            };
            lots.apply(&change, earned_at).map_err(invariant)?;
            changes.push(change);
        }
        Ok((Entry { account, amount }, changes))
    }
}
