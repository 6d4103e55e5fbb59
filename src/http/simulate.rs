//! `POST /v1/shops/{shop}/simulate`: score a canonical sale with the shop's current
//! rules and return the award and its explanation. Nothing is posted.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use loyaltyd_adapter::Sale;
use serde_json::{json, Value};

use super::admin::shop;
use super::error::ApiError;
use super::AppState;
use crate::rules;

/// Score without posting.
pub async fn simulate(
    State(state): State<Arc<AppState>>,
    Path(shop_id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let shop = shop(&state, &shop_id)?;
    let sale: Sale = serde_json::from_slice(&body).map_err(|e| {
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
    Ok(Json(explain(&ctx, &rules)))
}

/// The award of a sale under `rules`, as JSON (shared with `loyaltyd simulate`), for a
/// new member (first purchase).
pub fn explain(ctx: &rules::SaleContext<'_>, rules: &rules::RuleSet) -> Value {
    let member = rules::MemberSnapshot {
        first_purchase: true,
        ..Default::default()
    };
    let sale = ctx.sale;
    let award = rules::score(ctx, &member, rules);
    json!({
        "order_id": sale.order_id,
        "currency": sale.currency,
        "points": award.points,
        "eligible_spend": award.eligible_spend.to_string(),
        "cash_back": award.cash_back.to_string(),
        "rules_version": rules.version,
        "rule_ids": award.rule_ids(),
        "explanation": award.contributions,
        "lines": award.lines,
    })
}
