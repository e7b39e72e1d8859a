//! The catalogue's tables, one SQL text for SQLite and PostgreSQL.
//!
//! Every write claims its request id first (a write, which also makes
//! SQLite queue writers), changes the product with one conditional
//! statement, appends the revision it made and its `ProductChanged` event,
//! and records the revision as its result, in one transaction. The reads
//! that the cache stands in front of are counted (`reads`), so that tests
//! and the benchmark can see what reached the database.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use meshwork_runtime::claimed::Applied;
use meshwork_runtime::db::{Database, placeholders};
use meshwork_runtime::events::{self, NewEvent, Publisher};
use meshwork_runtime::idempotency::{self, Claim};
use meshwork_runtime::time::Clock;
use sqlx::{AnyConnection, Row};

use crate::domain::{Fields, Product};
use crate::error::ProductError;

type Result<T> = std::result::Result<T, ProductError>;

/// The event a write of `product` publishes.
pub type EventOf = Arc<dyn Fn(&Product, i64) -> NewEvent + Send + Sync>;

/// Database reads of single products and batches (what the cache saves).
#[derive(Clone, Default, Debug)]
pub struct Reads(Arc<AtomicU64>);

impl Reads {
    /// Queries so far.
    pub fn count(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    fn one(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

const COLUMNS: &str = "sku, name, description, brand, category, price_currency, price_minor, \
                       weight_grams, attributes, version, deleted, created_at, updated_at";

/// The catalogue's storage.
#[derive(Clone)]
pub struct Store {
    db: Database,
    publisher: Publisher,
    event_of: EventOf,
    clock: Clock,
    reads: Reads,
}

/// What a write found when its conditional statement changed nothing.
enum Missed {
    NotFound,
    Version(i64),
}

impl Store {
    /// The store over `db`; events go out through `publisher`.
    pub fn new(db: Database, publisher: Publisher, event_of: EventOf, clock: Clock) -> Self {
        Self {
            db,
            publisher,
            event_of,
            clock,
            reads: Reads::default(),
        }
    }

    /// The counter of database reads.
    pub fn reads(&self) -> Reads {
        self.reads.clone()
    }

    /// Adds `sku`; a deleted SKU may be added again (a new version).
    pub async fn create(
        &self,
        request_id: &str,
        sku: &str,
        fields: &Fields,
    ) -> Result<(Product, Applied)> {
        let now = self.clock.now_micros();
        let fingerprint = fields.fingerprint("create", sku, 0);
        let mut tx = self.db.pool().begin().await?;
        if let Some(done) = replay(&mut tx, request_id, &fingerprint, now).await? {
            tx.commit().await?;
            return done.map(|p| (p, Applied::Earlier));
        }
        let attributes =
            serde_json::to_string(&fields.attributes).map_err(ProductError::internal)?;
        let sql = format!(
            "INSERT INTO products ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, 0, $10, $10) \
             ON CONFLICT (sku) DO UPDATE SET name = excluded.name, description = excluded.description, \
             brand = excluded.brand, category = excluded.category, price_currency = excluded.price_currency, \
             price_minor = excluded.price_minor, weight_grams = excluded.weight_grams, \
             attributes = excluded.attributes, version = products.version + 1, deleted = 0, \
             created_at = excluded.created_at, updated_at = excluded.updated_at \
             WHERE products.deleted = 1 RETURNING {COLUMNS}"
        );
        let row = bind_fields(
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(sku),
            fields,
            &attributes,
        )
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            drop(tx);
            return self
                .refused(request_id, &fingerprint, sku, Refusal::Exists, now)
                .await;
        };
        let product = product_of(&row)?;
        self.written(tx, request_id, &product).await?;
        Ok((product, Applied::Now))
    }

    /// Replaces the fields of `sku`, at `expected_version` when not 0.
    pub async fn update(
        &self,
        request_id: &str,
        sku: &str,
        fields: &Fields,
        expected_version: i64,
    ) -> Result<(Product, Applied)> {
        let now = self.clock.now_micros();
        let fingerprint = fields.fingerprint("update", sku, expected_version);
        let mut tx = self.db.pool().begin().await?;
        if let Some(done) = replay(&mut tx, request_id, &fingerprint, now).await? {
            tx.commit().await?;
            return done.map(|p| (p, Applied::Earlier));
        }
        let attributes =
            serde_json::to_string(&fields.attributes).map_err(ProductError::internal)?;
        let sql = format!(
            "UPDATE products SET name = $2, description = $3, brand = $4, category = $5, \
             price_currency = $6, price_minor = $7, weight_grams = $8, attributes = $9, \
             version = version + 1, updated_at = $10 \
             WHERE sku = $1 AND deleted = 0 AND ($11 = 0 OR version = $11) RETURNING {COLUMNS}"
        );
        let row = bind_fields(
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(sku),
            fields,
            &attributes,
        )
        .bind(now)
        .bind(expected_version)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            let refusal = match missed(&mut tx, sku).await? {
                Missed::NotFound => Refusal::Missing,
                Missed::Version(current) => Refusal::Version {
                    current,
                    expected: expected_version,
                },
            };
            drop(tx);
            return self
                .refused(request_id, &fingerprint, sku, refusal, now)
                .await;
        };
        let product = product_of(&row)?;
        self.written(tx, request_id, &product).await?;
        Ok((product, Applied::Now))
    }

    /// Deletes `sku` (its row stays, marked, at a new version).
    pub async fn delete(&self, request_id: &str, sku: &str) -> Result<(Product, Applied)> {
        let now = self.clock.now_micros();
        let fingerprint = idempotency::fingerprint(&["delete", sku]);
        let mut tx = self.db.pool().begin().await?;
        if let Some(done) = replay(&mut tx, request_id, &fingerprint, now).await? {
            tx.commit().await?;
            return done.map(|p| (p, Applied::Earlier));
        }
        let sql = format!(
            "UPDATE products SET deleted = 1, version = version + 1, updated_at = $2 \
             WHERE sku = $1 AND deleted = 0 RETURNING {COLUMNS}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(sku)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            drop(tx);
            return self
                .refused(request_id, &fingerprint, sku, Refusal::Missing, now)
                .await;
        };
        let product = product_of(&row)?;
        self.written(tx, request_id, &product).await?;
        Ok((product, Applied::Now))
    }

    /// Remembers a refusal as the request's answer (so that a retry after
    /// the state changed, a delete or a re-create, is refused the same way
    /// instead of doing the work late), unless a concurrent attempt with
    /// the same id recorded a result first: then that result.
    async fn refused(
        &self,
        request_id: &str,
        fingerprint: &str,
        sku: &str,
        refusal: Refusal,
        now: i64,
    ) -> Result<(Product, Applied)> {
        let mut tx = self.db.pool().begin().await?;
        let stored =
            idempotency::remember(&mut tx, request_id, fingerprint, &refusal.encode(sku), now)
                .await?;
        let answer = answer_of(&mut tx, &stored).await?;
        tx.commit().await?;
        answer.map(|p| (p, Applied::Earlier))
    }

    /// The revision, the event and the request's result of a write; commits.
    async fn written(
        &self,
        mut tx: sqlx::Transaction<'static, sqlx::Any>,
        request_id: &str,
        product: &Product,
    ) -> Result<()> {
        let f = &product.fields;
        let attributes = serde_json::to_string(&f.attributes).map_err(ProductError::internal)?;
        sqlx::query(
            "INSERT INTO product_revisions (sku, version, name, description, brand, category, price_currency, \
             price_minor, weight_grams, attributes, deleted, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&product.sku)
        .bind(product.version)
        .bind(&f.name)
        .bind(&f.description)
        .bind(&f.brand)
        .bind(&f.category)
        .bind(&f.currency)
        .bind(f.price_minor)
        .bind(f.weight_grams)
        .bind(&attributes)
        .bind(i64::from(product.deleted))
        .bind(product.created_at)
        .bind(product.updated_at)
        .execute(&mut *tx)
        .await?;
        events::write(&mut tx, &(self.event_of)(product, product.updated_at)).await?;
        idempotency::record_result(
            &mut tx,
            request_id,
            &format!("{}:{}", product.sku, product.version),
        )
        .await?;
        tx.commit().await?;
        self.publisher.wake();
        Ok(())
    }

    /// The product `sku` as stored, deleted or not; `None` if it never was.
    pub async fn get(&self, sku: &str) -> Result<Option<Product>> {
        self.reads.one();
        let sql = format!("SELECT {COLUMNS} FROM products WHERE sku = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(sku)
            .fetch_optional(self.db.pool())
            .await?;
        row.as_ref().map(product_of).transpose()
    }

    /// The products `skus`, in one query, in the order asked.
    pub async fn get_many(&self, skus: &[String]) -> Result<Vec<Option<Product>>> {
        self.reads.one();
        let sql = format!(
            "SELECT {COLUMNS} FROM products WHERE sku IN ({})",
            placeholders(skus.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for sku in skus {
            query = query.bind(sku);
        }
        let mut found = std::collections::HashMap::new();
        for row in query.fetch_all(self.db.pool()).await? {
            let product = product_of(&row)?;
            found.insert(product.sku.clone(), product);
        }
        Ok(skus.iter().map(|sku| found.get(sku).cloned()).collect())
    }

    /// Products by SKU after `after`, optionally of a category (and below)
    /// or a brand; deleted ones left out.
    pub async fn list(
        &self,
        category: &str,
        brand: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<Product>> {
        // Categories are lower-case letters, digits and dashes (the
        // contract's pattern), so they hold no LIKE wildcard.
        let sql = format!(
            "SELECT {COLUMNS} FROM products WHERE deleted = 0 AND sku > $1 \
             AND ($2 = '' OR category = $2 OR category LIKE $2 || '/%') \
             AND ($3 = '' OR brand = $3) ORDER BY sku LIMIT $4"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(after)
            .bind(category)
            .bind(brand)
            .bind(limit as i64)
            .fetch_all(self.db.pool())
            .await?;
        rows.iter().map(product_of).collect()
    }
}

/// What an earlier request with this id answered (the revision it made,
/// or its refusal), or `None` for a new request (claimed in `tx`).
async fn replay(
    tx: &mut AnyConnection,
    request_id: &str,
    fingerprint: &str,
    now: i64,
) -> Result<Option<Result<Product>>> {
    let Claim::Replay(result) = idempotency::claim(tx, request_id, fingerprint, now).await? else {
        return Ok(None);
    };
    answer_of(tx, &result).await.map(Some)
}

/// A refused write, as remembered for its request id.
enum Refusal {
    Exists,
    Missing,
    Version { current: i64, expected: i64 },
}

impl Refusal {
    /// As stored in the request's result: `!<kind>:<sku>[:<current>:<expected>]`
    /// (a success is `<sku>:<version>`; SKUs hold no `!` or `:`).
    fn encode(&self, sku: &str) -> String {
        match self {
            Refusal::Exists => format!("!exists:{sku}"),
            Refusal::Missing => format!("!missing:{sku}"),
            Refusal::Version { current, expected } => {
                format!("!version:{sku}:{current}:{expected}")
            }
        }
    }
}

/// The answer a stored result stands for: the revision, or the refusal.
async fn answer_of(tx: &mut AnyConnection, result: &str) -> Result<Result<Product>> {
    let bad = || ProductError::internal(format!("bad stored result {result:?}"));
    if let Some(refusal) = result.strip_prefix('!') {
        let parts: Vec<&str> = refusal.split(':').collect();
        return Ok(Err(match parts.as_slice() {
            ["exists", sku] => ProductError::AlreadyExists((*sku).to_owned()),
            ["missing", sku] => ProductError::NotFound((*sku).to_owned()),
            ["version", sku, current, expected] => ProductError::VersionMismatch {
                sku: (*sku).to_owned(),
                current: current.parse().map_err(|_| bad())?,
                expected: expected.parse().map_err(|_| bad())?,
            },
            _ => return Err(bad()),
        }));
    }
    let (sku, version) = result
        .rsplit_once(':')
        .and_then(|(sku, v)| Some((sku.to_owned(), v.parse::<i64>().ok()?)))
        .ok_or_else(bad)?;
    let sql = format!("SELECT {COLUMNS} FROM product_revisions WHERE sku = $1 AND version = $2");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&sku)
        .bind(version)
        .fetch_one(&mut *tx)
        .await?;
    Ok(Ok(product_of(&row)?))
}

async fn missed(tx: &mut AnyConnection, sku: &str) -> Result<Missed> {
    let row = sqlx::query("SELECT version, deleted FROM products WHERE sku = $1")
        .bind(sku)
        .fetch_optional(&mut *tx)
        .await?;
    Ok(match row {
        Some(row) if row.try_get::<i64, _>("deleted")? == 0 => {
            Missed::Version(row.try_get("version")?)
        }
        _ => Missed::NotFound,
    })
}

fn bind_fields<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    f: &'q Fields,
    attributes: &'q str,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    query
        .bind(&f.name)
        .bind(&f.description)
        .bind(&f.brand)
        .bind(&f.category)
        .bind(&f.currency)
        .bind(f.price_minor)
        .bind(f.weight_grams)
        .bind(attributes)
}

fn product_of(row: &sqlx::any::AnyRow) -> Result<Product> {
    let attributes: String = row.try_get("attributes")?;
    Ok(Product {
        sku: row.try_get("sku")?,
        fields: Fields {
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            brand: row.try_get("brand")?,
            category: row.try_get("category")?,
            currency: row.try_get("price_currency")?,
            price_minor: row.try_get("price_minor")?,
            weight_grams: row.try_get("weight_grams")?,
            attributes: serde_json::from_str(&attributes).map_err(ProductError::internal)?,
        },
        version: row.try_get("version")?,
        deleted: row.try_get::<i64, _>("deleted")? != 0,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}
