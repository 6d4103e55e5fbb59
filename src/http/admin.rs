//! The admin API under `/v1`, behind `Authorization: Bearer <token>` (see
//! [`super::auth`]). Every handler is described for the OpenAPI document
//! ([`super::openapi`]) by its `#[utoipa::path]` attribute.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::middleware;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, NaiveDate, Utc};
use loyaltyd_adapter::{Consent, ShopId};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ApiPath, ApiQuery, ErrorBody};
use super::openapi::{
    ConsentDoc, ContributionDoc, EntryDoc, IdentityDoc, LotChangeDoc, PostingKindDoc,
};
use super::AppState;
use crate::config::ShopConfig;
use crate::ledger::journal::{Entry, LotChange, PostingKind};
use crate::member::{
    normalise_email, normalise_phone, IdentityKind, LinkedIdentity, Member, MemberId,
};
use crate::points::Points;
use crate::rules::Contribution;

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
        .method_not_allowed_fallback(super::error::method_not_allowed)
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

/// A member's balances.
#[derive(Debug, Serialize, ToSchema)]
pub struct PointsSummary {
    /// Points the member can spend now.
    #[schema(value_type = i64)]
    pub available: Points,
    /// Points held until the returns window ends.
    #[schema(value_type = i64)]
    pub pending: Points,
    /// Points ever earned (spending does not lower it).
    #[schema(value_type = i64)]
    pub lifetime: Points,
}

/// One open lot of a member's points, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberLot {
    /// Lot id (the posting that opened it).
    pub lot: u64,
    /// When the points were earned.
    pub earned_at: DateTime<Utc>,
    /// Points still in the lot.
    #[schema(value_type = i64)]
    pub points: Points,
    /// Points originally put in.
    #[schema(value_type = i64)]
    pub original: Points,
    /// Pending until then (`null`: available).
    pub pending_until: Option<DateTime<Utc>>,
    /// Lapses then under a fixed-term policy (`null`: no fixed expiry).
    pub expires_at: Option<DateTime<Utc>>,
}

