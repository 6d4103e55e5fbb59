//! `POST /v1/shops/{shop}/members/{id}/referrals` with `{"email": ...}` or
//! `{"phone": ...}`: the member referred someone who is not a member yet. When that
//! person's first purchase is scored, both get the `[bonuses]` referral points, once.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::admin::{load_member, shop};
use super::error::ApiError;
use super::AppState;
use crate::member::{normalise_email, normalise_phone, Identity, IdentityKind};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    email: Option<String>,
    phone: Option<String>,
}

/// Register a referral.
pub async fn refer(
    State(state): State<Arc<AppState>>,
    Path((shop_id, member_id)): Path<(String, String)>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let shop = shop(&state, &shop_id)?;
    let referrer = load_member(&state, shop, &member_id)?;
    let b: Body = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("invalid_body", e.to_string()))?;
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
        Json(json!({"referrer": referrer.id, "referred": identity.kind.as_str()})),
    ))
}
