//! A fake Twilio Programmable Messaging API (`/2010-04-01/.../Messages.json`).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Mutex;

use axum::http::Method;
use serde_json::json;

use crate::server::{lock, random_hex, reason, Answer, BodyKind, Incoming, Provider, Server};
use crate::Reply;

/// A local Twilio: validates like `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` and
/// answers 201 with a message resource, or Twilio's `{code,message,more_info,status}` errors.
pub struct FakeTwilio {
    server: Server<Twilio>,
}

struct Twilio {
    account_sid: String,
    auth_token: String,
    api_keys: Mutex<Vec<(String, String)>>,
    unsubscribed: Mutex<HashSet<String>>,
    /// Every message accepted, oldest first, as its resource (for the list endpoint).
    accepted: Mutex<Vec<serde_json::Value>>,
}

impl FakeTwilio {
    /// Start on `127.0.0.1:0`, accepting `account_sid:auth_token` (and any added API key).
    ///
    /// # Panics
    /// If no loopback port can be bound (a broken test environment).
    pub async fn start(account_sid: &str, auth_token: &str) -> FakeTwilio {
        Self::start_on(([127, 0, 0, 1], 0).into(), account_sid, auth_token)
            .await
            .unwrap_or_else(|e| panic!("fake twilio: cannot bind loopback: {e}"))
    }

    /// Start on a given address (the `fakeproviders` binary uses fixed ports).
    pub async fn start_on(
        addr: SocketAddr,
        account_sid: &str,
        auth_token: &str,
    ) -> std::io::Result<FakeTwilio> {
        let provider = Twilio {
            account_sid: account_sid.to_string(),
            auth_token: auth_token.to_string(),
            api_keys: Mutex::new(Vec::new()),
            unsubscribed: Mutex::new(HashSet::new()),
            accepted: Mutex::new(Vec::new()),
        };
        Ok(FakeTwilio {
            server: Server::start(addr, provider).await?,
        })
    }

    common_methods!();

    /// Sends to this number are refused with 400 / code 21610, as after a STOP reply.
    pub fn unsubscribe(&self, phone: &str) {
        lock(&self.server.shared.provider.unsubscribed).insert(phone.to_string());
    }

    /// Accept sends to this number again (the member replied START).
    pub fn resubscribe(&self, phone: &str) {
        lock(&self.server.shared.provider.unsubscribed).remove(phone);
    }

    /// Also accept HTTP Basic `key_sid:secret` (a Twilio API key, `SK...`).
    pub fn add_api_key(&self, key_sid: &str, secret: &str) {
        lock(&self.server.shared.provider.api_keys).push((key_sid.to_string(), secret.to_string()));
    }
}

/// Twilio's error body; `more_info` points at the code's documentation page.
fn error(status: u16, code: u32, message: &str) -> Answer {
    Answer::json(
        status,
        json!({
            "code": code,
            "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status,
        }),
    )
}

/// The message Twilio uses for the codes a sender meets; generic text otherwise.
fn message_for(code: u32) -> String {
    match code {
        20003 => "Authenticate".into(),
        20429 => "Too Many Requests".into(),
        21211 => "Invalid 'To' Phone Number".into(),
        21408 => "Permission to send an SMS has not been enabled for the region indicated by the 'To' number".into(),
        21608 => "The number is unverified. Trial accounts cannot send messages to unverified numbers".into(),
        21610 => "Attempt to send to unsubscribed recipient".into(),
        21611 => "This 'From' number has exceeded the maximum number of queued messages".into(),
        21614 => "'To' number is not a valid mobile number".into(),
        c => format!("Twilio error {c}"),
    }
}

/// `+` then 2 to 15 digits, not starting with 0: the shape Twilio's 21211 check enforces.
fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

