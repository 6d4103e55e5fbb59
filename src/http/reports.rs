//! `GET /v1/shops/{shop}/reports/liability[?from=&to=]`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::Json;

use super::admin::shop;
use super::error::ApiError;
use super::AppState;
use crate::report::liability::{liability as build, LiabilityReport};
use crate::report::period::parse_bound;

/// The liability report for a period.
pub async fn liability(
    State(state): State<Arc<AppState>>,
    Path(shop_id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<LiabilityReport>, ApiError> {
    let shop = shop(&state, &shop_id)?;
    let bad =
        |e: crate::report::period::BadBound| ApiError::bad_request("invalid_period", e.to_string());
    let from = q
        .get("from")
        .map(|v| parse_bound("from", v, shop.timezone, false))
        .transpose()
        .map_err(bad)?;
    let to = match q.get("to") {
        Some(v) => parse_bound("to", v, shop.timezone, true).map_err(bad)?,
        None => chrono::Utc::now(),
    };
    if from.is_some_and(|f| f > to) {
        return Err(ApiError::bad_request("invalid_period", "from is after to"));
    }
    let ledger = state.ledger.clone();
    let shop = shop.clone();
    // Reports replay the journal: keep that off the async workers.
    let report = tokio::task::spawn_blocking(move || build(&ledger, &shop, from, to))
        .await
        .map_err(|e| ApiError::storage(&e))?
        .map_err(|e| ApiError::storage(&e))?;
    Ok(Json(report))
}
