//! The admin API under `/v1`, behind `Authorization: Bearer <server.admin_token>`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::middleware;
use axum::routing::{get, post};
use axum::{Json, Router};
use loyaltyd_adapter::ShopId;
use serde_json::{json, Value};

use super::error::ApiError;
use super::AppState;
use crate::config::ShopConfig;
use crate::member::{normalise_email, normalise_phone, IdentityKind, Member, MemberId};

/// Routes under `/v1`.
pub fn router(state: Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/shops/{shop}/members/lookup", get(lookup))
        .route("/shops/{shop}/members/{member_id}", get(member))
        .route("/shops/{shop}/members/{member_id}/ledger", get(ledger))
        .route(
            "/shops/{shop}/members/{member_id}/redemptions",
            post(super::spend::redeem),
        )
        .route(
            "/shops/{shop}/members/{member_id}/adjustments",
            post(super::spend::adjust),
        )
        .route(
            "/shops/{shop}/reports/liability",
            get(super::reports::liability),
        )
        .route("/shops/{shop}/simulate", post(super::simulate::simulate))
        .route(
            "/shops/{shop}/members/{member_id}/referrals",
            post(super::referrals::refer),
        )
        .route(
            "/shops/{shop}/members/{member_id}/consent",
            axum::routing::put(super::notifications::set_consent),
        )
        .route(
            "/shops/{shop}/deadletters",
            get(super::notifications::dead_letters),
        )
        .route(
            "/shops/{shop}/deadletters/{message_id}/{channel}/retry",
            post(super::notifications::retry),
        )
        .layer(middleware::from_fn_with_state(
            state,
            super::auth::require_token,
        ))
}

pub use super::auth::Actor;

pub(crate) fn shop<'a>(state: &'a AppState, id: &str) -> Result<&'a ShopConfig, ApiError> {
    ShopId::new(id)
        .ok()
        .and_then(|id| state.shop(&id))
        .ok_or_else(|| ApiError::not_found("unknown_shop", "no such shop"))
}

fn member_json(state: &AppState, shop: &ShopConfig, m: &Member) -> Result<Value, ApiError> {
    let b = state
        .ledger
        .balances(&shop.id, m)
        .map_err(|e| ApiError::storage(&e))?;
    let lots = state
        .ledger
        .member_lots(&shop.id, &m.id)
        .map_err(|e| ApiError::storage(&e))?;
    let lots: Vec<Value> = lots
        .lots
        .iter()
        .map(|l| {
            json!({
                "lot": l.id,
                "earned_at": l.earned_at,
                "points": l.remaining,
                "original": l.original,
                "pending_until": l.pending_until,
                "expires_at": l.expires_at,
            })
        })
        .collect();
    Ok(json!({
        "id": m.id,
        "shop": shop.id,
        "email": m.email,
        "phone": m.phone,
        "first_name": m.first_name,
        "last_name": m.last_name,
        "tier": m.tier,
        "points": {"available": b.available, "pending": b.pending, "lifetime": b.lifetime},
        "store_credit": m.store_credit.to_string(),
        "tags": m.tags,
        "identities": m.identities,
        "birthday": m.birthday,
        "consent": m.consent,
        "lots": lots,
        "last_activity_at": m.last_activity_at,
        "created_at": m.created_at,
        "updated_at": m.updated_at,
    }))
}

pub(crate) fn load_member(
    state: &AppState,
    shop: &ShopConfig,
    id: &str,
) -> Result<Member, ApiError> {
    let not_found = || ApiError::not_found("unknown_member", "no such member");
    let id = MemberId::parse(id).ok_or_else(not_found)?;
    state
        .ledger
        .member(&shop.id, &id)
        .map_err(|e| ApiError::storage(&e))?
        .ok_or_else(not_found)
}

/// `GET /v1/shops/{shop}/members/lookup?email=|phone=|shopify_customer_id=|square_customer_id=`
async fn lookup(
    State(state): State<Arc<AppState>>,
    Path(shop_id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let shop = shop(&state, &shop_id)?;
    let known = [
        "email",
        "phone",
        "shopify_customer_id",
        "square_customer_id",
    ];
    if let Some(unknown) = q.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(ApiError::bad_request(
            "unknown_parameter",
            format!("unknown query parameter {unknown:?}; use one of {known:?}"),
        ));
    }
    if q.len() != 1 {
        return Err(ApiError::bad_request(
            "one_identity_required",
            format!("give exactly one of {known:?}"),
        ));
    }
    let (key, raw) = q
        .iter()
        .next()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .unwrap_or_default();
    let invalid =
        |what: &str| ApiError::bad_request("invalid_identity", format!("not a valid {what}"));
    let (kind, value) = match key {
        "email" => (
            IdentityKind::Email,
            normalise_email(raw).ok_or_else(|| invalid("e-mail address"))?,
        ),
        "phone" => (
            IdentityKind::Phone,
            normalise_phone(raw, shop.country).ok_or_else(|| invalid("phone number"))?,
        ),
        "shopify_customer_id" => (IdentityKind::ShopifyCustomerId, raw.trim().to_string()),
        _ => (IdentityKind::SquareCustomerId, raw.trim().to_string()),
    };
    let m = state
        .ledger
        .member_by_identity(&shop.id, kind, &value)
        .map_err(|e| ApiError::storage(&e))?
        .ok_or_else(|| ApiError::not_found("unknown_member", "no member has that identity"))?;
    Ok(Json(member_json(&state, shop, &m)?))
}

/// `GET /v1/shops/{shop}/members/{member_id}`
async fn member(
    State(state): State<Arc<AppState>>,
    Path((shop_id, member_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let shop = shop(&state, &shop_id)?;
    let m = load_member(&state, shop, &member_id)?;
    Ok(Json(member_json(&state, shop, &m)?))
}

/// `GET /v1/shops/{shop}/members/{member_id}/ledger[?limit=N]`, newest first.
async fn ledger(
    State(state): State<Arc<AppState>>,
    Path((shop_id, member_id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let shop = shop(&state, &shop_id)?;
    let m = load_member(&state, shop, &member_id)?;
    let limit = match q.get("limit") {
        None => 100,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request("invalid_limit", "limit must be an integer from 1 to 1000")
            })?,
    };
    let postings = state
        .ledger
        .member_postings(&shop.id, &m.id, limit)
        .map_err(|e| ApiError::storage(&e))?;
    let entries: Vec<Value> = postings
        .iter()
        .map(|p| {
            json!({
                "posting_id": p.seq,
                "kind": p.kind,
                "points": p.member_available_delta() + p.member_pending_delta(),
                "available_delta": p.member_available_delta(),
                "pending_delta": p.member_pending_delta(),
                "actor": p.actor,
                "reason": p.reason,
                "reward": p.reward,
                "shortfall": p.shortfall,
                "lots": p.lots,
                "occurred_at": p.occurred_at,
                "recorded_at": p.recorded_at,
                "order_id": p.order_id,
                "idempotency_key": p.idempotency_key,
                "rule_ids": p.explanation.iter().map(|c| c.rule_id.as_str()).collect::<Vec<_>>(),
                "explanation": p.explanation,
                "rules_version": p.rules_version,
                "entries": p.entries,
            })
        })
        .collect();
    Ok(Json(json!({"member_id": m.id, "entries": entries})))
}
