//! Telling members about their points.
//!
//! - [`outbox`]: messages written in the ledger's transaction (nothing lost on a crash).
//! - [`console`]: the embedded default sink, printing one line per message.
//! - [`worker`]: moves messages from the outbox to a sink and marks them sent.

pub mod console;
pub mod outbox;
pub mod providers;
pub mod segments;
pub mod templates;
pub mod worker;

use std::future::Future;

use outbox::OutboxMessage;

/// A delivery failed; the message stays in the outbox and is tried again.
#[derive(Debug, thiserror::Error)]
#[error("delivery failed: {0}")]
pub struct DeliveryError(pub String);

/// Somewhere messages can be delivered.
pub trait Sink: Send + Sync + 'static {
    /// Deliver one message.
    fn deliver(
        &self,
        msg: &OutboxMessage,
    ) -> impl Future<Output = Result<(), DeliveryError>> + Send;
}
