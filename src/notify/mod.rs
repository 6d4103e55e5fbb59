//! Telling members about their points.
//!
//! - [`outbox`]: messages written in the ledger's transaction (nothing lost on a crash).
//! - [`delivery`]: per-channel delivery state, dead letters, opted-out phones.
//!   [`waiting`]: the outbox's size, kept from its subscription.
//! - [`worker`]: due messages → consent, quiet hours, coalescing → templates →
//!   providers, with retries, backoff and a rate limit.
//! - [`templates`] + [`segments`]: minijinja templates per event kind and channel, SMS
//!   length in GSM-7 / UCS-2 segments. [`render`]: message → template context.
//! - [`providers`]: Twilio, SendGrid, Mailgun, SMTP. [`console`]: the offline default.

pub mod console;
pub mod delivery;
pub mod outbox;
pub mod providers;
pub mod render;
pub mod segments;
pub mod setup;
pub mod templates;
pub mod waiting;
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
