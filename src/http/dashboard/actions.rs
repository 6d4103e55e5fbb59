//! The dashboard's forms: redeem, adjust, retry a dead letter. Each needs the `write`
//! role and a valid CSRF field, and calls the ledger exactly as the admin API does
//! (`src/http/spend.rs`): an idempotency key per rendered form (so a double submit
//! posts once), the token's name as the actor, then durability, then the notifier.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::pages::{load_member, member_page, Notice};
use super::{form, guard, DashError};
use crate::config::ShopConfig;
use crate::http::AppState;
use crate::ledger::spend::{AdjustCommand, Idempotency, RedeemCommand, SpendOutcome};
use crate::ledger::LedgerError;
use crate::member::Member;
use crate::points::Points;

const MAX_KEY_LEN: usize = 255;

fn see_other(to: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [
            (
                header::LOCATION,
                HeaderValue::from_str(to).unwrap_or(HeaderValue::from_static("/dashboard")),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
    )
        .into_response()
}

/// The form's idempotency key (a fresh one if the field is missing).
fn key(fields: &HashMap<String, String>) -> Result<String, String> {
    match fields.get("idempotency_key").map(|k| k.trim()) {
        Some(k)
            if !k.is_empty()
                && k.len() <= MAX_KEY_LEN
                && k.chars().all(|c| c.is_ascii_graphic()) =>
        {
            Ok(k.to_string())
        }
        Some(_) => Err("The form's idempotency key is not valid; reload the page.".into()),
        None => Ok(format!("dashboard-{}", uuid::Uuid::new_v4().simple())),
    }
}

fn fingerprint(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update(b"\n");
    }
    format!("{:x}", h.finalize())
}

/// A refused form: the member page again, with the reason and a fresh form.
fn refused(
    state: &AppState,
    s: &super::session::Session,
    shop: &ShopConfig,
    m: &Member,
    status: StatusCode,
    why: String,
) -> Result<Response, DashError> {
    member_page(state, s, shop, m, Notice::Error(why), status)
}

/// After the ledger answered: wait for durability, wake the notifier, and go back to
/// the member page showing what was posted.
async fn settle(
    state: &AppState,
    s: &super::session::Session,
    shop: &ShopConfig,
    m: &Member,
    outcome: Result<SpendOutcome, LedgerError>,
) -> Result<Response, DashError> {
    let result = match outcome {
        Ok(SpendOutcome::New(r) | SpendOutcome::Replayed(r)) => r,
        Err(LedgerError::InsufficientPoints { needed, available }) => {
            return refused(
                state,
                s,
                shop,
                m,
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("Not enough points: {needed} needed, {available} available. Nothing was posted."),
            )
        }
        Err(LedgerError::IdempotencyConflict) => {
            return refused(
                state,
                s,
                shop,
                m,
                StatusCode::CONFLICT,
                "That form was already submitted with other values. Nothing was posted; use the form below."
                    .into(),
            )
        }
        Err(LedgerError::UnknownMember) => return Err(DashError::NotFound("No such member.".into())),
        Err(e) => return Err(DashError::storage(&e)),
    };
    state
        .ledger
        .durable()
        .await
        .map_err(|e| DashError::storage(&e))?;
    state.wakeup.wake();
    Ok(see_other(&format!(
        "/dashboard/shops/{}/members/{}?done={}",
        shop.id, m.id, result.posting_id
    )))
}

