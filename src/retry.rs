//! Retrying events that wait for the sender's API (see `ledger::inbox`): complete them
//! through their adapter, apply them (deduplicated), make that durable, then forget
//! them. A crash between applying and forgetting only causes a harmless duplicate.
//!
//! Each event has its own backoff (2 s, 4 s, 8 s, … up to the adapter's cap,
//! `[shops.square] max_retry_backoff_secs`, 300 s by default): it is tried again only
//! once due, so one order the API cannot serve does not hold up the others.
//!
//! **The API is never hammered.** One request at a time, from one task. Per shop and
//! adapter a breaker (`crate::breaker`, shared with the webhook path): after a failed
//! attempt the adapter's waiting events are left alone for a pause that doubles with
//! every failed probe (2 s, 4 s, …, at most a minute or the cap if lower); then the
//! oldest due event is tried as the probe. Hundreds of queued events cost one request
//! per pause, not one each.
//!
//! **A backlog drains at once.** As soon as the API answers, every waiting event of
//! that adapter is completed in the same pass, due or not, oldest first — not each on
//! its own backoff. Three retryable failures in a row stop the pass (the API went down
//! again). Applied events are made durable in batches (one flush per
//! [`BATCH`] events) before they are forgotten.

use std::collections::VecDeque;
use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use loyaltyd_adapter::{Adapter, EnrichError};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::adapters::AdapterRegistry;
use crate::breaker::{max_backoff, ApiBreakers};
use crate::config::{Config, ShopConfig};
use crate::ingest::apply_event;
use crate::ledger::inbox::QueuedEvent;
use crate::ledger::{Ledger, LedgerError};
use crate::notify::worker::Wakeup;

/// Applied events made durable with one flush.
pub const BATCH: usize = 64;

/// Retryable failures in a row, after the API answered in the same pass, that stop the
/// pass (one failure stops it when the API has not answered yet).
const FAILURES_IN_A_ROW: u32 = 3;

