//! Group commit: many writers, one fsync.
//!
//! A writer commits its sled transaction (in memory), then asks for durability and
//! waits. The flusher takes every waiter queued so far, flushes sled once, and answers
//! them all. Writers arriving during a flush wait for the next one, which still covers
//! their write because it starts after they queued. Durability therefore costs one
//! fsync per batch, not per request.
//!
//! # Storage faults
//!
//! sled 0.34 keeps the error of a failed log write (disk full, file size limit,
//! read-only file system, I/O error) for the rest of the process: every later write
//! and flush returns it, even once space is back, until the database is opened again
//! (`set_global_error` in its pagecache; only a fresh start clears it). So the first
//! failed flush is final for this process. The flusher records it
//! ([`CommitStats::failure`], which `/readyz` reports), and from then on every waiter
//! is refused at once: nothing is acknowledged that is not on disk, and webhooks answer
//! 503. With no waiter the flusher still flushes every [`IDLE_CHECK`], so a failed
//! background write (notifier, jobs) is noticed without a request. [`supervise`] lets
//! `serve` stop the background writers at the failure and shut down once the data
//! directory takes writes again; the process then exits with
//! [`EXIT_STORAGE_RESTART`] and the service manager starts a new one, whose sled
//! recovers the log up to the last successful flush.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot, Notify};

type Waiter = oneshot::Sender<Result<(), String>>;

/// Scheduler turns the flusher waits for more writers before flushing.
const GATHER_TURNS: usize = 4;

/// With no writer waiting, the flusher still flushes this often (a no-op when nothing
/// is dirty) to notice a failed background write.
pub const IDLE_CHECK: Duration = Duration::from_secs(1);

/// How often a failed store's data directory is probed for writes.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Bytes of real data the probe writes and syncs: two of sled's 512 KiB log segments.
const PROBE_BYTES: usize = 1024 * 1024;

/// The probe's file in the data directory; removed after every probe.
pub const PROBE_FILE: &str = "loyaltyd-write-probe";

/// Exit status of `loyaltyd serve` after a storage failure (`EX_TEMPFAIL`): the store
/// needs a restart to be written again. systemd's `Restart=on-failure` restarts it.
pub const EXIT_STORAGE_RESTART: u8 = 75;

/// Handle to the flusher task.
#[derive(Clone)]
pub struct GroupCommit {
    tx: mpsc::UnboundedSender<Waiter>,
    stats: Arc<CommitStats>,
}

/// Counters for metrics and benchmarks, and the store's failure if it had one.
#[derive(Debug, Default)]
pub struct CommitStats {
    /// Flushes performed for waiters.
    pub flushes: AtomicU64,
    /// Writers made durable.
    pub waiters: AtomicU64,
    /// Writers refused because storage had failed.
    pub refused: AtomicU64,
    failure: OnceLock<StorageFailure>,
    failed: Notify,
}

/// The first failed flush: from then on nothing is acknowledged until a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageFailure {
    /// sled's error (an I/O error such as "File too large" or "No space left on
    /// device"); it names no secret and no personal data.
    pub error: String,
    /// When it was noticed.
    pub since: DateTime<Utc>,
}

impl CommitStats {
    /// The storage failure, once there was one.
    pub fn failure(&self) -> Option<&StorageFailure> {
        self.failure.get()
    }

    /// Record a failed flush (the first one counts) and wake [`supervise`].
    fn fail(&self, error: &str) {
        let first = self
            .failure
            .set(StorageFailure {
                error: error.to_string(),
                since: Utc::now(),
            })
            .is_ok();
        if first {
            tracing::error!(
                %error,
                "storage failed: no write is acknowledged from now on (webhooks answer 503); \
                 loyaltyd exits for a restart once the data directory takes writes again"
            );
            self.failed.notify_one();
        }
    }

    /// Wait until storage has failed.
    async fn failed(&self) -> &StorageFailure {
        loop {
            if let Some(f) = self.failure() {
                return f;
            }
            // `notify_one` keeps a permit, so a failure between the check and this wait
            // still wakes it.
            self.failed.notified().await;
        }
    }
}

/// Durability could not be confirmed; the write must not be acknowledged.
#[derive(Debug, thiserror::Error)]
#[error("storage flush failed: {0}")]
pub struct FlushError(pub String);

/// `serve` stopped because storage failed; a new process can write again.
#[derive(Debug, thiserror::Error)]
#[error(
    "storage failed at {} ({}); stopped so that the service manager restarts loyaltyd \
     with the store reopened (sled keeps a failed write's error until then)",
    .0.since.to_rfc3339(), .0.error
)]
pub struct StorageRestart(pub StorageFailure);

fn refusal(f: &StorageFailure) -> String {
    format!(
        "storage failed earlier ({}); nothing is acknowledged until loyaltyd restarts",
        f.error
    )
}

async fn flush(db: &sled::Db) -> Result<(), String> {
    let db = db.clone();
    match tokio::task::spawn_blocking(move || db.flush()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(format!("flush task failed: {e}")),
    }
}

