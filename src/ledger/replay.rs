//! Rebuild a shop's balances and lots from its journal alone.
//!
//! Used by `verify` (compare with the stored state) and by reports (what happened to
//! each lot). Replaying is deterministic: the same journal always gives the same state.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};

use super::journal::{LotChange, Posting, PostingKind};
use super::lots::MemberLots;
use crate::member::MemberId;
use crate::points::Points;

/// What happened to one lot over its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LotHistory {
    /// Lot id.
    pub lot: u64,
    /// Member.
    pub member: MemberId,
    /// When earned.
    pub earned_at: DateTime<Utc>,
    /// Lapses then (fixed-term expiry).
    pub expires_at: Option<DateTime<Utc>>,
    /// Points put in.
    pub original: Points,
    /// Points taken out, by the kind of posting that took them.
    pub taken: BTreeMap<PostingKind, Points>,
}

impl LotHistory {
    /// Points still in the lot.
    pub fn remaining(&self) -> Points {
        self.taken.values().fold(self.original, |a, t| a - *t)
    }
}

/// The state a journal replays to.
#[derive(Debug, Default)]
pub struct Replayed {
    /// Balance per account key.
    pub balances: BTreeMap<String, Points>,
    /// Open lots per member.
    pub lots: BTreeMap<MemberId, MemberLots>,
    /// Every lot ever opened, with its history.
    pub history: BTreeMap<u64, LotHistory>,
    /// Postings replayed.
    pub postings: u64,
    /// Problems found while replaying (empty when the journal is sound).
    pub problems: Vec<String>,
}

/// Replay postings in journal order, up to `until` (recorded time), if given.
pub fn replay<I>(postings: I, until: Option<DateTime<Utc>>) -> Replayed
where
    I: IntoIterator<Item = Posting>,
{
    let mut r = Replayed::default();
    let mut keys = HashSet::new();
    for p in postings {
        if until.is_some_and(|u| p.recorded_at >= u) {
            break;
        }
        r.postings += 1;
        if p.seq != r.postings {
            r.problems.push(format!(
                "posting seq {} found where {} was expected (gap or reordering)",
                p.seq, r.postings
            ));
        }
        if !p.is_balanced() {
            r.problems
                .push(format!("posting {} does not sum to zero", p.seq));
        }
        if !keys.insert(p.idempotency_key.clone()) {
            r.problems.push(format!(
                "idempotency key {:?} applied twice (posting {})",
                p.idempotency_key, p.seq
            ));
        }
        for e in &p.entries {
            let b = r.balances.entry(e.account.key()).or_default();
            *b += e.amount;
        }
        let lots = r.lots.entry(p.member.clone()).or_default();
        for c in &p.lots {
            if let Err(e) = lots.apply(c, p.occurred_at) {
                r.problems.push(format!("posting {}: {e}", p.seq));
                continue;
            }
            match c {
                LotChange::Open {
                    lot,
                    amount,
                    expires_at,
                    ..
                } => {
                    r.history.insert(
                        *lot,
                        LotHistory {
                            lot: *lot,
                            member: p.member.clone(),
                            earned_at: p.occurred_at,
                            expires_at: *expires_at,
                            original: *amount,
                            taken: BTreeMap::new(),
                        },
                    );
                }
                LotChange::Take { lot, amount } => {
                    if let Some(h) = r.history.get_mut(lot) {
                        *h.taken.entry(p.kind).or_default() += *amount;
                    }
                }
                LotChange::TopUp { lot, amount } => {
                    if let Some(h) = r.history.get_mut(lot) {
                        h.original += *amount;
                    }
                }
                LotChange::Mature { .. } => {}
            }
        }
    }
    r.lots.retain(|_, l| !l.lots.is_empty());
    r.balances.retain(|_, b| b.0 != 0);
    r
}