fn is_sid(s: &str, prefix: &str) -> bool {
    s.len() == 34 && s.starts_with(prefix) && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const GSM7_EXTENDED: &str = "^{}\\[~]|€\u{c}";

/// Segments the way carriers count them: GSM-7 160/153 septets, else UCS-2 70/67 units.
fn segments(body: &str) -> usize {
    let mut septets = 0usize;
    let mut gsm = true;
    for c in body.chars() {
        if GSM7_BASIC.contains(c) {
            septets += 1;
        } else if GSM7_EXTENDED.contains(c) {
            septets += 2;
        } else {
            gsm = false;
            break;
        }
    }
    let (units, single, multi) = if gsm {
        (septets, 160, 153)
    } else {
        (body.encode_utf16().count(), 70, 67)
    };
    match units {
        0 => 1,
        n if n <= single => 1,
        n => n.div_ceil(multi),
    }
}

impl Twilio {
    /// `GET …/Messages.json`: the accepted messages, newest first, filtered by `To` and
    /// `From` (exact match) and cut to `PageSize` (default 50, at most 1000).
    fn list(&self, req: &Incoming) -> Answer {
        let page_size = req
            .query("PageSize")
            .and_then(|p| p.parse::<usize>().ok())
            .unwrap_or(50)
            .clamp(1, 1000);
        let matches = |m: &serde_json::Value, key: &str, field: &str| {
            req.query(key)
                .is_none_or(|want| m.get(field).and_then(|v| v.as_str()) == Some(want))
        };
        let messages: Vec<serde_json::Value> = lock(&self.accepted)
            .iter()
            .rev()
            .filter(|m| matches(m, "To", "to") && matches(m, "From", "from"))
            .take(page_size)
            .cloned()
            .collect();
        let uri = format!("/2010-04-01/Accounts/{}/Messages.json", self.account_sid);
        Answer::json(
            200,
            json!({
                "end": messages.len().saturating_sub(1),
                "first_page_uri": format!("{uri}?PageSize={page_size}&Page=0"),
                "messages": messages,
                "next_page_uri": null,
                "page": 0,
                "page_size": page_size,
                "previous_page_uri": null,
                "start": 0,
                "uri": format!("{uri}?PageSize={page_size}&Page=0"),
            }),
        )
    }

    fn authenticated(&self, req: &Incoming) -> bool {
        let Some((user, pass)) = req.basic_auth() else {
            return false;
        };
        (user == self.account_sid && pass == self.auth_token)
            || lock(&self.api_keys)
                .iter()
                .any(|(k, s)| *k == user && *s == pass)
    }
}

impl Provider for Twilio {
    fn answer(&self, req: &Incoming) -> Answer {
        // Twilio checks credentials before anything else.
        if !self.authenticated(req) {
            return error(401, 20003, "Authenticate")
                .with_header("www-authenticate", "Basic realm=\"Twilio API\"".into());
        }
        let Some(account) = req
            .path
            .strip_prefix("/2010-04-01/Accounts/")
            .and_then(|rest| rest.strip_suffix("/Messages.json"))
        else {
            return error(
                404,
                20404,
                &format!("The requested resource {} was not found", req.path),
            );
        };
        if account != self.account_sid {
            // Valid credentials, but for another account.
            return error(401, 20003, "Authenticate");
        }
        if req.method == Method::GET {
            return self.list(req);
        }
        if req.method != Method::POST {
            return error(405, 20004, "Method not allowed");
        }
        // Twilio only reads form-encoded bodies; anything else looks like no parameters.
        let field = |name: &str| {
            if req.kind == BodyKind::Form {
                req.field(name).filter(|v| !v.is_empty())
            } else {
                None
            }
        };
        let Some(to) = field("To") else {
            return error(400, 21604, "A 'To' phone number is required.");
        };
        if !is_e164(to) {
            return error(
                400,
                21211,
                &format!("The 'To' number {to} is not a valid phone number."),
            );
        }
        let from = field("From");
        let service = field("MessagingServiceSid");
        if from.is_none() && service.is_none() {
            return error(400, 21603, "A 'From' phone number is required.");
        }
        if let Some(s) = service {
            if !is_sid(s, "MG") {
                return error(
                    400,
                    21701,
                    &format!("The Messaging Service Sid {s} is invalid."),
                );
            }
        }
        let Some(body) = field("Body") else {
            return error(400, 21602, "Message body is required.");
        };
        if body.chars().count() > 1600 {
            return error(
                400,
                21617,
                "The concatenated message body exceeds the 1600 character limit.",
            );
        }
        if lock(&self.unsubscribed).contains(to) {
            return error(400, 21610, &message_for(21610));
        }

        let sid = format!("SM{}", random_hex(32));
        let now = chrono::Utc::now().to_rfc2822();
        let uri = format!(
            "/2010-04-01/Accounts/{}/Messages/{sid}.json",
            self.account_sid
        );
        // Through a Messaging Service the sender is picked later: status "accepted", no
        // `from` yet and "0" segments, as the reference describes.
        let (status, from_value, num_segments) = match service {
            Some(_) if from.is_none() => ("accepted", None, "0".to_string()),
            _ => ("queued", from, segments(body).to_string()),
        };
        let resource = json!({
                "account_sid": self.account_sid,
                "api_version": "2010-04-01",
                "body": body,
                "date_created": now,
                "date_sent": null,
                "date_updated": now,
                "direction": "outbound-api",
                "error_code": null,
                "error_message": null,
                "from": from_value,
                "messaging_service_sid": service,
                "num_media": "0",
                "num_segments": num_segments,
                "price": null,
                "price_unit": "USD",
                "sid": sid,
                "status": status,
                "subresource_uris": { "media": uri.replace(".json", "/Media.json") },
                "to": to,
                "uri": uri,
        });
        lock(&self.accepted).push(resource.clone());
        Answer::json(201, resource)
    }

    fn scripted(&self, reply: &Reply) -> Option<Answer> {
        Some(match reply {
            // Twilio's generic HTTP-level codes are 20000 + status (20500, 20503, 20429...).
            Reply::Status(s) => error(*s, 20000 + u32::from(*s), &reason(*s)),
            Reply::TooManyRequests { retry_after_secs } => error(429, 20429, &message_for(20429))
                .with_header("retry-after", retry_after_secs.to_string()),
            Reply::TwilioError { status, code } => error(*status, *code, &message_for(*code)),
            Reply::Slow(_) => return None,
        })
    }

    fn recipient(&self, req: &Incoming) -> Option<String> {
        req.field("To").map(str::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_numbers_are_recognised() {
        assert!(is_e164("+15145550142"));
        assert!(!is_e164("15145550142"));
        assert!(!is_e164("+1 514 555 0142"));
        assert!(!is_e164("+0123"));
    }

    #[test]
    fn segments_follow_gsm7_and_ucs2_limits() {
        assert_eq!(segments("You have 1,250 points"), 1);
        assert_eq!(segments(&"a".repeat(160)), 1);
        assert_eq!(segments(&"a".repeat(161)), 2);
        assert_eq!(segments(&"{".repeat(80)), 1);
        assert_eq!(segments(&"é".repeat(160)), 1);
        assert_eq!(segments(&"ł".repeat(70)), 1);
        assert_eq!(segments(&"ł".repeat(71)), 2);
    }
}
