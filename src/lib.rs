//! loyaltyd: a self-hosted loyalty engine. Signed POS webhooks in, an exactly-once
//! points ledger in sled, member notifications out.
//!
//! # Layout
//! Data flows one way: adapters → rules → ledger → notifier.
//! - [`cli`]: the command line (`serve`, `check-config`, `sign`); `main.rs` only calls it.
//! - [`config`]: the one typed configuration, TOML plus `LOYALTYD__*` overrides.
//! - [`serve`]: start-up and graceful shutdown of the daemon.
//! - [`http`]: webhook endpoint, admin API, health; JSON errors.
//! - [`adapters`]: each shop's configured POS adapters.
//! - [`ingest`]: the path of one webhook: verify → parse → dedupe → score → post → durable.
//! - [`retry`]: events waiting for the sender's API (Square orders), retried until applied.
//! - [`rules`]: a shop's rules file and the pure `score` function.
//! - [`ledger`]: double-entry journal, balances, dedupe records and group commit in sled.
//! - [`notify`]: the transactional outbox and the worker that delivers it.
//! - [`report`]: liability report and journal export.
//! - [`metrics`]: Prometheus counters and histograms.
//! - [`ops`]: operator tools: admin API client, backup format and restore, progress.
//! - [`member`], [`points`]: domain types (member ids, identities, points).
//!
//! POS adapters live in their own crates under `integrations/` (the SDK is
//! `loyaltyd-adapter`).

pub mod adapters;
pub mod breaker;
pub mod cli;
pub mod config;
pub mod http;
pub mod ingest;
pub mod ledger;
pub mod member;
pub mod metrics;
pub mod notify;
pub mod ops;
pub mod points;
pub mod report;
pub mod retry;
pub mod rules;
pub mod serve;
