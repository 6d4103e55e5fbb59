//! Admin endpoints for notifications: members' consent, dead letters (list, retry).
//! Dead letters are listed without phone numbers or e-mail addresses.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::admin::{load_member, shop};
use super::error::ApiError;
use super::AppState;
use crate::ledger::contact::ConsentChange;
use crate::notify::delivery::Route;

/// Body of `PUT …/consent`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentBody {
    /// SMS consent.
    pub sms: Option<bool>,
    /// E-mail consent.
    pub email: Option<bool>,
}

/// `PUT /v1/shops/{shop}/members/{member_id}/consent` `{"sms": true, "email": false}`.
pub async fn set_consent(
    State(state): State<Arc<AppState>>,
    Path((shop_id, member_id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let shop = shop(&state, &shop_id)?;
    let m = load_member(&state, shop, &member_id)?;
    let body: ConsentBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "invalid_body",
            format!("expected {{\"sms\": bool, \"email\": bool}}: {e}"),
        )
    })?;
    if body.sms.is_none() && body.email.is_none() {
        return Err(ApiError::bad_request(
            "invalid_body",
            "give sms and/or email consent",
        ));
    }
    let now = chrono::Utc::now();
    let updated = state
        .ledger
        .set_consent(
            &shop.id,
            &m.id,
            ConsentChange {
                sms: body.sms,
                email: body.email,
            },
            now,
        )
        .map_err(|e| ApiError::storage(&e))?
        .ok_or_else(|| ApiError::not_found("unknown_member", "no such member"))?;
    // Staff granting SMS consent lifts our own suppression of the number.
    if let (Some(true), Some(phone)) = (body.sms, &updated.phone) {
        state
            .delivery
            .set_suppressed(&shop.id, phone, false, now)
            .map_err(|e| ApiError::storage(&e))?;
    }
    state
        .ledger
        .durable()
        .await
        .map_err(|e| ApiError::storage(&e))?;
    Ok(Json(
        json!({"member_id": updated.id, "consent": updated.consent}),
    ))
}

/// `GET /v1/shops/{shop}/deadletters`.
pub async fn dead_letters(
    State(state): State<Arc<AppState>>,
    Path(shop_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let shop = shop(&state, &shop_id)?;
    let letters = state
        .delivery
        .dead_letters(&shop.id)
        .map_err(|e| ApiError::storage(&e))?;
    let items: Vec<Value> = letters
        .iter()
        .map(|d| {
            json!({
                "message_id": d.message.id,
                "channel": d.route.name(),
                "member_id": d.message.member,
                "kind": crate::notify::render::kind(&d.message).name(),
                "posting_id": d.message.posting_id,
                "provider": d.provider,
                "status": d.status,
                "code": d.code,
                "error": d.error,
                "attempts": d.attempts,
                "dead_at": d.at,
                "created_at": d.message.created_at,
            })
        })
        .collect();
    Ok(Json(json!({"dead_letters": items})))
}

/// `POST /v1/shops/{shop}/deadletters/{message_id}/{channel}/retry`.
pub async fn retry(
    State(state): State<Arc<AppState>>,
    Path((shop_id, message_id, channel)): Path<(String, String, String)>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let shop = shop(&state, &shop_id)?;
    let not_found = || ApiError::not_found("unknown_dead_letter", "no such dead letter");
    let id: u64 = message_id.parse().map_err(|_| not_found())?;
    let route = Route::parse(&channel).ok_or_else(not_found)?;
    match state
        .delivery
        .retry(&shop.id, id, route, chrono::Utc::now())
    {
        Ok(_) => {}
        Err(crate::notify::delivery::DeliveryStoreError::NotFound(_)) => return Err(not_found()),
        Err(e) => return Err(ApiError::storage(&e)),
    }
    state
        .ledger
        .durable()
        .await
        .map_err(|e| ApiError::storage(&e))?;
    state.wakeup.wake();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"message_id": id, "channel": route.name(), "status": "queued"})),
    ))
}
