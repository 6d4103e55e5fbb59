//! Prometheus metrics (`GET /metrics`, text format), with `prometheus-client`.

use std::sync::atomic::Ordering;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::ledger::commit::CommitStats;

/// Labels of a webhook request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    /// Adapter name (or `unknown`).
    pub adapter: String,
    /// What happened: `applied`, `duplicate`, `ignored`, `reversed`, `rejected_signature`, …
    pub outcome: String,
}

/// Labels of a rules reload.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// Shop id.
    pub shop: String,
    /// `ok` or `rejected`.
    pub outcome: String,
}

/// Labels of a notification outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotificationLabels {
    /// `sms`, `email` or `console`.
    pub channel: String,
    /// Provider name.
    pub provider: String,
    /// `sent`, `retry`, `dead`, `skipped`.
    pub outcome: String,
}

/// Labels of a program account total.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PointsLabels {
    /// Shop id.
    pub shop: String,
    /// `issued`, `redeemed`, `expired`, `reversed`, `adjusted`.
    pub account: String,
}

/// Labels of a provider failure.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// Provider name.
    pub provider: String,
    /// The provider's error code (Twilio `21610`), else the HTTP status, else `network`.
    pub code: String,
}

/// Labels of a reconciliation after an ambiguous send.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// Provider name.
    pub provider: String,
    /// `found` (not sent again), `not_found` (sent), `error` (asked again later, or sent
    /// when the question is refused).
    pub result: String,
}

/// Labels of a provider.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    /// Provider name.
    pub provider: String,
}

/// The daemon's metrics.
pub struct Metrics {
    notifications: Family<NotificationLabels, Counter>,
    provider_seconds: Family<ProviderLabels, Histogram>,
    outbox_depth: prometheus_client::metrics::gauge::Gauge,
    outbox_oldest: prometheus_client::metrics::gauge::Gauge,
    points: Family<PointsLabels, prometheus_client::metrics::gauge::Gauge>,
    provider_failures: Family<FailureLabels, Counter>,
    reconciled: Family<ReconcileLabels, Counter>,
    storage_bytes: prometheus_client::metrics::gauge::Gauge,
    rules_reloads: Family<ReloadLabels, Counter>,
    registry: Registry,
    webhooks: Family<WebhookLabels, Counter>,
    webhook_seconds: Family<WebhookLabels, Histogram>,
    flushes: Counter,
    flushed_writers: Counter,
    notify_passes: Counter,
    notify_examined: Counter,
    notify_scheduled: prometheus_client::metrics::gauge::Gauge,
    notify_held: prometheus_client::metrics::gauge::Gauge,
    notify_parked: prometheus_client::metrics::gauge::Gauge,
    notify_circuit: Family<ChannelLabels, prometheus_client::metrics::gauge::Gauge>,
}

/// Labels of a notification channel.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelLabels {
    /// `sms`, `email` or `console`.
    pub channel: String,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("loyaltyd");
        let webhooks = Family::<WebhookLabels, Counter>::default();
        let webhook_seconds = Family::<WebhookLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
        });
        let rules_reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "rules_reloads",
            "Rules file reloads by shop and outcome (rejected: the old rules stay)",
            rules_reloads.clone(),
        );
        // The inbox retry worker's gauges (`loyaltyd_inbox_depth`, …), updated by the worker.
        crate::retry::inbox_metrics().register(&mut registry);
        let flushes = Counter::default();
        let flushed_writers = Counter::default();
        registry.register(
            "webhooks",
            "Webhook requests by adapter and outcome",
            webhooks.clone(),
        );
        registry.register(
            "webhook_duration_seconds",
            "Time from request to answer, including the durable flush",
            webhook_seconds.clone(),
        );
        registry.register(
            "storage_flushes",
            "Group-commit flushes of sled",
            flushes.clone(),
        );
        registry.register(
            "storage_flushed_writers",
            "Writers made durable by group-commit flushes (divide by flushes for the batch size)",
            flushed_writers.clone(),
        );
        let notifications = Family::<NotificationLabels, Counter>::default();
        registry.register(
            "notifications",
            "Notification attempts by channel, provider and outcome",
            notifications.clone(),
        );
        let provider_seconds = Family::<ProviderLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_5, 2.0, 16))
        });
        registry.register(
            "provider_request_duration_seconds",
            "Time a provider took to answer a send request",
            provider_seconds.clone(),
        );
        let outbox_depth = prometheus_client::metrics::gauge::Gauge::default();
        registry.register(
            "outbox_depth",
            "Notification messages waiting in the outbox",
            outbox_depth.clone(),
        );
        let outbox_oldest = prometheus_client::metrics::gauge::Gauge::default();
        registry.register(
            "outbox_oldest_age_seconds",
            "Age of the oldest message waiting in the outbox",
            outbox_oldest.clone(),
        );
        let points = Family::<PointsLabels, prometheus_client::metrics::gauge::Gauge>::default();
        registry.register(
            "points",
            "Points moved through each program account since the shop began (issued, redeemed, expired, reversed; adjusted is net)",
            points.clone(),
        );
        let storage_bytes = prometheus_client::metrics::gauge::Gauge::default();
        registry.register(
            "storage_size_bytes",
            "Size of the sled database on disk",
            storage_bytes.clone(),
        );
        let provider_failures = Family::<FailureLabels, Counter>::default();
        registry.register(
            "provider_failures",
            "Failed provider sends by provider and error code (retried or dead-lettered)",
            provider_failures.clone(),
        );
        let reconciled = Family::<ReconcileLabels, Counter>::default();
        registry.register(
            "notify_reconciled",
            "Checks with the provider, before sending again, whether an attempt without a clear answer (timeout, 500) had gone out",
            reconciled.clone(),
        );
        let notify_passes = Counter::default();
        registry.register(
            "notify_passes",
            "Passes of the delivery worker (each takes at most one batch of due messages)",
            notify_passes.clone(),
        );
        let notify_examined = Counter::default();
        registry.register(
            "notify_examined",
            "Outbox messages the delivery worker read: the due ones, and those checked for coalescing (not the whole outbox)",
            notify_examined.clone(),
        );
        let notify_scheduled = prometheus_client::metrics::gauge::Gauge::default();
        registry.register(
            "notify_scheduled",
            "Messages in the delivery worker's in-memory due-time index",
            notify_scheduled.clone(),
        );
        let notify_held = prometheus_client::metrics::gauge::Gauge::default();
        registry.register(
            "notify_coalescing_held",
            "Messages waiting in their coalescing window",
            notify_held.clone(),
        );
        let notify_parked = prometheus_client::metrics::gauge::Gauge::default();
        registry.register(
            "notify_parked",
            "Messages waiting for a paused channel to resume",
            notify_parked.clone(),
        );
        let notify_circuit =
            Family::<ChannelLabels, prometheus_client::metrics::gauge::Gauge>::default();
        registry.register(
            "notify_circuit_open",
            "1 while a channel pauses after its provider kept failing (or asked to wait with 429)",
            notify_circuit.clone(),
        );
        Metrics {
            notify_passes,
            notify_examined,
            notify_scheduled,
            notify_held,
            notify_parked,
            notify_circuit,
            provider_failures,
            reconciled,
            points,
            storage_bytes,
            notifications,
            provider_seconds,
            outbox_depth,
            outbox_oldest,
            rules_reloads,
            registry,
            webhooks,
            webhook_seconds,
            flushes,
            flushed_writers,
        }
    }
}

