//! The console sink: `cargo run -- serve` works offline and still shows what members
//! would be told. Lines go to stdout and, if configured, are appended to a file.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use super::outbox::{Notice, OutboxMessage};
use super::{DeliveryError, Sink};

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
    match &msg.notice {
        Notice::Earned { points, balance } => format!(
            "[{}] member {} earned {} points, balance {}",
            msg.shop, msg.member, points, balance
        ),
    }
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
