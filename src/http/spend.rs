//! `POST /v1/shops/{shop}/members/{id}/redemptions` and `.../adjustments`.
//!
//! Redemptions require an `Idempotency-Key` header: the same key with the same request
//! returns the first answer (with `Idempotent-Replayed: true`) and posts nothing; the
//! same key with another request is 409. Adjustments honour the header when given.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::admin::{load_member, shop, Actor};
use super::error::ApiError;
use super::AppState;
use crate::ledger::spend::{AdjustCommand, Idempotency, RedeemCommand, SpendOutcome, SpendResult};
use crate::ledger::LedgerError;
use crate::points::Points;

const MAX_KEY_LEN: usize = 255;

fn idempotency_key(headers: &HeaderMap, required: bool) -> Result<String, ApiError> {
    match headers.get("idempotency-key").map(|v| v.to_str()) {
        Some(Ok(k)) if !k.trim().is_empty() && k.len() <= MAX_KEY_LEN => Ok(k.trim().to_string()),
        Some(_) => Err(ApiError::bad_request(
            "invalid_idempotency_key",
            format!("Idempotency-Key must be 1-{MAX_KEY_LEN} visible characters"),
        )),
        None if required => Err(ApiError::bad_request(
            "idempotency_key_required",
            "this request needs an Idempotency-Key header",
        )),
        None => Ok(format!("auto-{}", uuid::Uuid::new_v4())),
    }
}

/// Parse a JSON body strictly and fingerprint it in canonical form (so whitespace or
/// key order do not make "the same body" different).
fn parse_body<T: for<'de> Deserialize<'de>>(
    path: &str,
    body: &Bytes,
) -> Result<(T, String), ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("malformed_json", format!("body is not JSON: {e}")))?;
    let canonical = serde_json::to_string(&value).unwrap_or_default();
    let parsed = serde_json::from_value(value)
        .map_err(|e| ApiError::bad_request("invalid_body", e.to_string()))?;
    let mut h = Sha256::new();
    h.update(path.as_bytes());
    h.update(b"\n");
    h.update(canonical.as_bytes());
    Ok((parsed, format!("{:x}", h.finalize())))
}

fn ledger_error(e: LedgerError) -> ApiError {
    match e {
        LedgerError::InsufficientPoints { needed, available } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "insufficient_points",
            format!("{needed} points needed, {available} available"),
        ),
        LedgerError::IdempotencyConflict => ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_key_reused",
            "this Idempotency-Key was used for a different request",
        ),
        LedgerError::UnknownMember => ApiError::not_found("unknown_member", "no such member"),
        other => ApiError::storage(&other),
    }
}

fn respond(outcome: SpendOutcome) -> Response {
    let (result, replayed): (SpendResult, bool) = match outcome {
        SpendOutcome::New(r) => (r, false),
        SpendOutcome::Replayed(r) => (r, true),
    };
    let body = json!({
        "posting_id": result.posting_id,
        "member_id": result.member_id,
        "points": result.points,
        "balance": {"available": result.available, "pending": result.pending},
    });
    let mut resp = (StatusCode::CREATED, Json(body)).into_response();
    if replayed {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    resp
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RedeemBody {
    points: Option<i64>,
    reward: Option<String>,
    order_id: Option<String>,
}

/// Redeem points or a catalogue reward.
pub async fn redeem(
    State(state): State<Arc<AppState>>,
    Extension(actor): Extension<Actor>,
    Path((shop_id, member_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let shop = shop(&state, &shop_id)?;
    let key = idempotency_key(&headers, true)?;
    let path = format!("POST /v1/shops/{shop_id}/members/{member_id}/redemptions");
    let (b, fingerprint) = parse_body::<RedeemBody>(&path, &body)?;
    let member = load_member(&state, shop, &member_id)?;
    let rules = shop.rules.current();
    let (points, reward) = match (b.points, b.reward) {
        (Some(p), None) if p > 0 => (Points(p), None),
        (Some(_), None) => {
            return Err(ApiError::bad_request(
                "invalid_points",
                "points must be a positive integer",
            ))
        }
        (None, Some(r)) => {
            let reward = rules.reward(&r).ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "unknown_reward",
                    format!("no reward {r:?} in the catalogue"),
                )
            })?;
            (Points(reward.points), Some(reward.id.clone()))
        }
        _ => {
            return Err(ApiError::bad_request(
                "points_or_reward",
                "give exactly one of \"points\" or \"reward\"",
            ))
        }
    };
    let cmd = RedeemCommand {
        shop: &shop.id,
        member: &member.id,
        points,
        reward,
        order_id: b.order_id.filter(|o| !o.trim().is_empty()),
        actor: &actor.0,
        idempotency: Idempotency {
            key: &key,
            fingerprint: &fingerprint,
        },
    };
    let outcome = state.ledger.redeem(&cmd, chrono::Utc::now());
    tracing::info!(shop = %shop.id, member = %member.id, actor = %actor.0, points = points.0, ok = outcome.is_ok(), "redemption");
    settle(&state, outcome).await
}

/// Answer a spend once it is durable, and wake the notifier.
async fn settle(
    state: &AppState,
    outcome: Result<SpendOutcome, LedgerError>,
) -> Result<Response, ApiError> {
    let outcome = outcome.map_err(ledger_error)?;
    state
        .ledger
        .durable()
        .await
        .map_err(|e| ApiError::storage(&e))?;
    state.wakeup.wake();
    Ok(respond(outcome))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdjustBody {
    points: i64,
    reason: String,
}

/// Add or remove points by hand, with a reason.
pub async fn adjust(
    State(state): State<Arc<AppState>>,
    Extension(actor): Extension<Actor>,
    Path((shop_id, member_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let shop = shop(&state, &shop_id)?;
    let key = idempotency_key(&headers, false)?;
    let path = format!("POST /v1/shops/{shop_id}/members/{member_id}/adjustments");
    let (b, fingerprint) = parse_body::<AdjustBody>(&path, &body)?;
    if b.points == 0 || b.points.unsigned_abs() > 1_000_000_000 {
        return Err(ApiError::bad_request(
            "invalid_points",
            "points must be a non-zero integer of at most 1e9",
        ));
    }
    if b.reason.trim().is_empty() {
        return Err(ApiError::bad_request(
            "reason_required",
            "an adjustment needs a reason",
        ));
    }
    let member = load_member(&state, shop, &member_id)?;
    let rules = shop.rules.current();
    let cmd = AdjustCommand {
        shop: &shop.id,
        timezone: shop.timezone,
        policy: &rules.policy,
        member: &member.id,
        points: Points(b.points),
        reason: b.reason.trim(),
        actor: &actor.0,
        idempotency: Idempotency {
            key: &key,
            fingerprint: &fingerprint,
        },
    };
    let outcome = state.ledger.adjust(&cmd, chrono::Utc::now());
    tracing::info!(shop = %shop.id, member = %member.id, actor = %actor.0, points = b.points, ok = outcome.is_ok(), "adjustment");
    settle(&state, outcome).await
}
