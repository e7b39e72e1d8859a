//! Where a target's storage lives and where the other targets run: the
//! process's flags in production ([`crate::config::RuntimeArgs`]), fresh
//! storage per test in the test kit.

use crate::cache::CacheConfig;
use crate::db::DbConfig;

/// Where things are, for the services of one process.
pub trait Placement: Send + Sync + 'static {
    /// `target`'s database.
    fn db(&self, target: &str) -> DbConfig;
    /// `target`'s cache.
    fn cache(&self, target: &str) -> CacheConfig;
    /// The URL at which `caller` reaches `target` when it runs elsewhere
    /// (or behind something, in tests); `None` to use this process's own
    /// port (when it runs here).
    fn upstream(&self, caller: &str, target: &str) -> Option<String>;
}

impl Placement for crate::config::RuntimeArgs {
    fn db(&self, target: &str) -> DbConfig {
        self.db_config(target)
    }

    fn cache(&self, target: &str) -> CacheConfig {
        self.cache_config(target)
    }

    fn upstream(&self, _caller: &str, target: &str) -> Option<String> {
        crate::config::RuntimeArgs::upstream(self, target)
    }
}
