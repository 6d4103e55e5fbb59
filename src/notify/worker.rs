//! The delivery worker: takes due messages from the outbox, decides per channel
//! (consent, contact, quiet hours, coalescing), renders the templates, sends through
//! the providers with a rate limit and bounded concurrency, and records each outcome:
//! sent, retried later with backoff, skipped, or dead-lettered.
//!
//! A channel is marked sent only after the provider accepted it; a crash in between
//! may send that one message again (at-least-once towards the provider), never lose
//! it, and a message marked sent is never sent again.
//!
//! A wake-up reads only what is due: an in-memory index of due times (`schedule`),
//! rebuilt from sled at start-up and fed by a subscription on the outbox, hands each
//! pass at most one batch. A backlog of messages waiting for retries or quiet hours
//! costs no work until they fall due, and a channel whose provider keeps failing
//! pauses behind a circuit breaker, its due messages parked until a probe succeeds.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::stream::{self, StreamExt};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use loyaltyd_adapter::ShopId;
use tokio::sync::{watch, Notify};

use super::console::ConsoleSink;
use super::delivery::{
    ChannelStatus, Contact, DeadLetter, DeliveryState, DeliveryStore, DeliveryStoreError,
    Directory, Outcome, Route,
};
use super::outbox::{Notice, OutboxMessage};
use super::providers::{EmailMessage, EmailProvider, SendError, SmsMessage, SmsProvider};
use super::render::{self, ShopVoice};
use super::templates::{Channel, Templates};
use super::Sink;
use crate::config::{NotifyConfig, QuietHours};
use crate::member::MemberId;
use crate::metrics::Metrics;

mod schedule;

use schedule::{ChannelReport, Gate, Schedule};

/// Handle to wake the worker after new messages were committed.
#[derive(Clone, Default)]
pub struct Wakeup(Arc<Notify>);

impl Wakeup {
    /// Tell the worker there is work.
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// Per shop: name and time zone for templates, quiet hours.
#[derive(Debug, Clone)]
pub struct ShopNotify {
    /// Name and time zone.
    pub voice: ShopVoice,
    /// Quiet hours in the shop's time zone.
    pub quiet_hours: Option<QuietHours>,
}

/// Everything the worker sends with.
pub struct Notifier {
    /// The stores.
    pub store: DeliveryStore,
    /// Console sink (used when no provider is configured).
    pub console: Option<ConsoleSink>,
    /// SMS provider and its rate limit.
    pub sms: Option<(SmsProvider, DefaultDirectRateLimiter)>,
    /// E-mail provider and its rate limit.
    pub email: Option<(EmailProvider, DefaultDirectRateLimiter)>,
    /// Templates.
    pub templates: Templates,
    /// Members' contacts and consent.
    pub directory: Arc<dyn Directory>,
    /// Shops.
    pub shops: HashMap<ShopId, ShopNotify>,
    /// Policy.
    pub policy: Policy,
    /// Metrics.
    pub metrics: Arc<Metrics>,
}

/// Retry, coalescing and concurrency settings.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Give up after this age.
    pub max_age: Duration,
    /// Backoff base.
    pub retry_base: Duration,
    /// Backoff cap.
    pub retry_cap: Duration,
    /// Coalescing window (zero: off).
    pub coalesce: Duration,
    /// Requests in flight.
    pub concurrency: usize,
    /// Failures in a row that pause a channel.
    pub breaker_failures: u32,
    /// Longest pause before a probe.
    pub breaker_max_open: Duration,
}

impl Policy {
    /// From the config.
    pub fn from_config(c: &NotifyConfig) -> Policy {
        Policy {
            max_age: c.max_age,
            retry_base: c.retry_base,
            retry_cap: c.retry_cap,
            coalesce: c.coalesce,
            concurrency: c.concurrency,
            breaker_failures: c.breaker_failures,
            breaker_max_open: c.breaker_max_open,
        }
    }

    /// The channels' circuit breaker settings.
    fn trip(&self) -> schedule::Trip {
        schedule::Trip {
            base: self.retry_base,
            cap: self.retry_cap,
            max_open: self.breaker_max_open,
            failures: self.breaker_failures,
        }
    }

    /// Full-jitter backoff before attempt `attempts + 1`, at least what the provider
    /// asked for (`Retry-After`).
    pub fn backoff(&self, attempts: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .retry_base
            .saturating_mul(1u32 << attempts.min(20))
            .min(self.retry_cap);
        let jitter = exp.mul_f64(rand_unit());
        match retry_after {
            Some(r) => r + jitter / 4,
            None => jitter.max(Duration::from_millis(50)),
        }
    }
}

/// A number in [0, 1) from the clock and a counter: jitter only needs spread, not
/// unpredictability.
fn rand_unit() -> f64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    let mut x = N.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed) ^ nanos;
    // splitmix64 finaliser
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// A token bucket allowing `per_sec` sends a second.
pub fn limiter(per_sec: u32) -> DefaultDirectRateLimiter {
    let n = NonZeroU32::new(per_sec.max(1)).unwrap_or(NonZeroU32::MIN);
    RateLimiter::direct(Quota::per_second(n))
}

/// How often the outbox is swept when the subscription is not running (it should
/// always run; this only keeps delivery going if its thread could not start).
const FALLBACK_SWEEP: Duration = Duration::from_secs(1);

