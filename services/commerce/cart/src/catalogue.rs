//! The cart's typed client of commerce.product: prices now, in the cart's
//! own types.

use std::collections::BTreeMap;

use meshwork_proto::meshwork::commerce::product::v1 as pb;
use meshwork_runtime::client::MeshChannel;
use pb::product_service_client::ProductServiceClient;

use crate::domain::Price;
use crate::error::CartError;

/// commerce.product, as the cart asks it.
#[derive(Clone)]
pub struct Catalogue {
    client: ProductServiceClient<MeshChannel>,
}

impl Catalogue {
    /// Over a channel to commerce.product.
    pub fn new(channel: MeshChannel) -> Self {
        Self {
            client: ProductServiceClient::new(channel),
        }
    }

    /// The prices of `skus` (at most 1000, no repeats) the catalogue has,
    /// in one batch read.
    pub async fn prices(&self, skus: Vec<String>) -> Result<BTreeMap<String, Price>, CartError> {
        if skus.is_empty() {
            return Ok(BTreeMap::new());
        }
        let found = self
            .client
            .clone()
            .batch_get_products(pb::BatchGetProductsRequest { skus })
            .await
            .map_err(|status| CartError::Catalogue(status.message().to_owned()))?
            .into_inner()
            .products;
        Ok(found
            .into_iter()
            .filter_map(|lookup| {
                let product = lookup.product?;
                let price = product.price?;
                Some((
                    lookup.sku,
                    Price {
                        name: product.name,
                        currency: price.currency,
                        amount_minor: price.amount_minor,
                    },
                ))
            })
            .collect())
    }
}
