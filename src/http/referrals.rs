//! `POST /v1/shops/{shop}/members/{id}/referrals` with `{"email": ...}` or
//! `{"phone": ...}`: the member referred someone who is not a member yet. When that
//! person's first purchase is scored, both get the `[bonuses]` referral points, once.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::admin::{load_member, shop};
use super::error::{ApiError, ApiJson, ApiPath, ErrorBody};
use super::openapi::IdentityKindDoc;
use super::AppState;
use crate::member::{normalise_email, normalise_phone, Identity, IdentityKind, MemberId};

/// Who was referred: exactly one of `email` or `phone`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Referral, example = json!({"email": "bob@example.com"}))]
pub struct Body {
    /// E-mail address of the person referred.
    email: Option<String>,
    /// Phone number of the person referred.
    phone: Option<String>,
}

/// A registered referral.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ReferralCreated)]
pub struct Referred {
    /// The referring member.
    #[schema(value_type = String)]
    pub referrer: MemberId,
    /// The kind of identity registered (`email` or `phone`).
    #[schema(value_type = IdentityKindDoc)]
    pub referred: IdentityKind,
}

/// Register a referral of someone who is not a member yet. When their first purchase is
/// scored, both get the `[bonuses]` referral points, once.
#[utoipa::path(
    post,
    path = "/v1/shops/{shop}/members/{member_id}/referrals",
    operation_id = "refer",
    tag = "members",
    security(("bearer" = [])),
    params(
        ("shop" = String, Path, description = "Shop id"),
        ("member_id" = String, Path, description = "The referring member"),
    ),
    request_body(content = Body, content_type = "application/json"),
    responses(
        (status = 201, description = "Registered", body = Referred),
        (status = 400, description = "`malformed_json`, `invalid_body`, `one_identity_required`, `invalid_identity`, `invalid_path`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden_shop`, `forbidden_role` (needs `write`)", body = ErrorBody),
        (status = 404, description = "`unknown_shop`, `unknown_member`", body = ErrorBody),
        (status = 409, description = "`already_a_member` (referrals are for new members)", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 503, description = "`storage_unavailable`", body = ErrorBody),
    )
)]
pub async fn refer(
    State(state): State<Arc<AppState>>,
    ApiPath((shop_id, member_id)): ApiPath<(String, String)>,
    ApiJson(b): ApiJson<Body>,
) -> Result<(StatusCode, Json<Referred>), ApiError> {
    let shop = shop(&state, &shop_id)?;
    let referrer = load_member(&state, shop, &member_id)?;
    let identity = match (b.email, b.phone) {
        (Some(e), None) => Identity {
            kind: IdentityKind::Email,
            value: normalise_email(&e).ok_or_else(|| {
                ApiError::bad_request("invalid_identity", "not a valid e-mail address")
            })?,
        },
        (None, Some(p)) => Identity {
            kind: IdentityKind::Phone,
            value: normalise_phone(&p, shop.country).ok_or_else(|| {
                ApiError::bad_request("invalid_identity", "not a valid phone number")
            })?,
        },
        _ => {
            return Err(ApiError::bad_request(
                "one_identity_required",
                "give exactly one of \"email\" or \"phone\"",
            ))
        }
    };
    let registered = state
        .ledger
        .register_referral(&shop.id, &referrer.id, &identity)
        .map_err(|e| ApiError::storage(&e))?;
    if !registered {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_a_member",
            "that person is already a member; referrals are for new members",
        ));
    }
    state
        .ledger
        .durable()
        .await
        .map_err(|e| ApiError::storage(&e))?;
    Ok((
        StatusCode::CREATED,
        Json(Referred {
            referrer: referrer.id,
            referred: identity.kind,
        }),
    ))
}
