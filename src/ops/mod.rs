//! Operator tools behind the CLI: progress reporting, the admin API client used by
//! `loyaltyd member …` and `loyaltyd backup`, and the backup file format with
//! `loyaltyd restore`.

pub mod backup;
pub mod client;
pub mod member;
pub mod progress;