impl GroupCommit {
    /// Start the flusher for `db` on the current tokio runtime.
    pub fn start(db: sled::Db) -> GroupCommit {
        let (tx, mut rx) = mpsc::unbounded_channel::<Waiter>();
        let stats = Arc::new(CommitStats::default());
        let task_stats = stats.clone();
        tokio::spawn(async move {
            loop {
                let first = match tokio::time::timeout(IDLE_CHECK, rx.recv()).await {
                    Ok(Some(w)) => w,
                    // Every handle is gone.
                    Ok(None) => return,
                    Err(_idle) => {
                        if task_stats.failure().is_none() {
                            if let Err(e) = flush(&db).await {
                                task_stats.fail(&e);
                            }
                        }
                        continue;
                    }
                };
                let mut batch = vec![first];
                // Let requests already running reach the queue before flushing: a few
                // scheduler turns cost microseconds and save whole fsyncs.
                for _ in 0..GATHER_TURNS {
                    tokio::task::yield_now().await;
                    while let Ok(w) = rx.try_recv() {
                        batch.push(w);
                    }
                }
                let result = match task_stats.failure() {
                    Some(f) => {
                        task_stats
                            .refused
                            .fetch_add(batch.len() as u64, Ordering::Relaxed);
                        Err(refusal(f))
                    }
                    None => {
                        let r = flush(&db).await;
                        if let Err(e) = &r {
                            task_stats.fail(e);
                        }
                        task_stats.flushes.fetch_add(1, Ordering::Relaxed);
                        task_stats
                            .waiters
                            .fetch_add(batch.len() as u64, Ordering::Relaxed);
                        r
                    }
                };
                for w in batch {
                    // A waiter that went away (client disconnected) needs no answer.
                    let _ = w.send(result.clone());
                }
            }
        });
        GroupCommit { tx, stats }
    }

    /// Wait until everything written before this call is on disk. Refused at once
    /// after a storage failure.
    pub async fn durable(&self) -> Result<(), FlushError> {
        if let Some(f) = self.stats.failure() {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            return Err(FlushError(refusal(f)));
        }
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(tx)
            .map_err(|_| FlushError("flusher stopped".into()))?;
        match rx.await {
            Ok(r) => r.map_err(FlushError),
            Err(_) => Err(FlushError("flusher stopped".into())),
        }
    }

    /// Flush and writer counts so far, and the storage failure if any.
    pub fn stats(&self) -> &CommitStats {
        &self.stats
    }
}

/// For `serve`: once `ledger`'s storage fails, call `stop_background` (the notifier,
/// jobs and retries would otherwise keep trying writes that cannot succeed — the
/// notifier would resend every message whose "sent" mark cannot be stored), then probe
/// `dir` every [`PROBE_INTERVAL`] and resolve with the failure once it takes writes
/// again. Never resolves while storage is fine, or for a ledger without group commit.
pub async fn supervise(
    ledger: crate::ledger::Ledger,
    dir: PathBuf,
    stop_background: impl FnOnce(),
) -> StorageFailure {
    let Some(stats) = ledger.commit_stats() else {
        return std::future::pending().await;
    };
    let failure = stats.failed().await.clone();
    stop_background();
    let mut last_error = None;
    loop {
        let d = dir.clone();
        match tokio::task::spawn_blocking(move || probe(&d)).await {
            Ok(Ok(())) => {
                tracing::warn!(
                    dir = %dir.display(),
                    "the data directory takes writes again: stopping so that loyaltyd \
                     restarts with the store reopened"
                );
                return failure;
            }
            Ok(Err(e)) => {
                let e = e.to_string();
                if last_error.as_ref() != Some(&e) {
                    tracing::warn!(
                        dir = %dir.display(),
                        error = %e,
                        "the data directory still refuses writes; webhooks keep answering 503"
                    );
                    last_error = Some(e);
                }
            }
            Err(e) => tracing::error!(error = %e, "write probe task failed"),
        }
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
}

/// Can sled's log grow again? Writes [`PROBE_BYTES`] of non-zero data (so no file
/// system can store them as a hole) into a probe file in `dir`, starting where sled's
/// log file `db` ends (the bytes before are a hole), syncs and removes it. This fails
/// on a full disk or quota (ENOSPC, EDQUOT), a read-only file system (EROFS), a file
/// size limit the log has reached (EFBIG) and a failing device (EIO).
pub fn probe(dir: &Path) -> std::io::Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    let log_end = std::fs::metadata(dir.join("db")).map_or(0, |m| m.len());
    let path = dir.join(PROBE_FILE);
    let result = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .and_then(|mut f| {
            f.seek(SeekFrom::Start(log_end))?;
            f.write_all(&vec![0xa5; PROBE_BYTES])?;
            f.sync_all()
        });
    // Best effort: a probe file left behind (e.g. on EIO) is replaced by the next probe
    // and is ignored by sled.
    let _ = std::fs::remove_file(&path);
    result
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

    #[test]
    fn the_probe_passes_in_a_writable_directory_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("db"), [0u8; 4096]).unwrap();
        probe(dir.path()).unwrap();
        assert!(!dir.path().join(PROBE_FILE).exists());
    }

    #[test]
    fn the_probe_fails_where_no_file_can_be_written() {
        let dir = tempfile::tempdir().unwrap();
        assert!(probe(&dir.path().join("missing")).is_err());
    }

    #[tokio::test]
    async fn after_a_storage_failure_nothing_is_acknowledged_and_supervise_asks_for_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = crate::ledger::Ledger::open(dir.path()).unwrap();
        ledger.durable().await.unwrap();
        let stats = ledger.commit_stats().unwrap();
        assert!(stats.failure().is_none());
        stats.fail("IO error: No space left on device (os error 28)");
        stats.fail("a later error is not the cause");
        let err = ledger.durable().await.unwrap_err().to_string();
        assert!(err.contains("No space left on device"), "{err}");
        assert_eq!(stats.refused.load(Ordering::Relaxed), 1);
        let stopped = std::sync::atomic::AtomicBool::new(false);
        // The directory takes writes, so supervise returns at its first probe.
        let failure = supervise(ledger.clone(), dir.path().to_path_buf(), || {
            stopped.store(true, Ordering::Relaxed)
        })
        .await;
        assert!(stopped.load(Ordering::Relaxed));
        assert_eq!(
            failure.error,
            "IO error: No space left on device (os error 28)"
        );
    }
}
