//! Retrying events that wait for the sender's API (see `ledger::inbox`): complete them
//! through their adapter, apply them (deduplicated), make that durable, then forget
//! them. A crash between applying and forgetting only causes a harmless duplicate.

use std::time::Duration;

use loyaltyd_adapter::EnrichError;
use tokio::sync::watch;

use crate::adapters::AdapterRegistry;
use crate::config::Config;
use crate::ingest::apply_event;
use crate::ledger::{Ledger, LedgerError};
use crate::notify::worker::Wakeup;

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

/// One pass over every shop's due events.
pub async fn pass(
    config: &Config,
    ledger: &Ledger,
    adapters: &AdapterRegistry,
    wakeup: &Wakeup,
) -> Result<(), LedgerError> {
    let now = chrono::Utc::now();
    for shop in &config.shops {
        for q in ledger.due(&shop.id, now)? {
            let Some(adapter) = adapters.get(&shop.id, &q.adapter) else {
                tracing::warn!(shop = %shop.id, adapter = %q.adapter, "queued event for an adapter no longer configured");
                continue;
            };
            match adapter.enrich(q.envelope.clone()).await {
                Ok(complete) => {
                    let applied = apply_event(ledger, shop, adapter.name(), &complete, now)?;
                    ledger.durable().await?;
                    ledger.dequeue(&shop.id, &q)?;
                    tracing::info!(shop = %shop.id, event = %q.envelope.event_id, attempts = q.attempts + 1, outcome = ?applied, "queued event applied");
                    wakeup.wake();
                }
                Err(EnrichError::Retryable(reason)) => {
                    tracing::warn!(shop = %shop.id, event = %q.envelope.event_id, attempts = q.attempts + 1, %reason, "queued event still waiting");
                    ledger.reschedule(&shop.id, &q, &reason, now)?;
                }
                Err(EnrichError::Permanent(reason)) => {
                    ledger.record_ignored(
                        &shop.id,
                        adapter.name(),
                        &q.envelope.event_id,
                        "sale",
                        &format!("rejected: {reason}"),
                        now,
                    )?;
                    ledger.durable().await?;
                    ledger.dequeue(&shop.id, &q)?;
                    tracing::warn!(shop = %shop.id, event = %q.envelope.event_id, %reason, "queued event rejected for good");
                }
            }
        }
    }
    Ok(())
}
