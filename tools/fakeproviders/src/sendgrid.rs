//! A fake SendGrid v3 Mail Send API (`POST /v3/mail/send`).

use std::net::SocketAddr;

use axum::http::Method;
use base64::Engine as _;
use serde_json::{json, Value};

use crate::server::{
    epoch_secs, random_bytes, reason, Answer, BodyKind, Incoming, Provider, Server,
};
use crate::Reply;

/// A local SendGrid: checks the bearer key and the mail/send JSON, answers 202 with an
/// `X-Message-Id`, or `{"errors":[{"message","field"}]}`.
pub struct FakeSendGrid {
    server: Server<SendGrid>,
}

struct SendGrid {
    api_key: String,
}

impl FakeSendGrid {
    /// Start on `127.0.0.1:0`, accepting `Authorization: Bearer {api_key}`.
    ///
    /// # Panics
    /// If no loopback port can be bound (a broken test environment).
    pub async fn start(api_key: &str) -> FakeSendGrid {
        Self::start_on(([127, 0, 0, 1], 0).into(), api_key)
            .await
            .unwrap_or_else(|e| panic!("fake sendgrid: cannot bind loopback: {e}"))
    }

    /// Start on a given address (the `fakeproviders` binary uses fixed ports).
    pub async fn start_on(addr: SocketAddr, api_key: &str) -> std::io::Result<FakeSendGrid> {
        let provider = SendGrid {
            api_key: api_key.to_string(),
        };
        Ok(FakeSendGrid {
            server: Server::start(addr, provider).await?,
        })
    }

    common_methods!();
}

/// One entry of SendGrid's error list.
fn err(field: Option<&str>, message: &str) -> Value {
    json!({ "field": field, "message": message, "help": null })
}

fn errors(status: u16, list: Vec<Value>) -> Answer {
    Answer::json(status, json!({ "errors": list }))
}

/// Loose address check: something before and after one `@`, a dot in the domain.
fn valid_email(v: Option<&Value>) -> bool {
    let Some(s) = v.and_then(Value::as_str) else {
        return false;
    };
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.contains('@')
                && !s.contains(char::is_whitespace)
        }
        None => false,
    }
}

fn non_empty_str(v: Option<&Value>) -> bool {
    v.and_then(Value::as_str).is_some_and(|s| !s.is_empty())
}

/// The field errors SendGrid reports for a mail/send body (all of them, as SendGrid does).
fn validate(body: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    let personalizations = body
        .get("personalizations")
        .and_then(Value::as_array)
        .filter(|p| !p.is_empty());
    let mut every_personalization_has_subject = false;
    match personalizations {
        None => out.push(err(
            Some("personalizations"),
            "The personalizations field is required and must have at least one personalization.",
        )),
        Some(list) => {
            every_personalization_has_subject =
                list.iter().all(|p| non_empty_str(p.get("subject")));
            for (i, p) in list.iter().enumerate() {
                match p.get("to").and_then(Value::as_array).filter(|t| !t.is_empty()) {
                    None => out.push(err(
                        Some(&format!("personalizations.{i}.to")),
                        "The to array is required for all personalization objects, and must have at least one email object with a valid email address.",
                    )),
                    Some(to) => {
                        for (j, r) in to.iter().enumerate() {
                            if !valid_email(r.get("email")) {
                                out.push(err(
                                    Some(&format!("personalizations.{i}.to.{j}.email")),
                                    "Does not contain a valid address.",
                                ));
                            }
                        }
                    }
                }
                if let Some(args) = p.get("custom_args") {
                    let strings = args
                        .as_object()
                        .is_some_and(|o| o.values().all(Value::is_string));
                    if !strings {
                        out.push(err(
                            Some(&format!("personalizations.{i}.custom_args")),
                            "Custom args must be an object of string keys and string values.",
                        ));
                    }
                }
            }
        }
    }
    match body.get("from") {
        Some(from) if valid_email(from.get("email")) => {}
        Some(from) if from.get("email").is_some() => out.push(err(
            Some("from.email"),
            "The from email does not contain a valid address.",
        )),
        _ => out.push(err(
            Some("from.email"),
            "The from object must be provided for every email send. It is an object that requires the email parameter, but may also contain a name parameter.",
        )),
    }
    if !non_empty_str(body.get("subject")) && !every_personalization_has_subject {
        out.push(err(
            Some("subject"),
            "The subject is required. You can get around this requirement if you use a template with a subject defined or if every personalization has a subject defined.",
        ));
    }
    match body.get("content").and_then(Value::as_array).filter(|c| !c.is_empty()) {
        None => out.push(err(
            Some("content"),
            "Unless a valid template_id is provided, the content parameter is required. There must be at least one defined content block. We typically suggest both text/plain and text/html blocks are included, but only one block is required.",
        )),
        Some(blocks) => {
            let mut types = Vec::new();
            for (k, block) in blocks.iter().enumerate() {
                if !non_empty_str(block.get("type")) {
                    out.push(err(
                        Some(&format!("content.{k}.type")),
                        "The content type cannot contain ';', or CRLF characters and must be at least 1 character long.",
                    ));
                }
                if !non_empty_str(block.get("value")) {
                    out.push(err(
                        Some(&format!("content.{k}.value")),
                        "The content value must be a string at least one character in length.",
                    ));
                }
                types.push(block.get("type").and_then(Value::as_str).unwrap_or(""));
            }
            let plain = types.iter().position(|t| *t == "text/plain");
            let html = types.iter().position(|t| *t == "text/html");
            let plain_first = plain.is_none_or(|p| p == 0);
            let html_after_plain = match (plain, html) {
                (Some(p), Some(h)) => h == p + 1,
                (None, Some(h)) => h == 0,
                _ => true,
            };
            if !plain_first || !html_after_plain {
                out.push(err(
                    Some("content"),
                    "If present, text/plain and text/html may only be provided in that order, and must be included before other MIME types.",
                ));
            }
        }
    }
    out
}

