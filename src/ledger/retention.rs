//! Retention: drop records whose work is done, so that the database (and sled's
//! memory, which follows the data it holds: docs/hardening.md, "Memory and retention")
//! does not keep growing with records nobody will read again.
//!
//! Two kinds of record are pruned, each after its own window (`[storage]
//! dedupe_retention_days`, `sent_retention_days`; 0 keeps them forever):
//!
//! - **Dedupe records** (`index`, `d…`): the answer given to a sender's delivery id,
//!   kept so that a retry gets the same answer. Senders stop retrying after hours
//!   (Shopify 4 h, Square at most 72 h). A delivery that still arrives after the window
//!   posts nothing twice: the order record (`e…`) says the sale was scored, a refund's
//!   own record (`f…`) says it was applied, a closed order stays closed. It is answered
//!   `already_scored` instead of its first answer. Order, refund and redemption records
//!   are never pruned.
//! - **Sent records** (`outbox_sent`): what happened to a delivered notification.
//!   `verify` checks that every posting that moves points queued a message, pending or
//!   sent. The posting ids of pruned sent records are therefore kept, as ranges, in
//!   one record per shop (`index`, `n…`, see [`pruned_notices`]), written in the same
//!   transaction as the removal, so that check still holds after pruning.
//!
//! Never touched: the journal, member records and identities, order, refund and
//! redemption records, the sale history (what-if replays need every sale), Idempotency-
//! Keys, the outbox, delivery states, dead letters, suppressed phones and the inbox.
//!
//! Work per pass is bounded ([`Limits`]): a pass never reads a whole tree, because a
//! full read would pull it through sled's cache and raise the memory it is meant to save.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use loyaltyd_adapter::ShopId;
use serde::{Deserialize, Serialize};
use sled::transaction::ConflictableTransactionError;
use sled::Transactional;

use super::{Ledger, LedgerError};
use crate::notify::outbox::{SentRecord, SENT_TREE};

/// How long each kind of record is kept; `None` keeps it forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Dedupe records of sender deliveries, counted from when they were recorded.
    pub dedupe: Option<Duration>,
    /// Records of delivered notifications, counted from when delivery ended.
    pub sent: Option<Duration>,
}

impl RetentionPolicy {
    /// The policy of `[storage]`.
    pub fn from_config(storage: &crate::config::StorageConfig) -> RetentionPolicy {
        let window = |d: Option<std::time::Duration>| d.and_then(|d| Duration::from_std(d).ok());
        RetentionPolicy {
            dedupe: window(storage.dedupe_retention),
            sent: window(storage.sent_retention),
        }
    }
}

/// How much one pass may do.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Records read per shop (dedupe) and in the sent tree, per pass.
    pub budget: usize,
    /// A finished sweep of a shop's dedupe records starts again only this long after
    /// the previous one started (dedupe keys are delivery ids, not times, so every
    /// sweep has to read them all; every 6 hours is plenty for windows of days).
    pub sweep_every: Duration,
    /// The sent tree is read oldest message first; the pass stops after this many
    /// records in a row that are still inside the window (the rest are younger).
    pub young_run: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            // About 3 MB of dedupe records: a pass of the default one-minute job loop
            // stays in the milliseconds and catches up with 20,000 deliveries a minute.
            budget: 20_000,
            sweep_every: Duration::hours(6),
            young_run: 256,
        }
    }
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    /// Records read.
    pub examined: u64,
    /// Dedupe records removed.
    pub dedupe: u64,
    /// Sent records removed.
    pub sent: u64,
}

/// Where each shop's sweep of dedupe records stands (in memory: after a restart the
/// first pass simply starts a new sweep).
#[derive(Default)]
pub(crate) struct Sweeps(Mutex<HashMap<ShopId, Sweep>>);

#[derive(Default, Clone)]
struct Sweep {
    /// Next key to read; `None` when no sweep is under way.
    cursor: Option<Vec<u8>>,
    /// When the current (or last) sweep started.
    started: Option<DateTime<Utc>>,
}