/// A member with balances, identities, consent and open lots.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Member)]
pub struct MemberResponse {
    /// Member id (`m_` + 20 hex digits).
    #[schema(value_type = String, pattern = "^m_[0-9a-f]{20}$", example = "m_0123456789abcdef0123")]
    pub id: MemberId,
    /// The shop.
    #[schema(value_type = String, example = "demo")]
    pub shop: ShopId,
    /// Normalised e-mail address.
    pub email: Option<String>,
    /// E.164 phone number.
    pub phone: Option<String>,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
    /// Tier name, when the shop has tiers.
    pub tier: Option<String>,
    /// Balances.
    pub points: PointsSummary,
    /// Store credit from cash back, in the shop currency (decimal string).
    #[schema(pattern = r"^-?[0-9]+(\.[0-9]+)?$", example = "0")]
    pub store_credit: String,
    /// Tags rules can test.
    pub tags: Vec<String>,
    /// Every identity that finds the member, with the adapter that brought it.
    #[schema(value_type = Vec<IdentityDoc>)]
    pub identities: Vec<LinkedIdentity>,
    /// Birthday, when known.
    pub birthday: Option<NaiveDate>,
    /// Marketing consent per channel.
    #[schema(value_type = ConsentDoc)]
    pub consent: Consent,
    /// Open lots, oldest first.
    pub lots: Vec<MemberLot>,
    /// Last earning or redemption.
    pub last_activity_at: Option<DateTime<Utc>>,
    /// When the member was first seen.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

pub(crate) fn member_json(
    state: &AppState,
    shop: &ShopConfig,
    m: &Member,
) -> Result<MemberResponse, ApiError> {
    let b = state
        .ledger
        .balances(&shop.id, m)
        .map_err(|e| ApiError::storage(&e))?;
    let lots = state
        .ledger
        .member_lots(&shop.id, &m.id)
        .map_err(|e| ApiError::storage(&e))?;
    let lots = lots
        .lots
        .iter()
        .map(|l| MemberLot {
            lot: l.id,
            earned_at: l.earned_at,
            points: l.remaining,
            original: l.original,
            pending_until: l.pending_until,
            expires_at: l.expires_at,
        })
        .collect();
    Ok(MemberResponse {
        id: m.id.clone(),
        shop: shop.id.clone(),
        email: m.email.clone(),
        phone: m.phone.clone(),
        first_name: m.first_name.clone(),
        last_name: m.last_name.clone(),
        tier: m.tier.clone(),
        points: PointsSummary {
            available: b.available,
            pending: b.pending,
            lifetime: b.lifetime,
        },
        store_credit: m.store_credit.to_string(),
        tags: m.tags.clone(),
        identities: m.identities.clone(),
        birthday: m.birthday,
        consent: m.consent,
        lots,
        last_activity_at: m.last_activity_at,
        created_at: m.created_at,
        updated_at: m.updated_at,
    })
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

/// Find a member by exactly one identity.
#[utoipa::path(
    get,
    path = "/v1/shops/{shop}/members/lookup",
    operation_id = "lookup_member",
    tag = "members",
    security(("bearer" = [])),
    params(
        ("shop" = String, Path, description = "Shop id"),
        ("email" = Option<String>, Query, description = "E-mail address (normalised before matching)"),
        ("phone" = Option<String>, Query, description = "Phone number (normalised to E.164 with the shop's country)"),
        ("shopify_customer_id" = Option<String>, Query, description = "Shopify customer id"),
        ("square_customer_id" = Option<String>, Query, description = "Square customer id"),
    ),
    responses(
        (status = 200, description = "The member", body = MemberResponse),
        (status = 400, description = "`unknown_parameter`, `one_identity_required` (give exactly one parameter), `invalid_identity`, `invalid_path`, `invalid_query`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden_shop`, `forbidden_role`", body = ErrorBody),
        (status = 404, description = "`unknown_shop`, `unknown_member` (no member has that identity)", body = ErrorBody),
        (status = 503, description = "`storage_unavailable`", body = ErrorBody),
    )
)]
pub async fn lookup(
    State(state): State<Arc<AppState>>,
    ApiPath(shop_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<HashMap<String, String>>,
) -> Result<Json<MemberResponse>, ApiError> {
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

/// A member with balances, identities, consent and open lots.
#[utoipa::path(
    get,
    path = "/v1/shops/{shop}/members/{member_id}",
    operation_id = "get_member",
    tag = "members",
    security(("bearer" = [])),
    params(
        ("shop" = String, Path, description = "Shop id"),
        ("member_id" = String, Path, description = "Member id (`m_` + 20 hex digits)"),
    ),
    responses(
        (status = 200, description = "The member", body = MemberResponse),
        (status = 400, description = "`invalid_path`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden_shop`, `forbidden_role`", body = ErrorBody),
        (status = 404, description = "`unknown_shop`, `unknown_member`", body = ErrorBody),
        (status = 503, description = "`storage_unavailable`", body = ErrorBody),
    )
)]
pub async fn member(
    State(state): State<Arc<AppState>>,
    ApiPath((shop_id, member_id)): ApiPath<(String, String)>,
) -> Result<Json<MemberResponse>, ApiError> {
    let shop = shop(&state, &shop_id)?;
    let m = load_member(&state, shop, &member_id)?;
    Ok(Json(member_json(&state, shop, &m)?))
}

