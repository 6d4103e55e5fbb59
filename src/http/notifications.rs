//! Admin endpoints for notifications: members' consent, dead letters (list, retry).
//! Dead letters are listed without phone numbers or e-mail addresses.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use loyaltyd_adapter::Consent;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::admin::{load_member, shop};
use super::error::{ApiError, ApiJson, ApiPath, ErrorBody};
use super::openapi::ConsentDoc;
use super::AppState;
use crate::ledger::contact::ConsentChange;
use crate::member::MemberId;
use crate::notify::delivery::Route;

/// Body of `PUT …/consent`: either or both channels.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ConsentChange, example = json!({"sms": true, "email": false}))]
pub struct ConsentBody {
    /// SMS consent.
    pub sms: Option<bool>,
    /// E-mail consent.
    pub email: Option<bool>,
}

/// A member's consent after a change.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = MemberConsent)]
pub struct ConsentResponse {
    /// The member.
    #[schema(value_type = String)]
    pub member_id: MemberId,
    /// Consent per channel now.
    #[schema(value_type = ConsentDoc)]
    pub consent: Consent,
}

/// Set a member's marketing consent as staff. Granting SMS consent lifts the number's
/// suppression (after a STOP reply or a Twilio 21610).
#[utoipa::path(
    put,
    path = "/v1/shops/{shop}/members/{member_id}/consent",
    operation_id = "set_consent",
    tag = "notifications",
    security(("bearer" = [])),
    params(
        ("shop" = String, Path, description = "Shop id"),
        ("member_id" = String, Path, description = "Member id"),
    ),
    request_body(content = ConsentBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The member's consent now", body = ConsentResponse),
        (status = 400, description = "`malformed_json`, `invalid_body` (wrong shape, or neither channel given), `invalid_path`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden_shop`, `forbidden_role` (needs `write`)", body = ErrorBody),
        (status = 404, description = "`unknown_shop`, `unknown_member`", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 503, description = "`storage_unavailable`", body = ErrorBody),
    )
)]
pub async fn set_consent(
    State(state): State<Arc<AppState>>,
    ApiPath((shop_id, member_id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<ConsentBody>,
) -> Result<Json<ConsentResponse>, ApiError> {
    let shop = shop(&state, &shop_id)?;
    let m = load_member(&state, shop, &member_id)?;
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
    Ok(Json(ConsentResponse {
        member_id: updated.id,
        consent: updated.consent,
    }))
}

/// A notification channel.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// The console/file sink.
    Console,
    /// SMS.
    Sms,
    /// E-mail.
    Email,
}

/// A notification that could not be delivered on one channel (no phone numbers or
/// addresses).
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetter {
    /// The outbox message id.
    pub message_id: u64,
    /// The channel (`console`, `sms`, `email`).
    #[schema(value_type = Channel)]
    pub channel: &'static str,
    /// The recipient.
    #[schema(value_type = String)]
    pub member_id: MemberId,
    /// The event kind (`earned`, `redeemed`, `reward_unlocked`, …).
    pub kind: &'static str,
    /// The posting that caused it (`0`: none, e.g. an expiry warning).
    pub posting_id: u64,
    /// Provider name.
    pub provider: String,
    /// HTTP status of the provider's last answer, when there was one.
    pub status: Option<u16>,
    /// The provider's error code (Twilio `21610`, …).
    pub code: Option<String>,
    /// What went wrong.
    pub error: String,
    /// Attempts made.
    pub attempts: u32,
    /// When it was given up.
    pub dead_at: DateTime<Utc>,
    /// When the message was queued.
    pub created_at: DateTime<Utc>,
}

/// The dead letters of a shop.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetters {
    /// Undeliverable notifications.
    pub dead_letters: Vec<DeadLetter>,
}

/// Undeliverable notifications: message id, channel, member id, kind, provider, HTTP
/// status, provider code, error and attempts.
#[utoipa::path(
    get,
    path = "/v1/shops/{shop}/deadletters",
    operation_id = "dead_letters",
    tag = "notifications",
    security(("bearer" = [])),
    params(("shop" = String, Path, description = "Shop id")),
    responses(
        (status = 200, description = "The dead letters", body = DeadLetters),
        (status = 400, description = "`invalid_path`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden_shop`, `forbidden_role`", body = ErrorBody),
        (status = 404, description = "`unknown_shop`", body = ErrorBody),
        (status = 503, description = "`storage_unavailable`", body = ErrorBody),
    )
)]
pub async fn dead_letters(
    State(state): State<Arc<AppState>>,
    ApiPath(shop_id): ApiPath<String>,
) -> Result<Json<DeadLetters>, ApiError> {
    let shop = shop(&state, &shop_id)?;
    let letters = state
        .delivery
        .dead_letters(&shop.id)
        .map_err(|e| ApiError::storage(&e))?;
    let items = letters
        .into_iter()
        .map(|d| DeadLetter {
            message_id: d.message.id,
            channel: d.route.name(),
            kind: crate::notify::render::kind(&d.message).name(),
            member_id: d.message.member,
            posting_id: d.message.posting_id,
            provider: d.provider,
            status: d.status,
            code: d.code,
            error: d.error,
            attempts: d.attempts,
            dead_at: d.at,
            created_at: d.message.created_at,
        })
        .collect();
    Ok(Json(DeadLetters {
        dead_letters: items,
    }))
}

/// A dead letter back in the outbox.
#[derive(Debug, Serialize, ToSchema)]
pub struct Requeued {
    /// The outbox message id.
    pub message_id: u64,
    /// The channel.
    #[schema(value_type = Channel)]
    pub channel: &'static str,
    /// Always `queued`.
    #[schema(value_type = String, pattern = "^queued$")]
    pub status: &'static str,
}

/// Put a dead letter back into the outbox, to be sent at once.
#[utoipa::path(
    post,
    path = "/v1/shops/{shop}/deadletters/{message_id}/{channel}/retry",
    operation_id = "retry_dead_letter",
    tag = "notifications",
    security(("bearer" = [])),
    params(
        ("shop" = String, Path, description = "Shop id"),
        ("message_id" = u64, Path, description = "The dead letter's message id"),
        ("channel" = Channel, Path, description = "The dead letter's channel"),
    ),
    responses(
        (status = 202, description = "Queued again", body = Requeued),
        (status = 400, description = "`invalid_path`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden_shop`, `forbidden_role` (needs `write`)", body = ErrorBody),
        (status = 404, description = "`unknown_shop`, `unknown_dead_letter`", body = ErrorBody),
        (status = 503, description = "`storage_unavailable`", body = ErrorBody),
    )
)]
pub async fn retry(
    State(state): State<Arc<AppState>>,
    ApiPath((shop_id, message_id, channel)): ApiPath<(String, String, String)>,
) -> Result<(StatusCode, Json<Requeued>), ApiError> {
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
        Json(Requeued {
            message_id: id,
            channel: route.name(),
            status: "queued",
        }),
    ))
}
