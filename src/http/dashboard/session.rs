//! Dashboard sessions: the API token in an HttpOnly, SameSite=Strict cookie, checked on
//! every request with [`find_token`] and the API's shop and role rules; and the CSRF
//! field every form carries, an HMAC of the cookie under a key that lives only in this
//! process (so a page's HTML never reveals anything a token could be guessed from).

use std::sync::OnceLock;

use axum::http::{header, HeaderMap, HeaderValue};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::ApiToken;
use crate::http::auth::find_token;

/// The cookie holding the token.
pub const COOKIE: &str = "loyaltyd_token";
/// How long a login lasts (seconds).
pub const MAX_AGE_SECS: u64 = 12 * 60 * 60;

/// A logged-in dashboard user.
#[derive(Debug, Clone)]
pub struct Session {
    /// The token the cookie names (never rendered: only its name and role are).
    pub token: ApiToken,
    /// The CSRF value forms must send back.
    pub csrf: String,
}

fn key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut k = [0u8; 32];
        k[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        k[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        k
    })
}

fn mac(cookie: &str) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(key()).expect("HMAC takes any key length");
    m.update(b"loyaltyd dashboard csrf\n");
    m.update(cookie.as_bytes());
    m
}

/// The CSRF value for a session cookie (hex HMAC-SHA256).
pub fn csrf_for(cookie: &str) -> String {
    mac(cookie)
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `presented` is the CSRF value of `cookie` (constant time).
pub fn csrf_ok(cookie: &str, presented: &str) -> bool {
    let Some(bytes) = decode_hex(presented) else {
        return false;
    };
    mac(cookie).verify_slice(&bytes).is_ok()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// The session cookie's (decoded) value, if the request has one.
pub fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| decode(value))
        .filter(|v| !v.is_empty())
}

fn decode(v: &str) -> String {
    form_urlencoded::parse(format!("v={v}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The session of a request: its cookie names a configured token.
pub fn session(tokens: &[ApiToken], headers: &HeaderMap) -> Option<Session> {
    let value = cookie_value(headers)?;
    let token = find_token(tokens, &value)?;
    Some(Session {
        token: token.clone(),
        csrf: csrf_for(&value),
    })
}

/// Whether the request reached the proxy over HTTPS (`X-Forwarded-Proto: https`).
fn forwarded_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// `Set-Cookie` logging in with `token`.
pub fn set_cookie(token: &str, request: &HeaderMap) -> HeaderValue {
    let value: String = form_urlencoded::byte_serialize(token.as_bytes()).collect();
    let secure = if forwarded_https(request) {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age={MAX_AGE_SECS}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("loyaltyd_token=; Path=/dashboard"))
}

/// `Set-Cookie` logging out.
pub fn clear_cookie(request: &HeaderMap) -> HeaderValue {
    let secure = if forwarded_https(request) {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{COOKIE}=; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age=0{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("loyaltyd_token=; Path=/dashboard; Max-Age=0"))
}

/// Where to go after logging in: only a dashboard path (no open redirect).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if (n == "/dashboard"
                || n.starts_with("/dashboard/")
                || n.starts_with("/dashboard?"))
                && !n.contains("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control) =>
        {
            n.to_string()
        }
        _ => "/dashboard".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(cookie: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(cookie).unwrap());
        h
    }

    #[test]
    fn the_csrf_value_belongs_to_its_cookie() {
        let c = csrf_for("token-a");
        assert_eq!(c.len(), 64);
        assert!(csrf_ok("token-a", &c));
        assert!(!csrf_ok("token-b", &c));
        assert!(!csrf_ok("token-a", ""));
        assert!(!csrf_ok("token-a", &c[..62]));
        assert!(!csrf_ok("token-a", &"0".repeat(64)));
        assert!(!c.contains("token-a"));
    }

    #[test]
    fn the_cookie_is_read_among_others_and_round_trips() {
        let h = headers("a=1; loyaltyd_token=tok%3Bx%20y; b=2");
        assert_eq!(cookie_value(&h).as_deref(), Some("tok;x y"));
        let set = set_cookie("tok;x y", &HeaderMap::new());
        let set = set.to_str().unwrap();
        assert!(set.starts_with("loyaltyd_token=tok%3Bx+y;"), "{set}");
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"));
        assert!(set.contains("Path=/dashboard") && !set.contains("Secure"));
        let back = headers(set.split(';').next().unwrap());
        assert_eq!(cookie_value(&back).as_deref(), Some("tok;x y"));
        assert_eq!(cookie_value(&headers("loyaltyd_token=")), None);
    }

    #[test]
    fn the_cookie_is_secure_behind_an_https_proxy() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert!(set_cookie("t", &h).to_str().unwrap().ends_with("; Secure"));
        assert!(clear_cookie(&h).to_str().unwrap().contains("Max-Age=0"));
    }

    #[test]
    fn only_dashboard_paths_are_followed_after_login() {
        assert_eq!(
            safe_next(Some("/dashboard/shops/demo")),
            "/dashboard/shops/demo"
        );
        assert_eq!(
            safe_next(Some("/dashboard/shops/demo/members?q=ada")),
            "/dashboard/shops/demo/members?q=ada"
        );
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/dashboard//evil",
            "/dashboardx",
            "/v1/backup",
            "/dashboard/\\evil",
        ] {
            assert_eq!(safe_next(Some(bad)), "/dashboard", "{bad}");
        }
        assert_eq!(safe_next(None), "/dashboard");
    }
}