/// The posting ids whose sent records were pruned, for one shop.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PrunedNotices {
    shop: Option<ShopId>,
    /// Inclusive, sorted, disjoint and not adjacent (so a run of notified postings,
    /// which is nearly all of them, is one pair).
    ranges: Vec<(u64, u64)>,
}

impl PrunedNotices {
    fn add(&mut self, ids: &[u64]) {
        self.ranges.extend(ids.iter().map(|&i| (i, i)));
        self.ranges.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(self.ranges.len());
        for (a, b) in self.ranges.drain(..) {
            match merged.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        self.ranges = merged;
    }
}

/// `index` key of a shop's pruned-notice ranges. `n` is used by no other record kind
/// (see keys.rs); the layout follows keys.rs (parts joined by `\0`).
fn pruned_key(shop: &ShopId) -> Vec<u8> {
    let mut k = b"n\0".to_vec();
    k.extend_from_slice(shop.as_str().as_bytes());
    k
}

/// `index` prefix of a shop's dedupe records (keys::dedupe without adapter and id).
fn dedupe_prefix(shop: &ShopId) -> Vec<u8> {
    let mut k = b"d\0".to_vec();
    k.extend_from_slice(shop.as_str().as_bytes());
    k.push(0);
    k
}

/// The one field of a dedupe record retention reads.
#[derive(Deserialize)]
struct Recorded {
    recorded_at: DateTime<Utc>,
}

/// Every posting whose notice was delivered and its sent record pruned, by shop (for
/// `verify`, through [`Ledger::outbox_postings`]).
pub(crate) fn pruned_notices(ledger: &Ledger) -> Result<Vec<(ShopId, u64)>, LedgerError> {
    let mut out = Vec::new();
    for item in ledger.index.scan_prefix(b"n\0") {
        let (_, v) = item?;
        let p: PrunedNotices = serde_json::from_slice(&v)?;
        let Some(shop) = p.shop else {
            return Err(LedgerError::Invariant(
                "a pruned-notice record names no shop".into(),
            ));
        };
        for (a, b) in p.ranges {
            out.extend((a..=b).map(|seq| (shop.clone(), seq)));
        }
    }
    Ok(out)
}

impl Ledger {
    /// One bounded retention pass over `shops` (see the module documentation).
    pub fn prune(
        &self,
        shops: &[ShopId],
        policy: &RetentionPolicy,
        now: DateTime<Utc>,
        limits: &Limits,
    ) -> Result<Pruned, LedgerError> {
        let mut done = Pruned::default();
        if let Some(window) = policy.dedupe {
            for shop in shops {
                self.prune_dedupe(shop, now - window, now, limits, &mut done)?;
            }
        }
        if let Some(window) = policy.sent {
            self.prune_sent(now - window, limits, &mut done)?;
        }
        Ok(done)
    }

    fn prune_dedupe(
        &self,
        shop: &ShopId,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
        limits: &Limits,
        done: &mut Pruned,
    ) -> Result<(), LedgerError> {
        let prefix = dedupe_prefix(shop);
        let mut sweep = self
            .retention
            .0
            .lock()
            .map(|s| s.get(shop).cloned().unwrap_or_default())
            .unwrap_or_default();
        if sweep.cursor.is_none() {
            if sweep.started.is_some_and(|s| now - s < limits.sweep_every) {
                return Ok(());
            }
            sweep = Sweep {
                cursor: Some(prefix.clone()),
                started: Some(now),
            };
        }
        let start = sweep.cursor.clone().unwrap_or_else(|| prefix.clone());
        let mut old = Vec::new();
        let mut next = None;
        for (n, item) in self.index.range(start..).enumerate() {
            let (k, v) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            if n == limits.budget {
                next = Some(k.to_vec());
                break;
            }
            done.examined += 1;
            // A record that does not read is kept: retention never removes what it
            // cannot date.
            if let Ok(r) = serde_json::from_slice::<Recorded>(&v) {
                if r.recorded_at < cutoff {
                    old.push((k, v));
                }
            }
        }
        for (k, v) in old {
            // Only if unchanged since it was read (a compare-and-swap, under the
            // writer gate like every ledger write).
            if self
                .index
                .compare_and_swap(&k, Some(&v), None as Option<&[u8]>)?
                .is_ok()
            {
                done.dedupe += 1;
            }
        }
        sweep.cursor = next;
        if let Ok(mut s) = self.retention.0.lock() {
            s.insert(shop.clone(), sweep);
        }
        Ok(())
    }

