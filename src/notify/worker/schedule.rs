//! When each outbox message is next due, kept in memory so that a wake-up reads only the
//! messages that are due instead of the whole outbox.
//!
//! The outbox and the delivery state stay in sled and remain the truth; this is an index
//! that can always be rebuilt from them. Per waiting message it holds a message id and a
//! due time (two 8-byte numbers, in a `BTreeSet` for the order and a `HashMap` for
//! updates: 50 to 70 bytes per message, about 65 MiB for a million, measured in
//! `docs/hardening.md`). It is built
//! at start-up by one scan of the outbox, and learns about new messages from a sled
//! subscription on the outbox tree: every insert, whether from the ledger's
//! transactions or from a dead-letter retry, reaches the index without a scan.
//!
//! It also keeps, per channel, a circuit breaker: after a run of retryable failures (or
//! a 429 with `Retry-After`) the channel pauses. Messages that fall due meanwhile are
//! parked (read once, then left alone without spending attempts) until one probe finds
//! the provider back, when they all become due at once. That keeps a failing provider
//! from being hammered and an outage from costing a read per message per retry, and
//! lets the backlog go as soon as the provider answers instead of when each message's
//! own backoff runs out. Parked messages older than `max_age` are still taken out on
//! time, to be dead-lettered.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use loyaltyd_adapter::ShopId;

use super::super::delivery::{ChannelStatus, DeliveryState, DeliveryStore, Route};
use super::super::outbox::OutboxMessage;
use super::Wakeup;
use crate::member::MemberId;

/// How a channel's breaker trips and how long it stays open, from `[notify]`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Trip {
    /// The first pause (`retry_base_ms`); it doubles with each failed probe.
    pub base: Duration,
    /// No pause is longer than this (`retry_cap_secs`)...
    pub cap: Duration,
    /// ...nor than this (`breaker_max_open_secs`, default 10 s): recovery is noticed
    /// within it, and a probe this often costs a failing provider nothing.
    pub max_open: Duration,
    /// Retryable failures in a row, with no success between, that open the breaker
    /// (`breaker_failures`, default 5: a single 503 is a provider's normal noise, five
    /// in a row is an outage).
    pub failures: u32,
}

/// Due times are whole milliseconds, rounded up so that a message taken as due at
/// `now` really is due at `now`.
pub(super) fn due_ms(t: DateTime<Utc>) -> i64 {
    let ms = t.timestamp_millis();
    if t.timestamp_subsec_nanos() % 1_000_000 == 0 {
        ms
    } else {
        ms.saturating_add(1)
    }
}

/// A message id from an outbox key (big-endian `u64`).
pub(super) fn id_of(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}

/// Message ids inserted into the outbox since the worker last looked, with when they
/// were seen, filled by the subscription thread.
#[derive(Default)]
pub(super) struct Fresh {
    ids: Mutex<Vec<(u64, i64)>>,
    /// The subscription thread is running (else the worker falls back to sweeps).
    alive: AtomicBool,
}

