//! `POST /v1/shops/{shop}/members/{id}/redemptions` and `.../adjustments`.
//!
//! Redemptions require an `Idempotency-Key` header: the same key with the same request
//! returns the first answer (with `Idempotent-Replayed: true`) and posts nothing; the
//! same key with another request is 409. Adjustments honour the header when given.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::admin::{load_member, shop, Actor};
use super::error::{ApiError, ApiJson, ApiPath, ErrorBody};
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
    value: Value,
) -> Result<(T, String), ApiError> {
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

/// The member's balance after a spend.
#[derive(Debug, Serialize, ToSchema)]
pub struct SpendBalance {
    /// Points available now.
    #[schema(value_type = i64)]
    pub available: Points,
    /// Points pending.
    #[schema(value_type = i64)]
    pub pending: Points,
}

/// The answer to a redemption or adjustment.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SpendResult)]
pub struct SpendResponse {
    /// The posting made (or the one a replayed key made).
    pub posting_id: u64,
    /// The member.
    #[schema(value_type = String)]
    pub member_id: crate::member::MemberId,
    /// Change to the member's points (negative for a redemption).
    #[schema(value_type = i64)]
    pub points: Points,
    /// The balance after it.
    pub balance: SpendBalance,
}

fn respond(outcome: SpendOutcome) -> Response {
    let (result, replayed): (SpendResult, bool) = match outcome {
        SpendOutcome::New(r) => (r, false),
        SpendOutcome::Replayed(r) => (r, true),
    };
    let body = SpendResponse {
        posting_id: result.posting_id,
        member_id: result.member_id,
        points: result.points,
        balance: SpendBalance {
            available: result.available,
            pending: result.pending,
        },
    };
    let mut resp = (StatusCode::CREATED, Json(body)).into_response();
    if replayed {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    resp
}

/// Body of a redemption: exactly one of `points` or `reward`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Redemption, example = json!({"points": 5, "order_id": "1001"}))]
pub struct RedeemBody {
    /// Points to spend (> 0).
    #[schema(minimum = 1)]
    points: Option<i64>,
    /// A reward id from the catalogue (`[[rewards]]` in the rules), spending its cost.
    reward: Option<String>,
    /// The order the redemption pays for (refunding it returns the points).
    order_id: Option<String>,
}

/// Redeem points or a catalogue reward. The same `Idempotency-Key` with the same body
/// replays the first answer (`Idempotent-Replayed: true`), including a 422 refusal.
#[utoipa::path(
    post,
    path = "/v1/shops/{shop}/members/{member_id}/redemptions",
    operation_id = "redeem",
    tag = "points",
    security(("bearer" = [])),
    params(
        ("shop" = String, Path, description = "Shop id"),
        ("member_id" = String, Path, description = "Member id"),
        ("Idempotency-Key" = String, Header, description = "Required; 1-255 visible characters"),
    ),
    request_body(content = RedeemBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Redeemed (or the first answer replayed)", body = SpendResponse,
            headers(("Idempotent-Replayed" = String, description = "`true` when this is a replay"))),
        (status = 400, description = "`idempotency_key_required`, `invalid_idempotency_key`, `malformed_json`, `invalid_body`, `invalid_points`, `points_or_reward`, `invalid_path`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden_shop`, `forbidden_role` (needs `write`)", body = ErrorBody),
        (status = 404, description = "`unknown_shop`, `unknown_member`", body = ErrorBody),
        (status = 409, description = "`idempotency_key_reused` (same key, other request)", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`insufficient_points`, `unknown_reward`; nothing posted", body = ErrorBody),
        (status = 503, description = "`storage_unavailable`", body = ErrorBody),
    )
)]
pub async fn redeem(
    State(state): State<Arc<AppState>>,
    Extension(actor): Extension<Actor>,
    ApiPath((shop_id, member_id)): ApiPath<(String, String)>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    let shop = shop(&state, &shop_id)?;
    let key = idempotency_key(&headers, true)?;
    let path = format!("POST /v1/shops/{shop_id}/members/{member_id}/redemptions");
    let (b, fingerprint) = parse_body::<RedeemBody>(&path, body)?;
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

/// Body of an adjustment.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Adjustment, example = json!({"points": -3, "reason": "spilled coffee"}))]
pub struct AdjustBody {
    /// Points to add (> 0) or remove (< 0); not zero, at most 1e9 either way.
    #[schema(minimum = -1_000_000_000, maximum = 1_000_000_000)]
    points: i64,
    /// Why (required, not blank); journaled with the token's name.
    reason: String,
}

/// Add or remove points by hand, with a reason. `Idempotency-Key` is honoured when sent.
#[utoipa::path(
    post,
    path = "/v1/shops/{shop}/members/{member_id}/adjustments",
    operation_id = "adjust",
    tag = "points",
    security(("bearer" = [])),
    params(
        ("shop" = String, Path, description = "Shop id"),
        ("member_id" = String, Path, description = "Member id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Optional; 1-255 visible characters"),
    ),
    request_body(content = AdjustBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Adjusted (or the first answer replayed)", body = SpendResponse,
            headers(("Idempotent-Replayed" = String, description = "`true` when this is a replay"))),
        (status = 400, description = "`invalid_idempotency_key`, `malformed_json`, `invalid_body`, `invalid_points`, `reason_required`, `invalid_path`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden_shop`, `forbidden_role` (needs `write`)", body = ErrorBody),
        (status = 404, description = "`unknown_shop`, `unknown_member`", body = ErrorBody),
        (status = 409, description = "`idempotency_key_reused`", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`insufficient_points` (removing more than is available); nothing posted", body = ErrorBody),
        (status = 503, description = "`storage_unavailable`", body = ErrorBody),
    )
)]
pub async fn adjust(
    State(state): State<Arc<AppState>>,
    Extension(actor): Extension<Actor>,
    ApiPath((shop_id, member_id)): ApiPath<(String, String)>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    let shop = shop(&state, &shop_id)?;
    let key = idempotency_key(&headers, false)?;
    let path = format!("POST /v1/shops/{shop_id}/members/{member_id}/adjustments");
    let (b, fingerprint) = parse_body::<AdjustBody>(&path, body)?;
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