/// One posting of a member's ledger.
#[derive(Debug, Serialize, ToSchema)]
pub struct LedgerEntry {
    /// The posting's sequence number in the shop's journal.
    pub posting_id: u64,
    /// Why it was posted.
    #[schema(value_type = PostingKindDoc)]
    pub kind: PostingKind,
    /// Net change to the member's points (available + pending).
    #[schema(value_type = i64)]
    pub points: Points,
    /// Net change to available points.
    #[schema(value_type = i64)]
    pub available_delta: Points,
    /// Net change to pending points.
    #[schema(value_type = i64)]
    pub pending_delta: Points,
    /// Who did it (token name or `system`), for manual postings.
    pub actor: Option<String>,
    /// Why, in words (adjustments, reversals, tier changes).
    pub reason: Option<String>,
    /// The reward redeemed.
    pub reward: Option<String>,
    /// Points a reversal could not take back.
    #[schema(value_type = i64)]
    pub shortfall: Points,
    /// How the member's lots changed.
    #[schema(value_type = Vec<LotChangeDoc>)]
    pub lots: Vec<LotChange>,
    /// When it happened (the sender's time, or the job clock).
    pub occurred_at: DateTime<Utc>,
    /// When loyaltyd recorded it.
    pub recorded_at: DateTime<Utc>,
    /// The external order it is about.
    pub order_id: Option<String>,
    /// The key that makes it happen at most once.
    pub idempotency_key: String,
    /// Ids of the rules that produced it (earnings).
    pub rule_ids: Vec<String>,
    /// What each rule contributed (earnings).
    #[schema(value_type = Vec<ContributionDoc>)]
    pub explanation: Vec<Contribution>,
    /// Version of the rules file that scored it (earnings).
    pub rules_version: Option<String>,
    /// The journal legs, summing to zero.
    #[schema(value_type = Vec<EntryDoc>)]
    pub entries: Vec<Entry>,
}

/// A member's postings, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Ledger)]
pub struct LedgerResponse {
    /// The member.
    #[schema(value_type = String)]
    pub member_id: MemberId,
    /// Postings, newest first.
    pub entries: Vec<LedgerEntry>,
}

/// The member's postings, newest first, with rule ids and explanations.
#[utoipa::path(
    get,
    path = "/v1/shops/{shop}/members/{member_id}/ledger",
    operation_id = "member_ledger",
    tag = "members",
    security(("bearer" = [])),
    params(
        ("shop" = String, Path, description = "Shop id"),
        ("member_id" = String, Path, description = "Member id"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "At most this many postings (default 100)"),
    ),
    responses(
        (status = 200, description = "The postings", body = LedgerResponse),
        (status = 400, description = "`invalid_limit`, `invalid_path`, `invalid_query`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden_shop`, `forbidden_role`", body = ErrorBody),
        (status = 404, description = "`unknown_shop`, `unknown_member`", body = ErrorBody),
        (status = 503, description = "`storage_unavailable`", body = ErrorBody),
    )
)]
pub async fn ledger(
    State(state): State<Arc<AppState>>,
    ApiPath((shop_id, member_id)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<HashMap<String, String>>,
) -> Result<Json<LedgerResponse>, ApiError> {
    let shop = shop(&state, &shop_id)?;
    let m = load_member(&state, shop, &member_id)?;
    let limit = super::error::query_limit(&q, 100, 1000)?;
    let postings = state
        .ledger
        .member_postings(&shop.id, &m.id, limit)
        .map_err(|e| ApiError::storage(&e))?;
    let entries = postings
        .into_iter()
        .map(|p| LedgerEntry {
            posting_id: p.seq,
            kind: p.kind,
            points: p.member_available_delta() + p.member_pending_delta(),
            available_delta: p.member_available_delta(),
            pending_delta: p.member_pending_delta(),
            rule_ids: p.explanation.iter().map(|c| c.rule_id.clone()).collect(),
            actor: p.actor,
            reason: p.reason,
            reward: p.reward,
            shortfall: p.shortfall,
            lots: p.lots,
            occurred_at: p.occurred_at,
            recorded_at: p.recorded_at,
            order_id: p.order_id,
            idempotency_key: p.idempotency_key,
            explanation: p.explanation,
            rules_version: p.rules_version,
            entries: p.entries,
        })
        .collect();
    Ok(Json(LedgerResponse {
        member_id: m.id,
        entries,
    }))
}
