//! Events accepted but not yet scorable because data must first come from the
//! sender's API (a Square payment's order lines). They are kept durably, retried with
//! capped exponential backoff (2 s, 4 s, 8 s, … up to the adapter's cap, 300 s unless
//! configured), and removed once applied; the ledger's dedupe record makes a retry
//! after a crash harmless. The retry worker is `crate::retry`.

use chrono::{DateTime, Duration, Utc};
use loyaltyd_adapter::{EventEnvelope, ShopId};
use serde::{Deserialize, Serialize};

use super::{keys, Ledger, LedgerError};

/// Tree of waiting events.
pub const INBOX_TREE: &str = "inbox";

/// Longest wait between two attempts unless configured otherwise
/// (`[shops.square] max_retry_backoff_secs`).
pub const DEFAULT_MAX_BACKOFF_SECS: u64 = 300;

/// One waiting event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuedEvent {
    /// The adapter that will complete it.
    pub adapter: String,
    /// The event as parsed.
    pub envelope: EventEnvelope,
    /// Attempts so far (the first one was made while answering the webhook).
    pub attempts: u32,
    /// Not before.
    pub next_at: DateTime<Utc>,
    /// When it was accepted.
    pub queued_at: DateTime<Utc>,
    /// Why the last attempt failed.
    pub last_error: String,
}

/// The wait after `attempts` failed attempts: 2^attempts seconds, at most `cap`.
pub fn backoff(attempts: u32, cap: std::time::Duration) -> Duration {
    let cap = i64::try_from(cap.as_secs()).unwrap_or(i64::MAX).max(1);
    Duration::seconds(2i64.saturating_pow(attempts.min(16)).min(cap))
}

fn default_cap() -> std::time::Duration {
    std::time::Duration::from_secs(DEFAULT_MAX_BACKOFF_SECS)
}

impl Ledger {
    /// Keep an event until it can be completed (no-op if it is already waiting).
    pub fn enqueue(
        &self,
        shop: &ShopId,
        adapter: &str,
        envelope: &EventEnvelope,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        let q = QueuedEvent {
            adapter: adapter.to_string(),
            envelope: envelope.clone(),
            attempts: 1,
            next_at: now + backoff(1, default_cap()),
            queued_at: now,
            last_error: reason.to_string(),
        };
        let key = keys::dedupe(shop, adapter, &envelope.event_id);
        let _ = self.inbox.compare_and_swap(
            key,
            None as Option<&[u8]>,
            Some(serde_json::to_vec(&q)?),
        )?;
        Ok(())
    }

    /// The waiting event with this id, if any.
    pub fn queued(
        &self,
        shop: &ShopId,
        adapter: &str,
        event_id: &str,
    ) -> Result<Option<QueuedEvent>, LedgerError> {
        match self.inbox.get(keys::dedupe(shop, adapter, event_id))? {
            Some(b) => Ok(Some(serde_json::from_slice(&b)?)),
            None => Ok(None),
        }
    }

    /// Waiting events of a shop that are due at `now`.
    pub fn due(&self, shop: &ShopId, now: DateTime<Utc>) -> Result<Vec<QueuedEvent>, LedgerError> {
        let mut prefix = b"d\0".to_vec();
        prefix.extend_from_slice(shop.as_str().as_bytes());
        prefix.push(0);
        let mut out = Vec::new();
        for item in self.inbox.scan_prefix(prefix) {
            let (_, v) = item?;
            let q: QueuedEvent = serde_json::from_slice(&v)?;
            if q.next_at <= now {
                out.push(q);
            }
        }
        Ok(out)
    }

    /// Every waiting event of a shop, due or not, oldest first.
    pub fn waiting(&self, shop: &ShopId) -> Result<Vec<QueuedEvent>, LedgerError> {
        let mut prefix = b"d\0".to_vec();
        prefix.extend_from_slice(shop.as_str().as_bytes());
        prefix.push(0);
        let mut out = Vec::new();
        for item in self.inbox.scan_prefix(prefix) {
            let (_, v) = item?;
            out.push(serde_json::from_slice::<QueuedEvent>(&v)?);
        }
        out.sort_by(|a, b| {
            (a.queued_at, &a.envelope.event_id).cmp(&(b.queued_at, &b.envelope.event_id))
        });
        Ok(out)
    }

    /// Number of waiting events (all shops).
    pub fn queued_count(&self) -> Result<usize, LedgerError> {
        Ok(self.inbox.len())
    }

    /// Another attempt failed: try again later, at most `cap` from `now`.
    pub fn reschedule(
        &self,
        shop: &ShopId,
        q: &QueuedEvent,
        reason: &str,
        now: DateTime<Utc>,
        cap: std::time::Duration,
    ) -> Result<(), LedgerError> {
        let mut next = q.clone();
        next.attempts = next.attempts.saturating_add(1);
        next.next_at = now + backoff(next.attempts, cap);
        next.last_error = reason.to_string();
        self.inbox.insert(
            keys::dedupe(shop, &q.adapter, &q.envelope.event_id),
            serde_json::to_vec(&next)?,
        )?;
        Ok(())
    }

    /// The event was applied (or rejected for good): forget it.
    pub fn dequeue(&self, shop: &ShopId, q: &QueuedEvent) -> Result<(), LedgerError> {
        self.inbox
            .remove(keys::dedupe(shop, &q.adapter, &q.envelope.event_id))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_from_2_s_and_stop_at_the_cap() {
        let secs = |a, cap| backoff(a, std::time::Duration::from_secs(cap)).num_seconds();
        let default: Vec<i64> = (1..=10)
            .map(|a| secs(a, DEFAULT_MAX_BACKOFF_SECS))
            .collect();
        assert_eq!(default, [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(secs(u32::MAX, DEFAULT_MAX_BACKOFF_SECS), 300);
        assert_eq!(secs(5, 3), 3);
        // A zero cap still waits a second rather than spinning.
        assert_eq!(secs(5, 0), 1);
    }
}
