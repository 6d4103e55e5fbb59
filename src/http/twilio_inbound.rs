//! `POST /webhooks/{shop}/twilio/inbound`: members' replies to our texts. STOP-style
//! keywords withdraw SMS consent (and suppress the number), START-style ones restore
//! it. The request is verified with `X-Twilio-Signature` before anything is read from
//! it; deliveries Twilio retries are applied once.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use loyaltyd_adapter::signature::{base64_encode, hmac_sha1};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::AppState;
use crate::ledger::contact::ConsentChange;
use crate::member::{normalise_phone, redact, IdentityKind};

/// Twilio's default opt-out keywords (the whole message, any case).
const OPT_OUT: [&str; 8] = [
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "REVOKE",
    "OPTOUT",
];
/// Twilio's default opt-in keywords.
const OPT_IN: [&str; 3] = ["START", "YES", "UNSTOP"];

/// The string Twilio signs: the full URL, then each POST parameter's name and value,
/// sorted by name, with no separators.
pub fn signed_string(url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut s = url.to_string();
    for (k, v) in sorted {
        s.push_str(k);
        s.push_str(v);
    }
    s
}

/// `X-Twilio-Signature` for `url` and `params` under `auth_token`.
pub fn signature(auth_token: &[u8], url: &str, params: &[(String, String)]) -> String {
    base64_encode(&hmac_sha1(
        auth_token,
        &[signed_string(url, params).as_bytes()],
    ))
}

fn twiml() -> Response {
    (
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "text/xml")],
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>",
    )
        .into_response()
}

/// The handler.
pub async fn inbound(
    State(state): State<Arc<AppState>>,
    Path(shop_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = std::time::Instant::now();
    let (outcome, response) = handle(&state, &shop_id, &uri, &headers, &body);
    state.metrics.webhook("twilio", outcome, started.elapsed());
    state.webhook_log.record_answer(
        &state,
        &shop_id,
        "twilio",
        outcome,
        response.status().as_u16(),
        started,
    );
    response
}

fn handle(
    state: &AppState,
    shop_id: &str,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> (&'static str, Response) {
    let shop = match super::admin::shop(state, shop_id) {
        Ok(s) => s.clone(),
        Err(e) => return ("unknown_shop", e.into_response()),
    };
    let Some(sms) = &state.config.notify.sms else {
        return (
            "not_configured",
            ApiError::not_found("sms_not_configured", "this daemon sends no SMS").into_response(),
        );
    };
    let params: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    let url = match &sms.inbound_url {
        Some(u) => u.clone(),
        None => {
            let host = headers
                .get(axum::http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("localhost");
            let scheme = headers
                .get("x-forwarded-proto")
                .and_then(|h| h.to_str().ok())
                .unwrap_or("http");
            format!("{scheme}://{host}{uri}")
        }
    };
    let given = headers
        .get("x-twilio-signature")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let expected = signature(sms.auth_token.expose(), &url, &params);
    if given.is_empty() || !bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
        return (
            "rejected_signature",
            ApiError::new(
                StatusCode::FORBIDDEN,
                "invalid_signature",
                "X-Twilio-Signature does not match this request",
            )
            .into_response(),
        );
    }
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let delivery_id = headers
        .get("i-twilio-idempotency-token")
        .and_then(|h| h.to_str().ok())
        .or_else(|| get("MessageSid"))
        .unwrap_or("");
    let keyword = get("Body").unwrap_or("").trim().to_ascii_uppercase();
    let opt = if OPT_OUT.contains(&keyword.as_str()) {
        Some(false)
    } else if OPT_IN.contains(&keyword.as_str()) {
        Some(true)
    } else {
        None
    };
    let Some(consent) = opt else {
        return ("ignored", twiml());
    };
    let Some(phone) = get("From").and_then(|p| normalise_phone(p, shop.country)) else {
        return (
            "invalid",
            ApiError::bad_request("invalid_from", "From is not a phone number").into_response(),
        );
    };
    let now = chrono::Utc::now();
    match state
        .delivery
        .first_sighting(&shop.id, &format!("twilio:{delivery_id}"))
    {
        Ok(true) => {}
        Ok(false) => return ("duplicate", twiml()),
        Err(e) => return ("error", ApiError::storage(&e).into_response()),
    }
    if let Err(e) = state
        .delivery
        .set_suppressed(&shop.id, &phone, !consent, now)
    {
        return ("error", ApiError::storage(&e).into_response());
    }
    let member = match state
        .ledger
        .member_by_identity(&shop.id, IdentityKind::Phone, &phone)
    {
        Ok(m) => m,
        Err(e) => return ("error", ApiError::storage(&e).into_response()),
    };
    if let Some(m) = member {
        let change = ConsentChange {
            sms: Some(consent),
            email: None,
        };
        if let Err(e) = state.ledger.set_consent(&shop.id, &m.id, change, now) {
            return ("error", ApiError::storage(&e).into_response());
        }
    }
    tracing::info!(shop = %shop.id, phone = %redact(&phone), consent, "SMS consent changed by reply");
    (if consent { "opted_in" } else { "opted_out" }, twiml())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signed_string_sorts_parameters_by_name_without_separators() {
        let params = vec![
            ("To".to_string(), "+15005550006".to_string()),
            ("Body".to_string(), "STOP".to_string()),
            ("From".to_string(), "+15145550142".to_string()),
        ];
        assert_eq!(
            signed_string("https://example.com/webhooks/demo/twilio/inbound", &params),
            "https://example.com/webhooks/demo/twilio/inboundBodySTOPFrom+15145550142To+15005550006"
        );
    }

    #[test]
    fn twilios_documented_example_signature_verifies() {
        // Twilio's security documentation example: auth token 12345, this URL and
        // these parameters sign to 0/KCTR6DLpKmkAf8muzZqo1nDgQ=.
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let params: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            signature(b"12345", url, &params),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
    }
}
