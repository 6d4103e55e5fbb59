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

use super::outbox::{OutboxMessage, PENDING_TREE, SENT_TREE};
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
    // Snapshot the keys first so the iterator does not race with new inserts.
    let batch: Vec<(sled::IVec, sled::IVec)> = pending.iter().filter_map(Result::ok).collect();
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
            return;
        }
        let moved = (pending, sent).transaction(|(p, s)| {
            p.remove(&key)?;
            s.insert(&key, &value)?;
            Ok::<(), ConflictableTransactionError<()>>(())
        });
        if let Err(e) = moved {
            tracing::error!(message_id = msg.id, error = ?e, "could not mark message sent");
            return;
        }
    }
}
