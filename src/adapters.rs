//! The adapters each shop has configured, built once from the config.

use std::collections::HashMap;
use std::sync::Arc;

use loyaltyd_adapter::{Adapter, ShopId};

use crate::config::Config;

/// Adapter instances by shop and adapter name.
#[derive(Clone, Default)]
pub struct AdapterRegistry {
    adapters: HashMap<(ShopId, String), Arc<dyn Adapter>>,
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
        let mut adapters: HashMap<(ShopId, String), Arc<dyn Adapter>> = HashMap::new();
        for shop in config.shops.iter() {
            if let Some(s) = &shop.shopify {
                let a = loyaltyd_shopify::ShopifyAdapter::new(s.secrets.clone());
                adapters.insert(
                    (shop.id.clone(), loyaltyd_shopify::NAME.to_string()),
                    Arc::new(a),
                );
            }
        }
        Ok(AdapterRegistry { adapters })
    }

    /// A shop's adapter by name.
    pub fn get(&self, shop: &ShopId, name: &str) -> Option<Arc<dyn Adapter>> {
        self.adapters
            .get(&(shop.clone(), name.to_string()))
            .cloned()
    }

    /// Whether any shop uses an adapter of this name (for metrics labels).
    pub fn knows(&self, name: &str) -> bool {
        self.adapters.keys().any(|(_, n)| n == name)
    }
}
