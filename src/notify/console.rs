//! The console sink: `cargo run -- serve` works offline and still shows what members
//! would be told. Lines go to stdout and, if configured, are appended to a file.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use super::outbox::{Notice, OutboxMessage};
use super::{DeliveryError, Sink};
use crate::ledger::journal::PostingKind;

/// Prints notifications.
pub struct ConsoleSink {
    file: Option<Mutex<std::fs::File>>,
}

impl ConsoleSink {
    /// A sink printing to stdout and, when `file` is set, appending there too.
    pub fn new(file: Option<PathBuf>) -> std::io::Result<ConsoleSink> {
        let file = match file {
            Some(p) => {
                if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)?;
                }
                Some(Mutex::new(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(p)?,
                ))
            }
            None => None,
        };
        Ok(ConsoleSink { file })
    }
}

/// The line printed for a message.
pub fn render(msg: &OutboxMessage) -> String {
    let (kind, points, available, pending, pending_until) = match &msg.notice {
        Notice::Posted {
            kind,
            points,
            available,
            pending,
            pending_until,
            ..
        } => (kind, points, available, pending, pending_until),
        Notice::ExpiringSoon {
            points,
            expires_at,
            available,
        } => {
            return format!(
                "[{}] member {} has {points} points expiring on {}, balance {available}",
                msg.shop,
                msg.member,
                expires_at.format("%Y-%m-%d")
            );
        }
        Notice::RewardUnlocked {
            name,
            cost,
            available,
            ..
        } => {
            return format!(
                "[{}] member {} can now redeem {name} ({cost} points), balance {available}",
                msg.shop, msg.member
            );
        }
        Notice::TierChanged { from, to } => {
            let name = |t: &Option<String>| t.clone().unwrap_or_else(|| "no".into());
            return format!(
                "[{}] member {} moved from {} tier to {} tier",
                msg.shop,
                msg.member,
                name(from),
                name(to)
            );
        }
    };
    let what = match kind {
        PostingKind::Earn => match pending_until {
            Some(t) => format!(
                "earned {points} points (pending until {})",
                t.format("%Y-%m-%d")
            ),
            None => format!("earned {points} points"),
        },
        PostingKind::Mature => format!("has {points} pending points now available"),
        PostingKind::Redeem => format!("redeemed {points} points"),
        PostingKind::RedemptionReturn => format!("got back {points} redeemed points"),
        PostingKind::Adjust if points.0 >= 0 => format!("was credited {points} points"),
        PostingKind::Adjust => format!("was debited {} points", -*points),
        PostingKind::Reverse => format!("lost {points} points (refund)"),
        PostingKind::Expire => format!("had {points} points expire"),
        PostingKind::TierChange => "changed tier".to_string(),
        PostingKind::Bonus => format!("received {points} bonus points"),
        // Imports queue no message; this only words one if a retry ever builds it.
        PostingKind::Imported => format!("had {points} points imported"),
        PostingKind::Merge => format!("had {points} points merged in from another account"),
    };
    let pending = if pending.0 != 0 {
        format!(" ({pending} pending)")
    } else {
        String::new()
    };
    format!(
        "[{}] member {} {what}, balance {available}{pending}",
        msg.shop, msg.member
    )
}

impl Sink for ConsoleSink {
    async fn deliver(&self, msg: &OutboxMessage) -> Result<(), DeliveryError> {
        let line = render(msg);
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{line}").map_err(|e| DeliveryError(e.to_string()))?;
            out.flush().map_err(|e| DeliveryError(e.to_string()))?;
        }
        if let Some(f) = &self.file {
            let mut f = f
                .lock()
                .map_err(|_| DeliveryError("file lock poisoned".into()))?;
            writeln!(f, "{line}").map_err(|e| DeliveryError(e.to_string()))?;
        }
        Ok(())
    }
}
