//! The adapters each shop has configured, built once from the config.

use std::collections::HashMap;
use std::sync::Arc;

use loyaltyd_adapter::{Adapter, ShopId};

use crate::breaker::ApiBreakers;
use crate::config::Config;

/// Adapter instances by shop and adapter name.
#[derive(Clone, Default)]
pub struct AdapterRegistry {
    adapters: HashMap<(ShopId, String), Arc<dyn Adapter>>,
    /// The breakers of the sender APIs these adapters call (shared by clones).
    breakers: ApiBreakers,
}

/// A shop names an adapter that cannot be built.
#[derive(Debug, thiserror::Error)]
#[error("{file}: shops[{index}].{adapter}: {message}")]
pub struct RegistryError {
    /// Config file.
    pub file: String,
    /// Shop index.
    pub index: usize,
    /// Adapter table.
    pub adapter: String,
    /// Why.
    pub message: String,
}

impl AdapterRegistry {
    /// Build every configured adapter.
    pub fn from_config(config: &Config) -> Result<AdapterRegistry, RegistryError> {
        let definitions = loyaltyd_declarative::BUILTIN
            .iter()
            .map(|text| loyaltyd_declarative::Definition::parse(text))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| RegistryError {
                file: "built-in adapter definitions".into(),
                index: 0,
                adapter: "-".into(),
                message: e.to_string(),
            })?;
        let mut adapters: HashMap<(ShopId, String), Arc<dyn Adapter>> = HashMap::new();
        for (index, shop) in config.shops.iter().enumerate() {
            let err = |adapter: &str, message: String| RegistryError {
                file: config.file.display().to_string(),
                index,
                adapter: adapter.to_string(),
                message,
            };
            if let Some(s) = &shop.shopify {
                let a = loyaltyd_shopify::ShopifyAdapter::with_settings(
                    loyaltyd_shopify::ShopifySettings {
                        secrets: s.secrets.clone(),
                        earn_on: if s.earn_on_create {
                            loyaltyd_shopify::EarnOn::Create
                        } else {
                            loyaltyd_shopify::EarnOn::Paid
                        },
                        replay_tolerance: chrono::Duration::from_std(s.replay_tolerance)
                            .unwrap_or(chrono::Duration::hours(6)),
                    },
                );
                adapters.insert(
                    (shop.id.clone(), loyaltyd_shopify::NAME.to_string()),
                    Arc::new(a),
                );
            }
            if let Some(sq) = &shop.square {
                let settings = loyaltyd_square::SquareSettings {
                    signature_keys: sq.signature_keys.clone(),
                    notification_url: sq.notification_url.clone(),
                    orders: sq.orders.as_ref().map(|o| loyaltyd_square::OrdersApi {
                        base_url: o.base_url.clone(),
                        access_token: o.access_token.clone(),
                        square_version: o.square_version.clone(),
                        timeout: o.timeout,
                        retries: o.retries,
                    }),
                };
                let a = loyaltyd_square::SquareAdapter::new(settings)
                    .map_err(|e| err("square", e.to_string()))?;
                adapters.insert(
                    (shop.id.clone(), loyaltyd_square::NAME.to_string()),
                    Arc::new(a),
                );
            }
            for d in &shop.declarative {
                let def = definitions
                    .iter()
                    .find(|def| def.name() == d.adapter)
                    .ok_or_else(|| {
                        let known: Vec<&str> = definitions.iter().map(|d| d.name()).collect();
                        err(
                            &d.adapter,
                            format!("no adapter of that name (declarative adapters: {known:?})"),
                        )
                    })?;
                if def.requires_notification_url() && d.notification_url.is_none() {
                    return Err(err(
                        &d.adapter,
                        "this adapter signs URL + body: notification_url is required".into(),
                    ));
                }
                let a = def.adapter(d.secrets.clone(), d.notification_url.clone());
                adapters.insert((shop.id.clone(), d.adapter.clone()), Arc::new(a));
            }
        }
        Ok(AdapterRegistry {
            adapters,
            breakers: ApiBreakers::default(),
        })
    }

    /// A shop's adapter by name.
    pub fn get(&self, shop: &ShopId, name: &str) -> Option<Arc<dyn Adapter>> {
        self.adapters
            .get(&(shop.clone(), name.to_string()))
            .cloned()
    }

    /// The circuit breakers of the sender APIs the adapters call, shared by the webhook
    /// path and the retry worker.
    pub fn breakers(&self) -> &ApiBreakers {
        &self.breakers
    }

    /// Whether any shop uses an adapter of this name (for metrics labels).
    pub fn knows(&self, name: &str) -> bool {
        self.adapters.keys().any(|(_, n)| n == name)
    }
}
