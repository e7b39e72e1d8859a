//! SQL storage through sqlx's `Any` driver: one SQL text for SQLite (the
//! embedded default) and PostgreSQL.
//!
//! The SQL conventions that make one text work on both: integer money and
//! timestamps in BIGINT columns, text ids, `$1` placeholders, conditional
//! `UPDATE ... RETURNING` instead of `SELECT ... FOR UPDATE`, no SUM() in
//! results (PostgreSQL widens it to NUMERIC).
//!
//! Each service owns its tables: on PostgreSQL in a schema of its own (set as
//! the connections' `search_path`), in embedded mode in a SQLite file of its
//! own. Migrations run at start-up, per service.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor};

use crate::health::Probe;

/// Which database a pool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file (embedded mode).
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// Where a service's tables live.
#[derive(Debug, Clone)]
pub struct DbConfig {
    /// `sqlite://path/to/file.db` or `postgres://...`.
    pub url: String,
    /// PostgreSQL schema for the service's tables (ignored for SQLite).
    pub schema: Option<String>,
    /// Pool size.
    pub max_connections: u32,
    /// How long a call waits for a connection before failing UNAVAILABLE.
    pub acquire_timeout: Duration,
}

impl DbConfig {
    /// A config for `url` with the service's schema and default pool settings.
    pub fn new(url: impl Into<String>, schema: Option<String>) -> Self {
        Self {
            url: url.into(),
            schema,
            max_connections: 10,
            acquire_timeout: Duration::from_secs(3),
        }
    }

    /// The embedded default: a SQLite file named after the service.
    pub fn sqlite_file(path: &std::path::Path) -> Self {
        Self::new(format!("sqlite://{}?mode=rwc", path.display()), None)
    }
}

/// A connection pool and what it talks to.
#[derive(Debug, Clone)]
pub struct Database {
    pool: AnyPool,
    backend: Backend,
}

/// A failure to open or migrate a database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL names neither SQLite nor PostgreSQL.
    #[error("unsupported database URL scheme (use sqlite:// or postgres://)")]
    UnsupportedUrl,
    /// A schema name that is not a plain identifier.
    #[error("invalid schema name {0:?}: use lower-case letters, digits and _")]
    InvalidSchema(String),
    /// The database refused or could not be reached.
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    /// A migration failed.
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl Database {
    /// Opens a pool for `config`, creating the schema (PostgreSQL) or the
    /// file (SQLite) if needed.
    pub async fn connect(config: &DbConfig) -> Result<Self, DbError> {
        install_default_drivers();
        let backend = backend_of(&config.url)?;
        let options = AnyPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.acquire_timeout)
            .test_before_acquire(true);
        let pool = match backend {
            Backend::Sqlite => {
                if let Some(dir) =
                    sqlite_path(&config.url).and_then(|p| p.parent().map(ToOwned::to_owned))
                {
                    let _ = std::fs::create_dir_all(dir);
                }
                options
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            // WAL lets readers run beside the one writer;
                            // busy_timeout makes writers queue instead of failing.
                            conn.execute("PRAGMA journal_mode = WAL").await?;
                            conn.execute("PRAGMA busy_timeout = 10000").await?;
                            conn.execute("PRAGMA foreign_keys = ON").await?;
                            conn.execute("PRAGMA synchronous = NORMAL").await?;
                            Ok(())
                        })
                    })
                    .connect(&config.url)
                    .await?
            }
            Backend::Postgres => match &config.schema {
                None => options.connect(&config.url).await?,
                Some(schema) => {
                    if !is_identifier(schema) {
                        return Err(DbError::InvalidSchema(schema.clone()));
                    }
                    let create = format!("CREATE SCHEMA IF NOT EXISTS {schema}");
                    // The application name shows in pg_stat_activity which
                    // service a session belongs to.
                    let set_path: Arc<str> = format!(
                        "SET search_path TO {schema}; SET application_name TO 'meshwork/{schema}'"
                    )
                    .into();
                    let pool = options
                        .after_connect(move |conn, _| {
                            let set_path = set_path.clone();
                            Box::pin(async move {
                                conn.execute(sqlx::AssertSqlSafe(set_path.to_string()))
                                    .await?;
                                Ok(())
                            })
                        })
                        .connect(&config.url)
                        .await?;
                    pool.execute(sqlx::AssertSqlSafe(create)).await?;
                    pool
                }
            },
        };
        Ok(Self { pool, backend })
    }

    /// Applies the service's migrations that have not run yet.
    pub async fn migrate(&self, migrator: &Migrator) -> Result<(), DbError> {
        migrator.run(&self.pool).await?;
        // After the service's own: those of the finance services created
        // the platform tables themselves (see the platform migration).
        platform_migrator().run(&self.pool).await?;
        Ok(())
    }

    /// The pool, for queries.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A health probe that runs `SELECT 1`.
    pub fn probe(&self) -> Arc<dyn Probe> {
        Arc::new(DbProbe {
            pool: self.pool.clone(),
        })
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The runtime's own migrations (`crates/runtime/migrations`): the tables
/// every service has (`idempotency_keys`, `outbox`), defined once. They are
/// tracked in a table of their own, so that they and the service's
/// migrations never see each other's versions.
pub fn platform_migrator() -> &'static Migrator {
    static SOURCE: Migrator = sqlx::migrate!("./migrations");
    static PLATFORM: std::sync::OnceLock<Migrator> = std::sync::OnceLock::new();
    PLATFORM.get_or_init(|| {
        let mut migrator = Migrator::with_migrations(SOURCE.iter().cloned().collect());
        migrator.dangerous_set_table_name("_meshwork_platform_migrations");
        migrator
    })
}