impl Provider for SendGrid {
    fn answer(&self, req: &Incoming) -> Answer {
        match req.bearer() {
            None => return errors(401, vec![err(None, "authorization required")]),
            Some(key) if key != self.api_key => {
                return errors(
                    401,
                    vec![err(
                        None,
                        "The provided authorization grant is invalid, expired, or revoked",
                    )],
                )
            }
            Some(_) => {}
        }
        if req.path != "/v3/mail/send" {
            return errors(404, vec![err(None, "resource not found")]);
        }
        if req.method != Method::POST {
            return errors(405, vec![err(None, "method not allowed")]);
        }
        let body = match (&req.kind, &req.json) {
            (BodyKind::Json, Some(body)) => body,
            (BodyKind::Malformed, _) if is_json(req) => {
                return errors(400, vec![err(None, "Bad Request")]);
            }
            _ => {
                return errors(
                    415,
                    vec![err(None, "Content-Type should be application/json.")],
                )
            }
        };
        let problems = validate(body);
        if !problems.is_empty() {
            return errors(400, problems);
        }
        // Real ids are 22 characters of URL-safe base64.
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes(16));
        Answer {
            status: 202,
            headers: vec![("x-message-id", id)],
            body: None,
        }
    }

    fn scripted(&self, reply: &Reply) -> Option<Answer> {
        Some(match reply {
            Reply::Status(s) | Reply::TwilioError { status: s, .. } => {
                errors(*s, vec![err(None, &reason(*s).to_lowercase())])
            }
            // SendGrid documents only the X-RateLimit-* headers (no Retry-After).
            Reply::TooManyRequests { retry_after_secs } => {
                errors(429, vec![err(None, "too many requests")])
                    .with_header("x-ratelimit-limit", "600".into())
                    .with_header("x-ratelimit-remaining", "0".into())
                    .with_header(
                        "x-ratelimit-reset",
                        (epoch_secs() + retry_after_secs).to_string(),
                    )
            }
            Reply::Slow(_) => return None,
        })
    }

    fn recipient(&self, req: &Incoming) -> Option<String> {
        let to = req
            .json
            .as_ref()?
            .pointer("/personalizations/0/to/0/email")?;
        to.as_str().map(str::to_string)
    }
}

fn is_json(req: &Incoming) -> bool {
    req.headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> Value {
        json!({
            "personalizations": [{"to": [{"email": "ada@example.com"}], "custom_args": {"notification_id": "n-1"}}],
            "from": {"email": "points@shop.example"},
            "subject": "Your points",
            "content": [{"type": "text/plain", "value": "You have 10 points"}, {"type": "text/html", "value": "<p>10</p>"}]
        })
    }

    #[test]
    fn a_complete_body_has_no_field_errors() {
        assert!(validate(&good()).is_empty());
    }

    #[test]
    fn each_missing_part_is_reported_with_its_field() {
        let fields = |v: &Value| -> Vec<String> {
            validate(v)
                .iter()
                .map(|e| e["field"].as_str().unwrap_or("").to_string())
                .collect()
        };
        assert_eq!(
            fields(&json!({})),
            ["personalizations", "from.email", "subject", "content"]
        );
        let mut v = good();
        v["personalizations"][0]["to"][0]["email"] = json!("nope");
        v["content"][1]["value"] = json!("");
        assert_eq!(
            fields(&v),
            ["personalizations.0.to.0.email", "content.1.value"]
        );
        let mut v = good();
        v["content"] =
            json!([{"type": "text/html", "value": "x"}, {"type": "text/plain", "value": "y"}]);
        assert_eq!(fields(&v), ["content"]);
    }
}
