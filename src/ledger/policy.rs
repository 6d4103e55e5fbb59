//! A shop's ledger terms: returns window, expiry and what a clawback may do to a
//! balance. Read from the rules file's `[points]` table; dates are computed in the
//! shop's time zone.

use chrono::{DateTime, Days, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// When earned points lapse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "expiry", rename_all = "snake_case")]
pub enum ExpiryPolicy {
    /// Points never expire.
    Never,
    /// Each lot is valid for `days` local days counting the day it was earned.
    Fixed {
        /// Days of validity.
        days: u32,
    },
    /// All of a member's points lapse after `days` without earning or redeeming.
    Inactivity {
        /// Days of inactivity.
        days: u32,
    },
}

/// What a reversal does when the member has already spent the points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NegativeBalance {
    /// Take the points anyway; the balance goes below zero and later earnings pay it off.
    Allow,
    /// Take what is there, stop at zero, and record the shortfall on the posting.
    Clamp,
}

/// The ledger terms of one shop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerPolicy {
    /// Days earned points stay pending (returns window); 0 = available at once.
    pub pending_days: u32,
    /// Expiry.
    pub expiry: ExpiryPolicy,
    /// Clawback behaviour.
    pub negative_balance: NegativeBalance,
}

impl Default for LedgerPolicy {
    fn default() -> Self {
        LedgerPolicy {
            pending_days: 0,
            expiry: ExpiryPolicy::Never,
            negative_balance: NegativeBalance::Allow,
        }
    }
}

/// The start of the local day `days` days after the local day of `at`: a lot earned on
/// 3 March with 30 days is valid for 30 local days (3 March to 1 April inclusive) and
/// lapses at local midnight starting 2 April.
pub fn local_day_boundary(at: DateTime<Utc>, days: u32, tz: Tz) -> DateTime<Utc> {
    let local_date = at.with_timezone(&tz).date_naive();
    let target = local_date
        .checked_add_days(Days::new(u64::from(days)))
        .unwrap_or(local_date);
    let naive = target.and_time(NaiveTime::MIN);
    // A DST gap at midnight (some zones): take the earliest valid instant after it.
    match tz.from_local_datetime(&naive) {
        chrono::LocalResult::Single(t) => t.with_timezone(&Utc),
        chrono::LocalResult::Ambiguous(a, _) => a.with_timezone(&Utc),
        chrono::LocalResult::None => tz
            .from_local_datetime(&(naive + chrono::Duration::hours(1)))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(at),
    }
}

impl LedgerPolicy {
    /// When points earned at `at` stop being pending (`None`: available at once).
    pub fn pending_until(&self, at: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        (self.pending_days > 0).then(|| local_day_boundary(at, self.pending_days, tz))
    }

    /// When a lot earned at `at` lapses under a fixed-term policy.
    pub fn lot_expiry(&self, at: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        match self.expiry {
            ExpiryPolicy::Fixed { days } => Some(local_day_boundary(at, days, tz)),
            _ => None,
        }
    }

    /// When a member last active at `at` loses everything under an inactivity policy.
    pub fn inactivity_deadline(&self, at: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        match self.expiry {
            ExpiryPolicy::Inactivity { days } => Some(local_day_boundary(at, days, tz)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lot_lapses_at_local_midnight_after_its_last_valid_day() {
        // Earned 23:30 on 3 March in New York (04:30 UTC on 4 March).
        let at = "2026-03-04T04:30:00Z".parse::<DateTime<Utc>>().unwrap();
        let tz: Tz = "America/New_York".parse().unwrap();
        let exp = local_day_boundary(at, 30, tz);
        // Local 3 March + 30 days = 2 April; lapses at 00:00 EDT on 2 April = 04:00 UTC.
        assert_eq!(
            exp,
            "2026-04-02T04:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }

    #[test]
    fn no_pending_days_means_available_at_once() {
        let p = LedgerPolicy::default();
        assert_eq!(p.pending_until(Utc::now(), Tz::UTC), None);
    }
}
