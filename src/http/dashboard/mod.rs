//! The staff dashboard at `/dashboard`: server-rendered HTML (MiniJinja templates
//! embedded from `assets/dashboard/`, HTML auto-escaped), one embedded stylesheet and
//! script, no external URLs. Behind the same tokens as `/v1`: the token is kept in an
//! HttpOnly cookie ([`session`]) and every page applies the API's shop and role rules.
//!
//! - `GET /dashboard/login`, `POST /dashboard/login`, `POST /dashboard/logout`
//! - `GET /dashboard`: the shops the token may open
//! - `GET /dashboard/shops/{shop}`: liability over time, webhook health per adapter,
//!   dead letters (retry: `POST …/deadletters/{id}/{channel}/retry`)
//! - `GET /dashboard/shops/{shop}/members?q=`: search
//! - `GET /dashboard/shops/{shop}/members/{id}`: balances, tier, lots, explained history;
//!   `POST …/redeem` and `POST …/adjust`

mod actions;
mod chart;
mod pages;
pub mod session;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use minijinja::{AutoEscape, Environment};
use serde::Serialize;

use super::AppState;
use crate::config::{Role, ShopConfig};
use session::Session;

/// The dashboard's routes (merged into the top-level router).
pub fn router(_state: Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/dashboard", get(pages::shops))
        .route("/dashboard/", get(pages::shops))
        .route(
            "/dashboard/login",
            get(pages::login_form).post(pages::login),
        )
        .route("/dashboard/logout", post(pages::logout))
        .route("/dashboard/static/app.css", get(css))
        .route("/dashboard/static/app.js", get(js))
        .route("/dashboard/shops/{shop}", get(pages::overview))
        .route("/dashboard/shops/{shop}/members", get(pages::members))
        .route(
            "/dashboard/shops/{shop}/members/{member}",
            get(pages::member),
        )
        .route(
            "/dashboard/shops/{shop}/members/{member}/redeem",
            post(actions::redeem),
        )
        .route(
            "/dashboard/shops/{shop}/members/{member}/adjust",
            post(actions::adjust),
        )
        .route(
            "/dashboard/shops/{shop}/deadletters/{message_id}/{channel}/retry",
            post(actions::retry_dead_letter),
        )
}

const TEMPLATES: &[(&str, &str)] = &[
    (
        "base.html",
        include_str!("../../../assets/dashboard/base.html"),
    ),
    (
        "login.html",
        include_str!("../../../assets/dashboard/login.html"),
    ),
    (
        "shops.html",
        include_str!("../../../assets/dashboard/shops.html"),
    ),
    (
        "overview.html",
        include_str!("../../../assets/dashboard/overview.html"),
    ),
    (
        "members.html",
        include_str!("../../../assets/dashboard/members.html"),
    ),
    (
        "member.html",
        include_str!("../../../assets/dashboard/member.html"),
    ),
    (
        "error.html",
        include_str!("../../../assets/dashboard/error.html"),
    ),
];
const CSS: &str = include_str!("../../../assets/dashboard/app.css");
const JS: &str = include_str!("../../../assets/dashboard/app.js");

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::SemiStrict);
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html") {
                AutoEscape::Html
            } else {
                AutoEscape::None
            }
        });
        env.add_filter("urlencode", urlencode);
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .expect("embedded dashboard templates parse");
        }
        env
    })
}

/// Percent-encode everything but RFC 3986 unreserved characters: safe in a path
/// segment and in a query value.
fn urlencode(value: String) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Headers on every dashboard page: nothing cached (pages show personal data), nothing
/// loaded from elsewhere, not framed, no referrer leaving with member ids.
fn page_headers() -> [(HeaderName, HeaderValue); 5] {
    [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; \
                 form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
    ]
}

/// Render a template into a response with `status`.
fn render(status: StatusCode, name: &str, ctx: impl Serialize) -> Response {
    match env().get_template(name).and_then(|t| t.render(ctx)) {
        Ok(html) => (status, page_headers(), html).into_response(),
        Err(e) => {
            tracing::error!(template = name, error = %e, "dashboard template failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                page_headers(),
                "<!doctype html><title>Error</title><p>The page could not be rendered.</p>",
            )
                .into_response()
        }
    }
}

/// Who is looking, for every page's header.
#[derive(Serialize)]
struct Viewer<'a> {
    name: &'a str,
    role: &'static str,
    can_write: bool,
    csrf: &'a str,
}

impl Session {
    fn viewer(&self) -> Viewer<'_> {
        Viewer {
            name: &self.token.name,
            role: self.token.role.name(),
            can_write: self.token.role >= Role::Write,
            csrf: &self.csrf,
        }
    }
}

/// Why a dashboard request was not served.
#[derive(Debug)]
enum DashError {
    /// No or an unknown token: to the login page, then back to this path.
    Login(String),
    /// 400 with a message.
    BadRequest(String),
    /// 403 with a message.
    Forbidden(String),
    /// 404 with a message.
    NotFound(String),
    /// 503: storage trouble.
    Unavailable,
}

