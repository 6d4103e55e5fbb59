//! `POST /v1/backup` (admin role): a consistent snapshot of every sled tree, streamed
//! in the backup format of [`crate::ops::backup`].
//!
//! The trees are copied while ledger writes are paused (webhooks and API writes wait
//! for the copy, then go on); the answer is streamed from that copy afterwards.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

use super::error::ApiError;
use super::AppState;
use crate::ops::backup::{snapshot, Encoder};

/// The backup route, behind the admin token check (the `admin` role).
pub fn router(state: Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/backup", post(backup))
        .method_not_allowed_fallback(super::error::method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state,
            super::auth::require_token,
        ))
}

/// Chunks of encoded output sent to the client at a time.
const CHUNK: usize = 256 * 1024;

/// A `Write` that hands full chunks to the response stream.
struct ChunkWriter {
    buf: Vec<u8>,
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::other("the client went away"))
    }
}

/// A consistent snapshot of every tree, streamed in the backup format (`loyaltyd
/// restore` reads it). Ledger writes wait while the trees are copied.
#[utoipa::path(
    post,
    path = "/v1/backup",
    operation_id = "backup",
    tag = "operations",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The backup, one JSON record a line", content_type = "application/x-ndjson", body = String,
            headers(("Content-Disposition" = String, description = "`attachment; filename=\"loyaltyd.backup\"`"))),
        (status = 401, description = "`unauthorized`", body = super::error::ErrorBody),
        (status = 403, description = "`forbidden_role` (needs `admin`)", body = super::error::ErrorBody),
        (status = 503, description = "`storage_unavailable`", body = super::error::ErrorBody),
    )
)]
async fn backup(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let ledger = state.ledger.clone();
    let started = std::time::Instant::now();
    let records = tokio::task::spawn_blocking(move || snapshot(&ledger))
        .await
        .map_err(|e| ApiError::storage(&e))?
        .map_err(|e| ApiError::storage(&e))?;
    let trees = {
        let mut names: Vec<&[u8]> = records.iter().map(|r| r.tree.as_slice()).collect();
        names.dedup();
        names.len()
    };
    tracing::info!(
        records = records.len(),
        trees,
        paused_ms = started.elapsed().as_millis() as u64,
        "backup snapshot taken"
    );
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let w = ChunkWriter {
            buf: Vec::with_capacity(CHUNK),
            tx: tx.clone(),
        };
        let result = (|| {
            let mut e = Encoder::new(w, trees)?;
            for r in &records {
                e.record(r)?;
            }
            e.finish()
        })();
        if let Err(e) = result {
            let _ = tx.blocking_send(Err(e));
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"loyaltyd.backup\"",
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
