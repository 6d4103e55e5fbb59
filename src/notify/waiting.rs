//! How many messages the outbox holds, answered without walking it.
//!
//! sled's `Tree::len` reads every key. `/metrics` and `/readyz` take no token and ask
//! on every request, so during a provider outage, with a large backlog, each scrape
//! cost a walk of the whole outbox on an async thread: four clients polling `/metrics`
//! stopped webhooks from being answered (docs/hardening.md, "Outbox depth"). Instead
//! the worker's outbox subscription keeps the set of ids that are in the outbox, and
//! one scan at start-up seeds it.
//!
//! A set rather than a counter: sled reports an insert over an existing key (a
//! dead-letter retry of a message still pending on another channel) and a removal of a
//! missing key like any other, and only the ids tell them apart.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

/// The ids in the outbox, exact once [`Waiting::seed`] ran and while the subscription
/// runs; until then, and after it stops, [`Waiting::count`] is `None` and callers count
/// the tree.
#[derive(Debug, Default)]
pub struct Waiting {
    ids: Mutex<HashSet<u64>>,
    seeded: AtomicBool,
    stopped: AtomicBool,
}

impl Waiting {
    fn lock(&self) -> MutexGuard<'_, HashSet<u64>> {
        self.ids.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The subscription saw `id` written to the outbox.
    pub fn inserted(&self, id: u64) {
        self.lock().insert(id);
    }

    /// The subscription saw `id` removed from the outbox.
    pub fn removed(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Add the ids a scan found. Sound only when the subscription started before the
    /// scan and nothing removed a message since (at start-up, before the worker's
    /// first pass, the only remover): every message is then in the scan, in the
    /// subscription's events, or in both.
    pub fn seed(&self, ids: impl IntoIterator<Item = u64>) {
        self.lock().extend(ids);
        self.seeded.store(true, Ordering::Release);
    }

    /// The subscription ended (the database is closing): the set no longer follows.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.lock().clear();
    }

    /// Messages in the outbox, if the set is being kept.
    pub fn count(&self) -> Option<usize> {
        if self.seeded.load(Ordering::Acquire) && !self.stopped.load(Ordering::Acquire) {
            Some(self.lock().len())
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_is_unknown_until_seeded_and_after_the_subscription_stops() {
        let w = Waiting::default();
        w.inserted(1);
        assert_eq!(w.count(), None, "not seeded yet: callers count the tree");
        w.seed([2, 3]);
        assert_eq!(w.count(), Some(3), "events before the seed are kept");
        w.stop();
        assert_eq!(w.count(), None);
    }

    #[test]
    fn overwrites_and_removals_of_missing_ids_do_not_skew_the_count() {
        let w = Waiting::default();
        w.seed([1, 2]);
        w.inserted(2); // a retry over a message still pending
        w.inserted(1); // seen by the scan and by the subscription
        w.removed(7); // never there
        assert_eq!(w.count(), Some(2));
        w.removed(1);
        w.removed(1);
        assert_eq!(w.count(), Some(1));
    }
}
