//! Operator endpoints beside the core admin API: member listing and search, staff
//! profile updates, program activity per day and by rule, webhook deliveries.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::routing::{get, patch};
use axum::{middleware, Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::admin::{load_member, shop};
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use super::AppState;
use crate::member::MemberId;

/// The routes, behind the token check.
pub fn router(state: Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/shops/{shop}/program", get(program))
        .route("/shops/{shop}/members", get(list_members))
        .route("/shops/{shop}/members/merge", axum::routing::post(merge))
        .route(
            "/shops/{shop}/members/{member_id}/profile",
            patch(update_profile),
        )
        .route("/shops/{shop}/reports/activity", get(activity))
        .route(
            "/shops/{shop}/webhooks/deliveries",
            get(super::deliveries::list),
        )
        .method_not_allowed_fallback(super::error::method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state,
            super::auth::require_token,
        ))
}

/// `GET /v1/shops/{shop}/members[?q=&after=&limit=]`: members in id order, filtered by
/// a search over names, e-mail, phone and POS ids; `next` is the cursor of the next page.
#[utoipa::path(
    get,
    path = "/v1/shops/{shop}/members",
    operation_id = "list_members",
    tag = "members",
    security(("bearer" = [])),
    params(
        ("shop" = String, Path, description = "Shop id"),
        ("q" = Option<String>, Query, description = "Search over names, e-mail, phone and POS ids"),
        ("after" = Option<String>, Query, description = "The `next` cursor of the previous page"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Page size (default 50)"),
    ),
    responses(
        (status = 200, description = "A page of members", body = super::openapi::MemberPageDoc),
        (status = 400, description = "`invalid_limit`, `invalid_cursor`", body = super::error::ErrorBody),
        (status = 401, description = "`unauthorized`", body = super::error::ErrorBody),
        (status = 403, description = "`forbidden_shop`, `forbidden_role`", body = super::error::ErrorBody),
        (status = 404, description = "`unknown_shop`", body = super::error::ErrorBody),
        (status = 503, description = "`storage_unavailable`", body = super::error::ErrorBody),
    )
)]
async fn list_members(
    State(state): State<Arc<AppState>>,
    ApiPath(shop_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let shop = shop(&state, &shop_id)?;
    let limit = super::error::query_limit(&q, 50, 500)?;
    let after = match q.get("after") {
        None => None,
        Some(a) => Some(MemberId::parse(a).ok_or_else(|| {
            ApiError::bad_request("invalid_cursor", "after must be a member id from `next`")
        })?),
    };
    let (ledger, id, query) = (state.ledger.clone(), shop.id.clone(), q.get("q").cloned());
    let page = tokio::task::spawn_blocking(move || {
        ledger.list_members(&id, after.as_ref(), limit, query.as_deref())
    })
    .await
    .map_err(|e| ApiError::storage(&e))?
    .map_err(|e| ApiError::storage(&e))?;
    let mut members = Vec::with_capacity(page.members.len());
    for m in &page.members {
        let b = state
            .ledger
            .balances(&shop.id, m)
            .map_err(|e| ApiError::storage(&e))?;
        members.push(json!({
            "id": m.id,
            "first_name": m.first_name,
            "last_name": m.last_name,
            "email": m.email,
            "phone": m.phone,
            "tier": m.tier,
            "points": {"available": b.available, "pending": b.pending},
            "created_at": m.created_at,
        }));
    }
    Ok(Json(json!({"members": members, "next": page.next})))
}

/// `GET /v1/shops/{shop}/program`: the rules in force — rewards catalogue, tiers and
/// the rules version.
#[utoipa::path(
    get,
    path = "/v1/shops/{shop}/program",
    operation_id = "get_program",
    tag = "program",
    security(("bearer" = [])),
    params(("shop" = String, Path, description = "Shop id")),
    responses(
        (status = 200, description = "Rewards catalogue and tiers in force", body = super::openapi::ProgramDoc),
        (status = 401, description = "`unauthorized`", body = super::error::ErrorBody),
        (status = 403, description = "`forbidden_shop`, `forbidden_role`", body = super::error::ErrorBody),
        (status = 404, description = "`unknown_shop`", body = super::error::ErrorBody),
    )
)]
async fn program(
    State(state): State<Arc<AppState>>,
    ApiPath(shop_id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let shop = shop(&state, &shop_id)?;
    let rules = shop.rules.current();
    Ok(Json(json!({
        "rules_version": rules.version,
        "rewards": rules.rewards,
        "tiers": rules.tiers,
    })))
}

/// Body of `POST …/members/merge`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MergeBody {
    /// The member that stays.
    into: String,
    /// The member merged into it.
    from: String,
    /// Why (journaled).
    reason: String,
}