impl Fresh {
    fn lock(&self) -> MutexGuard<'_, Vec<(u64, i64)>> {
        self.ids.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Subscribe to the outbox tree: pass the ids of inserts to the worker, and keep the
/// store's set of waiting ids (its `depth`) up to date with inserts and removals.
///
/// sled blocks a writer when a subscriber's 1024-event buffer is full, so the events are
/// drained by a thread of its own that does nothing else (never by an async task, which
/// could wait behind the very writers it blocks).
pub(super) fn watch(store: &DeliveryStore, wakeup: Wakeup) -> Arc<Fresh> {
    let fresh = Arc::new(Fresh::default());
    let subscriber = store.pending.watch_prefix(Vec::<u8>::new());
    let feed = fresh.clone();
    let waiting = store.waiting.clone();
    feed.alive.store(true, Ordering::Relaxed);
    let spawned = std::thread::Builder::new()
        .name("outbox-watch".into())
        .spawn(move || {
            for event in subscriber {
                match event {
                    sled::Event::Insert { key, .. } => {
                        if let Some(id) = id_of(&key) {
                            waiting.inserted(id);
                            feed.lock().push((id, Utc::now().timestamp_millis()));
                            wakeup.wake();
                        }
                    }
                    sled::Event::Remove { key } => {
                        if let Some(id) = id_of(&key) {
                            waiting.removed(id);
                        }
                    }
                }
            }
            // The database is closing.
            waiting.stop();
            feed.alive.store(false, Ordering::Relaxed);
        });
    if let Err(e) = spawned {
        fresh.alive.store(false, Ordering::Relaxed);
        tracing::error!(error = %e, "cannot watch the outbox; the worker will sweep it every second instead");
    }
    fresh
}

/// Every message in the outbox with the earliest `next_at` of its pending channels
/// (`i64::MIN`, due at once, when it has no state yet). One pass over the outbox keys and
/// a point read of each state: done at start-up, at shutdown and in the fallback sweeps,
/// never per wake-up.
///
/// `complete` is false when a key could not be read or was not a message id: the scan
/// then cannot seed the outbox count.
pub(super) fn scan(store: &DeliveryStore) -> Scan {
    let mut out = Vec::new();
    let mut complete = true;
    for key in store.pending.iter().keys() {
        let Some(id) = key.ok().and_then(|k| id_of(&k)) else {
            complete = false;
            continue;
        };
        let due = match store.state(id) {
            Ok(Some(s)) => s
                .channels
                .values()
                .filter_map(|c| match c {
                    ChannelStatus::Pending { next_at, .. } => Some(due_ms(*next_at)),
                    _ => None,
                })
                .min()
                .unwrap_or(i64::MIN),
            // Undecodable or missing: let the worker look (and report) once.
            _ => i64::MIN,
        };
        out.push((id, due));
    }
    Scan {
        found: out,
        complete,
    }
}

/// What [`scan`] found: each message with when it is due.
pub(super) struct Scan {
    pub found: Vec<(u64, i64)>,
    pub complete: bool,
}

/// What a channel's breaker lets through now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Gate {
    /// Closed: send.
    Open,
    /// Half-open: this many more sends this pass, to probe.
    Probe,
    /// Open: nothing until then (ms).
    Wait(i64),
}

/// One channel's breaker.
#[derive(Debug, Default, Clone)]
struct Breaker {
    /// Retryable failures in a row.
    failures: u32,
    /// Times it opened in a row (for the growing pause).
    opened: u32,
    /// Paused until (ms); `None`: closed.
    until: Option<i64>,
}

/// What a pass saw from one channel's provider.
#[derive(Debug, Default, Clone)]
pub(super) struct ChannelReport {
    /// Accepted sends.
    pub successes: u32,
    /// Retryable failures (5xx, 429, timeouts, connection errors).
    pub failures: u32,
    /// The longest `Retry-After` among them.
    pub retry_after: Option<Duration>,
}

/// The due-time index, the coalescing holds and the breakers.
pub(super) struct Schedule {
    by_due: BTreeSet<(i64, u64)>,
    due_of: HashMap<u64, i64>,
    /// Messages inside their coalescing window, by member: they ride along when another
    /// message of the member goes out first. Bounded by the messages of one window.
    held: HashMap<(ShopId, MemberId), BTreeSet<u64>>,
    held_len: usize,
    fresh: Arc<Fresh>,
    breakers: BTreeMap<Route, Breaker>,
    /// Messages waiting for a paused channel, by channel, as (queued at ms, id): oldest
    /// first, so the ones past `max_age` are found without reading the others.
    parked: BTreeMap<Route, BTreeSet<(i64, u64)>>,
    parked_len: usize,
}

