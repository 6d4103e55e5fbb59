//! Lots: earned points with an earn date, an optional pending period and an expiry.
//!
//! A member's open lots are kept in one record (sled transactions have no range
//! scans). Spending, clawbacks and expiry take from the oldest lots first.
//! Invariant: the open available lots add up to the member's available balance when it
//! is positive (a negative balance is a debt that new points pay off first), and the
//! pending lots add up to the pending balance.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::journal::LotChange;
use crate::points::Points;

/// One lot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lot {
    /// Id: the seq of the posting that opened it.
    pub id: u64,
    /// When the points were earned.
    pub earned_at: DateTime<Utc>,
    /// Held as pending until then.
    pub pending_until: Option<DateTime<Utc>>,
    /// Lapses then, under a fixed-term policy.
    pub expires_at: Option<DateTime<Utc>>,
    /// The local day it was earned.
    #[serde(default)]
    pub day: Option<chrono::NaiveDate>,
    /// Points put in.
    pub original: Points,
    /// Points still in it.
    pub remaining: Points,
}

impl Lot {
    /// Whether the lot is still pending.
    pub fn is_pending(&self) -> bool {
        self.pending_until.is_some()
    }
}

/// A member's open lots, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberLots {
    /// Open lots (remaining > 0), in id order.
    pub lots: Vec<Lot>,
}

impl MemberLots {
    /// Points in available lots.
    pub fn available(&self) -> Points {
        self.lots
            .iter()
            .filter(|l| !l.is_pending())
            .fold(Points::ZERO, |a, l| a + l.remaining)
    }

    /// Points in pending lots.
    pub fn pending(&self) -> Points {
        self.lots
            .iter()
            .filter(|l| l.is_pending())
            .fold(Points::ZERO, |a, l| a + l.remaining)
    }

    /// Take up to `amount` from available lots, oldest first. Returns the changes and
    /// the points actually taken.
    pub fn take_available(&mut self, amount: Points) -> (Vec<LotChange>, Points) {
        self.take_where(amount, |l| !l.is_pending())
    }

    /// The open lot that points earned on `day` with these terms join, if any.
    pub fn same_day_lot(
        &self,
        day: chrono::NaiveDate,
        pending_until: Option<DateTime<Utc>>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Option<u64> {
        self.lots
            .iter()
            .find(|l| {
                l.day == Some(day) && l.pending_until == pending_until && l.expires_at == expires_at
            })
            .map(|l| l.id)
    }

    /// Take up to `amount` from pending lots, oldest first.
    pub fn take_pending(&mut self, amount: Points) -> (Vec<LotChange>, Points) {
        self.take_where(amount, |l| l.is_pending())
    }

    /// Take up to `amount` from one specific lot.
    pub fn take_from(&mut self, lot: u64, amount: Points) -> (Vec<LotChange>, Points) {
        self.take_where(amount, |l| l.id == lot)
    }

    fn take_where(
        &mut self,
        amount: Points,
        pred: impl Fn(&Lot) -> bool,
    ) -> (Vec<LotChange>, Points) {
        let mut left = amount;
        let mut changes = Vec::new();
        for l in self.lots.iter_mut().filter(|l| pred(l)) {
            if left.0 <= 0 {
                break;
            }
            let take = Points(left.0.min(l.remaining.0));
            if take.0 > 0 {
                l.remaining = l.remaining - take;
                left = left - take;
                changes.push(LotChange::Take {
                    lot: l.id,
                    amount: take,
                });
            }
        }
        self.lots.retain(|l| l.remaining.0 > 0);
        (changes, amount - left)
    }

    /// Apply one recorded change (replay). Returns an error text if it cannot apply.
    pub fn apply(&mut self, change: &LotChange, earned_at: DateTime<Utc>) -> Result<(), String> {
        match change {
            LotChange::Open {
                lot,
                amount,
                pending_until,
                expires_at,
                day,
            } => {
                if amount.0 <= 0 {
                    return Err(format!("lot {lot} opened with {amount} points"));
                }
                self.lots.push(Lot {
                    id: *lot,
                    earned_at,
                    pending_until: *pending_until,
                    expires_at: *expires_at,
                    day: *day,
                    original: *amount,
                    remaining: *amount,
                });
                self.lots.sort_by_key(|l| l.id);
            }
            LotChange::Take { lot, amount } => {
                let l = self
                    .lots
                    .iter_mut()
                    .find(|l| l.id == *lot)
                    .ok_or_else(|| format!("take from lot {lot} which is not open"))?;
                if amount.0 <= 0 || amount.0 > l.remaining.0 {
                    return Err(format!(
                        "take of {amount} from lot {lot} holding {}",
                        l.remaining
                    ));
                }
                l.remaining = l.remaining - *amount;
                self.lots.retain(|l| l.remaining.0 > 0);
            }
            LotChange::TopUp { lot, amount } => {
                let l = self
                    .lots
                    .iter_mut()
                    .find(|l| l.id == *lot)
                    .ok_or_else(|| format!("top-up of lot {lot} which is not open"))?;
                if amount.0 <= 0 {
                    return Err(format!("top-up of {amount} points to lot {lot}"));
                }
                l.original += *amount;
                l.remaining += *amount;
            }
            LotChange::Mature { lot } => {
                let l = self
                    .lots
                    .iter_mut()
                    .find(|l| l.id == *lot)
                    .ok_or_else(|| format!("mature lot {lot} which is not open"))?;
                if l.pending_until.is_none() {
                    return Err(format!("lot {lot} matured twice"));
                }
                l.pending_until = None;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lot(id: u64, n: i64, pending: bool) -> Lot {
        Lot {
            id,
            earned_at: Utc::now(),
            pending_until: pending.then(Utc::now),
            expires_at: None,
            day: None,
            original: Points(n),
            remaining: Points(n),
        }
    }

    #[test]
    fn spending_takes_from_the_oldest_available_lots_first() {
        let mut m = MemberLots {
            lots: vec![lot(1, 10, false), lot(2, 5, true), lot(3, 10, false)],
        };
        let (changes, taken) = m.take_available(Points(15));
        assert_eq!(taken, Points(15));
        assert_eq!(
            changes,
            vec![
                LotChange::Take {
                    lot: 1,
                    amount: Points(10)
                },
                LotChange::Take {
                    lot: 3,
                    amount: Points(5)
                },
            ]
        );
        assert_eq!(m.available(), Points(5));
        assert_eq!(m.pending(), Points(5));
        assert_eq!(m.lots.iter().map(|l| l.id).collect::<Vec<_>>(), vec![2, 3]);
    }

    #[test]
    fn taking_more_than_there_is_takes_what_there_is() {
        let mut m = MemberLots {
            lots: vec![lot(1, 4, false)],
        };
        let (_, taken) = m.take_available(Points(10));
        assert_eq!(taken, Points(4));
        assert!(m.lots.is_empty());
    }

    #[test]
    fn replaying_a_take_larger_than_the_lot_is_an_error() {
        let mut m = MemberLots {
            lots: vec![lot(1, 4, false)],
        };
        assert!(m
            .apply(
                &LotChange::Take {
                    lot: 1,
                    amount: Points(5)
                },
                Utc::now()
            )
            .is_err());
    }
}
