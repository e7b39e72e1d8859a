//! The chain in SQL (one text for SQLite and PostgreSQL).
//!
//! Appends are serialised by the `chain_head` row: each append bumps its
//! sequence with a conditional `UPDATE ... RETURNING` (a row lock on
//! PostgreSQL, the write lock on SQLite), so records are numbered one at a
//! time without gaps, and a duplicate event id is detected under the same
//! lock.

use meshwork_runtime::db::Database;
use meshwork_runtime::time::now_micros;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::domain::{Event, Record};
use crate::error::AuditError;

macro_rules! record_columns {
    () => {
        "sequence, event_id, source, actor, action, resource, outcome, attributes, occurred_at, \
         trace_id, recorded_at, previous_hash, hash"
    };
}

/// Records read per round while verifying or reporting.
pub const PAGE: usize = 1000;

/// What QueryAuditLog filters on; empty strings match everything.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Source service.
    pub source: String,
    /// Actor.
    pub actor: String,
    /// Action.
    pub action: String,
    /// Resource.
    pub resource: String,
    /// Outcome.
    pub outcome: String,
    /// Occurred at or after (microseconds).
    pub start: Option<i64>,
    /// Occurred before (microseconds).
    pub end: Option<i64>,
}

/// The trail's tables.
#[derive(Clone)]
pub struct Store {
    db: Database,
}

impl Store {
    /// A store over the service's (migrated) database.
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// Appends `event` to the chain; an event id seen before is not
    /// appended again and its record is returned with `true`.
    pub async fn append(&self, event: &Event) -> Result<(Record, bool), AuditError> {
        let mut tx = self.db.pool().begin().await?;
        let appended = append_in(&mut tx, event).await?;
        tx.commit().await?;
        Ok(appended)
    }

    /// Records matching `filter` after sequence `after`, at most `limit`.
    pub async fn query(
        &self,
        filter: &Filter,
        after: i64,
        limit: usize,
    ) -> Result<Vec<Record>, AuditError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            record_columns!(),
            " FROM audit_records WHERE sequence > $1 AND ($2 = '' OR source = $2) AND ($3 = '' OR actor = $3) \
             AND ($4 = '' OR action = $4) AND ($5 = '' OR resource = $5) AND ($6 = '' OR outcome = $6) \
             AND occurred_at >= $7 AND occurred_at < $8 ORDER BY sequence LIMIT $9"
        ))
        .bind(after)
        .bind(&filter.source)
        .bind(&filter.actor)
        .bind(&filter.action)
        .bind(&filter.resource)
        .bind(&filter.outcome)
        .bind(filter.start.unwrap_or(i64::MIN))
        .bind(filter.end.unwrap_or(i64::MAX))
        .bind(limit as i64)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// The chain's head: its sequence and hash.
    pub async fn head(&self) -> Result<(i64, String), AuditError> {
        let row = sqlx::query("SELECT sequence, hash FROM chain_head WHERE chain_id = 1")
            .fetch_one(self.db.pool())
            .await?;
        Ok((row.try_get("sequence")?, row.try_get("hash")?))
    }
}

/// Appends `event` to the chain inside the caller's transaction (a
/// consumer's, whose cursor commits with the record); an event id seen
/// before is not appended again and its record is returned with `true`.
pub async fn append_in(
    tx: &mut AnyConnection,
    event: &Event,
) -> Result<(Record, bool), AuditError> {
    // The head first: its lock (a write, which is also what SQLite needs
    // to queue writers) makes the duplicate check below exact.
    let head = sqlx::query(
        "UPDATE chain_head SET sequence = sequence + 1 WHERE chain_id = 1 RETURNING sequence, hash",
    )
    .fetch_one(&mut *tx)
    .await?;
    if let Some(earlier) = fetch_by_event(tx, &event.event_id).await? {
        // Give the number back (still under the lock): the caller's
        // transaction may commit other work.
        sqlx::query("UPDATE chain_head SET sequence = sequence - 1 WHERE chain_id = 1")
            .execute(&mut *tx)
            .await?;
        return Ok((earlier, true));
    }
    let mut record = Record {
        sequence: head.try_get("sequence")?,
        event: event.clone(),
        recorded_at: now_micros(),
        previous_hash: head.try_get("hash")?,
        hash: String::new(),
    };
    record.hash = record.expected_hash();
    let attributes = serde_json::to_string(&event.attributes)
        .map_err(|e| AuditError::internal(e.to_string()))?;
    sqlx::query(concat!(
        "INSERT INTO audit_records (",
        record_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    ))
    .bind(record.sequence)
    .bind(&event.event_id)
    .bind(&event.source)
    .bind(&event.actor)
    .bind(&event.action)
    .bind(&event.resource)
    .bind(&event.outcome)
    .bind(&attributes)
    .bind(event.occurred_at)
    .bind(&event.trace_id)
    .bind(record.recorded_at)
    .bind(&record.previous_hash)
    .bind(&record.hash)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE chain_head SET hash = $1 WHERE chain_id = 1")
        .bind(&record.hash)
        .execute(&mut *tx)
        .await?;
    Ok((record, false))
}

async fn fetch_by_event(
    conn: &mut AnyConnection,
    event_id: &str,
) -> Result<Option<Record>, AuditError> {
    let row = sqlx::query(concat!(
        "SELECT ",
        record_columns!(),
        " FROM audit_records WHERE event_id = $1"
    ))
    .bind(event_id)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(from_row).transpose()
}

fn from_row(row: &AnyRow) -> Result<Record, AuditError> {
    let attributes: String = row.try_get("attributes")?;
    Ok(Record {
        sequence: row.try_get("sequence")?,
        event: Event {
            event_id: row.try_get("event_id")?,
            source: row.try_get("source")?,
            actor: row.try_get("actor")?,
            action: row.try_get("action")?,
            resource: row.try_get("resource")?,
            outcome: row.try_get("outcome")?,
            // A row edited into invalid JSON is tampering too: it reads as
            // one "unreadable" attribute, which fails its hash.
            attributes: serde_json::from_str(&attributes).unwrap_or_else(|_| {
                std::collections::BTreeMap::from([("unreadable".to_owned(), attributes.clone())])
            }),
            occurred_at: row.try_get("occurred_at")?,
            trace_id: row.try_get("trace_id")?,
        },
        recorded_at: row.try_get("recorded_at")?,
        previous_hash: row.try_get("previous_hash")?,
        hash: row.try_get("hash")?,
    })
}