/// Run until `stop` turns true.
pub async fn run(notifier: Arc<Notifier>, wakeup: Wakeup, mut stop: watch::Receiver<bool>) {
    // Subscribe before the start-up scan, so a message committed in between is seen by
    // one or the other (both is harmless).
    let fresh = schedule::watch(&notifier.store, wakeup.clone());
    let mut sched = Schedule::new(fresh);
    // Nothing has left the outbox since the subscription started (this worker is the
    // only remover), so the scan plus the events from then on are exactly the outbox.
    if let Some(ids) = sweep(&notifier.store, &mut sched).await {
        if sched.watching() {
            notifier.store.waiting.seed(ids);
        }
    }
    let mut last_sweep = std::time::Instant::now();
    loop {
        notifier.pass(&mut sched, Utc::now()).await;
        if !sched.watching() && last_sweep.elapsed() >= FALLBACK_SWEEP {
            sweep(&notifier.store, &mut sched).await;
            last_sweep = std::time::Instant::now();
        }
        let sleep = sched
            .next_wake()
            .map(|due| {
                let ms = due.saturating_sub(Utc::now().timestamp_millis()).max(0);
                Duration::from_millis(u64::try_from(ms).unwrap_or(0))
            })
            .unwrap_or(Duration::from_secs(5))
            .min(Duration::from_secs(5));
        if sleep.is_zero() {
            // More is due (a pass takes one batch): go on at once, letting other tasks
            // run. Every message a pass takes leaves due later, settled or parked, so
            // this is not a spin.
            tokio::task::yield_now().await;
        } else {
            tokio::select! {
                _ = wakeup.0.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
                _ = stop.changed() => {}
            }
        }
        if *stop.borrow() {
            // One last pass so messages committed before shutdown go out now. A message
            // acknowledged a moment ago may still be on its way from the subscription
            // thread: one sweep makes sure the pass sees it.
            sweep(&notifier.store, &mut sched).await;
            notifier.pass(&mut sched, Utc::now()).await;
            return;
        }
    }
}

/// Add every outbox message the schedule does not track yet (start-up, shutdown, and
/// the fallback when the subscription is not running). Reads the whole outbox, off the
/// async threads. Returns the ids found if every key was read.
async fn sweep(store: &DeliveryStore, sched: &mut Schedule) -> Option<Vec<u64>> {
    let store = store.clone();
    match tokio::task::spawn_blocking(move || schedule::scan(&store)).await {
        Ok(scan) => {
            let ids = scan.found.iter().map(|(id, _)| *id).collect();
            for (id, due) in scan.found {
                sched.add_missing(id, due);
            }
            scan.complete.then_some(ids)
        }
        Err(e) => {
            tracing::error!(error = %e, "could not scan the outbox");
            None
        }
    }
}

/// One send: the lead message and the ones coalesced into it.
struct Job {
    route: Route,
    lead: OutboxMessage,
    others: Vec<OutboxMessage>,
    attempts: u32,
    /// The earliest ambiguous attempt among the messages (see `ChannelStatus::Pending`).
    ambiguous_since: Option<DateTime<Utc>>,
}

impl Job {
    /// The lead message's id, then the others'.
    fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        std::iter::once(self.lead.id).chain(self.others.iter().map(|m| m.id))
    }
}

/// What a job ended as.
enum JobResult {
    Sent {
        provider: &'static str,
        provider_id: Option<String>,
    },
    Skipped(String),
    Retry {
        error: String,
        retry_after: Option<Duration>,
        /// The provider's code, else the HTTP status, else `network`.
        code: String,
        /// The provider may have taken the message (`SendError::Retryable::ambiguous`).
        ambiguous: bool,
    },
    Dead {
        provider: &'static str,
        status: Option<u16>,
        code: Option<String>,
        error: String,
        unsubscribed: bool,
    },
    /// Not tried: the channel paused during the pass.
    Deferred,
}

/// Messages due together: one member, one channel.
type GroupKey = (ShopId, MemberId, Route);

/// A due message of a group: id, attempts so far, and since when an attempt may have
/// gone out unconfirmed.
type Due = (u64, u32, Option<DateTime<Utc>>);

/// What the provider of each channel did so far in a pass, shared by its sends.
#[derive(Default)]
struct PassPause {
    /// Per channel (console, SMS, e-mail): retryable failures, successes, paused.
    failures: [AtomicU32; 3],
    successes: [AtomicU32; 3],
    paused: [AtomicBool; 3],
    /// Failures in a row, with nothing sent, that pause the channel (the breaker's).
    threshold: u32,
}

impl PassPause {
    fn new(threshold: u32) -> PassPause {
        PassPause {
            threshold,
            ..PassPause::default()
        }
    }

    fn slot(route: Route) -> usize {
        match route {
            Route::Console => 0,
            Route::Sms => 1,
            Route::Email => 2,
        }
    }

    fn paused(&self, route: Route) -> bool {
        self.paused[Self::slot(route)].load(Ordering::Relaxed)
    }

    /// Count a send's result; pause the channel for the rest of the pass after a 429
    /// with `Retry-After`, or after a run of failures with no success.
    fn saw(&self, route: Route, r: &JobResult) {
        let i = Self::slot(route);
        match r {
            JobResult::Sent { .. } => {
                self.successes[i].fetch_add(1, Ordering::Relaxed);
            }
            JobResult::Retry {
                code, retry_after, ..
            } if provider_code(code) => {
                let failures = self.failures[i].fetch_add(1, Ordering::Relaxed) + 1;
                let none_went = self.successes[i].load(Ordering::Relaxed) == 0;
                if retry_after.is_some() || (none_went && failures >= self.threshold) {
                    self.paused[i].store(true, Ordering::Relaxed);
                }
            }
            _ => {}
        }
    }
}

/// A message as read for a pass.
enum Loaded {
    /// The message and its channels (boxed: the other answers carry nothing).
    Found(Box<(OutboxMessage, DeliveryState)>),
    /// No longer in the outbox (delivered), or unreadable: nothing to schedule.
    Gone,
    /// sled failed: look again later.
    Later,
}

/// Codes that are not the provider's answer (our storage, the console): they say
/// nothing about whether the provider is up.
fn provider_code(code: &str) -> bool {
    !matches!(code, "storage" | "console")
}

impl Notifier {
    fn routes(&self) -> Vec<Route> {
        let mut r = Vec::new();
        if self.sms.is_some() {
            r.push(Route::Sms);
        }
        if self.email.is_some() {
            r.push(Route::Email);
        }
        if r.is_empty() && self.console.is_some() {
            r.push(Route::Console);
        }
        r
    }

