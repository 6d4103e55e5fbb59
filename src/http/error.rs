//! Errors as the HTTP API reports them: `{"error": {"code", "message"}}`.
//!
//! Every error of the admin API has this shape, including axum's own rejections:
//! handlers take their path, query and body through [`ApiPath`], [`ApiQuery`] and
//! [`ApiJson`], which turn those rejections into an [`ApiError`], and the `/v1` router
//! answers a known path with an unsupported method through [`method_not_allowed`].
//!
//! Conventions (the OpenAPI document lists each endpoint's codes per status):
//!
//! | status | codes |
//! |---|---|
//! | 400 | request shape: `malformed_json` (not JSON), `invalid_body` (JSON of the wrong shape: a missing, unknown or mistyped field), `invalid_path`, `invalid_query`, and field checks such as `invalid_points`, `reason_required`, `invalid_limit`, `invalid_period` |
//! | 401 | `unauthorized` (no or unknown bearer token; with `WWW-Authenticate: Bearer`) |
//! | 403 | `forbidden_shop`, `forbidden_role` |
//! | 404 | `not_found` (no such endpoint), `unknown_shop`, `unknown_member`, … |
//! | 405 | `method_not_allowed` (with `Allow`) |
//! | 409 | a conflict with earlier state: `idempotency_key_reused`, `already_a_member` |
//! | 413 | `body_too_large` |
//! | 415 | `unsupported_media_type`: a JSON body needs `Content-Type: application/json` |
//! | 422 | well-formed and valid, but refused by the program: `insufficient_points`, `unknown_reward`, `currency_mismatch` |
//! | 503 | `storage_unavailable` (nothing was recorded; retry) |
//!
//! A body that is not of the declared shape is a 400 (`invalid_body`), never axum's
//! default 422: 422 is kept for requests the loyalty program itself refuses.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Serialize;
use utoipa::ToSchema;

/// An API error with its status.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human-readable message (never contains secrets or full contact details).
    pub message: String,
}

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"error": {"code": "unknown_member", "message": "no such member"}}))]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The code and message of an error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code (`snake_case`); the operation's responses list the
    /// codes each status can carry.
    #[schema(pattern = "^[a-z0-9_]+$")]
    pub code: String,
    /// Human-readable explanation; may change between versions.
    pub message: String,
}

impl ApiError {
    /// Build an error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 404 with a code.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 400 with a code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 503 for storage trouble; the details go to the log, not the client.
    pub fn storage(e: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %e, "storage failure");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_unavailable",
            "storage is unavailable; nothing was recorded, retry later",
        )
    }

    /// The error body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message.clone(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, Json(self.body())).into_response();
        if self.status == StatusCode::UNAUTHORIZED && self.code == "unauthorized" {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

/// A status axum chose for a rejection, with our code for it.
fn rejection(status: StatusCode, code: &'static str, message: String) -> ApiError {
    if status.is_server_error() {
        tracing::error!(%status, %message, "request rejected by the server");
        return ApiError::new(status, "internal_error", "the request could not be handled");
    }
    ApiError::new(status, code, message)
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = r.status();
        let code = match &r {
            JsonRejection::JsonSyntaxError(_) => "malformed_json",
            JsonRejection::MissingJsonContentType(_) => "unsupported_media_type",
            JsonRejection::JsonDataError(_) => "invalid_body",
            _ if status == StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
            _ => "invalid_body",
        };
        let status = match &r {
            // The body is JSON of the wrong shape: 400 like every other invalid request
            // (axum's default is 422, which this API keeps for refusals).
            JsonRejection::JsonDataError(_) => StatusCode::BAD_REQUEST,
            _ => status,
        };
        let message = match &r {
            JsonRejection::MissingJsonContentType(_) => {
                "the body must be JSON with Content-Type: application/json".to_string()
            }
            _ => r.body_text(),
        };
        rejection(status, code, message)
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        rejection(r.status(), "invalid_path", r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        rejection(StatusCode::BAD_REQUEST, "invalid_query", r.body_text())
    }
}

/// A JSON body (`Content-Type: application/json`) whose rejections are [`ApiError`]s:
/// 415 `unsupported_media_type`, 400 `malformed_json`, 400 `invalid_body`, 413
/// `body_too_large`.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let Json(value) = Json::<T>::from_request(req, state).await?;
        Ok(ApiJson(value))
    }
}

/// Path parameters whose rejections are [`ApiError`]s (400 `invalid_path`).
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(value) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(ApiPath(value))
    }
}

/// A query string whose rejections are [`ApiError`]s (400 `invalid_query`).
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(ApiQuery(value))
    }
}

/// The answer to a known path with a method it does not support (axum keeps the
/// `Allow` header).
pub async fn method_not_allowed(method: axum::http::Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not supported on this path"),
    )
}

/// The answer to a path no route matches.
pub async fn not_found() -> ApiError {
    ApiError::not_found("not_found", "no such endpoint")
}

/// The `limit` query parameter: `default` when absent, else an integer in `1..=max`
/// (400 `invalid_limit` otherwise).
pub fn query_limit(
    q: &std::collections::HashMap<String, String>,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match q.get("limit") {
        None => Ok(default),
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_limit",
                    format!("limit must be an integer from 1 to {max}"),
                )
            }),
    }
}

/// The `from` / `to` query parameters of a report, read in the shop's time zone: `from`
/// absent means the beginning, `to` absent means now (400 `invalid_period` when a
/// bound does not parse or `from` is after `to`).
pub fn query_period(
    q: &std::collections::HashMap<String, String>,
    timezone: chrono_tz::Tz,
) -> Result<
    (
        Option<chrono::DateTime<chrono::Utc>>,
        chrono::DateTime<chrono::Utc>,
    ),
    ApiError,
> {
    use crate::report::period::parse_bound;
    let bad =
        |e: crate::report::period::BadBound| ApiError::bad_request("invalid_period", e.to_string());
    let from = q
        .get("from")
        .map(|v| parse_bound("from", v, timezone, false))
        .transpose()
        .map_err(bad)?;
    let to = match q.get("to") {
        Some(v) => parse_bound("to", v, timezone, true).map_err(bad)?,
        None => chrono::Utc::now(),
    };
    if from.is_some_and(|f| f > to) {
        return Err(ApiError::bad_request("invalid_period", "from is after to"));
    }
    Ok((from, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_serialise_as_code_and_message() {
        let e = ApiError::bad_request("invalid_body", "nope");
        assert_eq!(
            serde_json::to_value(e.body()).unwrap(),
            serde_json::json!({"error": {"code": "invalid_body", "message": "nope"}})
        );
    }
}