impl Schedule {
    /// An empty schedule fed by `fresh`.
    pub fn new(fresh: Arc<Fresh>) -> Schedule {
        Schedule {
            by_due: BTreeSet::new(),
            due_of: HashMap::new(),
            held: HashMap::new(),
            held_len: 0,
            fresh,
            breakers: BTreeMap::new(),
            parked: BTreeMap::new(),
            parked_len: 0,
        }
    }

    /// Messages waiting for a paused channel.
    pub fn parked_len(&self) -> usize {
        self.parked_len
    }

    /// `msg` waits on `route` until the channel resumes (or a probe or its age takes it
    /// out): it leaves the due-time index for this channel.
    pub fn park(&mut self, route: Route, msg: &OutboxMessage) {
        if self
            .parked
            .entry(route)
            .or_default()
            .insert((due_ms(msg.created_at), msg.id))
        {
            self.parked_len += 1;
        }
    }

    /// Whether `msg` is parked on `route`.
    pub fn is_parked(&self, route: Route, msg: &OutboxMessage) -> bool {
        self.parked
            .get(&route)
            .is_some_and(|p| p.contains(&(due_ms(msg.created_at), msg.id)))
    }

    /// Before a pass: make due the parked messages that must be looked at now — one per
    /// channel whose breaker waits for a probe, and (at most `limit`) those older than
    /// `max_age`, so they are dead-lettered on time.
    pub fn release(&mut self, now: DateTime<Utc>, max_age: Duration, limit: usize) {
        let now_ms = now.timestamp_millis();
        let max_age_ms = i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
        let probing: Vec<Route> = self
            .parked
            .keys()
            .copied()
            .filter(|r| self.gate(*r, now_ms) == Gate::Probe)
            .collect();
        let mut out = Vec::new();
        for (route, set) in self.parked.iter_mut() {
            if probing.contains(route) {
                out.extend(set.pop_first());
            }
            while out.len() < limit {
                match set.first() {
                    Some(&(queued, _)) if queued.saturating_add(max_age_ms) < now_ms => {
                        out.extend(set.pop_first());
                    }
                    _ => break,
                }
            }
        }
        self.parked.retain(|_, set| !set.is_empty());
        self.parked_len -= out.len();
        for (_, id) in out {
            self.set_min(id, now_ms);
        }
    }

    /// The channel resumed: everything parked on it is due now.
    fn unpark_all(&mut self, route: Route, now_ms: i64) {
        let Some(set) = self.parked.remove(&route) else {
            return;
        };
        self.parked_len -= set.len();
        for (_, id) in set {
            self.set_min(id, now_ms);
        }
    }

    /// Whether new messages arrive through the subscription (else sweeps are needed).
    pub fn watching(&self) -> bool {
        self.fresh.alive.load(Ordering::Relaxed)
    }

    /// Messages tracked.
    pub fn len(&self) -> usize {
        self.due_of.len()
    }

    /// Messages held for coalescing.
    pub fn held_len(&self) -> usize {
        self.held_len
    }

    /// Set when `id` is next due.
    pub fn set(&mut self, id: u64, due: i64) {
        if let Some(old) = self.due_of.insert(id, due) {
            if old == due {
                return;
            }
            self.by_due.remove(&(old, id));
        }
        self.by_due.insert((due, id));
    }

    /// Make `id` due at `due` unless it is due earlier already.
    pub fn set_min(&mut self, id: u64, due: i64) {
        match self.due_of.get(&id) {
            Some(old) if *old <= due => {}
            _ => self.set(id, due),
        }
    }

    /// Add `id` at `due` only if it is not tracked (sweeps: the index knows better).
    pub fn add_missing(&mut self, id: u64, due: i64) {
        if !self.due_of.contains_key(&id) {
            self.set(id, due);
        }
    }

    /// Stop tracking `id` (delivered, or no longer in the outbox).
    pub fn forget(&mut self, id: u64) {
        if let Some(old) = self.due_of.remove(&id) {
            self.by_due.remove(&(old, id));
        }
    }