    /// Messages taken per pass at most: enough that a backlog drains at the provider's
    /// pace rather than the pass's, few enough to keep a pass's memory small. A provider
    /// that starts failing or hanging holds a pass for one round of `concurrency`
    /// requests only: the channel pauses for the rest of it.
    fn batch(&self) -> usize {
        self.policy.concurrency.saturating_mul(16).clamp(64, 4096)
    }

    /// Deliver what is due, at most one batch.
    async fn pass(&self, sched: &mut Schedule, now: DateTime<Utc>) {
        sched.take_fresh();
        sched.release(now, self.policy.max_age, self.batch());
        let examined = self.pass_inner(sched, now).await;
        self.metrics
            .notify_pass(examined, sched.len(), sched.held_len(), sched.parked_len());
        self.store.beat(Utc::now());
    }

    fn load(&self, id: u64) -> Loaded {
        let value = match self.store.pending.get(id.to_be_bytes()) {
            Ok(Some(v)) => v,
            Ok(None) => return Loaded::Gone,
            Err(e) => {
                tracing::error!(error = %e, message_id = id, "cannot read the outbox");
                return Loaded::Later;
            }
        };
        let msg: OutboxMessage = match serde_json::from_slice(&value) {
            Ok(m) => m,
            Err(e) => {
                // Reported once; the next start looks at it again.
                tracing::error!(error = %e, message_id = id, "undecodable outbox message left in place");
                return Loaded::Gone;
            }
        };
        match self.store.state(id) {
            Ok(Some(s)) => Loaded::Found(Box::new((msg, s))),
            Ok(None) => Loaded::Found(Box::new((msg, DeliveryState::default()))),
            Err(DeliveryStoreError::Storage(e)) => {
                tracing::error!(error = %e, message_id = id, "cannot read the delivery state");
                Loaded::Later
            }
            Err(e) => {
                tracing::error!(error = %e, message_id = id, "undecodable delivery state");
                Loaded::Gone
            }
        }
    }

