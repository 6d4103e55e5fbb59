//! Enrichment from the Orders API against a small HTTP/1.1 server started on 127.0.0.1
//! by each test. The server checks the bearer token, the `Square-Version` and `Accept`
//! headers (401 / 406 when wrong, like Square) and serves the orders in
//! `fixtures/orders/`.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{demo_adapter, expected, read, request};
use loyaltyd_adapter::{Adapter, EnrichError, EventEnvelope, Parsed, PosEvent, Secret};
use loyaltyd_square::{OrdersApi, SettingsError, SquareAdapter, SquareSettings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TOKEN: &str = "EAAAl-demo-orders-token-7Hq2Vx9Bn4";
const VERSION: &str = "2026-05-20";

/// What the server saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: HashMap<String, String>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

enum Reply {
    Answer(u16, Vec<u8>),
    /// Accept the request and never answer.
    Hang,
}

type Respond = Arc<dyn Fn(&Seen, usize) -> Reply + Send + Sync>;

/// A local stand-in for `connect.squareup.com`; stops when dropped.
struct OrdersServer {
    base_url: String,
    hits: Arc<AtomicUsize>,
    seen: Arc<std::sync::Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for OrdersServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl OrdersServer {
    /// `respond` gets each request and its 1-based attempt number.
    async fn start(respond: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let respond: Respond = Arc::new(respond);
        let (h, s) = (hits.clone(), seen.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (respond, h, s) = (respond.clone(), h.clone(), s.clone());
                tokio::spawn(async move { serve_one(stream, respond, h, s).await });
            }
        });
        OrdersServer {
            base_url: format!("http://{addr}"),
            hits,
            seen,
            task,
        }
    }

    /// Square's behaviour: credentials checked, then the order by id, else 404.
    async fn square() -> Self {
        let mut orders = HashMap::new();
        for entry in std::fs::read_dir(common::fixtures().join("orders")).unwrap() {
            let body = std::fs::read(entry.unwrap().path()).unwrap();
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let id = v["order"]["id"].as_str().unwrap().to_string();
            orders.insert(format!("/v2/orders/{id}"), body);
        }
        Self::start(move |req, _| {
            checked(req).unwrap_or_else(|| match orders.get(&req.path) {
                Some(body) => Reply::Answer(200, body.clone()),
                None => not_found(),
            })
        })
        .await
    }

    fn api(&self, retries: u32, timeout: Duration) -> OrdersApi {
        OrdersApi {
            base_url: self.base_url.clone(),
            access_token: Secret::new(TOKEN),
            square_version: VERSION.to_string(),
            timeout,
            retries,
        }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// Square's answer to bad credentials or headers, or `None` when they are right.
fn checked(req: &Seen) -> Option<Reply> {
    let error = |code: u16, category: &str, err: &str| {
        Reply::Answer(
            code,
            format!(
                r#"{{"errors":[{{"category":"{category}","code":"{err}","detail":"see docs"}}]}}"#
            )
            .into_bytes(),
        )
    };
    if req.header("authorization") != Some(&format!("Bearer {TOKEN}")) {
        return Some(error(401, "AUTHENTICATION_ERROR", "UNAUTHORIZED"));
    }
    if req.header("square-version") != Some(VERSION) {
        return Some(error(
            401,
            "INVALID_REQUEST_ERROR",
            "INVALID_SQUARE_VERSION_FORMAT",
        ));
    }
    if req.header("accept") != Some("application/json") || req.method != "GET" {
        return Some(error(406, "INVALID_REQUEST_ERROR", "NOT_ACCEPTABLE"));
    }
    None
}

fn not_found() -> Reply {
    Reply::Answer(
        404,
        br#"{"errors":[{"category":"INVALID_REQUEST_ERROR","code":"NOT_FOUND","detail":"Could not find order"}]}"#
            .to_vec(),
    )
}

async fn serve_one(
    mut stream: TcpStream,
    respond: Respond,
    hits: Arc<AtomicUsize>,
    seen: Arc<std::sync::Mutex<Vec<Seen>>>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > 64 * 1024 {
            return;
        }
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_string();
    let path = request_line.next().unwrap_or_default().to_string();
    let headers = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let req = Seen {
        method,
        path,
        headers,
    };
    seen.lock().unwrap().push(req.clone());
    let attempt = hits.fetch_add(1, Ordering::SeqCst) + 1;
    match respond(&req, attempt) {
        Reply::Hang => tokio::time::sleep(Duration::from_secs(30)).await,
        Reply::Answer(code, body) => {
            let head = format!(
                "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(&body).await;
            let _ = stream.shutdown().await;
        }
    }
}

/// The parsed sale of a webhook fixture, from an adapter using `api`.
fn parsed(adapter: &SquareAdapter, file: &str) -> EventEnvelope {
    match adapter.parse(&request(read(file), None)).unwrap() {
        Parsed::Event(env) => *env,
        other => panic!("{file}: not an event: {other:?}"),
    }
}

async fn enrich_fixture(server: &OrdersServer, file: &str) -> Result<EventEnvelope, EnrichError> {
    let adapter = demo_adapter(Some(server.api(2, Duration::from_secs(5))));
    let event = parsed(&adapter, file);
    assert!(adapter.needs_enrichment(&event), "{file}");
    adapter.enrich(event).await
}

#[tokio::test]
async fn the_reference_payment_gets_the_order_lines_with_additive_tax_exactly() {
    let server = OrdersServer::square().await;
    let enriched = enrich_fixture(&server, "payment-updated-completed.json")
        .await
        .unwrap();
    assert_eq!(
        enriched,
        expected("enriched/payment-updated-completed.json")
    );
    assert_eq!(server.hits(), 1);
    let seen = server.seen.lock().unwrap()[0].clone();
    assert_eq!(seen.path, "/v2/orders/wQ2yR9xT4nL7bC1eF6hJ3kM8pZ5Y");
}

#[tokio::test]
async fn a_yen_order_with_inclusive_tax_sets_taxes_included_and_lends_its_customer() {
    let server = OrdersServer::square().await;
    let enriched = enrich_fixture(&server, "payment-updated-jpy.json")
        .await
        .unwrap();
    assert_eq!(enriched, expected("enriched/payment-updated-jpy.json"));
}

#[tokio::test]
async fn a_dinar_order_with_mixed_taxes_a_weighed_line_and_a_gift_card_is_read_exactly() {
    let server = OrdersServer::square().await;
    let enriched = enrich_fixture(&server, "payment-updated-kwd.json")
        .await
        .unwrap();
    assert_eq!(enriched, expected("enriched/payment-updated-kwd.json"));
    let PosEvent::Sale(sale) = &enriched.event else {
        panic!("not a sale")
    };
    assert_eq!(sale.lines[0].quantity.to_string(), "0.5");
    assert_eq!(sale.lines[0].net().to_string(), "12.0000");
}

#[tokio::test]
async fn an_enriched_sale_no_longer_needs_enrichment() {
    let server = OrdersServer::square().await;
    let adapter = demo_adapter(Some(server.api(0, Duration::from_secs(5))));
    let event = parsed(&adapter, "payment-updated-completed.json");
    let enriched = adapter.enrich(event).await.unwrap();
    assert!(!adapter.needs_enrichment(&enriched));
}

#[tokio::test]
async fn only_square_sales_with_an_order_id_need_enrichment_and_only_with_the_orders_api() {
    let server = OrdersServer::square().await;
    let with_api = demo_adapter(Some(server.api(0, Duration::from_secs(5))));
    let without_api = demo_adapter(None);
    let sale = parsed(&with_api, "payment-updated-completed.json");
    assert!(with_api.needs_enrichment(&sale));
    assert!(!without_api.needs_enrichment(&sale));
    assert!(!with_api.needs_enrichment(&parsed(&with_api, "refund-updated-completed.json")));
    assert!(!with_api.needs_enrichment(&parsed(&with_api, "customer-created.json")));

    let mut no_order = sale.clone();
    if let PosEvent::Sale(s) = &mut no_order.event {
        s.source_order_id = None;
    }
    assert!(!with_api.needs_enrichment(&no_order));
    let mut other_adapter = sale;
    other_adapter.adapter = "shopify".into();
    assert!(!with_api.needs_enrichment(&other_adapter));
    assert_eq!(server.hits(), 0, "needs_enrichment does no I/O");
}

#[tokio::test]
async fn without_the_orders_api_enrich_returns_the_sale_unchanged() {
    let adapter = demo_adapter(None);
    let event = parsed(&adapter, "payment-updated-completed.json");
    assert_eq!(adapter.enrich(event.clone()).await, Ok(event));
}

#[tokio::test]
async fn a_server_answering_503_gives_a_retryable_error_after_the_configured_retries() {
    let server = OrdersServer::start(|req, _| {
        checked(req).unwrap_or(Reply::Answer(503, b"<html>unavailable</html>".to_vec()))
    })
    .await;
    let adapter = demo_adapter(Some(server.api(2, Duration::from_secs(5))));
    let event = parsed(&adapter, "payment-updated-completed.json");
    let err = adapter.enrich(event).await.unwrap_err();
    assert!(
        matches!(&err, EnrichError::Retryable(m) if m.contains("503") && m.contains("3 attempts")),
        "{err:?}"
    );
    assert_eq!(server.hits(), 3, "one attempt and two retries");
}

#[tokio::test]
async fn zero_retries_means_a_single_attempt() {
    let server = OrdersServer::start(|_, _| Reply::Answer(500, Vec::new())).await;
    let adapter = demo_adapter(Some(server.api(0, Duration::from_secs(5))));
    let event = parsed(&adapter, "payment-updated-completed.json");
    assert!(matches!(
        adapter.enrich(event).await,
        Err(EnrichError::Retryable(_))
    ));
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn a_429_is_retried_and_the_next_answer_is_used() {
    let orders = OrdersServer::square().await;
    let body = read("orders/order-cold-brew-muffin.json");
    let server = OrdersServer::start(move |req, attempt| {
        checked(req).unwrap_or_else(|| {
            if attempt == 1 {
                Reply::Answer(
                    429,
                    br#"{"errors":[{"category":"RATE_LIMIT_ERROR","code":"RATE_LIMITED"}]}"#
                        .to_vec(),
                )
            } else {
                Reply::Answer(200, body.clone())
            }
        })
    })
    .await;
    drop(orders);
    let enriched = enrich_fixture(&server, "payment-updated-completed.json")
        .await
        .unwrap();
    assert_eq!(
        enriched,
        expected("enriched/payment-updated-completed.json")
    );
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn an_unknown_order_gives_a_permanent_error_without_retrying() {
    let server = OrdersServer::square().await;
    let adapter = demo_adapter(Some(server.api(3, Duration::from_secs(5))));
    let mut event = parsed(&adapter, "payment-updated-completed.json");
    if let PosEvent::Sale(s) = &mut event.event {
        s.source_order_id = Some("no-such-order".into());
    }
    let err = adapter.enrich(event).await.unwrap_err();
    assert!(
        matches!(&err, EnrichError::Permanent(m) if m.contains("404") && m.contains("NOT_FOUND")),
        "{err:?}"
    );
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn a_wrong_token_gets_401_and_a_retryable_error_at_once_that_does_not_show_the_token() {
    let server = OrdersServer::square().await;
    let mut api = server.api(3, Duration::from_secs(5));
    api.access_token = Secret::new("EAAAl-revoked-token-Zx1Cv3Bn5Nm7");
    let adapter = demo_adapter(Some(api));
    let event = parsed(&adapter, "payment-updated-completed.json");
    let err = adapter.enrich(event).await.unwrap_err();
    let EnrichError::Retryable(message) = &err else {
        panic!("{err:?}")
    };
    assert!(
        message.contains("401") && message.contains("UNAUTHORIZED"),
        "{message}"
    );
    assert!(message.contains("access_token"), "{message}");
    assert!(!message.contains("revoked-token"), "{message}");
    assert!(!format!("{adapter:?}").contains("revoked-token"));
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn a_wrong_square_version_gets_401_and_a_retryable_error_without_retrying_at_once() {
    let server = OrdersServer::square().await;
    let mut api = server.api(1, Duration::from_secs(5));
    api.square_version = "2019-01-01".into();
    let adapter = demo_adapter(Some(api));
    let event = parsed(&adapter, "payment-updated-completed.json");
    assert!(matches!(
        adapter.enrich(event).await,
        Err(EnrichError::Retryable(m)) if m.contains("401")
    ));
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn the_request_carries_the_bearer_token_version_and_accept_headers() {
    let server = OrdersServer::square().await;
    enrich_fixture(&server, "payment-updated-jpy.json")
        .await
        .unwrap();
    let seen = server.seen.lock().unwrap()[0].clone();
    assert_eq!(seen.method, "GET");
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(seen.header("square-version"), Some(VERSION));
    assert_eq!(seen.header("accept"), Some("application/json"));
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_into_a_retryable_error() {
    let server = OrdersServer::start(|_, _| Reply::Hang).await;
    let adapter = demo_adapter(Some(server.api(1, Duration::from_millis(200))));
    let event = parsed(&adapter, "payment-updated-completed.json");
    let started = std::time::Instant::now();
    let err = adapter.enrich(event).await.unwrap_err();
    assert!(
        matches!(&err, EnrichError::Retryable(m) if m.contains("no answer within")),
        "{err:?}"
    );
    assert_eq!(server.hits(), 2);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_refused_connection_is_retryable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let adapter = demo_adapter(Some(OrdersApi {
        base_url: format!("http://{addr}"),
        access_token: Secret::new(TOKEN),
        square_version: VERSION.into(),
        timeout: Duration::from_secs(2),
        retries: 1,
    }));
    let event = parsed(&adapter, "payment-updated-completed.json");
    assert!(matches!(
        adapter.enrich(event).await,
        Err(EnrichError::Retryable(m)) if m.contains("2 attempts")
    ));
}

#[tokio::test]
async fn an_unreadable_order_is_a_permanent_error() {
    let server = OrdersServer::start(|req, _| {
        checked(req).unwrap_or(Reply::Answer(200, b"{\"order\": [".to_vec()))
    })
    .await;
    let adapter = demo_adapter(Some(server.api(2, Duration::from_secs(5))));
    let event = parsed(&adapter, "payment-updated-completed.json");
    assert!(matches!(
        adapter.enrich(event).await,
        Err(EnrichError::Permanent(_))
    ));
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn an_order_in_another_currency_or_for_another_id_is_a_permanent_error() {
    let usd_order = String::from_utf8(read("orders/order-cold-brew-muffin.json")).unwrap();
    for (bad, needle) in [
        (
            usd_order.replace("\"USD\"", "\"EUR\""),
            "base_price_money.currency",
        ),
        (
            usd_order.replace("\"wQ2yR9xT4nL7bC1eF6hJ3kM8pZ5Y\"", "\"someOtherOrder\""),
            "order.id",
        ),
        (
            usd_order.replace("\"quantity\": \"2\"", "\"quantity\": \"-2\""),
            "line_items[0].quantity",
        ),
    ] {
        let server = OrdersServer::start(move |req, _| {
            checked(req).unwrap_or_else(|| Reply::Answer(200, bad.clone().into_bytes()))
        })
        .await;
        let adapter = demo_adapter(Some(server.api(0, Duration::from_secs(5))));
        let event = parsed(&adapter, "payment-updated-completed.json");
        let err = adapter.enrich(event).await.unwrap_err();
        assert!(
            matches!(&err, EnrichError::Permanent(m) if m.contains(needle)),
            "{needle}: {err:?}"
        );
    }
}

#[tokio::test]
async fn a_base_url_with_a_trailing_slash_and_an_odd_order_id_build_a_clean_path() {
    let server = OrdersServer::start(|req, _| checked(req).unwrap_or_else(not_found)).await;
    let mut api = server.api(0, Duration::from_secs(5));
    api.base_url.push('/');
    let adapter = demo_adapter(Some(api));
    let mut event = parsed(&adapter, "payment-updated-completed.json");
    if let PosEvent::Sale(s) = &mut event.event {
        s.source_order_id = Some("a/b?c".into());
    }
    let _ = adapter.enrich(event).await;
    let seen = server.seen.lock().unwrap()[0].clone();
    assert_eq!(seen.path, "/v2/orders/a%2Fb%3Fc");
}

#[test]
fn settings_that_cannot_work_are_refused_when_the_adapter_is_built() {
    let build = |url: &str, orders: Option<OrdersApi>| {
        SquareAdapter::new(SquareSettings {
            signature_keys: vec![Secret::new("k")],
            notification_url: url.into(),
            orders,
        })
        .map(|_| ())
    };
    let api = |base: &str, token: &str, version: &str| OrdersApi {
        base_url: base.into(),
        square_version: version.into(),
        ..OrdersApi::new(Secret::new(token))
    };
    let url = common::DEMO_URL;
    assert_eq!(build("", None), Err(SettingsError::EmptyNotificationUrl));
    assert_eq!(
        build(url, Some(api("connect.squareup.com", "t", VERSION))),
        Err(SettingsError::InvalidBaseUrl("connect.squareup.com".into()))
    );
    assert_eq!(
        build(
            url,
            Some(api("https://connect.squareup.com", "t\nX-Evil: 1", VERSION))
        ),
        Err(SettingsError::InvalidAccessToken)
    );
    assert_eq!(
        build(url, Some(api("https://connect.squareup.com", "", VERSION))),
        Err(SettingsError::InvalidAccessToken)
    );
    assert_eq!(
        build(url, Some(api("https://connect.squareup.com", "t", ""))),
        Err(SettingsError::InvalidSquareVersion(String::new()))
    );
    assert_eq!(
        build(url, Some(OrdersApi::new(Secret::new("EAAAl-token")))),
        Ok(())
    );
}