/// `POST /v1/shops/{shop}/members/merge` `{"into": A, "from": B, "reason": "..."}`
/// (admin): B's identities, points, lots and store credit move to A, journaled.
#[utoipa::path(
    post,
    path = "/v1/shops/{shop}/members/merge",
    operation_id = "merge_members",
    tag = "members",
    security(("bearer" = [])),
    params(("shop" = String, Path, description = "Shop id")),
    request_body(content = super::openapi::MergeBodyDoc, content_type = "application/json"),
    responses(
        (status = 200, description = "Merged", body = super::openapi::MergedDoc),
        (status = 400, description = "`invalid_body` (not JSON, wrong shape, or a blank reason)", body = super::error::ErrorBody),
        (status = 401, description = "`unauthorized`", body = super::error::ErrorBody),
        (status = 403, description = "`forbidden_shop`, `forbidden_role` (needs `admin`)", body = super::error::ErrorBody),
        (status = 404, description = "`unknown_shop`, `unknown_member`", body = super::error::ErrorBody),
        (status = 409, description = "`merge_refused` (e.g. a member merged into itself)", body = super::error::ErrorBody),
        (status = 503, description = "`storage_unavailable`", body = super::error::ErrorBody),
    )
)]
async fn merge(
    State(state): State<Arc<AppState>>,
    ApiPath(shop_id): ApiPath<String>,
    axum::Extension(actor): axum::Extension<super::auth::Actor>,
    ApiJson(body): ApiJson<MergeBody>,
) -> Result<Json<Value>, ApiError> {
    let shop = shop(&state, &shop_id)?;
    if body.reason.trim().is_empty() {
        return Err(ApiError::bad_request(
            "invalid_body",
            "a reason is required",
        ));
    }
    let into = load_member(&state, shop, &body.into)?;
    let from = load_member(&state, shop, &body.from)?;
    let merged = state
        .ledger
        .merge_members(
            &shop.id,
            &into.id,
            &from.id,
            &actor.0,
            body.reason.trim(),
            chrono::Utc::now(),
        )
        .map_err(|e| ApiError::storage(&e))?
        .map_err(|e| {
            ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "merge_refused",
                e.to_string(),
            )
        })?;
    state
        .ledger
        .durable()
        .await
        .map_err(|e| ApiError::storage(&e))?;
    state.wakeup.wake();
    tracing::info!(shop = %shop.id, actor = %actor.0, into = %into.id, from = %from.id, "members merged");
    Ok(Json(json!({
        "member_id": merged.member.id,
        "merged": from.id,
        "moved": {"available": merged.available, "pending": merged.pending},
        "posting_ids": merged.postings,
    })))
}

/// Body of `PATCH …/profile`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileBody {
    /// `YYYY-MM-DD`, or `null` to clear.
    #[serde(default, with = "double_option")]
    birthday: Option<Option<chrono::NaiveDate>>,
    /// Replaces the tags.
    tags: Option<Vec<String>>,
}

