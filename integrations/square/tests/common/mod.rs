//! Helpers shared by the Square adapter's tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use loyaltyd_adapter::{EventEnvelope, RawRequest, Secret, ShopId};
use loyaltyd_square::{OrdersApi, SquareAdapter, SquareSettings};
use serde::Deserialize;

/// The notification URL every demo fixture is signed for.
pub const DEMO_URL: &str = "https://loyalty.example.com/webhooks/demo/square";
/// The signature key every demo fixture is signed with.
pub const DEMO_KEY: &str = "demo-square-signature-key";

/// JSON files in `fixtures/` that are not webhook bodies.
pub const NOT_BODIES: [&str; 2] = ["signature-vectors.json", "cases.json"];

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

pub fn read(relative: &str) -> Vec<u8> {
    let path = fixtures().join(relative);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One line of `fixtures/signature-vectors.json`.
#[derive(Debug, Deserialize)]
pub struct Vector {
    pub file: String,
    pub url: String,
    pub secret: String,
    pub signature: String,
    pub command: String,
}

pub fn vectors() -> Vec<Vector> {
    serde_json::from_slice(&read("signature-vectors.json")).unwrap()
}

/// An adapter with the given keys and URL and no Orders API.
pub fn adapter(keys: &[&str], url: &str) -> SquareAdapter {
    SquareAdapter::new(SquareSettings {
        signature_keys: keys.iter().map(|k| Secret::new(*k)).collect(),
        notification_url: url.to_string(),
        orders: None,
    })
    .unwrap()
}

/// The demo shop's adapter, optionally with an Orders API.
pub fn demo_adapter(orders: Option<OrdersApi>) -> SquareAdapter {
    SquareAdapter::new(SquareSettings {
        signature_keys: vec![Secret::new(DEMO_KEY)],
        notification_url: DEMO_URL.to_string(),
        orders,
    })
    .unwrap()
}

/// A request for the demo shop, with the signature header when given.
pub fn request(body: Vec<u8>, signature: Option<&str>) -> RawRequest {
    let mut headers = http::HeaderMap::new();
    if let Some(sig) = signature {
        headers.insert("x-square-hmacsha256-signature", sig.parse().unwrap());
    }
    headers.insert("square-environment", "Production".parse().unwrap());
    RawRequest {
        shop: ShopId::new("demo").unwrap(),
        headers,
        body: body.into(),
        received_at: chrono::Utc::now(),
    }
}

/// A hand-written expected event (`fixtures/expected/...`).
pub fn expected(relative: &str) -> EventEnvelope {
    serde_json::from_slice(&read(&format!("expected/{relative}"))).unwrap()
}
