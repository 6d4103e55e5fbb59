//! The HTTP surface: webhooks, the admin API and health.
//!
//! - [`webhooks`]: `POST /webhooks/{shop}/{adapter}`.
//! - [`admin`]: `/v1/...`, bearer-token protected.
//! - [`error`]: the JSON error shape every endpoint uses.

pub mod admin;
pub mod auth;
pub mod backup;
pub mod dashboard;
pub mod deliveries;
pub mod error;
pub mod listen;
pub mod notifications;
pub mod openapi;
pub mod operator;
pub mod referrals;
pub mod reports;
pub mod simulate;
pub mod spend;
pub mod twilio_inbound;
pub mod webhooks;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::{Json, Router};
use loyaltyd_adapter::{Adapter, ShopId};
use serde_json::json;
use tower_http::timeout::TimeoutLayer;

use crate::adapters::AdapterRegistry;
use crate::config::{Config, ShopConfig};
use crate::ledger::Ledger;
use crate::notify::worker::Wakeup;

/// Shared state of every request handler.
pub struct AppState {
    /// The loaded configuration.
    pub config: Config,
    /// The ledger.
    pub ledger: Ledger,
    /// Wakes the notifier after a commit.
    pub wakeup: Wakeup,
    /// Prometheus metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Notification delivery state (dead letters, opted-out phones).
    pub delivery: crate::notify::delivery::DeliveryStore,
    /// Recent webhook deliveries per shop.
    pub webhook_log: deliveries::DeliveryLog,
    /// Every shop's adapters.
    pub adapters: AdapterRegistry,
}

impl AppState {
    /// Build the state.
    pub fn new(
        config: Config,
        ledger: Ledger,
        wakeup: Wakeup,
        adapters: AdapterRegistry,
        metrics: Arc<crate::metrics::Metrics>,
        delivery: crate::notify::delivery::DeliveryStore,
    ) -> AppState {
        AppState {
            config,
            ledger,
            wakeup,
            metrics,
            adapters,
            delivery,
            webhook_log: Default::default(),
        }
    }

    /// A configured shop.
    pub fn shop(&self, id: &ShopId) -> Option<&ShopConfig> {
        self.config.shop(id)
    }

    /// A shop's adapter by name.
    pub fn adapter(&self, shop: &ShopId, name: &str) -> Option<Arc<dyn Adapter>> {
        self.adapters.get(shop, name)
    }
}

/// The full router.
pub fn router(state: Arc<AppState>) -> Router {
    let timeout = state.config.server.request_timeout;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        // The OpenAPI document, outside the token check.
        .route(
            "/v1/openapi.json",
            get(openapi::serve).fallback(error::method_not_allowed),
        )
        .route("/webhooks/{shop}/{adapter}", post(webhooks::receive))
        .route(
            "/webhooks/{shop}/twilio/inbound",
            post(twilio_inbound::inbound),
        )
        .nest(
            "/v1",
            admin::router(state.clone())
                // ops routes
                .merge(backup::router(state.clone()))
                .merge(operator::router(state.clone())),
        )
        .merge(dashboard::router(state.clone()))
        .fallback(|| async { error::ApiError::not_found("not_found", "no such endpoint") })
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        // Outside the timeout: its 408 gets the same JSON error shape as the rest.
        .layer(axum::middleware::map_response(timeout_body))
        // Every request gets an `x-request-id` (kept if the caller sent one), logged on
        // its span, answered back, and carried by the notifications it causes.
        .layer(
            tower::ServiceBuilder::new()
                .layer(tower_http::request_id::SetRequestIdLayer::x_request_id(
                    tower_http::request_id::MakeRequestUuid,
                ))
                .layer(
                    tower_http::trace::TraceLayer::new_for_http().make_span_with(
                        |req: &axum::http::Request<axum::body::Body>| {
                            let id = req
                                .headers()
                                .get("x-request-id")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("-");
                            tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path())
                        },
                    ),
                )
                .layer(tower_http::request_id::PropagateRequestIdLayer::x_request_id()),
        )
        .with_state(state)
}

async fn metrics(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
) -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        {
            let (depth, oldest) = state.delivery.depth(chrono::Utc::now());
            state.metrics.outbox(depth, oldest);
            for shop in &state.config.shops {
                // Program accounts only: one read, not a walk of the members.
                if let Ok(balances) = state.ledger.program_balances(&shop.id) {
                    for (key, points) in balances {
                        if let Some(account) = key.strip_prefix("program/") {
                            // Program accounts hold the other side: issued is negative.
                            let v = if account == "issued" || account == "adjusted" {
                                -points.0
                            } else {
                                points.0
                            };
                            state.metrics.points(shop.id.as_str(), account, v);
                        }
                    }
                }
            }
            if let Ok(size) = state.ledger.db().size_on_disk() {
                state.metrics.storage_size(size);
            }
            state.metrics.render(state.ledger.commit_stats())
        },
    )
}

/// Ready to take traffic: the database answers and takes writes (no failed flush),
/// every shop has rules loaded, and the notification worker has made a pass recently
/// (it passes at least every 5 s).
async fn readyz(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
) -> (axum::http::StatusCode, Json<serde_json::Value>) {
    let now = chrono::Utc::now();
    // After a failed write sled still answers reads, but acknowledges nothing more.
    let storage_failed_since = state
        .ledger
        .commit_stats()
        .and_then(|s| s.failure())
        .map(|f| f.since);
    let db_ok = storage_failed_since.is_none()
        && state
            .config
            .shops
            .first()
            .map(|s| state.ledger.journal_len(&s.id).is_ok())
            .unwrap_or(true);
    let rules_ok = state
        .config
        .shops
        .iter()
        .all(|s| !s.rules.current().version.is_empty());
    let beat = state.delivery.last_beat();
    let outbox_ok = beat.is_some_and(|b| now - b < chrono::Duration::seconds(30));
    let (depth, oldest) = state.delivery.depth(now);
    let ok = db_ok && rules_ok && outbox_ok;
    let status = if ok {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if ok { "ready" } else { "not_ready" },
            "checks": {
                "database": db_ok,
                "rules": rules_ok,
                "notifier": outbox_ok,
            },
            "outbox": {"depth": depth, "oldest_age_secs": oldest.map(|d| d.num_seconds())},
            "notifier_last_pass": beat,
            "storage_failed_since": storage_failed_since,
        })),
    )
}

async fn timeout_body(r: axum::response::Response) -> axum::response::Response {
    use axum::response::IntoResponse;
    if r.status() == axum::http::StatusCode::REQUEST_TIMEOUT
        && r.headers().get(axum::http::header::CONTENT_TYPE).is_none()
    {
        return error::ApiError::new(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request took longer than server.request_timeout_secs",
        )
        .into_response();
    }
    r
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}
