//! `GET /v1/shops/{shop}/reports/liability[?from=&to=]`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::Json;

use super::admin::shop;
use super::error::{ApiError, ApiPath, ApiQuery, ErrorBody};
use super::openapi::LiabilityReportDoc;
use super::AppState;
use crate::report::liability::{liability as build, LiabilityReport};

/// The points liability over a period: opening and closing points, movements,
/// breakage by cohort and ageing.
#[utoipa::path(
    get,
    path = "/v1/shops/{shop}/reports/liability",
    operation_id = "liability_report",
    tag = "reports",
    security(("bearer" = [])),
    params(
        ("shop" = String, Path, description = "Shop id"),
        ("from" = Option<String>, Query, description = "Period start: `YYYY-MM-DD` (local midnight) or RFC 3339; default: the beginning"),
        ("to" = Option<String>, Query, description = "Period end: `YYYY-MM-DD` (through that local day) or RFC 3339; default: now"),
    ),
    responses(
        (status = 200, description = "The report", body = LiabilityReportDoc),
        (status = 400, description = "`invalid_period`, `invalid_path`, `invalid_query`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden_shop`, `forbidden_role`", body = ErrorBody),
        (status = 404, description = "`unknown_shop`", body = ErrorBody),
        (status = 503, description = "`storage_unavailable`", body = ErrorBody),
    )
)]
pub async fn liability(
    State(state): State<Arc<AppState>>,
    ApiPath(shop_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<HashMap<String, String>>,
) -> Result<Json<LiabilityReport>, ApiError> {
    let shop = shop(&state, &shop_id)?;
    let (from, to) = super::error::query_period(&q, shop.timezone)?;
    let ledger = state.ledger.clone();
    let shop = shop.clone();
    // Reports replay the journal: keep that off the async workers.
    let report = tokio::task::spawn_blocking(move || build(&ledger, &shop, from, to))
        .await
        .map_err(|e| ApiError::storage(&e))?
        .map_err(|e| ApiError::storage(&e))?;
    Ok(Json(report))
}