    /// Move the ids the subscription saw into the index, due when they were seen.
    pub fn take_fresh(&mut self) -> usize {
        let fresh = std::mem::take(&mut *self.fresh.lock());
        let n = fresh.len();
        for (id, seen) in fresh {
            self.set_min(id, seen);
        }
        n
    }

    /// Up to `limit` ids due at `now` (ms), earliest first, taken out of the index: the
    /// caller puts back each one it does not finish.
    pub fn pop_due(&mut self, now: i64, limit: usize) -> Vec<u64> {
        let mut out = Vec::new();
        while out.len() < limit {
            let Some(&(due, id)) = self.by_due.first() else {
                break;
            };
            if due > now {
                break;
            }
            self.by_due.pop_first();
            self.due_of.remove(&id);
            out.push(id);
        }
        out
    }

    /// When the earliest tracked message is due (ms).
    pub fn next_due(&self) -> Option<i64> {
        self.by_due.first().map(|(d, _)| *d)
    }

    /// When the worker should look next: the earliest due message, or the end of a
    /// pause that has messages parked behind it (their probe).
    pub fn next_wake(&self) -> Option<i64> {
        let probes = self
            .parked
            .keys()
            .filter_map(|r| self.breakers.get(r).and_then(|b| b.until));
        self.next_due().into_iter().chain(probes).min()
    }

    /// Remember that `id` waits in its coalescing window.
    pub fn hold(&mut self, shop: &ShopId, member: &MemberId, id: u64) {
        if self
            .held
            .entry((shop.clone(), member.clone()))
            .or_default()
            .insert(id)
        {
            self.held_len += 1;
        }
    }

    /// `id` no longer waits in a coalescing window.
    pub fn unhold(&mut self, shop: &ShopId, member: &MemberId, id: u64) {
        if self.held.is_empty() {
            return;
        }
        let key = (shop.clone(), member.clone());
        if let Some(set) = self.held.get_mut(&key) {
            if set.remove(&id) {
                self.held_len -= 1;
            }
            if set.is_empty() {
                self.held.remove(&key);
            }
        }
    }