impl Metrics {
    /// Count one webhook request.
    pub fn webhook(&self, adapter: &str, outcome: &str, took: Duration) {
        let labels = WebhookLabels {
            adapter: adapter.to_string(),
            outcome: outcome.to_string(),
        };
        self.webhooks.get_or_create(&labels).inc();
        self.webhook_seconds
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// Count a rules reload.
    pub fn rules_reload(&self, shop: &str, ok: bool) {
        self.rules_reloads
            .get_or_create(&ReloadLabels {
                shop: shop.to_string(),
                outcome: if ok { "ok" } else { "rejected" }.to_string(),
            })
            .inc();
    }

    /// Count a notification outcome.
    pub fn notification(&self, channel: &str, provider: &str, outcome: &str) {
        self.notifications
            .get_or_create(&NotificationLabels {
                channel: channel.to_string(),
                provider: provider.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Time one provider request took.
    pub fn provider_latency(&self, provider: &str, took: Duration) {
        self.provider_seconds
            .get_or_create(&ProviderLabels {
                provider: provider.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    /// Outbox depth and the age of its oldest message.
    pub fn outbox(&self, depth: usize, oldest: Option<chrono::Duration>) {
        self.outbox_depth.set(depth as i64);
        self.outbox_oldest
            .set(oldest.map_or(0, |d| d.num_seconds().max(0)));
    }

    /// Count a failed send.
    pub fn provider_failure(&self, provider: &str, code: &str) {
        self.provider_failures
            .get_or_create(&FailureLabels {
                provider: provider.to_string(),
                code: code.to_string(),
            })
            .inc();
    }

    /// Count a check for an earlier send.
    pub fn reconciled(&self, provider: &str, result: &str) {
        self.reconciled
            .get_or_create(&ReconcileLabels {
                provider: provider.to_string(),
                result: result.to_string(),
            })
            .inc();
    }

    /// A shop's program account total.
    pub fn points(&self, shop: &str, account: &str, value: i64) {
        self.points
            .get_or_create(&PointsLabels {
                shop: shop.to_string(),
                account: account.to_string(),
            })
            .set(value);
    }

    /// The database's size on disk.
    pub fn storage_size(&self, bytes: u64) {
        self.storage_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// The text exposition, with storage counters brought up to date.
    pub fn render(&self, commit: Option<&CommitStats>) -> String {
        if let Some(c) = commit {
            let f = c.flushes.load(Ordering::Relaxed);
            self.flushes.inc_by(f.saturating_sub(self.flushes.get()));
            let w = c.waiters.load(Ordering::Relaxed);
            self.flushed_writers
                .inc_by(w.saturating_sub(self.flushed_writers.get()));
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// One pass of the delivery worker: messages it read, messages in its due-time
    /// index, messages held for coalescing, messages parked behind a paused channel.
    pub fn notify_pass(&self, examined: usize, scheduled: usize, held: usize, parked: usize) {
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.notify_passes.inc();
        self.notify_examined.inc_by(examined as u64);
        self.notify_scheduled.set(gauge(scheduled));
        self.notify_held.set(gauge(held));
        self.notify_parked.set(gauge(parked));
    }

    /// Whether a channel's circuit breaker is open.
    pub fn notify_circuit(&self, channel: &str, open: bool) {
        self.notify_circuit
            .get_or_create(&ChannelLabels {
                channel: channel.to_string(),
            })
            .set(i64::from(open));
    }
}