/// `POST /dashboard/shops/{shop}/members/{id}/redeem` (`reward` or `points`, optional
/// `order_id`, `idempotency_key`, `csrf`).
pub async fn redeem(
    State(state): State<Arc<AppState>>,
    Path((shop_id, member_id)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, DashError> {
    let (s, shop) = guard(&state, &headers, &method, &uri, &shop_id)?;
    let fields = form(&headers, &body, &s)?;
    let m = load_member(&state, shop, &member_id)?;
    let bad = |why: &str| refused(&state, &s, shop, &m, StatusCode::BAD_REQUEST, why.into());
    let key = match key(&fields) {
        Ok(k) => k,
        Err(e) => return bad(&e),
    };
    let field = |n: &str| fields.get(n).map(|v| v.trim()).filter(|v| !v.is_empty());
    let rules = shop.rules.current();
    let (points, reward) = match (field("reward"), field("points")) {
        (Some(r), _) => match rules.reward(r) {
            Some(rw) => (Points(rw.points), Some(rw.id.clone())),
            None => return bad("That reward is not in the catalogue."),
        },
        (None, Some(p)) => match p.parse::<i64>() {
            Ok(p) if p > 0 => (Points(p), None),
            _ => return bad("Points must be a positive whole number."),
        },
        (None, None) => return bad("Choose a reward or enter points to redeem."),
    };
    let order_id = field("order_id").map(str::to_string);
    let fp = fingerprint(&[
        "dashboard redeem",
        shop.id.as_str(),
        m.id.as_str(),
        reward.as_deref().unwrap_or("-"),
        &points.0.to_string(),
        order_id.as_deref().unwrap_or("-"),
    ]);
    let cmd = RedeemCommand {
        shop: &shop.id,
        member: &m.id,
        points,
        reward,
        order_id,
        actor: &s.token.name,
        idempotency: Idempotency {
            key: &key,
            fingerprint: &fp,
        },
    };
    let outcome = state.ledger.redeem(&cmd, chrono::Utc::now());
    tracing::info!(shop = %shop.id, member = %m.id, actor = %s.token.name, points = points.0, ok = outcome.is_ok(), "redemption (dashboard)");
    settle(&state, &s, shop, &m, outcome).await
}

/// `POST /dashboard/shops/{shop}/members/{id}/adjust` (`points` ±, `reason`,
/// `idempotency_key`, `csrf`).
pub async fn adjust(
    State(state): State<Arc<AppState>>,
    Path((shop_id, member_id)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, DashError> {
    let (s, shop) = guard(&state, &headers, &method, &uri, &shop_id)?;
    let fields = form(&headers, &body, &s)?;
    let m = load_member(&state, shop, &member_id)?;
    let bad = |why: &str| refused(&state, &s, shop, &m, StatusCode::BAD_REQUEST, why.into());
    let key = match key(&fields) {
        Ok(k) => k,
        Err(e) => return bad(&e),
    };
    let points = match fields
        .get("points")
        .map(|p| p.trim().trim_start_matches('+').parse::<i64>())
    {
        Some(Ok(p)) if p != 0 && p.unsigned_abs() <= 1_000_000_000 => p,
        _ => {
            return bad(
                "Points must be a non-zero whole number of at most 1,000,000,000 either way.",
            )
        }
    };
    let reason = fields.get("reason").map(|r| r.trim()).unwrap_or("");
    if reason.is_empty() {
        return bad("An adjustment needs a reason.");
    }
    let fp = fingerprint(&[
        "dashboard adjust",
        shop.id.as_str(),
        m.id.as_str(),
        &points.to_string(),
        reason,
    ]);
    let rules = shop.rules.current();
    let cmd = AdjustCommand {
        shop: &shop.id,
        timezone: shop.timezone,
        policy: &rules.policy,
        member: &m.id,
        points: Points(points),
        reason,
        actor: &s.token.name,
        idempotency: Idempotency {
            key: &key,
            fingerprint: &fp,
        },
    };
    let outcome = state.ledger.adjust(&cmd, chrono::Utc::now());
    tracing::info!(shop = %shop.id, member = %m.id, actor = %s.token.name, points, ok = outcome.is_ok(), "adjustment (dashboard)");
    settle(&state, &s, shop, &m, outcome).await
}

/// `POST /dashboard/shops/{shop}/deadletters/{message_id}/{channel}/retry` (`csrf`).
pub async fn retry_dead_letter(
    State(state): State<Arc<AppState>>,
    Path((shop_id, message_id, channel)): Path<(String, String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, DashError> {
    let (s, shop) = guard(&state, &headers, &method, &uri, &shop_id)?;
    form(&headers, &body, &s)?;
    let not_found = || DashError::NotFound("No such dead letter.".into());
    let id: u64 = message_id.parse().map_err(|_| not_found())?;
    let route = crate::notify::delivery::Route::parse(&channel).ok_or_else(not_found)?;
    match state
        .delivery
        .retry(&shop.id, id, route, chrono::Utc::now())
    {
        Ok(_) => {}
        Err(crate::notify::delivery::DeliveryStoreError::NotFound(_)) => return Err(not_found()),
        Err(e) => return Err(DashError::storage(&e)),
    }
    state
        .ledger
        .durable()
        .await
        .map_err(|e| DashError::storage(&e))?;
    state.wakeup.wake();
    tracing::info!(shop = %shop.id, actor = %s.token.name, message = id, channel = route.name(), "dead letter retried (dashboard)");
    Ok(see_other(&format!(
        "/dashboard/shops/{}?retried={id}/{}",
        shop.id,
        route.name()
    )))
}