/// Run until `stop` turns true, looking for due events every `every`.
pub async fn run(
    config: Config,
    ledger: Ledger,
    adapters: AdapterRegistry,
    wakeup: Wakeup,
    mut stop: watch::Receiver<bool>,
    every: Duration,
) {
    loop {
        if let Err(e) = pass(&config, &ledger, &adapters, &wakeup).await {
            tracing::error!(error = %e, "retrying queued events failed; will try again");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
    }
}

/// One pass over every shop's waiting events.
pub async fn pass(
    config: &Config,
    ledger: &Ledger,
    adapters: &AdapterRegistry,
    wakeup: &Wakeup,
) -> Result<(), LedgerError> {
    let now = Utc::now();
    let mut depth = 0usize;
    let mut oldest: Option<DateTime<Utc>> = None;
    for shop in &config.shops {
        let waiting = ledger.waiting(&shop.id)?;
        // Group by adapter, keeping the oldest-first order.
        let mut groups: Vec<(String, Vec<QueuedEvent>)> = Vec::new();
        for q in waiting {
            match groups.iter_mut().find(|(a, _)| *a == q.adapter) {
                Some((_, g)) => g.push(q),
                None => groups.push((q.adapter.clone(), vec![q])),
            }
        }
        for (name, events) in groups {
            let Some(adapter) = adapters.get(&shop.id, &name) else {
                tracing::warn!(shop = %shop.id, adapter = %name, waiting = events.len(), "queued events for an adapter no longer configured");
                depth += events.len();
                oldest = events.iter().map(|q| q.queued_at).chain(oldest).min();
                continue;
            };
            let breakers = adapters.breakers();
            let left = drain(
                ledger,
                adapter.as_ref(),
                wakeup,
                shop,
                events,
                breakers,
                now,
            )
            .await?;
            depth += left.len();
            oldest = left.iter().map(|q| q.queued_at).chain(oldest).min();
        }
    }
    let m = inbox_metrics();
    m.depth.set(i64::try_from(depth).unwrap_or(i64::MAX));
    m.oldest_age
        .set(oldest.map_or(0, |t| (now - t).num_seconds().max(0)));
    Ok(())
}

/// Work through one adapter's waiting events of one shop (oldest first); returns those
/// still waiting. Due events are tried first; once the API has answered, the events not
/// due yet are tried too.
async fn drain(
    ledger: &Ledger,
    adapter: &dyn Adapter,
    wakeup: &Wakeup,
    shop: &ShopConfig,
    events: Vec<QueuedEvent>,
    breakers: &ApiBreakers,
    now: DateTime<Utc>,
) -> Result<Vec<QueuedEvent>, LedgerError> {
    let name = adapter.name();
    if breakers.is_open(&shop.id, name, now) {
        return Ok(events);
    }
    let cap = max_backoff(shop, name);
    let attempts = |outcome: &str| {
        inbox_metrics()
            .attempts
            .get_or_create(&AttemptLabels {
                adapter: name.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    };
    let (due, not_due): (Vec<QueuedEvent>, Vec<QueuedEvent>) =
        events.into_iter().partition(|q| q.next_at <= now);
    let mut queue: VecDeque<QueuedEvent> = due.into();
    let mut not_due = Some(not_due);
    let mut left = Vec::new();
    let mut done: Vec<QueuedEvent> = Vec::new();
    let mut answered = false;
    let mut failures = 0;
    loop {
        let Some(q) = queue.pop_front() else {
            match not_due.take() {
                // The API answers: no need to wait for each event's own time.
                Some(rest) if answered => {
                    queue.extend(rest);
                    continue;
                }
                Some(rest) => left.extend(rest),
                None => {}
            }
            break;
        };
        match adapter.enrich(q.envelope.clone()).await {
            Ok(complete) => {
                attempts("applied");
                let applied = apply_event(ledger, shop, name, &complete, Utc::now())?;
                tracing::info!(shop = %shop.id, event = %q.envelope.event_id, attempts = q.attempts + 1, outcome = ?applied, "queued event applied");
                (answered, failures) = (true, 0);
                breakers.close(&shop.id, name);
                done.push(q);
            }
            Err(EnrichError::Retryable(reason)) => {
                attempts("retry");
                ledger.reschedule(&shop.id, &q, &reason, Utc::now(), cap)?;
                left.push(q);
                failures += 1;
                if !answered || failures >= FAILURES_IN_A_ROW {
                    let hold = breakers.trip(&shop.id, name, now, cap);
                    tracing::warn!(shop = %shop.id, adapter = %name, %reason, pause_secs = hold.num_seconds(), "sender's API still failing; queued events wait");
                    left.extend(queue.drain(..));
                    left.extend(not_due.take().unwrap_or_default());
                    break;
                }
            }
            Err(EnrichError::Permanent(reason)) => {
                attempts("rejected");
                ledger.record_ignored(
                    &shop.id,
                    name,
                    &q.envelope.event_id,
                    "sale",
                    &format!("rejected: {reason}"),
                    Utc::now(),
                )?;
                tracing::warn!(shop = %shop.id, event = %q.envelope.event_id, %reason, "queued event rejected for good");
                (answered, failures) = (true, 0);
                breakers.close(&shop.id, name);
                done.push(q);
            }
        }
        if done.len() >= BATCH {
            settle(ledger, shop, &mut done, wakeup).await?;
        }
    }
    settle(ledger, shop, &mut done, wakeup).await?;
    Ok(left)
}

/// Make the applied events durable, then forget them.
async fn settle(
    ledger: &Ledger,
    shop: &ShopConfig,
    done: &mut Vec<QueuedEvent>,
    wakeup: &Wakeup,
) -> Result<(), LedgerError> {
    if done.is_empty() {
        return Ok(());
    }
    ledger.durable().await?;
    for q in done.drain(..) {
        ledger.dequeue(&shop.id, &q)?;
    }
    wakeup.wake();
    Ok(())
}

/// Labels of an attempt at a queued event.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    /// Adapter name.
    pub adapter: String,
    /// `applied` (completed and applied), `retry` (the API failed; tried again later) or
    /// `rejected` (the API's answer cannot be used; recorded as ignored).
    pub outcome: String,
}

/// The inbox's metrics. The retry worker keeps them up to date (after each pass, so at
/// most a second old); [`crate::metrics::Metrics`] registers them for `/metrics`.
#[derive(Debug, Default)]
pub struct InboxMetrics {
    /// `loyaltyd_inbox_depth`.
    pub depth: Gauge,
    /// `loyaltyd_inbox_oldest_age_seconds`.
    pub oldest_age: Gauge,
    /// `loyaltyd_inbox_attempts_total`.
    pub attempts: Family<AttemptLabels, Counter>,
}

impl InboxMetrics {
    /// Add them to a registry (prefix `loyaltyd_` from the registry).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "inbox_depth",
            "Events accepted and waiting for the sender's API (e.g. Square orders), all shops",
            self.depth.clone(),
        );
        registry.register(
            "inbox_oldest_age_seconds",
            "Age of the oldest event waiting for the sender's API",
            self.oldest_age.clone(),
        );
        registry.register(
            "inbox_attempts",
            "Attempts by the retry worker to complete a waiting event, by adapter and outcome",
            self.attempts.clone(),
        );
    }
}

/// The process's inbox metrics.
pub fn inbox_metrics() -> &'static InboxMetrics {
    static METRICS: OnceLock<InboxMetrics> = OnceLock::new();
    METRICS.get_or_init(InboxMetrics::default)
}

#[cfg(test)]
mod tests {
    use super::*;
    use loyaltyd_adapter::{
        CustomerRef, EnrichFuture, EventEnvelope, ParseError, Parsed, PosEvent, RawRequest, Sale,
        SaleLine, ShopId, VerifyError,
    };
    use rust_decimal::Decimal;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// An adapter whose API is up or down at the test's command.
    #[derive(Default)]
    struct FlakyApi {
        up: AtomicBool,
        calls: AtomicUsize,
    }

