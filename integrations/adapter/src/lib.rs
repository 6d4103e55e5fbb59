//! The loyaltyd adapter SDK.
//!
//! An adapter turns one point-of-sale system's signed webhook into loyaltyd's canonical
//! [`PosEvent`]. Adding an adapter never touches the rules, the ledger or the notifier.
//!
//! # Layout
//! - [`event`]: the canonical event types ([`EventEnvelope`], [`PosEvent`], [`Sale`], ...)
//!   and the domain primitives they are built from ([`ShopId`], [`Currency`], [`Money`]).
//! - [`adapter`]: the [`Adapter`] trait, the [`RawRequest`] an adapter sees and the
//!   [`Parsed`] result it returns.
//! - [`signature`]: HMAC-SHA256 and HMAC-SHA1 helpers, base64 or hex ([`Scheme`]), that
//!   verify signatures over raw bytes in constant time, accepting any of several secrets
//!   during a rotation.
//! - [`conformance`]: a kit every adapter crate runs from its tests: recorded fixtures
//!   listed in a `cases.json` manifest must give the expected events, ignores and
//!   rejections, and generic properties (tampered or truncated bodies and missing
//!   signatures are rejected, a redelivery keeps its event id) must hold.
//!
//! # Writing an adapter
//! ```
//! use loyaltyd_adapter::{Adapter, Parsed, ParseError, RawRequest, Secret, VerifyError, signature};
//!
//! struct Acme { secrets: Vec<Secret> }
//!
//! impl Adapter for Acme {
//!     fn name(&self) -> &'static str { "acme" }
//!     fn verify(&self, req: &RawRequest) -> Result<(), VerifyError> {
//!         let sig = req.header("x-acme-signature").ok_or(VerifyError::MissingHeader("x-acme-signature"))?;
//!         signature::verify_hmac_sha256_base64(&self.secrets, &[&req.body], sig)
//!     }
//!     fn parse(&self, req: &RawRequest) -> Result<Parsed, ParseError> {
//!         Ok(Parsed::ignored("acme-1", "ping", "acme pings carry no sale"))
//!     }
//! }
//! ```

pub mod adapter;
pub mod conformance;
pub mod event;
pub mod signature;

pub use adapter::{
    Adapter, EnrichError, EnrichFuture, ParseError, Parsed, RawRequest, VerifyError,
};
pub use event::{
    Cancel, Consent, Currency, CustomerRef, CustomerUpsert, EventEnvelope, Money, PosEvent, Refund,
    RefundLine, Sale, SaleLine, ShopId,
};
pub use signature::{Scheme, Secret};
