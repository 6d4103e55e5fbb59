//! A circuit breaker per shop and sender API (Square's Orders API), shared by the
//! webhook path and the retry worker (`retry`).
//!
//! After a failed call the API is left alone for a pause that doubles with every
//! failure in a row (2 s, 4 s, …, at most [`MAX_PROBE_PAUSE`] or the adapter's cap).
//! Webhooks arriving in a pause are queued at once instead of each waiting for the
//! API's timeout: during an outage an answer took up to 4 s with the defaults, inside
//! Square's 10 s, and held a connection the whole time. The first call after a pause,
//! from either side, is the probe; any answer from the API closes the breaker.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use loyaltyd_adapter::ShopId;

use crate::config::ShopConfig;
use crate::ledger::inbox::DEFAULT_MAX_BACKOFF_SECS;

/// Longest pause between two probes of an API that keeps failing. One request a minute
/// costs the API nothing, and a backlog then drains within about a minute of its return
/// (each event's own backoff may still reach `max_retry_backoff_secs`).
pub const MAX_PROBE_PAUSE: Duration = Duration::from_secs(60);

/// The longest pause for `adapter`'s events in `shop`: between two attempts at one
/// event, and between two probes of its API.
pub fn max_backoff(shop: &ShopConfig, adapter: &str) -> Duration {
    let configured = match adapter {
        loyaltyd_square::NAME => shop
            .square
            .as_ref()
            .and_then(|s| s.orders.as_ref())
            .map(|o| o.max_retry_backoff),
        _ => None,
    };
    configured.unwrap_or(Duration::from_secs(DEFAULT_MAX_BACKOFF_SECS))
}

/// Every shop's and adapter's breaker. Cloning shares them.
#[derive(Debug, Clone, Default)]
pub struct ApiBreakers(Arc<Mutex<HashMap<(ShopId, String), Breaker>>>);

#[derive(Debug, Default, Clone, Copy)]
struct Breaker {
    failures: u32,
    hold_until: Option<DateTime<Utc>>,
}

impl ApiBreakers {
    fn with<T>(&self, shop: &ShopId, adapter: &str, f: impl FnOnce(&mut Breaker) -> T) -> T {
        // A panic elsewhere while holding the lock leaves a breaker that is still valid.
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        f(map.entry((shop.clone(), adapter.to_string())).or_default())
    }

    /// Whether `adapter`'s API for `shop` is in a pause at `now`: leave it alone.
    pub fn is_open(&self, shop: &ShopId, adapter: &str, now: DateTime<Utc>) -> bool {
        self.with(shop, adapter, |b| b.hold_until.is_some_and(|t| t > now))
    }

    /// A call failed: pause 2^failures seconds from `now`, at most `cap` and at most
    /// [`MAX_PROBE_PAUSE`]. Returns the pause.
    pub fn trip(
        &self,
        shop: &ShopId,
        adapter: &str,
        now: DateTime<Utc>,
        cap: Duration,
    ) -> chrono::Duration {
        self.with(shop, adapter, |b| {
            b.failures = b.failures.saturating_add(1);
            let hold = crate::ledger::inbox::backoff(b.failures, cap.min(MAX_PROBE_PAUSE));
            b.hold_until = Some(now + hold);
            hold
        })
    }

    /// The API answered: calls go through again.
    pub fn close(&self, shop: &ShopId, adapter: &str) {
        self.with(shop, adapter, |b| *b = Breaker::default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_api_is_probed_after_pauses_that_double_up_to_the_cap() {
        let now = Utc::now();
        let shop = ShopId::new("demo").unwrap();
        let b = ApiBreakers::default();
        assert!(!b.is_open(&shop, "square", now));
        let holds: Vec<i64> = (0..6)
            .map(|_| {
                b.trip(&shop, "square", now, Duration::from_secs(20))
                    .num_seconds()
            })
            .collect();
        assert_eq!(holds, [2, 4, 8, 16, 20, 20]);
        assert!(b.is_open(&shop, "square", now + chrono::Duration::seconds(19)));
        assert!(!b.is_open(&shop, "square", now + chrono::Duration::seconds(20)));
        // With the default cap (300 s) the API is still probed once a minute.
        let b = ApiBreakers::default();
        let holds: Vec<i64> = (0..8)
            .map(|_| {
                b.trip(&shop, "square", now, Duration::from_secs(300))
                    .num_seconds()
            })
            .collect();
        assert_eq!(holds, [2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn an_answer_closes_the_breaker_and_starts_the_pauses_over() {
        let now = Utc::now();
        let shop = ShopId::new("demo").unwrap();
        let b = ApiBreakers::default();
        for _ in 0..3 {
            b.trip(&shop, "square", now, Duration::from_secs(300));
        }
        assert!(b.is_open(&shop, "square", now));
        b.close(&shop, "square");
        assert!(!b.is_open(&shop, "square", now));
        assert_eq!(
            b.trip(&shop, "square", now, Duration::from_secs(300))
                .num_seconds(),
            2
        );
    }

    #[test]
    fn breakers_are_per_shop_and_adapter_and_shared_by_clones() {
        let now = Utc::now();
        let (a, z) = (ShopId::new("a").unwrap(), ShopId::new("z").unwrap());
        let b = ApiBreakers::default();
        let seen_elsewhere = b.clone();
        b.trip(&a, "square", now, Duration::from_secs(300));
        assert!(seen_elsewhere.is_open(&a, "square", now));
        assert!(!seen_elsewhere.is_open(&z, "square", now));
        assert!(!seen_elsewhere.is_open(&a, "woocommerce", now));
    }
}
