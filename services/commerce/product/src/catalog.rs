//! Product reads through the multi-level cache (in-process → Redis →
//! database; see `meshwork_runtime::cache`), and the writes that keep it
//! true.
//!
//! A cached product carries its version, and so does a deletion (a negative
//! entry at the deleted row's version), so that a reader that loaded an
//! older version cannot put it back over a newer one. After every committed
//! write the new state replaces the cached one and every other replica drops
//! its in-process copy (Redis pub/sub); a SKU that does not exist is cached
//! as absent for a few seconds. When Redis is down, reads go to the database
//! and keep answering.

use bytes::Bytes;
use meshwork_runtime::cache::Cache;
use meshwork_runtime::claimed::Applied;

use crate::domain::{Fields, Product};
use crate::error::ProductError;
use crate::store::Store;

/// The catalogue, cached.
#[derive(Clone)]
pub struct Catalog {
    store: Store,
    cache: Cache,
    /// `false`: reads go to the store (`--product-cache=false`).
    cached: bool,
}

fn key(sku: &str) -> String {
    format!("product:{sku}")
}

/// A product's cached form; a deleted one's is empty (absent).
fn entry(product: &Product) -> Result<(i64, Bytes), ProductError> {
    if product.deleted {
        return Ok((product.version, Bytes::new()));
    }
    let json = serde_json::to_vec(product).map_err(ProductError::internal)?;
    Ok((product.version, json.into()))
}

fn decode(bytes: &Bytes) -> Result<Product, ProductError> {
    serde_json::from_slice(bytes).map_err(ProductError::internal)
}

impl Catalog {
    /// Reads through `cache` to `store` (or, not `cached`, from `store`
    /// alone; writes still keep the cache true).
    pub fn new(store: Store, cache: Cache, cached: bool) -> Self {
        Self {
            store,
            cache,
            cached,
        }
    }

    /// The store (lists are read from it directly).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The product `sku`, from the nearest level that has it.
    pub async fn get(&self, sku: &str) -> Result<Product, ProductError> {
        if !self.cached {
            return match self.store.get(sku).await? {
                Some(product) if !product.deleted => Ok(product),
                _ => Err(ProductError::NotFound(sku.to_owned())),
            };
        }
        let cached = self
            .cache
            .get_or_load(&key(sku), || async {
                self.store.get(sku).await?.as_ref().map(entry).transpose()
            })
            .await?;
        match cached {
            Some(bytes) => decode(&bytes),
            None => Err(ProductError::NotFound(sku.to_owned())),
        }
    }

    /// The products `skus` in the order asked; `None` for those the
    /// catalogue does not have.
    pub async fn get_many(&self, skus: &[String]) -> Result<Vec<Option<Product>>, ProductError> {
        if !self.cached {
            let found = self.store.get_many(skus).await?;
            return Ok(found
                .into_iter()
                .map(|p| p.filter(|p| !p.deleted))
                .collect());
        }
        let keys: Vec<String> = skus.iter().map(|sku| key(sku)).collect();
        let cached = self
            .cache
            .get_many(&keys, |missing| async move {
                let wanted: Vec<String> = missing.iter().map(|&i| skus[i].clone()).collect();
                let found = self.store.get_many(&wanted).await?;
                found
                    .iter()
                    .map(|p| p.as_ref().map(entry).transpose())
                    .collect()
            })
            .await?;
        cached
            .iter()
            .map(|bytes| bytes.as_ref().map(decode).transpose())
            .collect()
    }

    /// Adds a product.
    pub async fn create(
        &self,
        request_id: &str,
        sku: &str,
        fields: &Fields,
    ) -> Result<Product, ProductError> {
        let written = self.store.create(request_id, sku, fields).await?;
        self.changed(written).await
    }

    /// Replaces a product's fields.
    pub async fn update(
        &self,
        request_id: &str,
        sku: &str,
        fields: &Fields,
        expected_version: i64,
    ) -> Result<Product, ProductError> {
        let written = self
            .store
            .update(request_id, sku, fields, expected_version)
            .await?;
        self.changed(written).await
    }

    /// Deletes a product.
    pub async fn delete(&self, request_id: &str, sku: &str) -> Result<Product, ProductError> {
        let written = self.store.delete(request_id, sku).await?;
        self.changed(written).await
    }

    /// Puts the state just committed in the cache, in every replica. A
    /// replayed write answers the version it made long ago, which must not
    /// go back into the cache: it only drops the cached copy (in case the
    /// first attempt committed but never got to the cache).
    async fn changed(
        &self,
        (product, applied): (Product, Applied),
    ) -> Result<Product, ProductError> {
        let key = key(&product.sku);
        match applied {
            Applied::Now => {
                let (version, bytes) = entry(&product)?;
                self.cache.replace(&key, version, bytes).await;
            }
            Applied::Earlier => self.cache.invalidate(&key).await,
        }
        Ok(product)
    }
}