    /// One pass: read the due messages, hold or group them, send, record, reschedule.
    /// Returns how many messages it read.
    async fn pass_inner(&self, sched: &mut Schedule, now: DateTime<Utc>) -> usize {
        let ids = sched.pop_due(now.timestamp_millis(), self.batch());
        if ids.is_empty() {
            return 0;
        }
        // Send only what a crash can no longer undo (see `Directory::durable`); one
        // group-commit wait covers the whole batch.
        if let Err(e) = self.directory.durable().await {
            tracing::error!(error = %e, "storage is not durable: nothing is sent");
            let retry_at = now.timestamp_millis() + 1_000;
            for id in ids {
                sched.set(id, retry_at);
            }
            return 0;
        }
        let routes = self.routes();
        let now_ms = now.timestamp_millis();
        let coalesce = self.policy.coalesce;
        let mut examined = 0;
        // Every message this pass reads, its channels updated as the pass goes: the one
        // copy each outcome is written into, so two channels of a message settled in the
        // same pass do not overwrite each other.
        let mut seen: BTreeMap<u64, (OutboxMessage, DeliveryState)> = BTreeMap::new();
        let mut changed: BTreeSet<u64> = BTreeSet::new();
        // Due (message, attempts, ambiguous since) grouped by member and channel, in id
        // order.
        let mut groups: BTreeMap<GroupKey, Vec<Due>> = BTreeMap::new();
        // Channels whose breaker has been open past the message's max age.
        let mut expired: Vec<(u64, Route, u32)> = Vec::new();
        let mut probing: BTreeSet<Route> = BTreeSet::new();
        let mut later = Vec::new();
        for id in ids {
            examined += 1;
            let (msg, mut state) = match self.load(id) {
                Loaded::Found(found) => *found,
                Loaded::Gone => continue,
                Loaded::Later => {
                    later.push(id);
                    continue;
                }
            };
            if state.channels.is_empty() {
                for r in &routes {
                    state.channels.insert(
                        *r,
                        ChannelStatus::Pending {
                            attempts: 0,
                            next_at: msg.created_at,
                            last_error: None,
                            ambiguous_since: None,
                        },
                    );
                }
                if routes.is_empty() {
                    state.channels.insert(
                        Route::Console,
                        ChannelStatus::Skipped {
                            reason: "no notification channel configured".into(),
                        },
                    );
                }
                changed.insert(id);
            }
            let quiet = self.shops.get(&msg.shop).and_then(|s| quiet_until(s, now));
            let too_old = now - msg.created_at > chrono_dur(self.policy.max_age);
            for (route, status) in state.channels.clone() {
                let ChannelStatus::Pending {
                    attempts,
                    next_at,
                    ambiguous_since,
                    ..
                } = status
                else {
                    continue;
                };
                // Coalescing holds a message for the window after it was queued.
                let coalescing = !coalesce.is_zero() && route != Route::Console && attempts == 0;
                let mut due_at = next_at;
                if coalescing {
                    due_at = due_at.max(msg.created_at + chrono_dur(coalesce));
                }
                if due_at > now {
                    if coalescing && next_at <= now {
                        // Rides along if another message of the member goes out first.
                        sched.hold(&msg.shop, &msg.member, id);
                    }
                    continue;
                }
                sched.unhold(&msg.shop, &msg.member, id);
                if let (Some(until), true) = (quiet, route != Route::Console) {
                    state.channels.insert(
                        route,
                        ChannelStatus::Pending {
                            attempts,
                            next_at: until,
                            last_error: Some("quiet hours".into()),
                            ambiguous_since,
                        },
                    );
                    changed.insert(id);
                    continue;
                }
                let key = (msg.shop.clone(), msg.member.clone(), route);
                let wait = match sched.gate(route, now_ms) {
                    Gate::Open => false,
                    // The breaker is open: the message waits without spending an
                    // attempt.
                    Gate::Wait(_) => true,
                    // Half-open: one send (one member's group) probes the provider;
                    // the others wait for its answer.
                    Gate::Probe => {
                        let wait = probing.contains(&route) && !groups.contains_key(&key);
                        probing.insert(route);
                        wait
                    }
                };
                if wait {
                    if too_old {
                        expired.push((id, route, attempts));
                    } else {
                        sched.park(route, &msg);
                    }
                    continue;
                }
                groups
                    .entry(key)
                    .or_default()
                    .push((id, attempts, ambiguous_since));
            }
            seen.insert(id, (msg, state));
        }
        if !coalesce.is_zero() {
            for ((shop, member, route), msgs) in groups.iter_mut() {
                if *route == Route::Console {
                    continue;
                }
                for hid in sched.held_for(shop, member) {
                    if msgs.iter().any(|(id, _, _)| *id == hid) {
                        continue;
                    }
                    if let std::collections::btree_map::Entry::Vacant(slot) = seen.entry(hid) {
                        examined += 1;
                        match self.load(hid) {
                            Loaded::Found(found) => {
                                slot.insert(*found);
                            }
                            Loaded::Gone => {
                                sched.unhold(shop, member, hid);
                                continue;
                            }
                            Loaded::Later => continue,
                        }
                    }
                    let Some((m, s)) = seen.get(&hid) else {
                        continue;
                    };
                    let window_open = m.created_at + chrono_dur(coalesce) > now;
                    let joinable = |status: &ChannelStatus| {
                        matches!(status, ChannelStatus::Pending { attempts: 0, next_at, .. } if *next_at <= now)
                            && window_open
                    };
                    if s.channels.get(route).is_some_and(joinable) {
                        msgs.push((hid, 0, None));
                    } else if !s.channels.values().any(joinable) {
                        sched.unhold(shop, member, hid);
                    }
                }
                msgs.sort_by_key(|(id, _, _)| *id);
            }
        }
        let message = |id: &u64| seen.get(id).map(|(m, _)| m.clone());
        let jobs: Vec<Job> = groups
            .into_iter()
            .flat_map(|((_, _, route), mut msgs)| {
                if coalesce.is_zero() || route == Route::Console {
                    msgs.into_iter()
                        .filter_map(|(id, attempts, ambiguous_since)| {
                            Some(Job {
                                route,
                                lead: message(&id)?,
                                others: Vec::new(),
                                attempts,
                                ambiguous_since,
                            })
                        })
                        .collect::<Vec<_>>()
                } else {
                    // Any of them may have gone out in an ambiguous attempt: look back
                    // to the earliest.
                    let ambiguous_since = msgs.iter().filter_map(|(_, _, a)| *a).min();
                    // The latest message speaks for all: it has the newest balance.
                    let Some((lead, attempts, _)) = msgs.pop() else {
                        return Vec::new();
                    };
                    let Some(lead) = message(&lead) else {
                        return Vec::new();
                    };
                    vec![Job {
                        route,
                        lead,
                        others: msgs.iter().filter_map(|(id, _, _)| message(id)).collect(),
                        attempts,
                        ambiguous_since,
                    }]
                }
            })
            .collect();
        // A text is marked as possibly out before it is sent: if the daemon dies before
        // it records Twilio's answer, the next attempt asks Twilio first instead of
        // texting twice. The mark is on disk before the first send.
        let mut marked = false;
        if self.sms.is_some() {
            for job in jobs.iter().filter(|j| j.route == Route::Sms) {
                let since = job.ambiguous_since.unwrap_or(now);
                for id in job.ids() {
                    if let Some(mark @ None) = ambiguous_mark(&mut seen, id, Route::Sms) {
                        *mark = Some(since);
                        changed.insert(id);
                        marked = true;
                    }
                }
            }
        }
        // Holds, first states and the marks are kept before sending, so a long pass or a
        // crash loses none of them.
        if !changed.is_empty() {
            let held: Vec<Outcome> = changed
                .iter()
                .filter_map(|id| seen.get(id))
                .map(|(m, s)| Outcome {
                    message: m.clone(),
                    state: s.clone(),
                    dead: Vec::new(),
                })
                .collect();
            if let Err(e) = self.store.record(&held, now) {
                tracing::error!(error = %e, "could not record delivery state");
            } else if marked {
                if let Err(e) = self.directory.durable().await {
                    tracing::error!(error = %e, "could not flush the marks of texts about to be sent");
                }
            }
        }
        let pause = PassPause::new(self.policy.breaker_failures);
        let results: Vec<(Job, JobResult)> = stream::iter(jobs)
            .map(|job| {
                let pause = &pause;
                async move {
                    // A channel that started failing during this pass takes no more
                    // sends in it: the rest wait with the breaker, not for a timeout each.
                    if pause.paused(job.route) {
                        return (job, JobResult::Deferred);
                    }
                    let r = self.send(&job).await;
                    pause.saw(job.route, &r);
                    // Alive even when a pass waits on a provider that hangs.
                    self.store.beat(Utc::now());
                    (job, r)
                }
            })
            .buffer_unordered(self.policy.concurrency)
            .collect()
            .await;
        let done = Utc::now();
        let mut touched: BTreeMap<u64, Vec<DeadLetter>> = BTreeMap::new();
        let mut reports: BTreeMap<Route, ChannelReport> = BTreeMap::new();
        let mut failed: Vec<(u64, Route)> = Vec::new();
        let mut deferred: Vec<(u64, Route)> = Vec::new();
        for (job, result) in results {
            let route = job.route;
            let ids = job.ids();
            if matches!(result, JobResult::Deferred) {
                deferred.extend(ids.map(|id| (id, route)));
                continue;
            }
            let ids: Vec<u64> = ids.collect();
            if self.settle(
                job,
                result,
                (now, done),
                &mut seen,
                &mut touched,
                &mut reports,
            ) {
                failed.extend(ids.into_iter().map(|id| (id, route)));
            }
        }
        for (id, route, attempts) in expired {
            if let Some((m, s)) = seen.get_mut(&id) {
                self.metrics.notification(route.name(), "provider", "dead");
                let letter = DeadLetter {
                    message: m.clone(),
                    route,
                    provider: self.provider_name(route).to_string(),
                    status: None,
                    code: None,
                    error: format!(
                        "gave up after {attempts} attempts: the provider kept failing for longer than notify.max_age_secs"
                    ),
                    attempts,
                    at: done,
                };
                s.channels.insert(route, ChannelStatus::Dead { at: done });
                touched.entry(id).or_default().push(letter);
            }
        }
        for (route, report) in &reports {
            let was = sched.tripped(*route);
            let open = sched.report(*route, report, done, &self.policy.trip());
            self.metrics.notify_circuit(route.name(), open);
            if open && !was {
                tracing::warn!(
                    channel = route.name(),
                    provider = self.provider_name(*route),
                    failures = report.failures,
                    "provider failing: the channel pauses and probes before sending again"
                );
            } else if was && !open {
                tracing::info!(
                    channel = route.name(),
                    provider = self.provider_name(*route),
                    "provider answers again: the channel resumes"
                );
            }
        }
        // Not tried: they wait with the breaker (or, if it did not open after all, are
        // due again in the next pass).
        for (id, route) in deferred {
            if let (true, Some((m, _))) = (sched.tripped(route), seen.get(&id)) {
                sched.park(route, m);
            }
        }
        // On a paused channel a message waits with the others and goes when the channel
        // resumes, not when its own backoff ends (which may be minutes after the
        // provider came back).
        for (id, route) in failed {
            if !sched.tripped(route) {
                continue;
            }
            let Some((m, s)) = seen.get_mut(&id) else {
                continue;
            };
            if let Some(ChannelStatus::Pending {
                attempts,
                last_error,
                ambiguous_since,
                ..
            }) = s.channels.get(&route).cloned()
            {
                s.channels.insert(
                    route,
                    ChannelStatus::Pending {
                        attempts,
                        next_at: done,
                        last_error,
                        ambiguous_since,
                    },
                );
                sched.park(route, m);
            }
        }
        let outcomes: Vec<Outcome> = touched
            .iter_mut()
            .filter_map(|(id, dead)| {
                let (m, s) = seen.get(id)?;
                Some(Outcome {
                    message: m.clone(),
                    state: s.clone(),
                    dead: std::mem::take(dead),
                })
            })
            .collect();
        let recorded = outcomes.is_empty()
            || match self.store.record(&outcomes, done) {
                Ok(()) => true,
                Err(e) => {
                    tracing::error!(error = %e, "could not record delivery outcomes");
                    false
                }
            };
        for (id, (m, s)) in &seen {
            if !recorded && touched.contains_key(id) {
                // What is on disk is the state before this pass: read it again soon.
                sched.set(*id, now_ms.saturating_add(1000));
                continue;
            }
            match sched.due_of_state(m, s, coalesce) {
                Some(due) => sched.set(*id, due),
                None => {
                    sched.forget(*id);
                    sched.unhold(&m.shop, &m.member, *id);
                }
            }
        }
        for id in later {
            sched.set(id, now_ms.saturating_add(1000));
        }
        examined
    }

