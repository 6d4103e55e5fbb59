//! End to end: hostile and malformed input against the running daemon. Each case
//! asserts the status, the JSON error body, and that the ledger did not change.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::*;

/// Postings in the shop's journal so far (from the activity report).
async fn postings(d: &Daemon) -> u64 {
    let (s, r) = admin_get(d, "/v1/shops/demo/reports/activity").await;
    assert_eq!(s, 200, "{r}");
    r["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["postings"].as_u64().unwrap())
        .sum()
}

/// POST a Shopify webhook with full control over the headers.
async fn raw_shopify(
    d: &Daemon,
    path: &str,
    body: Vec<u8>,
    headers: &[(&str, String)],
) -> (u16, serde_json::Value) {
    let mut req = client().post(d.url(path)).body(body);
    for (k, v) in headers {
        req = req.header(*k, v.as_str());
    }
    let r = req.send().await.unwrap();
    let s = r.status().as_u16();
    let text = r.text().await.unwrap();
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{path}: {s} answer is not JSON ({e}): {text:?}"));
    (s, json)
}

fn signed(body: &[u8], webhook_id: &str) -> Vec<(&'static str, String)> {
    vec![
        ("X-Shopify-Topic", "orders/paid".into()),
        ("X-Shopify-Webhook-Id", webhook_id.into()),
        (
            "X-Shopify-Hmac-Sha256",
            shopify_signature(SHOPIFY_SECRET, body),
        ),
        ("Content-Type", "application/json".into()),
    ]
}

/// (name, headers, body, expected status, expected error code)
type SignatureCase = (
    &'static str,
    Vec<(&'static str, String)>,
    Vec<u8>,
    u16,
    &'static str,
);

fn code(v: &serde_json::Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<no error.code>")
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_stale_reused_and_malformed_webhooks_are_refused_with_json_and_change_nothing() {
    let setup = Setup::new(1024 * 1024);
    let d = setup.start();
    let (s, _) = post_shopify(
        &d,
        "demo",
        "orders/paid",
        "wh-ok",
        &order(1),
        SHOPIFY_SECRET,
    )
    .await;
    assert_eq!(s, 200);
    let before = postings(&d).await;
    let path = "/webhooks/demo/shopify";
    let body = order(2);
    let mut tried = 0;

    // Signatures: wrong secret, missing, garbage, another body's (reused), stale.
    let cases: Vec<SignatureCase> = vec![
        (
            "wrong secret",
            {
                let mut h = signed(&body, "wh-a");
                h[2].1 = shopify_signature("not-the-secret", &body);
                h
            },
            body.clone(),
            401,
            "invalid_signature",
        ),
        (
            "missing signature",
            signed(&body, "wh-b")
                .into_iter()
                .filter(|(k, _)| *k != "X-Shopify-Hmac-Sha256")
                .collect(),
            body.clone(),
            401,
            "invalid_signature",
        ),
        (
            "garbage signature",
            {
                let mut h = signed(&body, "wh-c");
                h[2].1 = "!!not base64!!".into();
                h
            },
            body.clone(),
            401,
            "invalid_signature",
        ),
        (
            "signature of another body (reused)",
            signed(&order(1), "wh-d"),
            body.clone(),
            401,
            "invalid_signature",
        ),
        (
            "stale delivery (triggered 3 days ago)",
            {
                let mut h = signed(&body, "wh-e");
                h.push((
                    "X-Shopify-Triggered-At",
                    (chrono::Utc::now() - chrono::Duration::days(3)).to_rfc3339(),
                ));
                h
            },
            body.clone(),
            401,
            "stale_event",
        ),
    ];
    for (name, headers, body, status, expected) in cases {
        let (s, r) = raw_shopify(&d, path, body, &headers).await;
        assert_eq!((s, code(&r)), (status, expected), "{name}: {r}");
        tried += 1;
    }

    // Bodies that are signed but malformed: not JSON, deeply nested, huge numbers,
    // negative amounts, wrong types. Refused 400 (or recorded as ignored), never a crash.
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let huge = String::from_utf8(order(3))
        .unwrap()
        .replace(
            "\"total_price\": \"",
            "\"total_price\": \"99999999999999999999999999999999999",
        )
        .replace("\"price\": \"", "\"price\": \"1e400");
    let negative = String::from_utf8(order(4))
        .unwrap()
        .replace("\"price\": \"", "\"price\": \"-");
    let wrong_types = r#"{"id": "not-a-number", "line_items": "nope", "customer": 7}"#.to_string();
    let truncated = String::from_utf8(order(5)).unwrap()[..200].to_string();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("not JSON", b"<xml>hello</xml>".to_vec()),
        ("deeply nested JSON", nested.into_bytes()),
        ("huge numbers", huge.into_bytes()),
        ("negative amounts", negative.into_bytes()),
        ("wrong types", wrong_types.into_bytes()),
        ("truncated JSON", truncated.into_bytes()),
        ("empty body", Vec::new()),
    ];
    for (i, (name, body)) in cases.into_iter().enumerate() {
        let headers = signed(&body, &format!("wh-m{i}"));
        let (s, r) = raw_shopify(&d, path, body, &headers).await;
        assert!(
            s == 400 || (s == 200 && r["status"] == "ignored"),
            "{name}: {s} {r}"
        );
        if s == 400 {
            assert!(!code(&r).is_empty(), "{name}: {r}");
        }
        tried += 1;
    }

    // Unknown shop, path traversal in the shop id, unknown adapter.
    for p in [
        "/webhooks/nope/shopify",
        "/webhooks/..%2F..%2Fetc%2Fpasswd/shopify",
        "/webhooks/demo%00/shopify",
        "/webhooks/demo/../../v1/shops/demo/members",
        "/webhooks/demo/nope",
    ] {
        let headers = signed(&body, "wh-p");
        let (s, r) = raw_shopify(&d, p, body.clone(), &headers).await;
        // (`..` segments are resolved by the client: that one lands on the admin API,
        // which wants a token.)
        assert!(matches!(s, 400 | 401 | 404), "{p}: {s} {r}");
        assert!(!code(&r).is_empty(), "{p}: {r}");
        tried += 1;
    }

    // Unicode in names and SKUs is stored as given.
    let unicode = String::from_utf8(order(6))
        .unwrap()
        .replace(
            "\"first_name\": \"Ada\"",
            "\"first_name\": \"Zoë 🌱 Łukasz\"",
        )
        .replace("CB-12OZ", "KAFFEE-Ü-☕");
    let (s, r) = post_shopify(
        &d,
        "demo",
        "orders/paid",
        "wh-u",
        unicode.as_bytes(),
        SHOPIFY_SECRET,
    )
    .await;
    assert_eq!(s, 200, "{r}");
    tried += 1;
    assert_eq!(
        postings(&d).await,
        before + 1,
        "only the valid unicode sale posted"
    );
    eprintln!("hostile inputs tried: {tried}");
    assert!(d.terminate().success());
    let (ok, out, err) = run_cli(&["verify", "--config", setup.config_path().to_str().unwrap()]);
    assert!(ok, "{out}{err}");
}

#[test]
fn a_body_sent_too_slowly_times_out_with_a_json_408_and_nothing_is_stored() {
    let setup = Setup::new(64 * 1024);
    let path = setup.config_path();
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "max_body_bytes = 65536",
        "max_body_bytes = 65536\nrequest_timeout_secs = 1",
    );
    std::fs::write(&path, text).unwrap();
    let d = setup.start();
    let addr = d.base.trim_start_matches("http://").to_string();
    let body = order(1);
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "POST /webhooks/demo/shopify HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nX-Shopify-Topic: orders/paid\r\nX-Shopify-Webhook-Id: wh-slow\r\nX-Shopify-Hmac-Sha256: {}\r\nContent-Length: {}\r\n\r\n",
        shopify_signature(SHOPIFY_SECRET, &body),
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    // A slow-loris body: a few bytes, then silence past the deadline.
    s.write_all(&body[..10]).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"request_timeout\""), "{answer}");
    drop(s);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (_, m) = admin_get(&d, "/v1/shops/demo/members/lookup?email=ada@example.com").await;
        assert_eq!(m["error"]["code"], "unknown_member", "nothing stored: {m}");
    });
    assert!(d.terminate().success());
}

