//! Fresh, isolated storage per test on either backend.

use meshwork_runtime::cache::CacheConfig;
use meshwork_runtime::counters::Counters;
use meshwork_runtime::db::DbConfig;
use meshwork_runtime::storage::Storage;
use sqlx::migrate::Migrator;

/// Where a test's storage lives.
#[derive(Debug, Clone)]
pub enum Backend {
    /// A fresh SQLite file and the in-process cache.
    Embedded,
    /// A fresh schema on a PostgreSQL server and a fresh Redis namespace.
    Servers {
        /// Base URL from `MESHWORK_TEST_DATABASE_URL`.
        database_url: String,
        /// From `MESHWORK_TEST_REDIS_URL`.
        redis_url: String,
    },
}

/// Whether the real-server suites are mandatory (CI).
fn servers_required() -> bool {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| v == "true" || v == "1");
    set("CI") || set("MESHWORK_TEST_REQUIRE_SERVERS")
}

impl Backend {
    /// The real servers from the environment; `None` (with a note on
    /// stderr) when they are not configured, a panic when CI requires them.
    pub fn servers() -> Option<Self> {
        let database_url = std::env::var("MESHWORK_TEST_DATABASE_URL")
            .ok()
            .filter(|v| !v.is_empty());
        let redis_url = std::env::var("MESHWORK_TEST_REDIS_URL")
            .ok()
            .filter(|v| !v.is_empty());
        match (database_url, redis_url) {
            (Some(database_url), Some(redis_url)) => Some(Self::Servers {
                database_url,
                redis_url,
            }),
            _ if servers_required() => panic!(
                "CI requires the real-server suites: set MESHWORK_TEST_DATABASE_URL and MESHWORK_TEST_REDIS_URL"
            ),
            _ => {
                eprintln!(
                    "skipped: real-server variant (set MESHWORK_TEST_DATABASE_URL and MESHWORK_TEST_REDIS_URL to run it)"
                );
                None
            }
        }
    }

    /// A database nobody else uses: a new SQLite file, or a new schema.
    pub fn fresh_db_config(&self) -> DbConfig {
        let unique = uuid::Uuid::now_v7().simple().to_string();
        match self {
            Self::Embedded => {
                let dir = std::env::temp_dir().join(format!("meshwork-test-{unique}"));
                DbConfig::sqlite_file(&dir.join("test.db"))
            }
            Self::Servers { database_url, .. } => {
                DbConfig::new(database_url.clone(), Some(format!("t_{unique}")))
            }
        }
    }

    /// A cache nobody else uses: a new namespace (and channel) in Redis.
    pub fn fresh_cache_config(&self) -> CacheConfig {
        let namespace = format!("meshwork-test:{}", uuid::Uuid::now_v7().simple());
        match self {
            Self::Embedded => CacheConfig::new(namespace, None),
            Self::Servers { redis_url, .. } => CacheConfig::new(namespace, Some(redis_url.clone())),
        }
    }

    /// Counters nobody else uses: a fresh namespace, in Redis or in-process.
    pub async fn counters(&self) -> Counters {
        let namespace = format!("meshwork-test:{}", uuid::Uuid::now_v7().simple());
        let redis_url = match self {
            Self::Embedded => None,
            Self::Servers { redis_url, .. } => Some(redis_url.as_str()),
        };
        Counters::connect(&namespace, redis_url)
            .await
            .expect("fresh test counters")
    }

    /// Fresh storage with `migrator` applied.
    pub async fn storage(&self, migrator: &Migrator) -> Storage {
        Storage::open(
            &self.fresh_db_config(),
            &self.fresh_cache_config(),
            migrator,
        )
        .await
        .expect("open fresh test storage")
    }

    /// Whether this is the real-server variant.
    pub fn is_servers(&self) -> bool {
        matches!(self, Self::Servers { .. })
    }
}
