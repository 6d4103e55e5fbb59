//! One sled transaction over the ledger's trees, with the few operations every
//! posting needs. The closure sled runs may be retried on conflict, so nothing here
//! has side effects outside the transaction.

use loyaltyd_adapter::ShopId;
use serde::{de::DeserializeOwned, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use super::journal::{Account, Entry, LotChange, Posting};
use super::lots::MemberLots;
use super::{keys, LedgerError};
use crate::member::{Member, MemberId};
use crate::notify::outbox::{self, Notice, OutboxMessage};
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
pub(crate) struct Tx<'a> {
    pub shop: &'a ShopId,
    pub index: &'a TransactionalTree,
    pub members: &'a TransactionalTree,
    pub journal: &'a TransactionalTree,
    pub member_journal: &'a TransactionalTree,
    pub balances: &'a TransactionalTree,
    pub outbox: &'a TransactionalTree,
    pub lots: &'a TransactionalTree,
}

impl Tx<'_> {
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

    /// The last posting number used so far.
    pub fn journal_len_in_tx(&self) -> TxResult<u64> {
        match self.index.get(keys::seq(self.shop))? {
            Some(b) => Ok(u64::from_be_bytes(
                <[u8; 8]>::try_from(b.as_ref()).map_err(|_| invariant("corrupt sequence"))?,
            )),
            None => Ok(0),
        }
    }

    /// The next gap-free posting number of the shop (our own counter, not sled's
    /// `generate_id`, which skips numbers).
    pub fn next_seq(&self) -> TxResult<u64> {
        let key = keys::seq(self.shop);
        let cur = match self.index.get(&key)? {
            Some(b) => u64::from_be_bytes(
                <[u8; 8]>::try_from(b.as_ref()).map_err(|_| invariant("corrupt sequence"))?,
            ),
            None => 0,
        };
        let next = cur + 1;
        self.index.insert(key, &next.to_be_bytes())?;
        Ok(next)
    }

    pub fn balance(&self, account: &Account) -> TxResult<Points> {
        Ok(super::decode_points(
            self.balances
                .get(keys::balance(self.shop, &account.key()))?
                .as_deref(),
        ))
    }

    pub fn member(&self, id: &MemberId) -> TxResult<Option<Member>> {
        self.get(self.members, &keys::member(self.shop, id))
    }

    pub fn save_member(&self, m: &Member) -> TxResult<()> {
        self.put(self.members, &keys::member(self.shop, &m.id), m)
    }

    pub fn lots(&self, member: &MemberId) -> TxResult<MemberLots> {
        Ok(self
            .get(self.lots, &keys::member(self.shop, member))?
            .unwrap_or_default())
    }

    pub fn save_lots(&self, member: &MemberId, lots: &MemberLots) -> TxResult<()> {
        let key = keys::member(self.shop, member);
        if lots.lots.is_empty() {
            self.lots.remove(key)?;
            Ok(())
        } else {
            self.put(self.lots, &key, lots)
        }
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
        for e in &posting.entries {
            let key = keys::balance(self.shop, &e.account.key());
            let old = super::decode_points(self.balances.get(&key)?.as_deref());
            let new = old.checked_add(e.amount).ok_or_else(|| {
                invariant(format!("balance of {} would overflow", e.account.key()))
            })?;
            self.balances.insert(key, &new.0.to_be_bytes())?;
        }
        Ok(())
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
        };
        outbox::enqueue(self.outbox, &msg)
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
