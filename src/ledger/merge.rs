//! Merging two members who are one person (two POS accounts, an old card): staff
//! choose the survivor. In one transaction the other member's identities point to the
//! survivor, and its points and lots move over in two journaled postings (out through
//! program `adjusted`, and in again), so every balance still replays from the journal.
//! The merged member stays, marked `merged_into`, so refunds of its old orders follow.

use chrono::{DateTime, Utc};
use loyaltyd_adapter::ShopId;

use super::journal::{Account, Entry, LotChange, Posting, PostingKind};
use super::tx::{Tx, TxResult};
use super::{keys, Ledger, LedgerError};
use crate::member::{IdentityKind, Member, MemberId};
use crate::points::Points;

/// What a merge did.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    /// The survivor after the merge.
    pub member: Member,
    /// Available points moved.
    pub available: Points,
    /// Pending points moved.
    pub pending: Points,
    /// The two postings (out of the merged member, into the survivor); none when
    /// there were no points.
    pub postings: Vec<u64>,
}

/// Why a merge was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeRefused {
    /// A member id is unknown.
    #[error("no member {0}")]
    Unknown(MemberId),
    /// Both ids are the same member.
    #[error("a member cannot be merged into itself")]
    Same,
    /// One of them was merged already.
    #[error("member {0} was already merged into {1}")]
    AlreadyMerged(MemberId, MemberId),
}

