//! A lean HTTP/1.1 keep-alive client (hyper-util's pooled client over plain TCP).

use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::gen::Webhook;

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A pooled HTTP/1.1 client keeping up to `max_idle` connections per host.
pub fn new_client(max_idle: usize) -> HttpClient {
    let mut conn = HttpConnector::new();
    conn.set_nodelay(true);
    conn.set_connect_timeout(Some(Duration::from_secs(5)));
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(max_idle)
        // Below the daemon's idle cut (`server.header_timeout_secs`, 10 s): a pooled
        // connection the server is closing just as a request goes out fails that
        // request ("connection closed before message completed").
        .pool_idle_timeout(Duration::from_secs(5))
        .build(conn)
}

/// How one request ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A response: status and body.
    Response(u16, Bytes),
    /// Could not connect.
    Connect,
    /// No complete response within the timeout.
    Timeout,
    /// Anything else (reset, closed mid-response, ...).
    Other(String),
}

/// Parse `http://host:port` (no path) into a base.
pub fn base_url(url: &str) -> anyhow::Result<String> {
    let u: Uri = url.parse().with_context(|| format!("bad URL {url:?}"))?;
    if u.scheme_str() != Some("http") {
        bail!("only plain http:// URLs are supported, got {url:?}");
    }
    let auth = u
        .authority()
        .with_context(|| format!("URL {url:?} has no host"))?;
    Ok(format!("http://{auth}"))
}

async fn send(client: &HttpClient, req: Request<Full<Bytes>>, timeout: Duration) -> Outcome {
    let fut = async {
        let resp = client.request(req).await.map_err(|e| {
            if e.is_connect() {
                Outcome::Connect
            } else {
                Outcome::Other(error_chain(&e))
            }
        })?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| Outcome::Other(error_chain(&e)))?
            .to_bytes();
        Ok::<_, Outcome>(Outcome::Response(status, body))
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(o)) | Ok(Err(o)) => o,
        Err(_) => Outcome::Timeout,
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// POST a signed Shopify `orders/paid` webhook.
pub async fn post_webhook(
    client: &HttpClient,
    uri: &Uri,
    topic: &str,
    w: &Webhook,
    timeout: Duration,
) -> Outcome {
    let req = Request::builder()
        .method(Method::POST)
        .uri(uri.clone())
        .header("content-type", "application/json")
        .header("x-shopify-topic", topic)
        .header("x-shopify-webhook-id", &w.id)
        .header("x-shopify-hmac-sha256", &w.signature)
        .body(Full::new(w.body.clone()))
        .expect("valid request");
    send(client, req, timeout).await
}

/// GET with an optional bearer token.
pub async fn get(
    client: &HttpClient,
    uri: Uri,
    bearer: Option<&str>,
    timeout: Duration,
) -> Outcome {
    let mut b = Request::builder().method(Method::GET).uri(uri);
    if let Some(t) = bearer {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    send(
        client,
        b.body(Full::new(Bytes::new())).expect("valid request"),
        timeout,
    )
    .await
}