    /// Write a job's result into the messages' channels (`seen`), note the messages to
    /// record (`touched`, with any dead letters) and what the provider did (`reports`).
    /// `(started, now)`: when the pass began (before any of its sends) and ended.
    /// Returns whether the messages wait for another attempt.
    fn settle(
        &self,
        job: Job,
        result: JobResult,
        (started, now): (DateTime<Utc>, DateTime<Utc>),
        seen: &mut BTreeMap<u64, (OutboxMessage, DeliveryState)>,
        touched: &mut BTreeMap<u64, Vec<DeadLetter>>,
        reports: &mut BTreeMap<Route, ChannelReport>,
    ) -> bool {
        let route = job.route;
        let attempts = job.attempts + 1;
        let lead_id = job.lead.id;
        let mut retry_at = None;
        let mut ambiguous_since = job.ambiguous_since;
        let (lead_status, dead, others_status) = match result {
            // Not tried: take back the mark set before sending.
            JobResult::Deferred => {
                if route == Route::Sms {
                    for id in job.ids() {
                        if let Some(mark) = ambiguous_mark(seen, id, route) {
                            *mark = job.ambiguous_since;
                            touched.entry(id).or_default();
                        }
                    }
                }
                return false;
            }
            JobResult::Sent {
                provider,
                provider_id,
            } => {
                reports.entry(route).or_default().successes += 1;
                self.metrics.notification(route.name(), provider, "sent");
                tracing::info!(
                    request_id = job.lead.context.request_id.as_deref().unwrap_or("-"),
                    shop = %job.lead.shop,
                    message_id = job.lead.id,
                    posting_id = job.lead.posting_id,
                    channel = route.name(),
                    provider,
                    "notification sent"
                );
                (
                    ChannelStatus::Sent {
                        provider: provider.to_string(),
                        provider_id,
                        at: now,
                        attempts,
                    },
                    None,
                    Some(ChannelStatus::Coalesced { into: lead_id }),
                )
            }
            JobResult::Skipped(reason) => {
                self.metrics.notification(route.name(), "none", "skipped");
                let s = ChannelStatus::Skipped { reason };
                (s.clone(), None, Some(s))
            }
            JobResult::Retry {
                error,
                retry_after,
                code,
                ambiguous,
            } => {
                // Kept until a send is known to have gone out: the earliest attempt
                // that may have reached the provider is where the next one looks from.
                if ambiguous {
                    ambiguous_since = Some(job.ambiguous_since.unwrap_or(started));
                }
                if provider_code(&code) {
                    let r = reports.entry(route).or_default();
                    r.failures += 1;
                    r.retry_after = r.retry_after.max(retry_after);
                }
                self.metrics
                    .provider_failure(self.provider_name(route), &code);
                let age = now - job.lead.created_at;
                if age > chrono_dur(self.policy.max_age) {
                    self.metrics.notification(route.name(), "provider", "dead");
                    let dead = DeadLetter {
                        message: job.lead.clone(),
                        route,
                        provider: self.provider_name(route).to_string(),
                        status: None,
                        code: None,
                        error: format!("gave up after {attempts} attempts: {error}"),
                        attempts,
                        at: now,
                    };
                    (ChannelStatus::Dead { at: now }, Some(dead), None)
                } else {
                    self.metrics
                        .notification(route.name(), self.provider_name(route), "retry");
                    let mut at = now + chrono_dur(self.policy.backoff(job.attempts, retry_after));
                    if let (true, Route::Sms, Some((p, _))) = (ambiguous, route, &self.sms) {
                        // The request may still be in the provider's hands: ask whether it
                        // went out only once it would have answered.
                        at = at.max(now + chrono_dur(p.timeout()));
                    }
                    retry_at = Some(at);
                    (
                        ChannelStatus::Pending {
                            attempts,
                            next_at: at,
                            last_error: Some(error),
                            ambiguous_since,
                        },
                        None,
                        None,
                    )
                }
            }
            JobResult::Dead {
                provider,
                status,
                code,
                error,
                unsubscribed,
            } => {
                self.metrics.notification(route.name(), provider, "dead");
                let failure = code
                    .clone()
                    .or(status.map(|s| s.to_string()))
                    .unwrap_or_else(|| "unknown".into());
                self.metrics.provider_failure(provider, &failure);
                if unsubscribed {
                    self.directory
                        .withdraw_sms_consent(&job.lead.shop, &job.lead.member);
                    if let Some(phone) = self
                        .directory
                        .contact(&job.lead.shop, &job.lead.member)
                        .and_then(|c| c.phone)
                    {
                        if let Err(e) = self.store.set_suppressed(&job.lead.shop, &phone, true, now)
                        {
                            tracing::error!(error = %e, "could not record the opt-out");
                        }
                    }
                }
                let dead = DeadLetter {
                    message: job.lead.clone(),
                    route,
                    provider: provider.to_string(),
                    status,
                    code,
                    error,
                    attempts,
                    at: now,
                };
                (ChannelStatus::Dead { at: now }, Some(dead), None)
            }
        };
        if let Some((_, s)) = seen.get_mut(&lead_id) {
            s.channels.insert(route, lead_status);
        }
        touched.entry(lead_id).or_default().extend(dead);
        // Coalesced messages share a success or a skip; on failure they wait with
        // the lead and are retried together.
        for m in &job.others {
            let Some((_, s)) = seen.get_mut(&m.id) else {
                continue;
            };
            if let Some(status) = &others_status {
                s.channels.insert(route, status.clone());
            } else if let Some(at) = retry_at {
                if let Some(ChannelStatus::Pending { attempts, .. }) =
                    s.channels.get(&route).cloned()
                {
                    s.channels.insert(
                        route,
                        ChannelStatus::Pending {
                            attempts,
                            next_at: at,
                            last_error: None,
                            ambiguous_since,
                        },
                    );
                }
            }
            touched.entry(m.id).or_default();
        }
        retry_at.is_some()
    }

