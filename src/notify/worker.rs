//! The delivery worker: takes due messages from the outbox, decides per channel
//! (consent, contact, quiet hours, coalescing), renders the templates, sends through
//! the providers with a rate limit and bounded concurrency, and records each outcome:
//! sent, retried later with backoff, skipped, or dead-lettered.
//!
//! A channel is marked sent only after the provider accepted it; a crash in between
//! may send that one message again (at-least-once towards the provider), never lose
//! it, and a message marked sent is never sent again.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::stream::{self, StreamExt};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use loyaltyd_adapter::ShopId;
use tokio::sync::{watch, Notify};

use super::console::ConsoleSink;
use super::delivery::{
    ChannelStatus, Contact, DeadLetter, DeliveryState, DeliveryStore, Directory, Outcome, Route,
};
use super::outbox::{Notice, OutboxMessage};
use super::providers::{EmailMessage, EmailProvider, SendError, SmsMessage, SmsProvider};
use super::render::{self, ShopVoice};
use super::templates::{Channel, Templates};
use super::Sink;
use crate::config::{NotifyConfig, QuietHours};
use crate::metrics::Metrics;

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

/// Run until `stop` turns true.
pub async fn run(notifier: Arc<Notifier>, wakeup: Wakeup, mut stop: watch::Receiver<bool>) {
    loop {
        let next = notifier.pass(Utc::now()).await;
        let sleep = next
            .map(|t| (t - Utc::now()).to_std().unwrap_or(Duration::ZERO))
            .unwrap_or(Duration::from_secs(5))
            .clamp(Duration::from_millis(5), Duration::from_secs(5));
        tokio::select! {
            _ = wakeup.0.notified() => {}
            _ = tokio::time::sleep(sleep) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            // One last pass so messages committed before shutdown go out now.
            notifier.pass(Utc::now()).await;
            return;
        }
    }
}

/// One send: the lead message and the ones coalesced into it.
struct Job {
    route: Route,
    lead: OutboxMessage,
    lead_state: DeliveryState,
    others: Vec<(OutboxMessage, DeliveryState)>,
    attempts: u32,
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
    },
    Dead {
        provider: &'static str,
        status: Option<u16>,
        code: Option<String>,
        error: String,
        unsubscribed: bool,
    },
}

/// Messages due together: one member, one channel.
type GroupKey = (ShopId, String, Route);
/// A due message, its channels and the attempts made on this channel.
type Due = (OutboxMessage, DeliveryState, u32);