struct DbProbe {
    pool: AnyPool,
}

impl Probe for DbProbe {
    fn name(&self) -> &str {
        "database"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            self.pool
                .execute("SELECT 1")
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }
}

fn backend_of(url: &str) -> Result<Backend, DbError> {
    if url.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Backend::Postgres)
    } else {
        Err(DbError::UnsupportedUrl)
    }
}

fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && path != ":memory:")
        .then(|| std::path::PathBuf::from_str(path).ok())
        .flatten()
}

/// Lower-case letters, digits and `_`, starting with a letter: safe to splice
/// into DDL.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 63
}

/// `$1, $2, ..., $n`: the placeholders of an `IN (...)` list of `n` bound
/// values (SQLite has no arrays, so `= ANY($1)` is not one text for both).
/// Only placeholders go into the SQL text; the values are bound.
pub fn placeholders(n: usize) -> String {
    (1..=n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether `error` is a unique-constraint violation (either database).
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Whether `error` means the database could not be reached (as opposed to a
/// query it refused): such errors become UNAVAILABLE.
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_) => true,
        // PostgreSQL's "connection exception" (08) and "operator
        // intervention" (57, e.g. a session ended by pg_terminate_backend or
        // a server shutting down) classes: the database went away, the
        // request did not do anything wrong.
        // Also contention that outlasted its waits: SQLite BUSY (5) and
        // LOCKED (6) after busy_timeout, PostgreSQL serialization failure
        // (40001) and deadlock (40P01). Nothing was done; trying again is
        // right, which is what UNAVAILABLE tells a client.
        sqlx::Error::Database(db) => match db.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
            // Primary result code in the low byte of the extended one.
            Some(sqlite) => sqlx::error::DatabaseError::code(sqlite)
                .and_then(|code| code.parse::<i32>().ok())
                .is_some_and(|code| matches!(code & 0xff, 5 | 6)),
            None => db.code().is_some_and(|code| {
                code.starts_with("08")
                    || code.starts_with("57P")
                    || matches!(code.as_ref(), "40001" | "40P01")
            }),
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_backends_and_identifiers() {
        assert_eq!(backend_of("sqlite://x.db").unwrap(), Backend::Sqlite);
        assert_eq!(backend_of("postgres://u@h/db").unwrap(), Backend::Postgres);
        assert!(backend_of("mysql://h").is_err());
        assert!(is_identifier("finance_account"));
        assert!(!is_identifier("x; DROP TABLE y"));
        assert!(!is_identifier("1abc"));
        assert_eq!(placeholders(3), "$1, $2, $3");
        assert_eq!(
            sqlite_path("sqlite://data/a.db?mode=rwc"),
            Some("data/a.db".into())
        );
    }

    #[tokio::test]
    async fn a_new_service_gets_the_platform_tables_with_its_own_migrations() {
        use sqlx::migrate::{Migration, MigrationType};
        let dir = std::env::temp_dir().join(format!("meshwork-db-{}", uuid::Uuid::now_v7()));
        let db = Database::connect(&DbConfig::sqlite_file(&dir.join("x.db")))
            .await
            .unwrap();
        // A service of its own tables only, as new services are written.
        let own = Migrator::with_migrations(vec![Migration::new(
            1,
            "things".into(),
            MigrationType::Simple,
            sqlx::SqlSafeStr::into_sql_str("CREATE TABLE things (id TEXT PRIMARY KEY)"),
            false,
        )]);
        db.migrate(&own).await.unwrap();
        db.migrate(&own).await.unwrap(); // again: nothing to do, no error
        let mut tx = db.pool().begin().await.unwrap();
        let claim = crate::idempotency::claim(&mut tx, "r1", "f", 1)
            .await
            .unwrap();
        assert_eq!(claim, crate::idempotency::Claim::New);
        let event = crate::outbox::Event::new("thing.made", "things/1", "OK");
        crate::outbox::enqueue(&mut tx, &event).await.unwrap();
        tx.commit().await.unwrap();
        db.close().await;
    }
}