    fn provider_name(&self, route: Route) -> &'static str {
        match route {
            Route::Console => "console",
            Route::Sms => self.sms.as_ref().map_or("none", |(p, _)| p.name()),
            Route::Email => self.email.as_ref().map_or("none", |(p, _)| p.name()),
        }
    }

    async fn send(&self, job: &Job) -> JobResult {
        let msg = &job.lead;
        if job.route == Route::Console {
            return match &self.console {
                Some(c) => match c.deliver(msg).await {
                    Ok(()) => JobResult::Sent {
                        provider: "console",
                        provider_id: None,
                    },
                    Err(e) => JobResult::Retry {
                        error: e.to_string(),
                        retry_after: None,
                        code: "console".into(),
                        ambiguous: false,
                    },
                },
                None => JobResult::Skipped("console sink off".into()),
            };
        }
        let Some(contact) = self.directory.contact(&msg.shop, &msg.member) else {
            return JobResult::Skipped("member not found".into());
        };
        let Some(shop) = self.shops.get(&msg.shop) else {
            return JobResult::Skipped("shop no longer configured".into());
        };
        let points_sum = (!job.others.is_empty()).then(|| {
            job.others
                .iter()
                .chain(std::iter::once(msg))
                .filter(|m| render::kind(m) == render::kind(msg))
                .map(|m| match &m.notice {
                    Notice::Posted { points, .. } => points.0,
                    _ => 0,
                })
                .sum()
        });
        let kind = render::kind(msg);
        let ctx = render::context(
            msg,
            &shop.voice,
            contact.first_name.clone(),
            job.others.len() + 1,
            points_sum,
        );
        let reference = format!("{}-{}", msg.shop, msg.id);
        match job.route {
            Route::Sms => {
                self.send_sms(msg, &contact, kind, &ctx, reference, job.ambiguous_since)
                    .await
            }
            Route::Email => self.send_email(msg, &contact, kind, &ctx, reference).await,
            Route::Console => JobResult::Skipped("console".into()),
        }
    }

    async fn send_sms(
        &self,
        msg: &OutboxMessage,
        contact: &Contact,
        kind: super::templates::EventKind,
        ctx: &super::templates::TemplateContext,
        reference: String,
        ambiguous_since: Option<DateTime<Utc>>,
    ) -> JobResult {
        let Some((provider, limit)) = &self.sms else {
            return JobResult::Skipped("no SMS provider".into());
        };
        let Some(phone) = contact.phone.clone() else {
            return JobResult::Skipped("no phone number".into());
        };
        if contact.consent.sms != Some(true) {
            return JobResult::Skipped("no SMS consent".into());
        }
        match self.store.is_suppressed(&msg.shop, &phone) {
            Ok(true) => return JobResult::Skipped("phone opted out (STOP)".into()),
            Ok(false) => {}
            Err(e) => {
                return JobResult::Retry {
                    error: e.to_string(),
                    retry_after: None,
                    code: "storage".into(),
                    ambiguous: false,
                }
            }
        }
        let rendered = match self.templates.render(kind, Channel::Sms, ctx) {
            Ok(r) => r,
            Err(e) => return template_dead(provider.name(), e.to_string()),
        };
        let sms = SmsMessage {
            to: phone,
            body: rendered.body,
            reference,
        };
        if let Some(since) = ambiguous_since {
            // An earlier attempt may have gone out: ask before sending again (a second
            // text costs the shop and annoys the member).
            limit.until_ready().await;
            match provider.find_sent(&sms, since).await {
                Ok(Some(id)) => {
                    tracing::info!(provider = provider.name(), reference = %sms.reference, "an earlier attempt had gone out; not sending again");
                    self.metrics.reconciled(provider.name(), "found");
                    return JobResult::Sent {
                        provider: provider.name(),
                        provider_id: Some(id),
                    };
                }
                Ok(None) => self.metrics.reconciled(provider.name(), "not_found"),
                // Cannot tell now: try the question again later rather than risk a
                // second text.
                Err(e @ SendError::Retryable { .. }) => {
                    self.metrics.reconciled(provider.name(), "error");
                    return outcome(provider.name(), Err(e));
                }
                // The question itself is refused (e.g. an API key without read access):
                // asking again will not help, so send and accept the risk.
                Err(e) => {
                    self.metrics.reconciled(provider.name(), "error");
                    tracing::warn!(provider = provider.name(), reference = %sms.reference, error = %e, "cannot check for an earlier send; sending again");
                }
            }
        }
        limit.until_ready().await;
        let started = std::time::Instant::now();
        let r = provider.send(&sms).await;
        self.metrics
            .provider_latency(provider.name(), started.elapsed());
        outcome(provider.name(), r)
    }

    async fn send_email(
        &self,
        _msg: &OutboxMessage,
        contact: &Contact,
        kind: super::templates::EventKind,
        ctx: &super::templates::TemplateContext,
        reference: String,
    ) -> JobResult {
        let Some((provider, limit)) = &self.email else {
            return JobResult::Skipped("no e-mail provider".into());
        };
        let Some(to) = contact.email.clone() else {
            return JobResult::Skipped("no e-mail address".into());
        };
        if contact.consent.email != Some(true) {
            return JobResult::Skipped("no e-mail consent".into());
        }
        let rendered = match self.templates.render(kind, Channel::Email, ctx) {
            Ok(r) => r,
            Err(e) => return template_dead(provider.name(), e.to_string()),
        };
        limit.until_ready().await;
        let started = std::time::Instant::now();
        let r = provider
            .send(&EmailMessage {
                to,
                to_name: contact.first_name.clone(),
                subject: rendered.subject.unwrap_or_default(),
                text: rendered.body,
                html: rendered.html,
                reference,
            })
            .await;
        self.metrics
            .provider_latency(provider.name(), started.elapsed());
        outcome(provider.name(), r)
    }
}

