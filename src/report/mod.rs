//! Reports for finance: the points liability over a period and the journal export.
//!
//! - [`liability`]: opening/closing outstanding points, movements, liability in
//!   currency, breakage and lot ageing.
//! - [`export`]: the journal as CSV, one row per entry.
//! - [`period`]: reading `from` / `to` in the shop's time zone.

pub mod activity;
pub mod export;
pub mod liability;
pub mod period;
pub mod whatif;
