#![doc = include_str!("../FORMAT.md")]

mod definition;
mod json;
mod mapping;
mod pointer;
mod signature;

use std::fmt;
use std::sync::Arc;

use loyaltyd_adapter::{Adapter, ParseError, Parsed, RawRequest, Secret, VerifyError};

use crate::definition::{Message, Spec};

/// The WooCommerce definition shipped with loyaltyd (`integrations/declarative/woocommerce.toml`).
pub const WOOCOMMERCE: &str = include_str!("../woocommerce.toml");

/// Every definition shipped with loyaltyd, for a daemon that offers them all.
pub const BUILTIN: &[&str] = &[WOOCOMMERCE];

/// A definition that cannot be used, naming the key at fault.
///
/// ```
/// use loyaltyd_declarative::Definition;
/// let e = Definition::parse("name = \"acme\"\n[signature]\nheader = \"X-Sig\"\nalgorithm = \"md5\"\nencoding = \"hex\"")
///     .unwrap_err();
/// assert_eq!(e.key, "signature.algorithm");
/// assert!(e.to_string().contains("unknown algorithm \"md5\""));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct DefinitionError {
    /// The dotted key at fault (`sale.line.quantity`, `rules[2].emit`); empty when the
    /// text is not TOML at all.
    pub key: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for DefinitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "adapter definition: {}", self.message)
        } else {
            write!(f, "adapter definition key `{}`: {}", self.key, self.message)
        }
    }
}

/// A checked adapter definition: load it once, then make one [`DeclarativeAdapter`] per
/// shop with that shop's secrets. Cloning is cheap (the definition is shared).
#[derive(Clone)]
pub struct Definition {
    spec: Arc<Spec>,
}

impl fmt::Debug for Definition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Definition")
            .field("name", &self.spec.name)
            .finish_non_exhaustive()
    }
}

impl Definition {
    /// Parse and check a definition (see the crate documentation for the format).
    ///
    /// ```
    /// let wc = loyaltyd_declarative::Definition::parse(loyaltyd_declarative::WOOCOMMERCE).unwrap();
    /// assert_eq!(wc.name(), "woocommerce");
    /// assert!(!wc.requires_notification_url());
    /// ```
    pub fn parse(text: &str) -> Result<Definition, DefinitionError> {
        Ok(Definition {
            spec: Arc::new(definition::parse(text)?),
        })
    }

    /// The adapter's name: the URL segment in `/webhooks/{shop}/{name}` and the name of
    /// the shop's config table `[shops.{name}]`.
    ///
    /// It is `&'static` because [`Adapter::name`] is: each distinct name is leaked once
    /// (interned), so loading a definition again, or for many shops, allocates nothing new.
    pub fn name(&self) -> &'static str {
        self.spec.name
    }

    /// The definition's `description`, if any.
    pub fn description(&self) -> Option<&str> {
        self.spec.description.as_deref()
    }

    /// Whether the signature covers the shop's notification URL (`message = "url+body"`),
    /// so that each shop must configure `notification_url`.
    pub fn requires_notification_url(&self) -> bool {
        self.spec.signature.message == Message::UrlAndBody
    }

    /// The adapter for one shop: its secrets (the current one first, then any older ones
    /// still accepted during a rotation) and, for `url+body` signatures, its notification
    /// URL exactly as registered with the sender.
    ///
    /// Without a URL where one is needed, every request fails verification (401); use
    /// [`Definition::requires_notification_url`] or [`DeclarativeAdapter::from_toml`] to
    /// refuse such a configuration at start-up instead.
    pub fn adapter(
        &self,
        secrets: Vec<Secret>,
        notification_url: Option<String>,
    ) -> DeclarativeAdapter {
        DeclarativeAdapter {
            definition: self.clone(),
            secrets,
            notification_url,
        }
    }
}

/// An [`Adapter`] driven by a [`Definition`], for one shop.
///
/// ```
/// use loyaltyd_adapter::{Adapter, Parsed, RawRequest, Secret, ShopId, signature};
/// use loyaltyd_declarative::{DeclarativeAdapter, WOOCOMMERCE};
///
/// let adapter = DeclarativeAdapter::from_toml(WOOCOMMERCE, vec![Secret::new("hush")], None).unwrap();
/// assert_eq!(adapter.name(), "woocommerce");
/// let body = br#"{"id": 5, "status": "pending"}"#;
/// let sig = signature::base64_encode(&signature::hmac_sha256(b"hush", &[body]));
/// let mut headers = http::HeaderMap::new();
/// headers.insert("X-WC-Webhook-Signature", sig.parse().unwrap());
/// headers.insert("X-WC-Webhook-Topic", "order.created".parse().unwrap());
/// headers.insert("X-WC-Webhook-Delivery-ID", "d-1".parse().unwrap());
/// let req = RawRequest { shop: ShopId::new("demo").unwrap(), headers, body: body.to_vec().into(),
///     received_at: chrono::Utc::now() };
/// adapter.verify(&req).unwrap();
/// assert!(matches!(adapter.parse(&req).unwrap(), Parsed::Ignored { .. }));
/// ```
#[derive(Debug, Clone)]
pub struct DeclarativeAdapter {
    definition: Definition,
    secrets: Vec<Secret>,
    notification_url: Option<String>,
}

impl DeclarativeAdapter {
    /// Parse `text` and build the adapter for one shop in one step. Unlike
    /// [`Definition::adapter`], this refuses a `url+body` definition without a URL.
    pub fn from_toml(
        text: &str,
        secrets: Vec<Secret>,
        notification_url: Option<String>,
    ) -> Result<DeclarativeAdapter, DefinitionError> {
        let definition = Definition::parse(text)?;
        if definition.requires_notification_url()
            && notification_url.as_deref().is_none_or(str::is_empty)
        {
            return Err(DefinitionError {
                key: "signature.message".into(),
                message: format!(
                    "\"url+body\" signs the notification URL: configure [shops.{}] notification_url",
                    definition.name()
                ),
            });
        }
        Ok(definition.adapter(secrets, notification_url))
    }

    /// The definition this adapter runs.
    pub fn definition(&self) -> &Definition {
        &self.definition
    }
}

impl Adapter for DeclarativeAdapter {
    fn name(&self) -> &'static str {
        self.definition.name()
    }

    fn verify(&self, request: &RawRequest) -> Result<(), VerifyError> {
        signature::verify(
            &self.definition.spec.signature,
            &self.secrets,
            self.notification_url.as_deref(),
            request,
        )
    }

    fn parse(&self, request: &RawRequest) -> Result<Parsed, ParseError> {
        mapping::parse(&self.definition.spec, request)
    }
}
