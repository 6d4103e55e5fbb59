//! `POST /webhooks/{shop}/{adapter}`: checks in the order the contract gives —
//! unknown shop or adapter (404), body too large (413, before reading it all),
//! signature (401, nothing parsed), malformed (400) — then the ingest pipeline.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use loyaltyd_adapter::{RawRequest, ShopId, VerifyError};
use serde_json::json;

use super::error::ApiError;
use super::AppState;
use crate::ingest::{ingest, IngestError, Outcome, Pipeline};
use crate::ledger::{Applied, DeliveryOutcome, DeliveryRecord};

/// Receive one webhook.
pub async fn receive(
    State(state): State<Arc<AppState>>,
    Path((shop, adapter_name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let started = std::time::Instant::now();
    let known = state.adapters.knows(&adapter_name);
    let label = if known {
        adapter_name.clone()
    } else {
        "unknown".to_string()
    };
    let (result, outcome) = handle(&state, shop.clone(), &adapter_name, headers, body).await;
    state.metrics.webhook(&label, outcome, started.elapsed());
    let status = match &result {
        Ok(r) => r.status().as_u16(),
        Err(e) => e.status.as_u16(),
    };
    state
        .webhook_log
        .record_answer(&state, &shop, &label, outcome, status, started);
    result
}

async fn handle(
    state: &Arc<AppState>,
    shop: String,
    adapter_name: &str,
    headers: HeaderMap,
    body: Body,
) -> (Result<Response, ApiError>, &'static str) {
    let r = receive_inner(state, shop, adapter_name, headers, body).await;
    let outcome = match &r {
        Ok((_, o)) => *o,
        Err(e) => e.code,
    };
    (r.map(|(resp, _)| resp), outcome)
}

async fn receive_inner(
    state: &Arc<AppState>,
    shop: String,
    adapter_name: &str,
    headers: HeaderMap,
    body: Body,
) -> Result<(Response, &'static str), ApiError> {
    let shop_id =
        ShopId::new(shop).map_err(|_| ApiError::not_found("unknown_shop", "no such shop"))?;
    let shop = state
        .shop(&shop_id)
        .ok_or_else(|| ApiError::not_found("unknown_shop", "no such shop"))?;
    let adapter = state.adapter(&shop_id, adapter_name).ok_or_else(|| {
        ApiError::not_found(
            "unknown_adapter",
            "this shop has no adapter of that name configured",
        )
    })?;

    let limit = state.config.server.max_body_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("body is larger than {limit} bytes"),
        )
    };
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => return Err(too_large()),
        Err(_) => {
            return Err(ApiError::bad_request(
                "body_unreadable",
                "the request body could not be read",
            ))
        }
    };

    let req = RawRequest {
        shop: shop_id,
        headers,
        body: bytes,
        received_at: chrono::Utc::now(),
    };
    let pipeline = Pipeline {
        ledger: &state.ledger,
        wakeup: &state.wakeup,
        breakers: state.adapters.breakers(),
        durable_acks: state.config.storage.durable_acks,
    };
    match ingest(pipeline, shop, adapter.as_ref(), &req, chrono::Utc::now()).await {
        Ok(Outcome::Done(Applied::New(r))) => Ok((accepted(&r, false), outcome_name(&r))),
        Ok(Outcome::Done(Applied::Duplicate(r))) => Ok((accepted(&r, true), "duplicate")),
        Ok(Outcome::Queued { reason }) => Ok((
            (
                StatusCode::OK,
                Json(json!({"status": "queued", "reason": reason})),
            )
                .into_response(),
            "queued",
        )),
        Err(IngestError::Signature(VerifyError::Stale(why))) => {
            tracing::warn!(shop = %shop.id, adapter = adapter.name(), reason = %why, "webhook rejected: stale");
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "stale_event",
                format!("event is older than the replay tolerance: {why}"),
            ))
        }
        Err(IngestError::Signature(e)) => {
            tracing::warn!(shop = %shop.id, adapter = adapter.name(), reason = %e, "webhook rejected: signature");
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_signature",
                e.to_string(),
            ))
        }
        Err(IngestError::Parse(e)) => {
            tracing::warn!(shop = %shop.id, adapter = adapter.name(), reason = %e, "webhook rejected: malformed");
            Err(ApiError::bad_request("malformed_event", e.to_string()))
        }
        Err(IngestError::Storage(e)) => Err(ApiError::storage(&e)),
    }
}

fn outcome_name(r: &DeliveryRecord) -> &'static str {
    match r.outcome {
        DeliveryOutcome::Applied { .. } => "applied",
        DeliveryOutcome::Reversed { .. } => "reversed",
        DeliveryOutcome::AlreadyScored { .. } => "already_scored",
        DeliveryOutcome::Deferred { .. } => "deferred",
        DeliveryOutcome::CustomerUpdated { .. } => "customer_updated",
        DeliveryOutcome::Ignored { .. } => "ignored",
    }
}

fn accepted(record: &DeliveryRecord, duplicate: bool) -> Response {
    let mut body = match &record.outcome {
        DeliveryOutcome::Applied {
            member,
            posting_id,
            points,
        } => {
            json!({"status": "applied", "member_id": member, "posting_id": posting_id, "points": points})
        }
        DeliveryOutcome::AlreadyScored { order_id } => {
            json!({"status": "already_scored", "order_id": order_id})
        }
        DeliveryOutcome::Reversed {
            member,
            points,
            shortfall,
            returned,
        } => json!({"status": "reversed", "member_id": member, "points": points,
                    "shortfall": shortfall, "returned_redemptions": returned}),
        DeliveryOutcome::Deferred { order_id } => {
            json!({"status": "deferred", "order_id": order_id})
        }
        DeliveryOutcome::CustomerUpdated { member } => {
            json!({"status": "customer_updated", "member_id": member})
        }
        DeliveryOutcome::Ignored { kind, reason } => {
            json!({"status": "ignored", "kind": kind, "reason": reason})
        }
    };
    body["duplicate"] = json!(duplicate);
    (StatusCode::OK, Json(body)).into_response()
}
