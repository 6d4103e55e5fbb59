//! The HTTP surface: webhooks, the admin API and health.
//!
//! - [`webhooks`]: `POST /webhooks/{shop}/{adapter}`.
//! - [`admin`]: `/v1/...`, bearer-token protected.
//! - [`error`]: the JSON error shape every endpoint uses.

pub mod admin;
pub mod auth;
pub mod error;
pub mod notifications;
pub mod openapi;
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
        .nest("/v1", admin::router(state.clone()))
        .fallback(|| async { error::ApiError::not_found("not_found", "no such endpoint") })
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
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
            state.metrics.render(state.ledger.commit_stats())
        },
    )
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}