/// The `ambiguous_since` of message `id`'s channel `route`, if it is pending.
fn ambiguous_mark(
    seen: &mut BTreeMap<u64, (OutboxMessage, DeliveryState)>,
    id: u64,
    route: Route,
) -> Option<&mut Option<DateTime<Utc>>> {
    match seen.get_mut(&id)?.1.channels.get_mut(&route)? {
        ChannelStatus::Pending {
            ambiguous_since, ..
        } => Some(ambiguous_since),
        _ => None,
    }
}

fn template_dead(provider: &'static str, error: String) -> JobResult {
    JobResult::Dead {
        provider,
        status: None,
        code: Some("template".into()),
        error,
        unsubscribed: false,
    }
}

fn outcome(provider: &'static str, r: Result<super::providers::Accepted, SendError>) -> JobResult {
    match r {
        Ok(a) => JobResult::Sent {
            provider,
            provider_id: a.provider_id,
        },
        // The clients' reasons already name the status and the provider's code.
        Err(SendError::Retryable {
            reason,
            retry_after,
            status,
            code,
            ambiguous,
        }) => JobResult::Retry {
            error: reason,
            retry_after,
            code: code
                .or(status.map(|s| s.to_string()))
                .unwrap_or_else(|| "network".into()),
            ambiguous,
        },
        Err(SendError::Permanent {
            reason,
            status,
            code,
            unsubscribed,
        }) => JobResult::Dead {
            provider,
            status,
            code,
            error: reason,
            unsubscribed,
        },
    }
}