/// Whether the server closed `s` (EOF or reset) before our own 10 s read deadline.
fn closed_by_server(s: &mut std::net::TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // an error answer before the close is fine
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false, // our deadline: the server kept it open
        }
    }
}

#[test]
fn headers_trickled_or_never_sent_are_cut_off_and_other_clients_are_still_served() {
    let setup = Setup::new(64 * 1024);
    let path = setup.config_path();
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "max_body_bytes = 65536",
        "max_body_bytes = 65536\nheader_timeout_secs = 1\nmax_connections = 8",
    );
    std::fs::write(&path, text).unwrap();
    let d = setup.start();
    let addr = d.base.trim_start_matches("http://").to_string();

    // Every connection slot taken by a slow-loris client: half send a request line and
    // then one header byte at a time, half connect and send nothing.
    let mut stalled = Vec::new();
    for i in 0..8 {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        if i % 2 == 0 {
            s.write_all(b"POST /webhooks/demo/shopify HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .unwrap();
        }
        stalled.push(s);
    }
    let trickler = {
        let mut s = stalled[0].try_clone().unwrap();
        std::thread::spawn(move || {
            // One byte every 200 ms: each byte arrives well inside any per-read timeout,
            // only a deadline on the whole header stops this client.
            for _ in 0..100 {
                if s.write_all(b"a").is_err() {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            false
        })
    };

    // A real webhook still gets through: it waits for a slot, which frees up when the
    // stalled clients are cut off.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (status, body) = post_shopify(
            &d,
            "demo",
            "orders/paid",
            "wh-after-loris",
            &order(77),
            SHOPIFY_SECRET,
        )
        .await;
        assert_eq!(status, 200, "{body}");
    });
    for (i, s) in stalled.iter_mut().enumerate() {
        assert!(closed_by_server(s), "stalled connection {i} was left open");
    }
    assert!(
        trickler.join().unwrap(),
        "the server kept reading a header sent a byte at a time"
    );
    assert!(d.terminate().success());
}
