//! A fake Mailgun Messages API (`POST /v3/{domain}/messages`).

use std::net::SocketAddr;

use axum::http::Method;
use serde_json::json;

use crate::server::{random_hex, reason, Answer, BodyKind, Incoming, Provider, Server};
use crate::Reply;

/// A local Mailgun: checks `api:KEY` basic auth, the domain and the form fields, answers 200
/// `{"id","message"}`, or `{"message"}` errors (401 is plain-text `Forbidden`, as Mailgun does).
pub struct FakeMailgun {
    server: Server<Mailgun>,
}

struct Mailgun {
    domain: String,
    api_key: String,
}

impl FakeMailgun {
    /// Start on `127.0.0.1:0` for `domain`, accepting basic auth `api:{api_key}`.
    ///
    /// # Panics
    /// If no loopback port can be bound (a broken test environment).
    pub async fn start(domain: &str, api_key: &str) -> FakeMailgun {
        Self::start_on(([127, 0, 0, 1], 0).into(), domain, api_key)
            .await
            .unwrap_or_else(|e| panic!("fake mailgun: cannot bind loopback: {e}"))
    }

    /// Start on a given address (the `fakeproviders` binary uses fixed ports).
    pub async fn start_on(
        addr: SocketAddr,
        domain: &str,
        api_key: &str,
    ) -> std::io::Result<FakeMailgun> {
        let provider = Mailgun {
            domain: domain.to_string(),
            api_key: api_key.to_string(),
        };
        Ok(FakeMailgun {
            server: Server::start(addr, provider).await?,
        })
    }

    common_methods!();
}

fn message(status: u16, text: &str) -> Answer {
    Answer::json(status, json!({ "message": text }))
}

/// One recipient: `ada@example.com` or `Ada <ada@example.com>`.
fn valid_recipient(r: &str) -> bool {
    let r = r.trim();
    let addr = match (r.rfind('<'), r.ends_with('>')) {
        (Some(open), true) => &r[open + 1..r.len() - 1],
        _ => r,
    };
    match addr.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty() && domain.contains('.') && !addr.contains(char::is_whitespace)
        }
        None => false,
    }
}

/// Split a `to` list at commas that are not inside a quoted display name or `<...>`.
fn split_recipients(list: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut angle, mut escaped) = (0, false, false, false);
    for (i, c) in list.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                out.push(&list[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&list[start..]);
    out
}

impl Provider for Mailgun {
    fn answer(&self, req: &Incoming) -> Answer {
        let authed = req
            .basic_auth()
            .is_some_and(|(user, pass)| user == "api" && pass == self.api_key);
        if !authed {
            return Answer::text(401, "Forbidden");
        }
        let Some(domain) = req
            .path
            .strip_prefix("/v3/")
            .and_then(|rest| rest.strip_suffix("/messages"))
        else {
            return message(404, "Not Found");
        };
        if domain != self.domain {
            return message(404, &format!("Domain not found: {domain}"));
        }
        if req.method != Method::POST {
            return message(405, "Method Not Allowed");
        }
        if req.kind == BodyKind::Malformed {
            return message(400, "Invalid form data");
        }
        // Mailgun reads multipart and url-encoded forms alike; any other body has no fields.
        let form: &[(String, String)] = match req.kind {
            BodyKind::Form | BodyKind::Multipart => &req.form,
            _ => &[],
        };
        let field = |name: &str| -> Vec<&str> {
            form.iter()
                .filter(|(n, v)| n == name && !v.is_empty())
                .map(|(_, v)| v.as_str())
                .collect()
        };
        if field("from").is_empty() {
            return message(400, "from parameter is missing");
        }
        let to = field("to");
        if to.is_empty() {
            return message(400, "to parameter is missing");
        }
        if !to
            .iter()
            .flat_map(|t| split_recipients(t))
            .all(valid_recipient)
        {
            return message(
                400,
                "to parameter is not a valid address. please check documentation",
            );
        }
        if field("subject").is_empty() {
            return message(400, "subject parameter is missing");
        }
        if ["text", "html", "amp-html", "template"]
            .iter()
            .all(|f| field(f).is_empty())
        {
            return message(
                400,
                "Need at least one of 'text', 'html', 'amp-html' or 'template' parameters specified",
            );
        }
        let stamp = chrono::Utc::now().format("%Y%m%d%H%M%S");
        Answer::json(
            200,
            json!({
                "id": format!("<{stamp}.{}@{}>", random_hex(16), self.domain),
                "message": "Queued. Thank you.",
            }),
        )
    }

    fn scripted(&self, reply: &Reply) -> Option<Answer> {
        Some(match reply {
            Reply::Status(401) => Answer::text(401, "Forbidden"),
            Reply::Status(s) | Reply::TwilioError { status: s, .. } => message(*s, &reason(*s)),
            Reply::TooManyRequests { retry_after_secs } => message(429, "Too many requests")
                .with_header("retry-after", retry_after_secs.to_string()),
            Reply::Slow(_) => return None,
        })
    }

    fn recipient(&self, req: &Incoming) -> Option<String> {
        req.field("to").map(str::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_may_carry_a_display_name() {
        assert!(valid_recipient("ada@example.com"));
        assert!(valid_recipient("\"Ada L.\" <ada@example.com>"));
        assert!(!valid_recipient("ada"));
        assert!(!valid_recipient("Ada <ada>"));
    }

    #[test]
    fn recipient_lists_split_only_outside_quotes() {
        assert_eq!(
            split_recipients(r#""Lovelace, Ada" <ada@example.com>,bob@example.com"#),
            [r#""Lovelace, Ada" <ada@example.com>"#, "bob@example.com"]
        );
        assert_eq!(split_recipients(r#""A \"x, y\"" <a@b.example>"#).len(), 1);
    }
}