    /// The member's messages waiting in a coalescing window.
    pub fn held_for(&self, shop: &ShopId, member: &MemberId) -> Vec<u64> {
        self.held
            .get(&(shop.clone(), member.clone()))
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    /// What the channel's breaker lets through at `now` (ms).
    pub fn gate(&self, route: Route, now: i64) -> Gate {
        match self.breakers.get(&route).and_then(|b| b.until) {
            None => Gate::Open,
            Some(until) if now < until => Gate::Wait(until),
            Some(_) => Gate::Probe,
        }
    }

    /// Whether the channel's breaker is open or probing.
    pub fn tripped(&self, route: Route) -> bool {
        self.breakers.get(&route).is_some_and(|b| b.until.is_some())
    }

    /// Update a channel's breaker with what a pass saw; returns whether it is open now.
    pub fn report(
        &mut self,
        route: Route,
        r: &ChannelReport,
        now: DateTime<Utc>,
        trip: &Trip,
    ) -> bool {
        let b = self.breakers.entry(route).or_default();
        if r.successes > 0 {
            // The provider answers again: everything waiting may go.
            *b = Breaker::default();
            self.unpark_all(route, now.timestamp_millis());
            return false;
        }
        if r.failures == 0 {
            return b.until.is_some();
        }
        let probing = b.until.is_some();
        b.failures = b.failures.saturating_add(r.failures);
        let pause = if let Some(wait) = r.retry_after {
            // The provider said how long: the whole channel waits, not only the message.
            Some(wait)
        } else if probing || b.failures >= trip.failures {
            let grow = trip.base.saturating_mul(1u32 << b.opened.min(16));
            b.opened = b.opened.saturating_add(1);
            Some(grow.min(trip.cap).min(trip.max_open))
        } else {
            None
        };
        if let Some(p) = pause {
            let until = now + chrono::Duration::from_std(p).unwrap_or(chrono::Duration::MAX);
            b.until = Some(due_ms(until).max(b.until.unwrap_or(i64::MIN)));
        }
        b.until.is_some()
    }

    /// When `state`'s next pending channel is due, given coalescing (quiet hours are
    /// applied when it comes up); `None` when nothing is pending but parked channels.
    pub fn due_of_state(
        &self,
        msg: &OutboxMessage,
        state: &DeliveryState,
        coalesce: Duration,
    ) -> Option<i64> {
        state
            .channels
            .iter()
            .filter_map(|(route, status)| {
                let ChannelStatus::Pending {
                    attempts, next_at, ..
                } = status
                else {
                    return None;
                };
                if self.is_parked(*route, msg) {
                    return None;
                }
                let mut due = due_ms(*next_at);
                if !coalesce.is_zero() && *route != Route::Console && *attempts == 0 {
                    let window = msg.created_at
                        + chrono::Duration::from_std(coalesce).unwrap_or(chrono::Duration::MAX);
                    due = due.max(due_ms(window));
                }
                Some(due)
            })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outbox_count_follows_the_subscription_from_the_start_up_scan_on() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let store = DeliveryStore::open(&db).unwrap();
        let put = |id: u64| store.pending.insert(id.to_be_bytes(), &b"m"[..]).unwrap();
        put(1);
        put(2);
        assert_eq!(
            store.depth(Utc::now()).0,
            2,
            "no worker yet: the tree is counted"
        );

        let fresh = watch(&store, Wakeup::default());
        put(3); // between subscribing and scanning: seen twice, counted once
        let scan = scan(&store);
        assert!(scan.complete);
        store.waiting.seed(scan.found.iter().map(|(id, _)| *id));
        put(4);
        put(2); // written again while pending (a dead-letter retry)
        store.pending.remove(1u64.to_be_bytes()).unwrap();
        store.pending.remove(9u64.to_be_bytes()).unwrap(); // never there

        // The subscription thread applies the events in order; wait for it.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while fresh.lock().len() < 3 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let counted = loop {
            let n = store.waiting.count();
            if n == Some(3) || std::time::Instant::now() >= deadline {
                break n;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(counted, Some(3), "kept from the events, not counted");
        assert_eq!(store.depth(Utc::now()).0, store.pending.len());
    }

    fn schedule() -> Schedule {
        Schedule::new(Arc::new(Fresh::default()))
    }

    /// The default breaker (5 failures, 10 s at most) with this base (ms) and cap (s).
    fn trip(base_ms: u64, cap_secs: u64) -> Trip {
        let d = crate::config::NotifyConfig::default();
        Trip {
            base: Duration::from_millis(base_ms),
            cap: Duration::from_secs(cap_secs),
            max_open: d.breaker_max_open,
            failures: d.breaker_failures,
        }
    }

    #[test]
    fn the_configured_failure_count_and_longest_pause_are_what_the_breaker_uses() {
        let mut s = schedule();
        let now: DateTime<Utc> = "2026-11-26T12:00:00Z".parse().unwrap();
        let ms = now.timestamp_millis();
        let t = Trip {
            failures: 2,
            max_open: Duration::from_secs(3),
            ..trip(1000, 300)
        };
        let fail = |n| ChannelReport {
            failures: n,
            ..Default::default()
        };
        assert!(!s.report(Route::Sms, &fail(1), now, &t));
        assert!(s.report(Route::Sms, &fail(1), now, &t), "opens at 2, not 5");
        assert_eq!(s.gate(Route::Sms, ms), Gate::Wait(ms + 1000));
        // Failed probes double the pause up to max_open (3 s), below the 300 s cap.
        for _ in 0..5 {
            s.report(Route::Sms, &fail(1), now, &t);
        }
        assert_eq!(s.gate(Route::Sms, ms), Gate::Wait(ms + 3000));
    }

    #[test]
    fn only_due_messages_come_out_earliest_first_and_at_most_the_limit() {
        let mut s = schedule();
        for id in 0..10_000u64 {
            // A backlog waiting for retries, all due later.
            s.set(id, 1_000_000 + id as i64);
        }
        s.set(20_000, 10);
        s.set(20_001, 5);
        assert_eq!(s.pop_due(100, 64), vec![20_001, 20_000]);
        assert_eq!(s.len(), 10_000, "the waiting backlog stays");
        assert_eq!(s.next_due(), Some(1_000_000));
        assert_eq!(s.pop_due(2_000_000, 3), vec![0, 1, 2]);
    }

    #[test]
    fn rescheduling_a_message_moves_it_instead_of_adding_a_second_entry() {
        let mut s = schedule();
        s.set(7, 100);
        s.set(7, 50);
        s.set_min(7, 80);
        assert_eq!(s.len(), 1);
        assert_eq!(s.next_due(), Some(50));
        s.set_min(7, 20);
        assert_eq!(s.next_due(), Some(20));
        s.add_missing(7, 0);
        assert_eq!(
            s.next_due(),
            Some(20),
            "a sweep does not override the index"
        );
        s.forget(7);
        assert_eq!((s.len(), s.next_due()), (0, None));
    }

    #[test]
    fn fresh_ids_from_the_subscription_become_due_when_seen() {
        let fresh = Arc::new(Fresh::default());
        let mut s = Schedule::new(fresh.clone());
        s.set(1, 500);
        fresh.lock().extend([(1, 100), (2, 200)]);
        assert_eq!(s.take_fresh(), 2);
        assert_eq!(s.pop_due(1_000, 10), vec![1, 2]);
    }

    #[test]
    fn the_breaker_opens_after_a_run_of_failures_probes_and_closes_on_success() {
        let mut s = schedule();
        let now: DateTime<Utc> = "2026-11-26T12:00:00Z".parse().unwrap();
        let ms = now.timestamp_millis();
        let t = trip(100, 300);
        let fail = |n| ChannelReport {
            failures: n,
            ..Default::default()
        };
        assert!(!s.report(Route::Sms, &fail(t.failures - 1), now, &t));
        assert_eq!(s.gate(Route::Sms, ms), Gate::Open);
        assert!(s.report(Route::Sms, &fail(1), now, &t));
        assert_eq!(s.gate(Route::Sms, ms), Gate::Wait(ms + 100));
        assert_eq!(s.gate(Route::Email, ms), Gate::Open, "per channel");
        assert_eq!(s.gate(Route::Sms, ms + 100), Gate::Probe);
        // A failed probe pauses longer, never beyond the cap.
        let later = now + chrono::Duration::milliseconds(100);
        s.report(Route::Sms, &fail(1), later, &t);
        assert_eq!(s.gate(Route::Sms, ms + 100), Gate::Wait(ms + 300));
        for _ in 0..30 {
            s.report(Route::Sms, &fail(1), later, &t);
        }
        assert_eq!(
            s.gate(Route::Sms, ms + 100),
            Gate::Wait(ms + 100 + t.max_open.as_millis() as i64)
        );
        let ok = ChannelReport {
            successes: 1,
            ..Default::default()
        };
        assert!(!s.report(Route::Sms, &ok, later, &t));
        assert_eq!(s.gate(Route::Sms, ms), Gate::Open);
    }

    #[test]
    fn a_429_pauses_the_whole_channel_for_its_retry_after() {
        let mut s = schedule();
        let now: DateTime<Utc> = "2026-11-26T12:00:00Z".parse().unwrap();
        let r = ChannelReport {
            failures: 1,
            retry_after: Some(Duration::from_secs(3)),
            ..Default::default()
        };
        assert!(s.report(Route::Sms, &r, now, &trip(100, 1)));
        assert_eq!(
            s.gate(Route::Sms, now.timestamp_millis()),
            Gate::Wait(now.timestamp_millis() + 3000)
        );
    }

    fn message(id: u64, created_at: &str) -> OutboxMessage {
        serde_json::from_value(serde_json::json!({
            "id": id,
            "shop": "demo",
            "member": "m_00000000000000000001",
            "first_name": null,
            "posting_id": 1,
            "notice": {"notice": "tier_changed", "from": null, "to": "gold"},
            "created_at": created_at,
        }))
        .unwrap()
    }

    #[test]
    fn parked_messages_wait_without_cost_and_all_come_back_when_the_channel_resumes() {
        let mut s = schedule();
        let now: DateTime<Utc> = "2026-11-26T12:00:00Z".parse().unwrap();
        let ms = now.timestamp_millis();
        let (t, age) = (trip(100, 1), Duration::from_secs(3600));
        let fail = ChannelReport {
            failures: t.failures,
            ..Default::default()
        };
        s.report(Route::Sms, &fail, now, &t);
        assert_eq!(s.next_wake(), None, "nothing waits yet");
        let msgs: Vec<_> = (1..=1000)
            .map(|id| message(id, "2026-11-26T11:59:00Z"))
            .collect();
        for m in &msgs {
            s.park(Route::Sms, m);
        }
        assert!(s.is_parked(Route::Sms, &msgs[0]));
        assert!(!s.is_parked(Route::Email, &msgs[0]));
        assert_eq!((s.parked_len(), s.len()), (1000, 0));
        assert_eq!(s.next_wake(), Some(ms + 100), "the probe is due");
        // While the breaker is open nothing comes out.
        s.release(now, age, 64);
        assert_eq!(s.pop_due(ms, 64), Vec::<u64>::new());
        // Half-open: exactly one comes out, to probe.
        let later = now + chrono::Duration::milliseconds(150);
        s.release(later, age, 64);
        assert_eq!(s.pop_due(later.timestamp_millis(), 64), vec![1]);
        assert_eq!(s.parked_len(), 999);
        // The probe succeeds: the rest is due at once.
        let ok = ChannelReport {
            successes: 1,
            ..Default::default()
        };
        s.report(Route::Sms, &ok, later, &t);
        assert_eq!(s.parked_len(), 0);
        assert_eq!(s.pop_due(later.timestamp_millis(), 2000).len(), 999);
    }

    #[test]
    fn parked_messages_past_max_age_come_out_to_be_dead_lettered() {
        let mut s = schedule();
        let now: DateTime<Utc> = "2026-11-26T12:00:00Z".parse().unwrap();
        let t = trip(100, 1);
        let fail = ChannelReport {
            failures: t.failures,
            retry_after: Some(Duration::from_secs(600)),
            ..Default::default()
        };
        s.report(Route::Sms, &fail, now, &t);
        s.park(Route::Sms, &message(1, "2026-11-26T10:00:00Z"));
        s.park(Route::Sms, &message(2, "2026-11-26T11:30:00Z"));
        s.park(Route::Sms, &message(3, "2026-11-26T11:59:00Z"));
        s.release(now, Duration::from_secs(3600), 64);
        assert_eq!(s.pop_due(now.timestamp_millis(), 64), vec![1]);
        assert_eq!(s.parked_len(), 2);
    }

    #[test]
    fn due_times_round_up_to_the_millisecond() {
        let t: DateTime<Utc> = "2026-11-26T12:00:00.000500Z".parse().unwrap();
        assert_eq!(due_ms(t), t.timestamp_millis() + 1);
        let t: DateTime<Utc> = "2026-11-26T12:00:00.001Z".parse().unwrap();
        assert_eq!(due_ms(t), t.timestamp_millis());
    }
}
