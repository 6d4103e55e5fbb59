//! The journal as CSV for an accountant: one row per entry, stable columns.
//!
//! Columns: `seq, recorded_at, occurred_at, shop, kind, member_id, account, amount,
//! idempotency_key, order_id, reward, actor, reason, rule_ids, shortfall`.
//! `account` is `available`, `pending`, `issued`, `redeemed`, `expired`, `adjusted` or
//! `reversed`; the amounts of one `seq` sum to zero.

use std::io::Write;

use loyaltyd_adapter::ShopId;

use crate::ledger::{Ledger, LedgerError};

/// The header row.
pub const COLUMNS: [&str; 15] = [
    "seq",
    "recorded_at",
    "occurred_at",
    "shop",
    "kind",
    "member_id",
    "account",
    "amount",
    "idempotency_key",
    "order_id",
    "reward",
    "actor",
    "reason",
    "rule_ids",
    "shortfall",
];

/// Export failures.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading the ledger failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// Writing failed.
    #[error("cannot write the export: {0}")]
    Write(#[from] csv::Error),
}

/// Write every shop's journal; returns the number of rows written.
pub fn journal_csv<W: Write>(
    ledger: &Ledger,
    shops: &[ShopId],
    out: W,
    mut progress: impl FnMut(u64),
) -> Result<u64, ExportError> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(COLUMNS)?;
    let mut rows = 0;
    for shop in shops {
        for p in ledger.journal(shop) {
            let p = p?;
            let rule_ids: Vec<&str> = p.explanation.iter().map(|c| c.rule_id.as_str()).collect();
            for e in &p.entries {
                let member = match &e.account {
                    crate::ledger::journal::Account::MemberAvailable(m)
                    | crate::ledger::journal::Account::MemberPending(m) => m.to_string(),
                    _ => p.member.to_string(),
                };
                w.write_record([
                    p.seq.to_string(),
                    p.recorded_at.to_rfc3339(),
                    p.occurred_at.to_rfc3339(),
                    shop.to_string(),
                    p.kind.as_str().to_string(),
                    member,
                    e.account.name().to_string(),
                    e.amount.0.to_string(),
                    p.idempotency_key.clone(),
                    p.order_id.clone().unwrap_or_default(),
                    p.reward.clone().unwrap_or_default(),
                    p.actor.clone().unwrap_or_default(),
                    p.reason.clone().unwrap_or_default(),
                    rule_ids.join(" "),
                    p.shortfall.0.to_string(),
                ])?;
                rows += 1;
            }
            progress(p.seq);
        }
    }
    w.flush().map_err(csv::Error::from)?;
    Ok(rows)
}
