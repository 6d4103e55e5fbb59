//! Recent webhook deliveries per shop and adapter, for staff checking that webhooks
//! arrive: when, which adapter, what happened and why — never bodies or secrets. Kept in
//! memory since the daemon started (the last [`KEEP`] per shop).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};

use super::admin::shop;
use super::error::{ApiError, ApiPath, ApiQuery};
use super::AppState;

/// Deliveries kept per shop.
pub const KEEP: usize = 500;

/// One webhook request as staff see it.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    /// When it arrived.
    pub at: DateTime<Utc>,
    /// Adapter (`shopify`, `square`, `twilio`, …).
    pub adapter: String,
    /// `accepted`, `ignored` or `rejected`.
    pub class: &'static str,
    /// The precise outcome (`applied`, `duplicate`, `invalid_signature`, …).
    pub outcome: String,
    /// HTTP status answered.
    pub status: u16,
    /// Milliseconds to answer.
    pub took_ms: f64,
}

/// The per-shop ring buffers.
#[derive(Default, Clone)]
pub struct DeliveryLog(Arc<Mutex<HashMap<String, VecDeque<Delivery>>>>);

impl DeliveryLog {
    /// Record one delivery for a configured shop.
    pub fn record(&self, shop: &str, d: Delivery) {
        if let Ok(mut map) = self.0.lock() {
            let q = map.entry(shop.to_string()).or_default();
            if q.len() == KEEP {
                q.pop_front();
            }
            q.push_back(d);
        }
    }

    /// Record the answer given to a request that arrived at `started`, if `shop` is a
    /// configured shop (unknown shop ids are not kept: anyone can make them up).
    pub fn record_answer(
        &self,
        state: &AppState,
        shop: &str,
        adapter: &str,
        outcome: &str,
        status: u16,
        started: std::time::Instant,
    ) {
        let known = loyaltyd_adapter::ShopId::new(shop)
            .ok()
            .is_some_and(|s| state.shop(&s).is_some());
        if known {
            self.record(
                shop,
                Delivery {
                    at: Utc::now(),
                    adapter: adapter.to_string(),
                    class: class(status, outcome),
                    outcome: outcome.to_string(),
                    status,
                    took_ms: started.elapsed().as_secs_f64() * 1000.0,
                },
            );
        }
    }

    /// A shop's deliveries, newest first.
    pub fn recent(&self, shop: &str) -> Vec<Delivery> {
        self.0
            .lock()
            .map(|m| {
                m.get(shop)
                    .map(|q| q.iter().rev().cloned().collect())
                    .unwrap_or_default()
            })
            .unwrap_or_default()
    }
}

/// Accepted, ignored or rejected, from the HTTP status and outcome.
pub fn class(status: u16, outcome: &str) -> &'static str {
    if !(200..300).contains(&status) {
        "rejected"
    } else if outcome == "ignored" {
        "ignored"
    } else {
        "accepted"
    }
}

/// `GET /v1/shops/{shop}/webhooks/deliveries[?adapter=&class=&limit=]`: recent deliveries,
/// newest first, and per adapter the counts and the last accepted one.
#[utoipa::path(
    get,
    path = "/v1/shops/{shop}/webhooks/deliveries",
    operation_id = "webhook_deliveries",
    tag = "operations",
    security(("bearer" = [])),
    params(
        ("shop" = String, Path, description = "Shop id"),
        ("adapter" = Option<String>, Query, description = "Only this adapter's deliveries"),
        ("class" = Option<super::openapi::DeliveryClassDoc>, Query, description = "Only accepted, ignored or rejected ones"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "At most this many (default 100)"),
    ),
    responses(
        (status = 200, description = "Recent deliveries (since the daemon started)", body = super::openapi::DeliveriesDoc),
        (status = 400, description = "`invalid_limit`, `invalid_class`", body = super::error::ErrorBody),
        (status = 401, description = "`unauthorized`", body = super::error::ErrorBody),
        (status = 403, description = "`forbidden_shop`, `forbidden_role`", body = super::error::ErrorBody),
        (status = 404, description = "`unknown_shop`", body = super::error::ErrorBody),
    )
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    ApiPath(shop_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let shop = shop(&state, &shop_id)?;
    let limit = super::error::query_limit(&q, 100, KEEP)?;
    if let Some(c) = q.get("class") {
        if !["accepted", "ignored", "rejected"].contains(&c.as_str()) {
            return Err(ApiError::bad_request(
                "invalid_class",
                "class is accepted, ignored or rejected",
            ));
        }
    }
    let all = state.webhook_log.recent(shop.id.as_str());
    let mut summary: BTreeMap<String, Value> = BTreeMap::new();
    for d in &all {
        let e = summary.entry(d.adapter.clone()).or_insert_with(|| {
            json!({"accepted": 0, "ignored": 0, "rejected": 0, "last_accepted_at": null, "last_rejected_at": null})
        });
        e[d.class] = json!(e[d.class].as_u64().unwrap_or(0) + 1);
        let last = format!("last_{}_at", d.class);
        if e.get(&last).is_some_and(Value::is_null) {
            e[last] = json!(d.at);
        }
    }
    let items: Vec<&Delivery> = all
        .iter()
        .filter(|d| q.get("adapter").is_none_or(|a| &d.adapter == a))
        .filter(|d| q.get("class").is_none_or(|c| d.class == c))
        .take(limit)
        .collect();
    Ok(Json(json!({"adapters": summary, "deliveries": items})))
}