impl DashError {
    fn storage(e: &dyn std::fmt::Display) -> DashError {
        tracing::error!(error = %e, "dashboard: storage unavailable");
        DashError::Unavailable
    }
}

#[derive(Serialize)]
struct ErrorPage<'a> {
    status: u16,
    title: &'a str,
    message: &'a str,
}

impl IntoResponse for DashError {
    fn into_response(self) -> Response {
        let (status, title, message) = match &self {
            DashError::Login(next) => {
                let next: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
                return (
                    StatusCode::SEE_OTHER,
                    [
                        (header::LOCATION, format!("/dashboard/login?next={next}")),
                        (header::CACHE_CONTROL, "no-store".to_string()),
                    ],
                )
                    .into_response();
            }
            DashError::BadRequest(m) => (StatusCode::BAD_REQUEST, "Bad request", m.as_str()),
            DashError::Forbidden(m) => (StatusCode::FORBIDDEN, "Not allowed", m.as_str()),
            DashError::NotFound(m) => (StatusCode::NOT_FOUND, "Not found", m.as_str()),
            DashError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Storage unavailable",
                "The database did not answer; try again in a moment.",
            ),
        };
        render(
            status,
            "error.html",
            ErrorPage {
                status: status.as_u16(),
                title,
                message,
            },
        )
    }
}

/// The path and query of the request, to come back to after logging in.
fn here(uri: &axum::http::Uri) -> String {
    uri.path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/dashboard".into())
}

/// Check the cookie, then the shop and the role the request needs (the API's rules:
/// reading needs `read`, every form that changes something needs `write`).
fn guard<'a>(
    state: &'a AppState,
    headers: &HeaderMap,
    method: &Method,
    uri: &axum::http::Uri,
    shop_id: &str,
) -> Result<(Session, &'a ShopConfig), DashError> {
    let Some(session) = session::session(&state.config.tokens, headers) else {
        // A form posted without a session goes back to the page it came from.
        let back = if method == Method::GET {
            here(uri)
        } else {
            format!("/dashboard/shops/{shop_id}")
        };
        return Err(DashError::Login(session::safe_next(Some(&back))));
    };
    let token = &session.token;
    if !token.allows(shop_id) {
        tracing::warn!(actor = %token.name, path = %uri.path(), "dashboard: token used for another shop");
        return Err(DashError::Forbidden(format!(
            "The token \u{201c}{}\u{201d} is not allowed for this shop.",
            token.name
        )));
    }
    let needed = crate::http::auth::required_role(method, uri.path());
    if token.role < needed {
        tracing::warn!(actor = %token.name, role = token.role.name(), path = %uri.path(), "dashboard: role too low");
        return Err(DashError::Forbidden(format!(
            "This needs the {} role; the token \u{201c}{}\u{201d} has {}.",
            needed.name(),
            token.name,
            token.role.name()
        )));
    }
    let shop = loyaltyd_adapter::ShopId::new(shop_id)
        .ok()
        .and_then(|id| state.shop(&id))
        .ok_or_else(|| DashError::NotFound("No such shop.".into()))?;
    Ok((session, shop))
}

/// A POSTed form, with its CSRF field checked against the session cookie.
fn form(
    headers: &HeaderMap,
    body: &[u8],
    session: &Session,
) -> Result<HashMap<String, String>, DashError> {
    let fields: HashMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
    let cookie = session::cookie_value(headers).unwrap_or_default();
    let presented = fields.get("csrf").map(String::as_str).unwrap_or("");
    if !session::csrf_ok(&cookie, presented) {
        tracing::warn!(actor = %session.token.name, "dashboard: form without a valid CSRF field");
        return Err(DashError::Forbidden(
            "This form has expired or did not come from the dashboard. Reload the page and try again."
                .into(),
        ));
    }
    Ok(fields)
}

async fn css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        CSS,
    )
}

async fn js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        JS,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_escape_html() {
        let out = env()
            .get_template("error.html")
            .unwrap()
            .render(ErrorPage {
                status: 400,
                title: "t",
                message: "<script>alert(1)</script>",
            })
            .unwrap();
        assert!(
            out.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
            "{out}"
        );
        assert!(!out.contains("<script>alert"));
    }

    #[test]
    fn urls_are_encoded_for_paths_and_queries() {
        assert_eq!(urlencode("m_0a".into()), "m_0a");
        assert_eq!(urlencode("a b&c/d?".into()), "a%20b%26c%2Fd%3F");
        assert_eq!(urlencode("é".into()), "%C3%A9");
    }

    #[test]
    fn nothing_is_loaded_from_elsewhere() {
        for (name, source) in TEMPLATES {
            for bad in ["http://", "https://", "//cdn", "@import", "fonts."] {
                assert!(!source.contains(bad), "{name} mentions {bad}");
            }
        }
        assert!(!CSS.contains("url(") && !CSS.contains("@import"));
        assert!(!JS.contains("http") && !JS.contains("fetch("));
    }
}
