//! Group commit: many writers, one fsync.
//!
//! A writer commits its sled transaction (in memory), then asks for durability and
//! waits. The flusher takes every waiter queued so far, flushes sled once, and answers
//! them all. Writers arriving during a flush wait for the next one, which still covers
//! their write because it starts after they queued. Durability therefore costs one
//! fsync per batch, not per request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

type Waiter = oneshot::Sender<Result<(), String>>;

/// Scheduler turns the flusher waits for more writers before flushing.
const GATHER_TURNS: usize = 4;

/// Handle to the flusher task.
#[derive(Clone)]
pub struct GroupCommit {
    tx: mpsc::UnboundedSender<Waiter>,
    stats: Arc<CommitStats>,
}

/// Counters for metrics and benchmarks.
#[derive(Debug, Default)]
pub struct CommitStats {
    /// Flushes performed.
    pub flushes: AtomicU64,
    /// Writers made durable.
    pub waiters: AtomicU64,
}

/// Durability could not be confirmed; the write must not be acknowledged.
#[derive(Debug, thiserror::Error)]
#[error("storage flush failed: {0}")]
pub struct FlushError(pub String);

impl GroupCommit {
    /// Start the flusher for `db` on the current tokio runtime.
    pub fn start(db: sled::Db) -> GroupCommit {
        let (tx, mut rx) = mpsc::unbounded_channel::<Waiter>();
        let stats = Arc::new(CommitStats::default());
        let task_stats = stats.clone();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                // Let requests already running reach the queue before flushing: a few
                // scheduler turns cost microseconds and save whole fsyncs.
                for _ in 0..GATHER_TURNS {
                    tokio::task::yield_now().await;
                    while let Ok(w) = rx.try_recv() {
                        batch.push(w);
                    }
                }
                let db = db.clone();
                let result = match tokio::task::spawn_blocking(move || db.flush()).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(e) => Err(format!("flush task failed: {e}")),
                };
                task_stats.flushes.fetch_add(1, Ordering::Relaxed);
                task_stats
                    .waiters
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                for w in batch {
                    // A waiter that went away (client disconnected) needs no answer.
                    let _ = w.send(result.clone());
                }
            }
        });
        GroupCommit { tx, stats }
    }

    /// Wait until everything written before this call is on disk.
    pub async fn durable(&self) -> Result<(), FlushError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(tx)
            .map_err(|_| FlushError("flusher stopped".into()))?;
        match rx.await {
            Ok(r) => r.map_err(FlushError),
            Err(_) => Err(FlushError("flusher stopped".into())),
        }
    }

    /// Flush and writer counts so far.
    pub fn stats(&self) -> &CommitStats {
        &self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn concurrent_writers_share_flushes() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let gc = GroupCommit::start(db.clone());
        let mut tasks = Vec::new();
        for i in 0..64u32 {
            let gc = gc.clone();
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                db.insert(i.to_be_bytes(), &[1]).unwrap();
                gc.durable().await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let s = gc.stats();
        assert_eq!(s.waiters.load(Ordering::Relaxed), 64);
        assert!(s.flushes.load(Ordering::Relaxed) <= 64);
        assert!(s.flushes.load(Ordering::Relaxed) >= 1);
    }
}