    impl Adapter for FlakyApi {
        fn name(&self) -> &'static str {
            "square"
        }
        fn verify(&self, _: &RawRequest) -> Result<(), VerifyError> {
            Err(VerifyError::Mismatch)
        }
        fn parse(&self, _: &RawRequest) -> Result<Parsed, ParseError> {
            Err(ParseError::Malformed("not used".into()))
        }
        fn enrich(&self, event: EventEnvelope) -> EnrichFuture<'_> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let up = self.up.load(Ordering::SeqCst);
            Box::pin(async move {
                if up {
                    Ok(event)
                } else {
                    Err(EnrichError::Retryable("503".into()))
                }
            })
        }
    }

    fn payment(shop: &ShopId, n: u32, at: DateTime<Utc>) -> EventEnvelope {
        let dollars = |v: i64| Decimal::new(v, 0);
        EventEnvelope {
            shop: shop.clone(),
            adapter: "square".into(),
            event_id: format!("ev-{n}"),
            occurred_at: at,
            event: PosEvent::Sale(Sale {
                order_id: format!("PAY-{n}"),
                source_order_id: Some(format!("ORD-{n}")),
                customer: Some(CustomerRef {
                    email: Some(format!("m{n}@example.com")),
                    ..CustomerRef::default()
                }),
                currency: "USD".parse().unwrap(),
                lines: vec![SaleLine {
                    line_id: format!("li-{n}"),
                    sku: None,
                    product_id: None,
                    variant_id: None,
                    title: "Cold Brew".into(),
                    vendor: None,
                    quantity: dollars(1),
                    unit_price: dollars(10),
                    discount: Decimal::ZERO,
                    tax: Decimal::ZERO,
                    product_type: None,
                    categories: Vec::new(),
                    gift_card: false,
                }],
                shipping: Decimal::ZERO,
                tax: Decimal::ZERO,
                taxes_included: false,
                total: dollars(10),
                location_id: None,
                channel: None,
            }),
        }
    }

    #[tokio::test]
    async fn a_down_api_gets_one_probe_per_pause_and_the_whole_backlog_drains_once_it_answers() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("rules.toml"),
            "[earn]\npoints_per_unit = \"1\"\n",
        )
        .unwrap();
        let path = dir.path().join("loyaltyd.toml");
        std::fs::write(
            &path,
            format!(
                "[server]\nadmin_token = \"test-admin-token\"\n[storage]\npath = \"{}\"\n\
                 [[shops]]\nid = \"demo\"\ncurrency = \"USD\"\nrules = \"rules.toml\"\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let config = Config::load_with_env(&path, vec![]).unwrap();
        let shop = &config.shops[0];
        let ledger = Ledger::open(&dir.path().join("data")).unwrap();
        let wakeup = Wakeup::default();
        let api = FlakyApi::default();
        let t0 = Utc::now();
        for n in 0..5 {
            ledger
                .enqueue(&shop.id, "square", &payment(&shop.id, n, t0), "503", t0)
                .unwrap();
        }
        // The oldest event was retried often already: its own next attempt is far off.
        let first = ledger.waiting(&shop.id).unwrap().remove(0);
        let mut tired = first.clone();
        tired.attempts = 8;
        ledger
            .reschedule(&shop.id, &tired, "503", t0, Duration::from_secs(300))
            .unwrap();

        let breakers = ApiBreakers::default();
        let waiting = || ledger.waiting(&shop.id).unwrap();
        // Down: one probe, then a pause in which nothing is tried.
        let t1 = t0 + chrono::Duration::seconds(3);
        let left = drain(&ledger, &api, &wakeup, shop, waiting(), &breakers, t1).await;
        assert_eq!(left.unwrap().len(), 5);
        assert_eq!(api.calls.load(Ordering::SeqCst), 1);
        let t = t1 + chrono::Duration::seconds(1);
        let left = drain(&ledger, &api, &wakeup, shop, waiting(), &breakers, t).await;
        assert_eq!(left.unwrap().len(), 5);
        assert_eq!(api.calls.load(Ordering::SeqCst), 1);

        // Up: the next probe succeeds and everything drains in the same pass, the event
        // whose own retry is minutes away included.
        api.up.store(true, Ordering::SeqCst);
        let t2 = t1 + chrono::Duration::seconds(2);
        let left = drain(&ledger, &api, &wakeup, shop, waiting(), &breakers, t2).await;
        assert!(left.unwrap().is_empty());
        assert_eq!(api.calls.load(Ordering::SeqCst), 6);
        assert!(ledger.waiting(&shop.id).unwrap().is_empty());
        for n in 0..5 {
            assert!(ledger
                .delivery(&shop.id, "square", &format!("ev-{n}"))
                .unwrap()
                .is_some());
        }
    }
}
