//! `loyaltyd verify`: recompute every balance and lot from the journal and compare
//! with what is stored; check the journal's own invariants.

use std::collections::{BTreeMap, HashSet};

use loyaltyd_adapter::ShopId;

use super::journal::Account;
use super::replay::replay;
use super::{Ledger, LedgerError};
use crate::points::Points;

/// The findings for one shop.
#[derive(Debug, Default)]
pub struct Verification {
    /// Postings checked.
    pub postings: u64,
    /// Everything that differs or breaks an invariant (empty when all agree).
    pub problems: Vec<String>,
}

impl Ledger {
    /// Check one shop's ledger.
    pub fn verify(&self, shop: &ShopId) -> Result<Verification, LedgerError> {
        self.verify_with_progress(shop, &mut |_| {})
    }

    /// [`Ledger::verify`], calling `progress` with the postings read as it goes.
    pub fn verify_with_progress(
        &self,
        shop: &ShopId,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Verification, LedgerError> {
        let mut postings = Vec::new();
        for p in self.journal(shop) {
            postings.push(p?);
            if postings.len() % 256 == 0 {
                progress(256);
            }
        }
        progress(postings.len() as u64 % 256);
        let notified: HashSet<u64> = self
            .outbox_postings()?
            .into_iter()
            .filter(|(s, _)| s == shop)
            .map(|(_, p)| p)
            .collect();
        let mut missing_notice = Vec::new();
        let mut credit: BTreeMap<crate::member::MemberId, rust_decimal::Decimal> = BTreeMap::new();
        let mut v_shop = Vec::new();
        let mut total = Points::ZERO;
        for p in &postings {
            if &p.shop != shop {
                v_shop.push(p.seq);
            }
            total += p.entries.iter().fold(Points::ZERO, |a, e| a + e.amount);
            // Every posting that moves a member's points announces it — except an
            // import: `loyaltyd import balances` brings opening balances over from the
            // shop's previous program, the members already know them, and texting
            // every member of a migrated program at once would be spam (and, for
            // members who never consented here, unlawful). So imports queue no
            // message and are exempt. So are merges: staff joined two records of one
            // person, who hears about it once (the surviving member), if at all.
            let should_notify = !matches!(
                p.kind,
                super::journal::PostingKind::Imported | super::journal::PostingKind::Merge
            ) && (p.member_available_delta().0 != 0
                || p.member_pending_delta().0 != 0);
            *credit.entry(p.member.clone()).or_default() += p.cash_back;
            if should_notify && !notified.contains(&p.seq) {
                missing_notice.push(p.seq);
            }
        }
        let r = replay(postings, None);
        let mut v = Verification {
            postings: r.postings,
            problems: r.problems,
        };
        if let Some(first) = v_shop.first() {
            v.problems.push(format!(
                "{} posting(s) name another shop (first: {first})",
                v_shop.len()
            ));
        }
        if total.0 != 0 {
            v.problems
                .push(format!("the whole journal sums to {total}, not 0"));
        }
        if let Some(first) = missing_notice.first() {
            v.problems.push(format!(
                "{} posting(s) have no outbox message (first: {first})",
                missing_notice.len()
            ));
        }
        let last = self.journal_len(shop)?;
        if last != v.postings {
            v.problems.push(format!(
                "sequence counter says {last} postings, journal has {}",
                v.postings
            ));
        }

        let stored: BTreeMap<String, Points> = self
            .all_balances(shop)?
            .into_iter()
            .filter(|(_, b)| b.0 != 0)
            .collect();
        for (k, b) in &r.balances {
            match stored.get(k) {
                Some(s) if s == b => {}
                Some(s) => v
                    .problems
                    .push(format!("balance {k}: stored {s}, journal gives {b}")),
                None => v
                    .problems
                    .push(format!("balance {k}: stored 0, journal gives {b}")),
            }
        }
        for (k, s) in &stored {
            if !r.balances.contains_key(k) {
                v.problems
                    .push(format!("balance {k}: stored {s}, journal gives 0"));
            }
        }

        for m in self.all_members(shop)? {
            let journal = credit.get(&m.id).copied().unwrap_or_default();
            if journal != m.store_credit {
                v.problems.push(format!(
                    "store credit of member {}: stored {}, journal gives {journal}",
                    m.id, m.store_credit
                ));
            }
        }
        let stored_lots: BTreeMap<_, _> = self.all_lots(shop)?.into_iter().collect();
        for (m, lots) in &r.lots {
            if stored_lots.get(m) != Some(lots) {
                v.problems.push(format!(
                    "lots of member {m}: stored {:?}, journal gives {:?}",
                    stored_lots.get(m).map(|l| l.lots.len()),
                    lots.lots.len()
                ));
            }
            let available = r
                .balances
                .get(&Account::MemberAvailable(m.clone()).key())
                .copied()
                .unwrap_or_default();
            let pending = r
                .balances
                .get(&Account::MemberPending(m.clone()).key())
                .copied()
                .unwrap_or_default();
            if lots.available() != Points(available.0.max(0)) {
                v.problems.push(format!(
                    "member {m}: available lots hold {}, available balance is {available}",
                    lots.available()
                ));
            }
            if lots.pending() != pending {
                v.problems.push(format!(
                    "member {m}: pending lots hold {}, pending balance is {pending}",
                    lots.pending()
                ));
            }
        }
        for m in stored_lots.keys() {
            if !r.lots.contains_key(m) {
                v.problems
                    .push(format!("lots of member {m} stored but not in the journal"));
            }
        }
        for (k, b) in &r.balances {
            let member = k.strip_prefix("member/").and_then(|rest| {
                rest.strip_suffix("/available")
                    .or(rest.strip_suffix("/pending"))
            });
            if let Some(m) = member.and_then(crate::member::MemberId::parse) {
                if b.0 > 0 && !r.lots.contains_key(&m) {
                    v.problems
                        .push(format!("{k} is {b} but the member has no open lots"));
                }
            }
            if k.ends_with("/pending") && b.0 < 0 {
                v.problems.push(format!("{k} is negative ({b})"));
            }
        }
        Ok(v)
    }
}