fn chrono_dur(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// If the shop is in its quiet hours at `now`, when they end.
fn quiet_until(shop: &ShopNotify, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let q = shop.quiet_hours?;
    let local = now.with_timezone(&shop.voice.timezone);
    if !q.contains(local.time()) {
        return None;
    }
    let mut day = local.date_naive();
    if local.time() >= q.end {
        day = day.succ_opt()?;
    }
    let end = day.and_time(q.end);
    // The end of quiet hours in a DST gap or fold: the earliest valid instant.
    use chrono::TimeZone;
    let end = shop
        .voice
        .timezone
        .from_local_datetime(&end)
        .earliest()
        .or_else(|| {
            shop.voice
                .timezone
                .from_local_datetime(&(end + chrono::Duration::hours(1)))
                .earliest()
        })?;
    Some(end.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A member store whose storage can be made to fail.
    struct FlakyStore {
        durable: std::sync::atomic::AtomicBool,
    }

    impl Directory for FlakyStore {
        fn contact(&self, _: &ShopId, _: &MemberId) -> Option<Contact> {
            None
        }
        fn withdraw_sms_consent(&self, _: &ShopId, _: &MemberId) {}
        fn durable(&self) -> crate::notify::delivery::DurableFuture<'_> {
            let ok = self.durable.load(std::sync::atomic::Ordering::SeqCst);
            Box::pin(async move {
                if ok {
                    Ok(())
                } else {
                    Err("storage flush failed: No space left on device".into())
                }
            })
        }
    }

    #[tokio::test]
    async fn nothing_is_sent_until_the_store_says_the_message_is_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let sent = dir.path().join("sent.log");
        std::fs::write(
            dir.path().join("rules.toml"),
            "[earn]\npoints_per_unit = \"1\"\n",
        )
        .unwrap();
        let config_path = dir.path().join("loyaltyd.toml");
        std::fs::write(
            &config_path,
            format!(
                "[server]\nadmin_token = \"long-enough\"\n[notify.console]\nfile = {:?}\n\
                 [[shops]]\nid = \"demo\"\ncurrency = \"USD\"\n",
                sent.display().to_string()
            ),
        )
        .unwrap();
        let config = crate::config::Config::load_with_env(&config_path, vec![]).unwrap();
        let db = sled::Config::new().temporary(true).open().unwrap();
        let store = Arc::new(FlakyStore {
            durable: std::sync::atomic::AtomicBool::new(false),
        });
        let notifier = crate::notify::setup::build(
            &config,
            &db,
            store.clone(),
            Arc::new(crate::metrics::Metrics::default()),
        )
        .unwrap();
        let msg: OutboxMessage = serde_json::from_value(serde_json::json!({
            "id": 1,
            "shop": "demo",
            "member": "m_00000000000000000001",
            "first_name": null,
            "posting_id": 1,
            "notice": {"notice": "tier_changed", "from": null, "to": "gold"},
            "created_at": Utc::now().to_rfc3339(),
        }))
        .unwrap();
        notifier
            .store
            .pending
            .insert(1u64.to_be_bytes(), serde_json::to_vec(&msg).unwrap())
            .unwrap();
        let mut sched = Schedule::new(schedule::watch(&notifier.store, Wakeup::default()));
        sweep(&notifier.store, &mut sched).await;

        notifier.pass(&mut sched, Utc::now()).await;
        let log = std::fs::read_to_string(&sent).unwrap_or_default();
        assert!(
            log.is_empty(),
            "sent before the message was durable: {log:?}"
        );
        assert_eq!(notifier.store.pending.len(), 1);

        store
            .durable
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let later = Utc::now() + chrono::Duration::seconds(2);
        notifier.pass(&mut sched, later).await;
        let log = std::fs::read_to_string(&sent).unwrap_or_default();
        assert!(log.contains("gold"), "not sent once durable: {log:?}");
    }

    fn shop(q: &str) -> ShopNotify {
        ShopNotify {
            voice: ShopVoice {
                name: "Demo".into(),
                timezone: "America/New_York".parse().unwrap(),
            },
            quiet_hours: QuietHours::parse(q),
        }
    }

    #[test]
    fn quiet_hours_hold_messages_until_the_local_morning() {
        let s = shop("21:00-08:00");
        // 23:30 in New York (EST, UTC-5) = 04:30Z next day.
        let now: DateTime<Utc> = "2026-11-26T04:30:00Z".parse().unwrap();
        assert_eq!(
            quiet_until(&s, now),
            Some("2026-11-26T13:00:00Z".parse().unwrap())
        );
        // 06:00 local: until 08:00 the same day.
        let now: DateTime<Utc> = "2026-11-26T11:00:00Z".parse().unwrap();
        assert_eq!(
            quiet_until(&s, now),
            Some("2026-11-26T13:00:00Z".parse().unwrap())
        );
        // Noon: not quiet.
        assert_eq!(
            quiet_until(&s, "2026-11-26T17:00:00Z".parse().unwrap()),
            None
        );
    }

    #[test]
    fn the_provider_rate_limit_lets_a_second_s_worth_through_then_holds_the_rest() {
        let l = limiter(3);
        assert!(
            (0..3).all(|_| l.check().is_ok()),
            "a burst of rate_per_sec passes"
        );
        assert!(l.check().is_err(), "the next one waits for a token");
    }

    #[test]
    fn the_breaker_settings_of_notify_reach_the_schedule_and_each_pass() {
        let c = NotifyConfig {
            breaker_failures: 2,
            breaker_max_open: Duration::from_secs(3),
            retry_base: Duration::from_millis(250),
            ..NotifyConfig::default()
        };
        let p = Policy::from_config(&c);
        let t = p.trip();
        assert_eq!(
            (t.failures, t.max_open, t.base, t.cap),
            (
                2,
                Duration::from_secs(3),
                Duration::from_millis(250),
                c.retry_cap
            )
        );
        // Within a pass, the second failure with nothing sent pauses the channel.
        let pause = PassPause::new(p.breaker_failures);
        let fail = || JobResult::Retry {
            code: "http_503".into(),
            error: String::new(),
            retry_after: None,
            ambiguous: false,
        };
        pause.saw(Route::Sms, &fail());
        assert!(!pause.paused(Route::Sms));
        pause.saw(Route::Sms, &fail());
        assert!(pause.paused(Route::Sms) && !pause.paused(Route::Email));
    }

    #[test]
    fn backoff_grows_is_capped_and_honours_retry_after() {
        let p = Policy {
            max_age: Duration::from_secs(3600),
            retry_base: Duration::from_millis(100),
            retry_cap: Duration::from_secs(2),
            coalesce: Duration::ZERO,
            concurrency: 1,
            breaker_failures: 5,
            breaker_max_open: Duration::from_secs(10),
        };
        for attempts in 0..30 {
            let b = p.backoff(attempts, None);
            assert!(b <= Duration::from_secs(2), "{b:?}");
        }
        let b = p.backoff(0, Some(Duration::from_secs(7)));
        assert!(
            b >= Duration::from_secs(7) && b < Duration::from_secs(8),
            "{b:?}"
        );
        // Spread: not every draw is the same.
        let draws: std::collections::HashSet<_> = (0..20).map(|_| p.backoff(5, None)).collect();
        assert!(draws.len() > 1);
    }
}