mod double_option {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// `PATCH /v1/shops/{shop}/members/{member_id}/profile` `{"birthday": "1990-03-12", "tags": ["card"]}`.
#[utoipa::path(
    patch,
    path = "/v1/shops/{shop}/members/{member_id}/profile",
    operation_id = "update_profile",
    tag = "members",
    security(("bearer" = [])),
    params(
        ("shop" = String, Path, description = "Shop id"),
        ("member_id" = String, Path, description = "Member id"),
    ),
    request_body(content = super::openapi::ProfileChangeDoc, content_type = "application/json"),
    responses(
        (status = 200, description = "The profile now", body = super::openapi::ProfileDoc),
        (status = 400, description = "`invalid_body` (not JSON, wrong shape, or neither field given)", body = super::error::ErrorBody),
        (status = 401, description = "`unauthorized`", body = super::error::ErrorBody),
        (status = 403, description = "`forbidden_shop`, `forbidden_role` (needs `write`)", body = super::error::ErrorBody),
        (status = 404, description = "`unknown_shop`, `unknown_member`", body = super::error::ErrorBody),
        (status = 503, description = "`storage_unavailable`", body = super::error::ErrorBody),
    )
)]
async fn update_profile(
    State(state): State<Arc<AppState>>,
    ApiPath((shop_id, member_id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<ProfileBody>,
) -> Result<Json<Value>, ApiError> {
    let shop = shop(&state, &shop_id)?;
    let m = load_member(&state, shop, &member_id)?;
    if body.birthday.is_none() && body.tags.is_none() {
        return Err(ApiError::bad_request(
            "invalid_body",
            "give birthday and/or tags",
        ));
    }
    let tags = body.tags.map(|t| {
        t.iter()
            .map(|s| s.trim().to_lowercase())
            .filter(|s| !s.is_empty())
            .collect()
    });
    let updated = state
        .ledger
        .update_profile(&shop.id, &m.id, body.birthday, tags, chrono::Utc::now())
        .map_err(|e| ApiError::storage(&e))?
        .ok_or_else(|| ApiError::not_found("unknown_member", "no such member"))?;
    state
        .ledger
        .durable()
        .await
        .map_err(|e| ApiError::storage(&e))?;
    Ok(Json(json!({
        "member_id": updated.id,
        "birthday": updated.birthday,
        "tags": updated.tags,
    })))
}

/// `GET /v1/shops/{shop}/reports/activity[?from=&to=]`: points issued, redeemed,
/// expired, reversed and adjusted per local day, and rules by points issued.
#[utoipa::path(
    get,
    path = "/v1/shops/{shop}/reports/activity",
    operation_id = "activity_report",
    tag = "reports",
    security(("bearer" = [])),
    params(
        ("shop" = String, Path, description = "Shop id"),
        ("from" = Option<String>, Query, description = "Period start: `YYYY-MM-DD` or RFC 3339"),
        ("to" = Option<String>, Query, description = "Period end: `YYYY-MM-DD` (through that day) or RFC 3339; default: now"),
    ),
    responses(
        (status = 200, description = "The activity", body = super::openapi::ActivityDoc),
        (status = 400, description = "`invalid_period`", body = super::error::ErrorBody),
        (status = 401, description = "`unauthorized`", body = super::error::ErrorBody),
        (status = 403, description = "`forbidden_shop`, `forbidden_role`", body = super::error::ErrorBody),
        (status = 404, description = "`unknown_shop`", body = super::error::ErrorBody),
        (status = 503, description = "`storage_unavailable`", body = super::error::ErrorBody),
    )
)]
async fn activity(
    State(state): State<Arc<AppState>>,
    ApiPath(shop_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<HashMap<String, String>>,
) -> Result<Json<crate::report::activity::Activity>, ApiError> {
    let shop = shop(&state, &shop_id)?;
    let (from, to) = super::error::query_period(&q, shop.timezone)?;
    let (ledger, shop) = (state.ledger.clone(), shop.clone());
    let report = tokio::task::spawn_blocking(move || {
        crate::report::activity::activity(&ledger, &shop, from, to)
    })
    .await
    .map_err(|e| ApiError::storage(&e))?
    .map_err(|e| ApiError::storage(&e))?;
    Ok(Json(report))
}