    fn prune_sent(
        &self,
        cutoff: DateTime<Utc>,
        limits: &Limits,
        done: &mut Pruned,
    ) -> Result<(), LedgerError> {
        let sent = self.db.open_tree(SENT_TREE)?;
        let mut old = Vec::new();
        let mut young = 0;
        for item in sent.iter().take(limits.budget) {
            let (k, v) = item?;
            done.examined += 1;
            match serde_json::from_slice::<SentRecord>(&v) {
                Ok(r) if r.sent_at < cutoff => {
                    young = 0;
                    old.push((k, v, r.shop, r.posting_id));
                }
                // Unreadable records are kept, like young ones.
                _ => {
                    young += 1;
                    if young == limits.young_run {
                        break;
                    }
                }
            }
        }
        for batch in old.chunks(1000) {
            let _w = self.gate.write();
            let removed = (&*self.index, &sent).transaction(|(index, sent)| {
                let mut by_shop: BTreeMap<&ShopId, Vec<u64>> = BTreeMap::new();
                let mut removed = 0u64;
                for (k, v, shop, posting) in batch {
                    // The notifier may have moved it back to the outbox (a staff retry
                    // of a dead letter); then it is not ours to remove.
                    if sent.get(k)?.as_ref() != Some(v) {
                        continue;
                    }
                    sent.remove(k)?;
                    removed += 1;
                    // 0: a notice about no posting (an expiry warning).
                    if *posting != 0 {
                        by_shop.entry(shop).or_default().push(*posting);
                    }
                }
                for (shop, ids) in by_shop {
                    let key = pruned_key(shop);
                    let mut p: PrunedNotices = match index.get(&key)? {
                        Some(b) => serde_json::from_slice(&b).map_err(|e| {
                            ConflictableTransactionError::Abort(LedgerError::Encoding(e))
                        })?,
                        None => PrunedNotices::default(),
                    };
                    p.shop = Some(shop.clone());
                    p.add(&ids);
                    let bytes = serde_json::to_vec(&p).map_err(|e| {
                        ConflictableTransactionError::Abort(LedgerError::Encoding(e))
                    })?;
                    index.insert(key, bytes)?;
                }
                Ok::<u64, ConflictableTransactionError<LedgerError>>(removed)
            })?;
            done.sent += removed;
        }
        Ok(())
    }
}

/// The daemon's job loop calls this every `[jobs] interval_secs`: one pass with the
/// configured windows. A failure is logged and retried at the next interval; it never
/// holds up the other jobs, and a partial pass leaves nothing half-done (each removal
/// is its own atomic write).
pub fn run(ledger: &Ledger, config: &crate::config::Config, now: DateTime<Utc>) {
    let policy = RetentionPolicy::from_config(&config.storage);
    let shops: Vec<ShopId> = config.shops.iter().map(|s| s.id.clone()).collect();
    match ledger.prune(&shops, &policy, now, &Limits::default()) {
        Ok(p) if p.dedupe + p.sent > 0 => tracing::info!(
            dedupe = p.dedupe,
            sent = p.sent,
            examined = p.examined,
            "retention pruned records past their window"
        ),
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "retention pass failed; will retry"),
    }
    release_free_heap();
}

