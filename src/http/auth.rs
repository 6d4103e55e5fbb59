//! Admin API access: bearer tokens from the config, each with a role and the shops it
//! may touch. Tokens are compared in constant time; requests are logged with the
//! token's name (the actor), never the token.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::AppState;
use crate::config::{ApiToken, Role};

/// Who made an admin request (the token's name), for the journal and the log.
#[derive(Debug, Clone)]
pub struct Actor(pub String);

/// The token that matches `presented`, comparing against every configured token in
/// constant time (no early exit on a match either).
pub fn find_token<'a>(tokens: &'a [ApiToken], presented: &str) -> Option<&'a ApiToken> {
    let mut found = None;
    for t in tokens {
        if bool::from(presented.as_bytes().ct_eq(t.token.expose())) {
            found = Some(t);
        }
    }
    found
}

/// The role a request needs: reading is `read`; changing points, consent or dead
/// letters is `write`; merging members, importing and backups are `admin`.
pub fn required_role(method: &Method, path: &str) -> Role {
    let admin_only = ["/merge", "/import", "/backup"];
    if admin_only
        .iter()
        .any(|p| path.ends_with(p) || path.contains(&format!("{p}/")))
    {
        return Role::Admin;
    }
    match *method {
        Method::GET | Method::HEAD | Method::OPTIONS => Role::Read,
        // Simulating scores a sale without writing anything.
        _ if path.ends_with("/simulate") => Role::Read,
        _ => Role::Write,
    }
}

/// The shop a `/shops/{shop}/…` path names.
pub fn path_shop(path: &str) -> Option<&str> {
    let rest = path.trim_start_matches("/v1").strip_prefix("/shops/")?;
    rest.split('/').next().filter(|s| !s.is_empty())
}

/// The middleware in front of `/v1`.
pub async fn require_token(
    State(state): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or("");
    let path = req
        .extensions()
        .get::<axum::extract::OriginalUri>()
        .map(|u| u.path().to_string())
        .unwrap_or_else(|| req.uri().path().to_string());
    let method = req.method().clone();
    let Some(token) = find_token(&state.config.tokens, presented).filter(|_| !presented.is_empty())
    else {
        tracing::info!(%method, %path, "admin request without a valid token");
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required",
        ));
    };
    if let Some(shop) = path_shop(&path) {
        if !token.allows(shop) {
            tracing::warn!(actor = %token.name, %method, %path, "token used for another shop");
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden_shop",
                "this token is not allowed for this shop",
            ));
        }
    }
    let needed = required_role(&method, &path);
    if token.role < needed {
        tracing::warn!(actor = %token.name, role = token.role.name(), %method, %path, "role too low");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden_role",
            format!(
                "this needs the {} role; the token has {}",
                needed.name(),
                token.role.name()
            ),
        ));
    }
    req.extensions_mut().insert(Actor(token.name.clone()));
    let actor = token.name.clone();
    let response = next.run(req).await;
    tracing::info!(actor = %actor, %method, %path, status = response.status().as_u16(), "admin request");
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_follow_the_method_and_the_sensitive_paths() {
        assert_eq!(
            required_role(&Method::GET, "/v1/shops/demo/members/m_1"),
            Role::Read
        );
        assert_eq!(
            required_role(&Method::POST, "/v1/shops/demo/members/m_1/redemptions"),
            Role::Write
        );
        assert_eq!(
            required_role(&Method::POST, "/v1/shops/demo/simulate"),
            Role::Read
        );
        assert_eq!(
            required_role(&Method::POST, "/v1/shops/demo/members/merge"),
            Role::Admin
        );
        assert_eq!(required_role(&Method::POST, "/v1/backup"), Role::Admin);
    }

    #[test]
    fn the_shop_comes_from_the_path() {
        assert_eq!(path_shop("/v1/shops/demo/members/x"), Some("demo"));
        assert_eq!(path_shop("/shops/other"), Some("other"));
        assert_eq!(path_shop("/v1/backup"), None);
    }
}