impl Ledger {
    /// Merge `from` into `into`, journaled with the actor and reason.
    pub fn merge_members(
        &self,
        shop: &ShopId,
        into: &MemberId,
        from: &MemberId,
        actor: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Result<Merged, MergeRefused>, LedgerError> {
        self.transact(shop, |tx| merge(tx, into, from, actor, reason, now))
    }
}

fn merge(
    tx: &Tx<'_>,
    into: &MemberId,
    from: &MemberId,
    actor: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> TxResult<Result<Merged, MergeRefused>> {
    if into == from {
        return Ok(Err(MergeRefused::Same));
    }
    let Some(mut a) = tx.member(into)? else {
        return Ok(Err(MergeRefused::Unknown(into.clone())));
    };
    let Some(mut b) = tx.member(from)? else {
        return Ok(Err(MergeRefused::Unknown(from.clone())));
    };
    for m in [&a, &b] {
        if let Some(t) = &m.merged_into {
            return Ok(Err(MergeRefused::AlreadyMerged(m.id.clone(), t.clone())));
        }
    }
    let available = tx.balance(&Account::MemberAvailable(from.clone()))?;
    let pending = tx.balance(&Account::MemberPending(from.clone()))?;
    let mut postings = Vec::new();
    if available.0 != 0 || pending.0 != 0 {
        let moved = available + pending;
        let mut b_lots = tx.lots(from)?;
        let mut a_lots = tx.lots(into)?;
        // Out of the merged member: every lot emptied.
        let out_seq = tx.next_seq()?;
        let takes: Vec<LotChange> = b_lots
            .lots
            .iter()
            .filter(|l| l.remaining.0 > 0)
            .map(|l| LotChange::Take {
                lot: l.id,
                amount: l.remaining,
            })
            .collect();
        let opened: Vec<_> = b_lots
            .lots
            .iter()
            .filter(|l| l.remaining.0 > 0)
            .cloned()
            .collect();
        for c in &takes {
            b_lots.apply(c, now).map_err(super::tx::invariant)?;
        }
        b_lots.lots.retain(|l| l.remaining.0 > 0);
        let mut out_entries = Vec::new();
        if available.0 != 0 {
            out_entries.push(Entry {
                account: Account::MemberAvailable(from.clone()),
                amount: -available,
            });
        }
        if pending.0 != 0 {
            out_entries.push(Entry {
                account: Account::MemberPending(from.clone()),
                amount: -pending,
            });
        }
        out_entries.push(Entry {
            account: Account::Adjusted,
            amount: moved,
        });
        let why = format!("merged into {into}: {reason}");
        tx.post(&posting(
            tx,
            out_seq,
            from,
            out_entries,
            takes,
            now,
            actor,
            &why,
        ))?;
        tx.save_lots(from, &b_lots)?;
        postings.push(out_seq);

        // Into the survivor: the same lots, same terms (pending until, expiry), new
        // ids: the posting number, then numbers above every id in use.
        let in_seq = tx.next_seq()?;
        let mut next_id = in_seq;
        let mut opens = Vec::new();
        for l in opened {
            while a_lots.lots.iter().any(|x| x.id == next_id)
                || opens
                    .iter()
                    .any(|c| matches!(c, LotChange::Open { lot, .. } if *lot == next_id))
            {
                next_id += 1_000_000_000;
            }
            opens.push(LotChange::Open {
                lot: next_id,
                amount: l.remaining,
                pending_until: l.pending_until,
                expires_at: l.expires_at,
                day: l.day,
            });
            next_id += 1_000_000_000;
        }
        for c in &opens {
            a_lots.apply(c, now).map_err(super::tx::invariant)?;
        }
        let mut in_entries = vec![Entry {
            account: Account::Adjusted,
            amount: -moved,
        }];
        if available.0 != 0 {
            in_entries.push(Entry {
                account: Account::MemberAvailable(into.clone()),
                amount: available,
            });
        }
        if pending.0 != 0 {
            in_entries.push(Entry {
                account: Account::MemberPending(into.clone()),
                amount: pending,
            });
        }
        let why = format!("merged from {from}: {reason}");
        let p = posting(tx, in_seq, into, in_entries, opens, now, actor, &why);
        tx.post(&p)?;
        tx.save_lots(into, &a_lots)?;
        postings.push(in_seq);
        a.lifetime += b.lifetime;
        tx.notify_posted(&a, &p, moved, None)?;
    }
    // Identities: every one of the merged member's now finds the survivor.
    for ident in std::mem::take(&mut b.identities) {
        tx.index.insert(
            keys::identity(tx.shop, ident.kind, &ident.value),
            into.as_str().as_bytes(),
        )?;
        if !a
            .identities
            .iter()
            .any(|l| l.kind == ident.kind && l.value == ident.value)
        {
            match ident.kind {
                IdentityKind::Email if a.email.is_none() => a.email = Some(ident.value.clone()),
                IdentityKind::Phone if a.phone.is_none() => a.phone = Some(ident.value.clone()),
                _ => {}
            }
            a.identities.push(ident);
        }
    }
    a.first_name = a.first_name.or(b.first_name.clone());
    a.last_name = a.last_name.or(b.last_name.clone());
    a.birthday = a.birthday.or(b.birthday);
    a.consent.email = a.consent.email.or(b.consent.email);
    a.consent.sms = a.consent.sms.or(b.consent.sms);
    for t in &b.tags {
        if !a.tags.contains(t) {
            a.tags.push(t.clone());
        }
    }
    a.sales += b.sales;
    a.store_credit += b.store_credit;
    b.store_credit = rust_decimal::Decimal::ZERO;
    a.updated_at = now;
    b.merged_into = Some(into.clone());
    b.updated_at = now;
    tx.save_member(&a)?;
    tx.save_member(&b)?;
    Ok(Ok(Merged {
        member: a,
        available,
        pending,
        postings,
    }))
}

#[allow(clippy::too_many_arguments)]
fn posting(
    tx: &Tx<'_>,
    seq: u64,
    member: &MemberId,
    entries: Vec<Entry>,
    lots: Vec<LotChange>,
    now: DateTime<Utc>,
    actor: &str,
    reason: &str,
) -> Posting {
    Posting {
        seq,
        shop: tx.shop.clone(),
        rules_version: None,
        cash_back: rust_decimal::Decimal::ZERO,
        member: member.clone(),
        kind: PostingKind::Merge,
        entries,
        lots,
        occurred_at: now,
        recorded_at: now,
        idempotency_key: format!("merge:{seq}"),
        order_id: None,
        explanation: Vec::new(),
        actor: Some(actor.to_string()),
        reason: Some(reason.to_string()),
        reward: None,
        shortfall: Points::ZERO,
    }
}