/// Hand memory the allocator holds free back to the kernel.
///
/// glibc's malloc keeps freed memory in its arenas (up to 8 per core) for reuse, and
/// sled frees a lot: every page it evicts from its cache or rewrites. Measured on the
/// daemon after 60,000 sales (docs/hardening.md, "Memory and retention"): 175 MiB
/// held by malloc, 98 MiB of it in use; `malloc_trim(0)` took RSS from 169 to 117 MiB.
/// Without it, RSS keeps the high-water mark of the free memory too. It walks the
/// arenas once (milliseconds), once per job pass.
fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the kernel; it takes the arenas'
    // own locks and touches no memory in use.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::tests::World;
    use crate::ledger::{Applied, DeliveryOutcome};
    use crate::notify::delivery::{ChannelStatus, DeliveryState, DeliveryStore, Outcome, Route};
    use crate::notify::outbox::OutboxMessage;

    fn days(n: i64) -> Duration {
        Duration::days(n)
    }

    fn policy(dedupe: i64, sent: i64) -> RetentionPolicy {
        RetentionPolicy {
            dedupe: Some(days(dedupe)),
            sent: Some(days(sent)),
        }
    }

    fn dedupe_keys(w: &World) -> usize {
        w.ledger.index.scan_prefix(dedupe_prefix(&w.shop)).count()
    }

    /// Deliver every queued message (console, sent) at `at`.
    fn deliver_all(w: &World, at: DateTime<Utc>) -> usize {
        let store = DeliveryStore::open(w.ledger.db()).unwrap();
        let outcomes: Vec<Outcome> = store
            .pending
            .iter()
            .map(|item| {
                let message: OutboxMessage = serde_json::from_slice(&item.unwrap().1).unwrap();
                let mut state = DeliveryState::default();
                state.channels.insert(
                    Route::Console,
                    ChannelStatus::Sent {
                        provider: "console".into(),
                        provider_id: None,
                        at,
                        attempts: 1,
                    },
                );
                Outcome {
                    message,
                    state,
                    dead: vec![],
                }
            })
            .collect();
        store.record(&outcomes, at).unwrap();
        outcomes.len()
    }

    fn sent_len(w: &World) -> usize {
        w.ledger.db().open_tree(SENT_TREE).unwrap().len()
    }

    #[test]
    fn dedupe_records_go_after_their_window_and_late_redeliveries_post_nothing() {
        let mut w = World::new(Default::default());
        let day0 = w.now;
        let first = w.earn("e1", "o1", "c1", &[("a", "10"), ("b", "20")]);
        w.now = day0 + days(20);
        w.earn("e2", "o2", "c1", &[("a", "5")]);
        assert_eq!(dedupe_keys(&w), 2);

        // Day 25, window 30: nothing is old enough; a redelivery of e1 gets its first
        // answer back.
        let p = w
            .ledger
            .prune(
                std::slice::from_ref(&w.shop),
                &policy(30, 30),
                day0 + days(25),
                &Limits::default(),
            )
            .unwrap();
        assert_eq!((p.dedupe, p.examined), (0, 2));
        match (
            first.clone(),
            w.earn("e1", "o1", "c1", &[("a", "10"), ("b", "20")]),
        ) {
            (Applied::New(a), Applied::Duplicate(b)) => assert_eq!(a, b),
            other => panic!("{other:?}"),
        }

        // Day 31: e1 (day 0) is past the window, e2 (day 20) is not. The sweep that
        // ran on day 25 finished, so a new one starts (more than 6 hours later).
        let p = w
            .ledger
            .prune(
                std::slice::from_ref(&w.shop),
                &policy(30, 30),
                day0 + days(31),
                &Limits::default(),
            )
            .unwrap();
        assert_eq!(p.dedupe, 1);
        assert_eq!(dedupe_keys(&w), 1);
        assert!(w
            .ledger
            .delivery(&w.shop, "shopify", "e1")
            .unwrap()
            .is_none());
        assert!(w
            .ledger
            .delivery(&w.shop, "shopify", "e2")
            .unwrap()
            .is_some());

        // A late redelivery of e1 posts nothing: the order record says it was scored.
        let postings = w.ledger.journal_len(&w.shop).unwrap();
        w.now = day0 + days(31);
        match w.earn("e1", "o1", "c1", &[("a", "10"), ("b", "20")]) {
            Applied::New(r) => assert!(
                matches!(r.outcome, DeliveryOutcome::AlreadyScored { .. }),
                "{r:?}"
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(w.ledger.journal_len(&w.shop).unwrap(), postings);
        assert_eq!(w.balances("c1"), (35, 0));

        // A refund of the order whose dedupe record went reverses exactly its line,
        // once, and a redelivery of the refund (new delivery id) reverses nothing.
        w.refund("r1", "o1", "refund-1", &[("b", "20")]);
        assert_eq!(w.balances("c1"), (15, 0));
        w.refund("r1-again", "o1", "refund-1", &[("b", "20")]);
        assert_eq!(w.balances("c1"), (15, 0));
        w.cancel("c-o1", "o1");
        assert_eq!(w.balances("c1"), (5, 0));
        w.assert_verified();
    }

    #[test]
    fn order_refund_and_history_records_are_never_pruned() {
        let mut w = World::new(Default::default());
        let day0 = w.now;
        w.earn("e1", "o1", "c1", &[("a", "10")]);
        w.refund("r1", "o1", "refund-1", &[("a", "4")]);
        let before: Vec<_> = w
            .ledger
            .index
            .iter()
            .map(|i| i.unwrap())
            .filter(|(k, _)| !k.starts_with(b"d\0"))
            .collect();
        let journal: Vec<_> = w.ledger.journal(&w.shop).map(|p| p.unwrap()).collect();
        w.now = day0 + days(400);
        let p = w
            .ledger
            .prune(
                std::slice::from_ref(&w.shop),
                &policy(3, 1),
                w.now,
                &Limits::default(),
            )
            .unwrap();
        assert_eq!(p.dedupe, 2);
        let after: Vec<_> = w.ledger.index.iter().map(|i| i.unwrap()).collect();
        assert_eq!(before, after);
        let journal_after: Vec<_> = w.ledger.journal(&w.shop).map(|p| p.unwrap()).collect();
        assert_eq!(journal, journal_after);
        w.assert_verified();
    }

    #[test]
    fn sent_records_go_after_their_window_and_verify_still_sees_every_notice() {
        let mut w = World::new(Default::default());
        let day0 = w.now;
        for i in 0..5 {
            w.earn(&format!("e{i}"), &format!("o{i}"), "c1", &[("a", "10")]);
        }
        assert_eq!(deliver_all(&w, day0), 5);
        w.now = day0 + days(10);
        for i in 5..8 {
            w.earn(&format!("e{i}"), &format!("o{i}"), "c1", &[("a", "10")]);
        }
        assert_eq!(deliver_all(&w, w.now), 3);
        // Two more stay queued (not delivered): never touched.
        w.earn("e8", "o8", "c2", &[("a", "10")]);
        w.earn("e9", "o9", "c2", &[("a", "10")]);
        assert_eq!(sent_len(&w), 8);
        w.assert_verified();

        let shops = [w.shop.clone()];
        let p = w
            .ledger
            .prune(&shops, &policy(30, 7), day0 + days(12), &Limits::default())
            .unwrap();
        assert_eq!(p.sent, 5);
        assert_eq!(sent_len(&w), 3);
        w.assert_verified();

        // Idempotent, and the rest go once they are old enough.
        let p = w
            .ledger
            .prune(&shops, &policy(30, 7), day0 + days(12), &Limits::default())
            .unwrap();
        assert_eq!(p.sent, 0);
        let p = w
            .ledger
            .prune(&shops, &policy(30, 7), day0 + days(18), &Limits::default())
            .unwrap();
        assert_eq!(p.sent, 3);
        assert_eq!(sent_len(&w), 0);
        assert_eq!(
            w.ledger
                .db()
                .open_tree(crate::notify::outbox::PENDING_TREE)
                .unwrap()
                .len(),
            2
        );
        w.assert_verified();
        let notices = pruned_notices(&w.ledger).unwrap();
        assert_eq!(
            notices.iter().map(|(_, s)| *s).collect::<Vec<_>>(),
            (1..=8).collect::<Vec<_>>()
        );
        let r: PrunedNotices =
            serde_json::from_slice(&w.ledger.index.get(pruned_key(&w.shop)).unwrap().unwrap())
                .unwrap();
        assert_eq!(r.ranges, vec![(1, 8)]);
    }

    #[test]
    fn a_posting_that_never_queued_a_message_is_still_found_by_verify() {
        // Pruning must not hide a missing notice: only the posting ids of sent records
        // actually removed are kept.
        let w = World::new(Default::default());
        w.earn("e1", "o1", "c1", &[("a", "10")]);
        w.earn("e2", "o2", "c1", &[("a", "10")]);
        // Lose posting 2's message (as a bug would).
        let pending = w
            .ledger
            .db()
            .open_tree(crate::notify::outbox::PENDING_TREE)
            .unwrap();
        let (k2, _) = pending.last().unwrap().unwrap();
        pending.remove(k2).unwrap();
        deliver_all(&w, w.now);
        w.ledger
            .prune(
                std::slice::from_ref(&w.shop),
                &policy(30, 1),
                w.now + days(2),
                &Limits::default(),
            )
            .unwrap();
        let v = w.ledger.verify(&w.shop).unwrap();
        assert!(
            v.problems
                .iter()
                .any(|p| p.contains("no outbox message (first: 2)")),
            "{:?}",
            v.problems
        );
    }

    #[test]
    fn a_pass_reads_at_most_its_budget_and_a_sweep_resumes_where_it_stopped() {
        let mut w = World::new(Default::default());
        let day0 = w.now;
        for i in 0..25 {
            w.earn(&format!("e{i:02}"), &format!("o{i}"), "c1", &[("a", "1")]);
        }
        w.now = day0 + days(40);
        let limits = Limits {
            budget: 10,
            ..Limits::default()
        };
        let shops = [w.shop.clone()];
        let pol = RetentionPolicy {
            dedupe: Some(days(30)),
            sent: None,
        };
        let mut removed = vec![];
        for _ in 0..3 {
            let p = w.ledger.prune(&shops, &pol, w.now, &limits).unwrap();
            assert!(p.examined <= 10, "{p:?}");
            removed.push(p.dedupe);
        }
        assert_eq!(removed, vec![10, 10, 5]);
        assert_eq!(dedupe_keys(&w), 0);
        // The sweep is done; the next starts 6 hours after this one started.
        w.earn("late", "o-late", "c1", &[("a", "1")]);
        let p = w
            .ledger
            .prune(&shops, &pol, w.now + days(31), &limits)
            .unwrap();
        assert_eq!(p.dedupe, 1);
        w.assert_verified();
    }

    #[test]
    fn windows_of_none_keep_everything() {
        let mut w = World::new(Default::default());
        let day0 = w.now;
        w.earn("e1", "o1", "c1", &[("a", "10")]);
        deliver_all(&w, day0);
        w.now = day0 + days(3650);
        let p = w
            .ledger
            .prune(
                std::slice::from_ref(&w.shop),
                &RetentionPolicy {
                    dedupe: None,
                    sent: None,
                },
                w.now,
                &Limits::default(),
            )
            .unwrap();
        assert_eq!(p, Pruned::default());
        assert_eq!((dedupe_keys(&w), sent_len(&w)), (1, 1));
    }

    #[test]
    fn ranges_merge_runs_and_keep_gaps() {
        let mut p = PrunedNotices::default();
        p.add(&[3, 1, 2, 7]);
        p.add(&[5, 4, 4]);
        assert_eq!(p.ranges, vec![(1, 5), (7, 7)]);
        p.add(&[6]);
        assert_eq!(p.ranges, vec![(1, 7)]);
    }
}
