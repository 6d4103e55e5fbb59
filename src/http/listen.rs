//! The accept loop: HTTP/1.1 connections with a deadline on request headers and a cap
//! on open connections.
//!
//! `axum::serve` gives hyper no timer, so a client that sends its headers a byte at a
//! time (slow-loris) could hold a connection and its task forever; the request
//! timeout only starts once the headers are in. Here hyper gets a timer and
//! `header_read_timeout`, and at most `max_connections` are served at once (more wait in
//! the kernel's accept queue instead of costing memory).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Connection limits (`[server]` keys `header_timeout_secs` and `max_connections`).
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// Longest time a client may take to send a request's headers (also how long an idle
    /// keep-alive connection may wait for its next request).
    pub header_timeout: Duration,
    /// Most connections served at once.
    pub max_connections: usize,
    /// How long open requests may run on after shutdown is asked for.
    pub drain: Duration,
}

/// Serve `router` on `listener` until `shutdown` completes, then let open requests
/// finish (up to `limits.drain`).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break, // the semaphore is never closed
            },
            _ = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(router.clone());
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection closed with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(limits.drain) => {
            tracing::warn!(drain_secs = limits.drain.as_secs(), "requests still open after the drain time; closing them");
        }
    }
}
