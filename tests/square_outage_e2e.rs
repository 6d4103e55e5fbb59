//! Fault injection: Square's Orders API is down for a sustained period — answering
//! 503, then refusing connections, then hanging past the client's timeout — while
//! dozens of Square payments for several members arrive, Square redelivers them, some
//! are refunded, and the daemon is SIGKILLed and restarted in the middle. Every webhook
//! is acknowledged only once its event is durably queued; when the API comes back each
//! payment is scored exactly once, from its order's lines.
//!
//! The outage lasts about 25 s with `max_retry_backoff_secs = 2` (instead of 300), so
//! the breaker goes through many pauses; docs/hardening.md has a 3-minute run with the
//! default.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use common::*;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

/// Payments sent during the outage.
const PAYMENTS: u64 = 48;
/// Members they belong to.
const MEMBERS: u64 = 6;
/// Payments refunded in full during the outage (before they could be scored).
const REFUNDED: [u64; 3] = [5, 17, 29];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Up,
    Unavailable,
    Hanging,
}

/// A local Orders API whose health the test controls.
struct Api {
    mode: Mutex<Mode>,
    calls: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// Orders answered 200, by id.
    served: Mutex<HashMap<String, usize>>,
}

struct InFlight<'a>(&'a Api);

impl<'a> InFlight<'a> {
    fn enter(api: &'a Api) -> Self {
        let now = api.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        api.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(api)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The order behind payment `n`: `q` Cold Brews at 4.50 with 1.00 off, 20 % additive
/// tax. Returns (eligible cents, tax cents, q).
fn order_money(n: u64) -> (i64, i64, i64) {
    let q = 2 + (n % 5) as i64;
    let eligible = q * 450 - 100;
    (eligible, eligible / 5, q)
}

/// Points payment `n` earns from its order's lines (1 per dollar of eligible spend).
fn points_from_lines(n: u64) -> i64 {
    order_money(n).0 / 100
}

async fn order(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    api.calls.fetch_add(1, Ordering::SeqCst);
    let mode = *api.mode.lock().unwrap();
    // Every answer closes its connection, so that a stopped server refuses the next one.
    let close = [(header::CONNECTION, "close")];
    if mode == Mode::Hanging {
        // Longer than the daemon's 300 ms timeout: the client gives up first.
        tokio::time::sleep(Duration::from_secs(2)).await;
        return (StatusCode::GATEWAY_TIMEOUT, close, "{}").into_response();
    }
    let _guard = InFlight::enter(&api);
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {SQUARE_TOKEN}"))
    {
        return (StatusCode::UNAUTHORIZED, close, "{}").into_response();
    }
    if mode != Mode::Up {
        let body = r#"{"errors":[{"category":"API_ERROR","code":"SERVICE_UNAVAILABLE"}]}"#;
        return (StatusCode::SERVICE_UNAVAILABLE, close, body).into_response();
    }
    let Some(n) = id.strip_prefix("ORD-").and_then(|n| n.parse::<u64>().ok()) else {
        return (StatusCode::NOT_FOUND, close, "{}").into_response();
    };
    *api.served.lock().unwrap().entry(id.clone()).or_default() += 1;
    let (eligible, tax, q) = order_money(n);
    let money = |amount: i64| json!({"amount": amount, "currency": "USD"});
    let body = json!({"order": {
        "id": id, "location_id": "L1", "state": "COMPLETED", "version": 3,
        "line_items": [{
            "uid": format!("li-{n}"), "catalog_object_id": "CB-VAR", "name": "Cold Brew",
            "quantity": q.to_string(), "item_type": "ITEM",
            "base_price_money": money(450), "gross_sales_money": money(q * 450),
            "total_discount_money": money(100), "total_tax_money": money(tax),
            "total_money": money(eligible + tax)
        }],
        "taxes": [{"uid": "t1", "name": "Sales tax", "type": "ADDITIVE", "percentage": "20"}],
        "total_tax_money": money(tax), "total_discount_money": money(100),
        "total_money": money(eligible + tax)
    }});
    (StatusCode::OK, close, body.to_string()).into_response()
}

/// The fake API's server: stopped, nothing listens on its port (connection refused).
struct OrdersServer {
    addr: SocketAddr,
    api: Arc<Api>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl OrdersServer {
    async fn start(mode: Mode) -> OrdersServer {
        let api = Arc::new(Api {
            mode: Mutex::new(mode),
            calls: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            served: Mutex::new(HashMap::new()),
        });
        let mut s = OrdersServer {
            addr: "127.0.0.1:0".parse().unwrap(),
            api,
            task: None,
        };
        s.listen();
        s
    }

    fn listen(&mut self) {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind(self.addr).unwrap();
        let listener = socket.listen(128).unwrap();
        self.addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/v2/orders/{id}", get(order))
            .with_state(self.api.clone());
        self.task = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn set(&self, mode: Mode) {
        *self.api.mode.lock().unwrap() = mode;
    }

    /// Stop listening: connections are refused until [`OrdersServer::listen`].
    async fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }
}

fn square_event(kind: &str, event_id: &str, object: Value) -> String {
    let data_type = kind.split('.').next().unwrap();
    json!({
        "merchant_id": "MLB4Q9TZ1XH7C", "type": kind, "event_id": event_id,
        "created_at": "2026-11-20T15:14:07.412Z",
        "data": {"type": data_type, "id": "x", "object": {data_type: object}}
    })
    .to_string()
}

fn member_email(k: u64) -> String {
    format!("sq{k}@example.com")
}

/// Payment `n`'s completion, as `payment.updated` (or `payment.created`).
fn payment(n: u64, kind: &str) -> (String, String) {
    let (eligible, tax, _) = order_money(n);
    let k = n % MEMBERS;
    let event_id = format!("ev-{}-{n}", kind.trim_start_matches("payment."));
    let body = square_event(
        kind,
        &event_id,
        json!({
            "id": format!("PAY-{n}"), "status": "COMPLETED",
            "created_at": "2026-11-20T15:14:03.118Z", "updated_at": "2026-11-20T15:14:06.902Z",
            "amount_money": {"amount": eligible + tax, "currency": "USD"},
            "total_money": {"amount": eligible + tax, "currency": "USD"},
            "location_id": "L1", "order_id": format!("ORD-{n}"),
            "customer_id": format!("SQC-{k}"), "buyer_email_address": member_email(k),
            "source_type": "CARD"
        }),
    );
    (event_id, body)
}

/// A full refund of payment `n`.
fn refund(n: u64) -> (String, String) {
    let (eligible, tax, _) = order_money(n);
    let event_id = format!("ev-refund-{n}");
    let body = square_event(
        "refund.updated",
        &event_id,
        json!({
            "id": format!("REF-{n}"), "status": "COMPLETED",
            "amount_money": {"amount": eligible + tax, "currency": "USD"},
            "payment_id": format!("PAY-{n}"), "order_id": format!("ORD-R{n}"), "location_id": "L1",
            "created_at": "2026-11-21T20:02:44.530Z", "updated_at": "2026-11-21T20:02:50.981Z"
        }),
    );
    (event_id, body)
}

/// POST a signed Square webhook, as Square's `retry`-th redelivery when `retry > 0`.
async fn post(d: &Daemon, body: &str, retry: u32) -> (u16, Value) {
    let mut mac = Hmac::<Sha256>::new_from_slice(SQUARE_KEY.as_bytes()).unwrap();
    mac.update(SQUARE_URL.as_bytes());
    mac.update(body.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let mut req = client()
        .post(d.url("/webhooks/demo/square"))
        .header("x-square-hmacsha256-signature", sig)
        .header("Content-Type", "application/json")
        .body(body.to_string());
    if retry > 0 {
        req = req
            .header("square-retry-number", retry.to_string())
            .header("square-retry-reason", "http_error");
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The value of a metric line starting with `name` (labels included), or 0.
async fn metric(d: &Daemon, name: &str) -> f64 {
    let text = client()
        .get(d.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Wait until the `loyaltyd_inbox_depth` gauge reads `depth` (it is updated after each
/// pass of the retry worker, about every second).
async fn wait_for_depth(d: &Daemon, depth: usize) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = metric(d, "loyaltyd_inbox_depth").await;
        if now == depth as f64 || Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn member(d: &Daemon, k: u64) -> Option<Value> {
    let (status, body) = admin_get(
        d,
        &format!("/v1/shops/demo/members/lookup?email={}", member_email(k)),
    )
    .await;
    match status {
        200 => Some(body),
        404 => None,
        _ => panic!("lookup answered {status}: {body}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn square_payments_during_a_long_orders_api_outage_are_each_scored_once_from_their_lines_when_it_returns(
) {
    let mut api = OrdersServer::start(Mode::Unavailable).await;
    let setup = Setup::with_square(&api.url());
    let config = setup.config_path();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "orders_timeout_ms = 1000",
        "orders_timeout_ms = 300\nmax_retry_backoff_secs = 2",
    );
    std::fs::write(&config, text).unwrap();
    let mut d = setup.start();

    // Every event delivered, for redelivery after the outage.
    let mut delivered: Vec<String> = Vec::new();
    // Distinct sale events acknowledged as queued.
    let mut queued: BTreeSet<String> = BTreeSet::new();
    let mut redeliveries = 0;
    let phases = [
        ("503 Service Unavailable", 0..16),
        ("connection refused", 16..32),
        ("no answer within the timeout", 32..PAYMENTS),
    ];
    let outage_started = Instant::now();
    for (phase, payments) in phases {
        match phase {
            "connection refused" => api.stop().await,
            "no answer within the timeout" => {
                api.set(Mode::Hanging);
                api.listen();
            }
            _ => {}
        }
        for n in payments {
            let mut events = vec![payment(n, "payment.updated")];
            if n % 4 == 0 {
                // The same payment also reported by payment.created: one business key.
                events.push(payment(n, "payment.created"));
            }
            for (event_id, body) in events {
                let (s, r) = post(&d, &body, 0).await;
                assert_eq!(
                    (s, r["status"].as_str()),
                    (200, Some("queued")),
                    "{phase}: {r}"
                );
                queued.insert(event_id);
                delivered.push(body);
            }
            // Square redelivers an earlier payment (it waits for a 2xx only briefly).
            if n >= 3 {
                let (_, body) = payment(n - 3, "payment.updated");
                let (s, r) = post(&d, &body, 1 + (n % 3) as u32).await;
                assert_eq!((s, r["status"].as_str()), (200, Some("queued")), "{r}");
                redeliveries += 1;
            }
            if REFUNDED.contains(&n) {
                // Refunded before the sale could be scored: kept, applied after it.
                let (_, body) = refund(n);
                let (s, r) = post(&d, &body, 0).await;
                assert_eq!((s, r["status"].as_str()), (200, Some("deferred")), "{r}");
                delivered.push(body);
            }
            if n == 24 {
                // kill -9 right after the last 200: every acknowledged event must still be
                // waiting after the restart.
                drop(d);
                d = setup.start();
                assert_eq!(wait_for_depth(&d, queued.len()).await, queued.len() as f64);
            }
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        // Nothing was scored without its lines.
        for k in 0..MEMBERS {
            if let Some(m) = member(&d, k).await {
                assert_eq!(m["points"]["available"], 0, "{phase}: {m}");
                assert_eq!(m["points"]["pending"], 0, "{phase}: {m}");
            }
        }
    }
    let outage = outage_started.elapsed();
    // While the API fails, webhooks are queued without waiting for it: after a failed
    // call nobody calls again for a 2 s pause (the cap here), so there are far fewer
    // calls than events (one each before the shared breaker).
    let calls = api.api.calls.load(Ordering::SeqCst);
    assert!(
        calls < queued.len() / 2,
        "{calls} Orders API calls for {} queued events in {outage:?}",
        queued.len()
    );
    assert_eq!(
        wait_for_depth(&d, queued.len()).await,
        queued.len() as f64,
        "inbox depth"
    );
    let calls_during_outage = api.api.calls.load(Ordering::SeqCst);
    let retries_during_outage = metric(
        &d,
        "loyaltyd_inbox_attempts_total{adapter=\"square\",outcome=\"retry\"}",
    )
    .await;

    // The API comes back.
    api.stop().await;
    api.set(Mode::Up);
    api.api.max_in_flight.store(0, Ordering::SeqCst);
    api.listen();
    let recovered = Instant::now();
    let drained = wait_for_depth(&d, 0).await;
    let drain_time = recovered.elapsed();
    assert_eq!(drained, 0.0, "the inbox did not drain");
    eprintln!(
        "outage {outage:?}: {} events queued ({redeliveries} redeliveries), {calls_during_outage} \
         Orders API calls during the outage ({retries_during_outage} by the retry worker); \
         drained {drain_time:?} after recovery",
        queued.len()
    );

    // Each payment scored exactly once, from its order's lines; refunds taken back.
    let mut expected: BTreeMap<u64, i64> = BTreeMap::new();
    for n in 0..PAYMENTS {
        if !REFUNDED.contains(&n) {
            *expected.entry(n % MEMBERS).or_default() += points_from_lines(n);
        }
    }
    let mut ids = Vec::new();
    for k in 0..MEMBERS {
        let m = member(&d, k).await.expect("member created by its payments");
        assert_eq!(m["points"]["available"], expected[&k], "member {k}: {m}");
        assert_eq!(m["points"]["pending"], 0);
        let id = m["id"].as_str().unwrap().to_string();
        let (status, ledger) = admin_get(
            &d,
            &format!("/v1/shops/demo/members/{id}/ledger?limit=1000"),
        )
        .await;
        assert_eq!(status, 200);
        let mut earned: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for e in ledger["entries"].as_array().unwrap() {
            if e["kind"] == "earn" {
                earned
                    .entry(e["order_id"].as_str().unwrap_or("").to_string())
                    .or_default()
                    .push(e["points"].as_i64().unwrap());
            }
        }
        let want: BTreeMap<String, Vec<i64>> = (0..PAYMENTS)
            .filter(|n| n % MEMBERS == k)
            .map(|n| (format!("PAY-{n}"), vec![points_from_lines(n)]))
            .collect();
        assert_eq!(earned, want, "member {k}'s earnings");
        ids.push(id);
    }
    // Every order was fetched once it could be (payment.created and .updated both ask).
    let served = api.api.served.lock().unwrap().clone();
    assert_eq!(served.len() as u64, PAYMENTS);
    // The backlog did not hammer the API: one request at a time while draining, and
    // during the outage about one call per webhook plus a probe per pause — far fewer
    // than every queued event retried on its own schedule.
    assert_eq!(api.api.max_in_flight.load(Ordering::SeqCst), 1);
    assert!(
        calls_during_outage < 2 * queued.len(),
        "{calls_during_outage} calls for {} events",
        queued.len()
    );

    // Redeliveries after the fact change nothing.
    for body in &delivered {
        let (s, r) = post(&d, body, 5).await;
        assert_eq!(s, 200, "{r}");
        assert!(
            r["duplicate"] == true || r["status"] == "already_scored",
            "{r}"
        );
    }
    for (k, id) in ids.iter().enumerate() {
        let (_, m) = admin_get(&d, &format!("/v1/shops/demo/members/{id}")).await;
        assert_eq!(m["points"]["available"], expected[&(k as u64)], "{m}");
    }
    assert_eq!(d.terminate().code(), Some(0));
    let (ok, out, err) = run_cli(&["verify", "--config", config.to_str().unwrap()]);
    assert!(ok, "verify: {out}{err}");
}

#[test]
fn a_retry_backoff_cap_outside_1_to_3600_seconds_is_refused_with_its_key() {
    let setup = Setup::with_square("http://127.0.0.1:9");
    let config = setup.config_path();
    let base = std::fs::read_to_string(&config).unwrap();
    for bad in ["0", "3601"] {
        std::fs::write(
            &config,
            base.replace(
                "orders_retries = 0",
                &format!("orders_retries = 0\nmax_retry_backoff_secs = {bad}"),
            ),
        )
        .unwrap();
        let (ok, _, err) = run_cli(&["check-config", "--config", config.to_str().unwrap()]);
        assert!(!ok);
        assert!(
            err.contains("shops[0].square.max_retry_backoff_secs")
                && err.contains("between 1 and 3600"),
            "{err}"
        );
    }
}
