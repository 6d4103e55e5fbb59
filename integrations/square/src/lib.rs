//! Square webhooks → loyaltyd canonical events (work in progress).
