//! What a stateful service is given at start: its database (migrated) and
//! its cache. Built the same way by `meshwork up`, `meshwork serve` and the
//! test kit, so every mode runs the same code.

use std::sync::Arc;

use sqlx::migrate::Migrator;

use crate::BoxError;
use crate::cache::{Cache, CacheConfig};
use crate::db::{Database, DbConfig};
use crate::health::Probe;

/// A service's database and cache.
#[derive(Clone)]
pub struct Storage {
    /// The service's own database (schema or file), migrated.
    pub db: Database,
    /// The service's cache.
    pub cache: Cache,
}

impl Storage {
    /// Connects both and applies `migrator`.
    pub async fn open(
        db: &DbConfig,
        cache: &CacheConfig,
        migrator: &Migrator,
    ) -> Result<Self, BoxError> {
        let database = Database::connect(db).await?;
        database.migrate(migrator).await?;
        let cache = Cache::connect(cache).await?;
        Ok(Self {
            db: database,
            cache,
        })
    }

    /// Health probes of both (the cache's only when it is Redis).
    pub fn probes(&self) -> Vec<Arc<dyn Probe>> {
        let mut probes = vec![self.db.probe()];
        probes.extend(self.cache.probe());
        probes
    }
}
