//! The delivery worker: oldest message first, to the sink, then marked sent.
//!
//! A message is moved to the sent tree only after the sink accepted it, in one
//! transaction; a crash in between may deliver it once more (at-least-once towards the
//! sink) but never loses it, and a message already moved is never delivered again.

use std::sync::Arc;
use std::time::Duration;

use sled::transaction::ConflictableTransactionError;
use sled::Transactional;
use tokio::sync::{watch, Notify};

use super::outbox::{OutboxMessage, SentRecord, PENDING_TREE, SENT_TREE};
use super::Sink;

/// Handle to wake the worker after new messages were committed.
#[derive(Clone, Default)]
pub struct Wakeup(Arc<Notify>);

impl Wakeup {
    /// Tell the worker there is work.
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// Run until `stop` turns true. Retries failed deliveries every `retry_every`.
pub async fn run<S: Sink>(
    db: sled::Db,
    sink: S,
    wakeup: Wakeup,
    mut stop: watch::Receiver<bool>,
    retry_every: Duration,
) -> Result<(), sled::Error> {
    let pending = db.open_tree(PENDING_TREE)?;
    let sent = db.open_tree(SENT_TREE)?;
    loop {
        drain(&pending, &sent, &sink).await;
        tokio::select! {
            _ = wakeup.0.notified() => {}
            _ = tokio::time::sleep(retry_every) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            // One last pass so messages committed before shutdown go out now.
            drain(&pending, &sent, &sink).await;
            return Ok(());
        }
    }
}

async fn drain<S: Sink>(pending: &sled::Tree, sent: &sled::Tree, sink: &S) {
    loop {
        // Take a bounded batch, oldest first; new inserts land behind it.
        let batch: Vec<(sled::IVec, sled::IVec)> = pending
            .iter()
            .take(DRAIN_BATCH)
            .filter_map(Result::ok)
            .collect();
        if batch.is_empty() {
            return;
        }
        let full = batch.len() == DRAIN_BATCH;
        let mut delivered = Vec::with_capacity(batch.len());
        let mut failed = false;
        for (key, value) in batch {
            let msg: OutboxMessage = match serde_json::from_slice(&value) {
                Ok(m) => m,
                Err(e) => {
                    tracing::error!(error = %e, "undecodable outbox message left in place");
                    continue;
                }
            };
            if let Err(e) = sink.deliver(&msg).await {
                tracing::warn!(message_id = msg.id, error = %e, "notification delivery failed; will retry");
                // Keep order per member: stop this pass, retry later.
                failed = true;
                break;
            }
            let record = SentRecord {
                shop: msg.shop.clone(),
                member: msg.member.clone(),
                posting_id: msg.posting_id,
                sent_at: chrono::Utc::now(),
            };
            match serde_json::to_vec(&record) {
                Ok(v) => delivered.push((key, v)),
                Err(e) => {
                    tracing::error!(error = %e, "cannot encode sent record");
                    failed = true;
                    break;
                }
            }
        }
        // One transaction marks the whole batch sent: a crash before it re-delivers
        // the batch (at-least-once towards the sink), never loses it.
        let moved = (pending, sent).transaction(|(p, s)| {
            for (key, value) in &delivered {
                p.remove(key)?;
                s.insert(key, value.as_slice())?;
            }
            Ok::<(), ConflictableTransactionError<()>>(())
        });
        if let Err(e) = moved {
            tracing::error!(error = ?e, "could not mark messages sent");
            return;
        }
        if failed || !full {
            return;
        }
    }
}

/// Messages delivered before they are marked sent in one transaction.
const DRAIN_BATCH: usize = 256;
