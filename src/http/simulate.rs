//! `POST /v1/shops/{shop}/simulate`: score a canonical sale with the shop's current
//! rules and return the award and its explanation. Nothing is posted.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use loyaltyd_adapter::{Currency, Sale};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::admin::shop;
use super::error::{ApiError, ApiJson, ApiPath, ErrorBody};
use super::openapi::{ContributionDoc, LineEligibleDoc, SaleDoc};
use super::AppState;
use crate::points::Points;
use crate::rules;

/// What a sale would earn under the shop's current rules.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Simulation)]
pub struct SimulateResponse {
    /// The sale's order id.
    pub order_id: String,
    /// The sale's currency.
    #[schema(value_type = String, pattern = "^[A-Z]{3}$")]
    pub currency: Currency,
    /// Points it would earn (after caps).
    #[schema(value_type = i64)]
    pub points: Points,
    /// The spend the rules counted (decimal string).
    #[schema(pattern = r"^-?[0-9]+(\.[0-9]+)?$")]
    pub eligible_spend: String,
    /// Store credit it would earn as cash back (decimal string).
    #[schema(pattern = r"^-?[0-9]+(\.[0-9]+)?$")]
    pub cash_back: String,
    /// Version (hash) of the rules that scored it.
    pub rules_version: String,
    /// Ids of the rules that contributed.
    pub rule_ids: Vec<String>,
    /// What each rule contributed.
    #[schema(value_type = Vec<ContributionDoc>)]
    pub explanation: Vec<rules::Contribution>,
    /// Eligible spend per line.
    #[schema(value_type = Vec<LineEligibleDoc>)]
    pub lines: Vec<rules::LineEligible>,
}

/// Score a canonical sale with the shop's current rules, as a new member's first
/// purchase happening now. Nothing is posted.
#[utoipa::path(
    post,
    path = "/v1/shops/{shop}/simulate",
    operation_id = "simulate",
    tag = "rules",
    security(("bearer" = [])),
    params(("shop" = String, Path, description = "Shop id")),
    request_body(content = SaleDoc, content_type = "application/json"),
    responses(
        (status = 200, description = "The award and its explanation", body = SimulateResponse),
        (status = 400, description = "`malformed_json`, `invalid_sale` (not a canonical sale), `invalid_path`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden_shop`, `forbidden_role` (needs `read`)", body = ErrorBody),
        (status = 404, description = "`unknown_shop`", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`currency_mismatch` (the sale is not in the shop currency)", body = ErrorBody),
    )
)]
pub async fn simulate(
    State(state): State<Arc<AppState>>,
    ApiPath(shop_id): ApiPath<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<SimulateResponse>, ApiError> {
    let shop = shop(&state, &shop_id)?;
    let sale: Sale = serde_json::from_value(body).map_err(|e| {
        ApiError::bad_request(
            "invalid_sale",
            format!("body is not a canonical sale (see loyaltyd_adapter::Sale): {e}"),
        )
    })?;
    if sale.currency != shop.currency {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "currency_mismatch",
            format!(
                "sale currency {} is not the shop currency {}",
                sale.currency, shop.currency
            ),
        ));
    }
    let rules = shop.rules.current();
    // Scored as a new member's sale happening now (first purchase), like the CLI.
    let ctx = rules::SaleContext {
        sale: &sale,
        adapter: "simulate",
        occurred_at: chrono::Utc::now(),
        timezone: shop.timezone,
    };
    Ok(Json(award(&ctx, &rules)))
}

/// The award of a sale under `rules` for a new member (first purchase).
pub fn award(ctx: &rules::SaleContext<'_>, rules: &rules::RuleSet) -> SimulateResponse {
    let member = rules::MemberSnapshot {
        first_purchase: true,
        ..Default::default()
    };
    let sale = ctx.sale;
    let award = rules::score(ctx, &member, rules);
    SimulateResponse {
        order_id: sale.order_id.clone(),
        currency: sale.currency,
        points: award.points,
        eligible_spend: award.eligible_spend.to_string(),
        cash_back: award.cash_back.to_string(),
        rules_version: rules.version.clone(),
        rule_ids: award.rule_ids(),
        explanation: award.contributions,
        lines: award.lines,
    }
}

/// The award of a sale under `rules`, as JSON (shared with `loyaltyd simulate`), for a
/// new member (first purchase).
pub fn explain(ctx: &rules::SaleContext<'_>, rules: &rules::RuleSet) -> Value {
    serde_json::to_value(award(ctx, rules)).unwrap_or_default()
}