/// Messages scanned per pass.
const SCAN_LIMIT: usize = 20_000;

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

    /// Deliver what is due; returns when the next held message falls due.
    pub async fn pass(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let next = self.pass_inner(now).await;
        self.store.beat(Utc::now());
        next
    }

    async fn pass_inner(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let routes = self.routes();
        let mut next: Option<DateTime<Utc>> = None;
        let mut soonest = |t: DateTime<Utc>| {
            next = Some(next.map_or(t, |n: DateTime<Utc>| n.min(t)));
        };
        // Due (message, route) pairs grouped by member and route, oldest first.
        let mut groups: BTreeMap<GroupKey, Vec<Due>> = BTreeMap::new();
        // Messages held only by the coalescing window: they ride along when another
        // message of the same member and channel goes out.
        let mut joinable: BTreeMap<GroupKey, Vec<Due>> = BTreeMap::new();
        let mut held = Vec::new();
        for item in self.store.pending.iter().take(SCAN_LIMIT) {
            let Ok((_, value)) = item else { continue };
            let msg: OutboxMessage = match serde_json::from_slice(&value) {
                Ok(m) => m,
                Err(e) => {
                    tracing::error!(error = %e, "undecodable outbox message left in place");
                    continue;
                }
            };
            let mut state = match self.store.state(msg.id) {
                Ok(Some(s)) => s,
                Ok(None) => DeliveryState::default(),
                Err(e) => {
                    tracing::error!(error = %e, message_id = msg.id, "undecodable delivery state");
                    continue;
                }
            };
            let mut changed = false;
            if state.channels.is_empty() {
                for r in &routes {
                    state.channels.insert(
                        *r,
                        ChannelStatus::Pending {
                            attempts: 0,
                            next_at: msg.created_at,
                            last_error: None,
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
                changed = true;
            }
            let quiet = self.shops.get(&msg.shop).and_then(|s| quiet_until(s, now));
            for (route, status) in state.channels.clone() {
                let ChannelStatus::Pending {
                    attempts, next_at, ..
                } = status
                else {
                    continue;
                };
                // Coalescing holds a message for the window after it was queued.
                let mut due_at = next_at;
                if !self.policy.coalesce.is_zero() && route != Route::Console && attempts == 0 {
                    due_at = due_at.max(msg.created_at + chrono_dur(self.policy.coalesce));
                }
                if due_at > now {
                    if next_at <= now {
                        joinable
                            .entry((msg.shop.clone(), msg.member.to_string(), route))
                            .or_default()
                            .push((msg.clone(), state.clone(), attempts));
                    }
                    soonest(due_at);
                    continue;
                }
                if let (Some(until), true) = (quiet, route != Route::Console) {
                    state.channels.insert(
                        route,
                        ChannelStatus::Pending {
                            attempts,
                            next_at: until,
                            last_error: Some("quiet hours".into()),
                        },
                    );
                    changed = true;
                    soonest(until);
                    continue;
                }
                groups
                    .entry((msg.shop.clone(), msg.member.to_string(), route))
                    .or_default()
                    .push((msg.clone(), state.clone(), attempts));
            }
            if changed {
                held.push(Outcome {
                    message: msg,
                    state,
                    dead: Vec::new(),
                });
            }
        }
        if !held.is_empty() {
            if let Err(e) = self.store.record(&held, now) {
                tracing::error!(error = %e, "could not record delivery state");
            }
        }
        if !self.policy.coalesce.is_zero() {
            for (key, msgs) in groups.iter_mut() {
                if let Some(extra) = joinable.remove(key) {
                    msgs.extend(extra);
                    msgs.sort_by_key(|(m, _, _)| m.id);
                }
            }
        }
        let jobs: Vec<Job> = groups
            .into_iter()
            .flat_map(|((_, _, route), mut msgs)| {
                if self.policy.coalesce.is_zero() || route == Route::Console {
                    msgs.into_iter()
                        .map(|(m, s, a)| Job {
                            route,
                            lead: m,
                            lead_state: s,
                            others: Vec::new(),
                            attempts: a,
                        })
                        .collect::<Vec<_>>()
                } else {
                    // The latest message speaks for all: it has the newest balance.
                    let Some((lead, lead_state, attempts)) = msgs.pop() else {
                        return Vec::new();
                    };
                    vec![Job {
                        route,
                        lead,
                        lead_state,
                        others: msgs.into_iter().map(|(m, s, _)| (m, s)).collect(),
                        attempts,
                    }]
                }
            })
            .collect();
        if jobs.is_empty() {
            return next;
        }
        let results: Vec<(Job, JobResult)> = stream::iter(jobs)
            .map(|job| async move {
                let r = self.send(&job).await;
                (job, r)
            })
            .buffer_unordered(self.policy.concurrency)
            .collect()
            .await;
        let now = Utc::now();
        let mut outcomes = Vec::with_capacity(results.len());
        for (job, result) in results {
            if let Some(t) = self.settle(job, result, now, &mut outcomes) {
                soonest(t);
            }
        }
        if let Err(e) = self.store.record(&outcomes, now) {
            tracing::error!(error = %e, "could not record delivery outcomes");
        }
        next
    }

    /// Turn a job's result into stored outcomes; returns when to try again.
    fn settle(
        &self,
        job: Job,
        result: JobResult,
        now: DateTime<Utc>,
        outcomes: &mut Vec<Outcome>,
    ) -> Option<DateTime<Utc>> {
        let route = job.route;
        let attempts = job.attempts + 1;
        let lead_id = job.lead.id;
        let mut retry_at = None;
        let (lead_status, dead, others_status) = match result {
            JobResult::Sent {
                provider,
                provider_id,
            } => {
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
            } => {
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
                    let at = now + chrono_dur(self.policy.backoff(job.attempts, retry_after));
                    retry_at = Some(at);
                    (
                        ChannelStatus::Pending {
                            attempts,
                            next_at: at,
                            last_error: Some(error),
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
        let mut lead_state = job.lead_state;
        lead_state.channels.insert(route, lead_status);
        outcomes.push(Outcome {
            message: job.lead,
            state: lead_state,
            dead: dead.into_iter().collect(),
        });
        // Coalesced messages share a success or a skip; on failure they wait with
        // the lead and are retried together.
        if let Some(status) = others_status {
            for (m, mut s) in job.others {
                s.channels.insert(route, status.clone());
                outcomes.push(Outcome {
                    message: m,
                    state: s,
                    dead: Vec::new(),
                });
            }
        } else if let Some(at) = retry_at {
            for (m, mut s) in job.others {
                if let Some(ChannelStatus::Pending { attempts, .. }) =
                    s.channels.get(&route).cloned()
                {
                    s.channels.insert(
                        route,
                        ChannelStatus::Pending {
                            attempts,
                            next_at: at,
                            last_error: None,
                        },
                    );
                }
                outcomes.push(Outcome {
                    message: m,
                    state: s,
                    dead: Vec::new(),
                });
            }
        }
        retry_at
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
                .map(|(m, _)| m)
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
            Route::Sms => self.send_sms(msg, &contact, kind, &ctx, reference).await,
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
                }
            }
        }
        let rendered = match self.templates.render(kind, Channel::Sms, ctx) {
            Ok(r) => r,
            Err(e) => return template_dead(provider.name(), e.to_string()),
        };
        limit.until_ready().await;
        let started = std::time::Instant::now();
        let r = provider
            .send(&SmsMessage {
                to: phone,
                body: rendered.body,
                reference,
            })
            .await;
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
        }) => JobResult::Retry {
            error: reason,
            retry_after,
            code: code
                .or(status.map(|s| s.to_string()))
                .unwrap_or_else(|| "network".into()),
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
    fn backoff_grows_is_capped_and_honours_retry_after() {
        let p = Policy {
            max_age: Duration::from_secs(3600),
            retry_base: Duration::from_millis(100),
            retry_cap: Duration::from_secs(2),
            coalesce: Duration::ZERO,
            concurrency: 1,
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
