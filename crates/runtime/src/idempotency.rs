//! Request-id claims: the one mechanism behind every idempotent mutation.
//!
//! A mutating RPC opens a transaction and first [`claim`]s its `request_id`
//! with a fingerprint of its payload. A new id goes on to do the work and
//! [`record_result`]s the id of what it made, in the same transaction, so the
//! claim and the effect commit or vanish together. A repeated id with the
//! same payload gets [`Claim::Replay`] with that result id (the caller
//! returns the stored result and moves nothing); a repeated id with another
//! payload is refused with [`KeyReused`].
//!
//! Concurrent duplicates are safe on both databases: PostgreSQL makes the
//! second `INSERT ... ON CONFLICT DO NOTHING` wait for the first transaction,
//! SQLite has one writer at a time. Failed requests are not remembered (their
//! transaction rolls back), so a retry after a refusal is evaluated afresh.
//!
//! The table is one of the platform tables that
//! [`crate::db::Database::migrate`] creates after every service's own
//! migrations (`crates/runtime/migrations`); a service does not define it:
//! ```sql
//! CREATE TABLE idempotency_keys (
//!     request_id  TEXT PRIMARY KEY,
//!     fingerprint TEXT NOT NULL,
//!     result_id   TEXT NOT NULL DEFAULT '',
//!     created_at  BIGINT NOT NULL
//! );
//! ```

use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Row};

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First time: do the work.
    New,
    /// Done before with the same payload: the id of the result.
    Replay(String),
}

/// The request id was used before with a different payload.
#[derive(Debug, Clone, thiserror::Error)]
#[error("request_id was already used for a different request")]
pub struct KeyReused;

/// A failed claim.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// See [`KeyReused`].
    #[error(transparent)]
    KeyReused(#[from] KeyReused),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A stable fingerprint of a request's meaningful fields (operation name
/// first). Length-prefixing keeps `["ab","c"]` apart from `["a","bc"]`.
pub fn fingerprint(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// Claims `request_id` inside the caller's transaction.
pub async fn claim(
    tx: &mut AnyConnection,
    request_id: &str,
    fingerprint: &str,
    now_micros: i64,
) -> Result<Claim, ClaimError> {
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (request_id, fingerprint, result_id, created_at) \
         VALUES ($1, $2, '', $3) ON CONFLICT (request_id) DO NOTHING",
    )
    .bind(request_id)
    .bind(fingerprint)
    .bind(now_micros)
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(Claim::New);
    }
    let row =
        sqlx::query("SELECT fingerprint, result_id FROM idempotency_keys WHERE request_id = $1")
            .bind(request_id)
            .fetch_one(&mut *tx)
            .await?;
    let stored: String = row.try_get("fingerprint")?;
    if stored != fingerprint {
        return Err(KeyReused.into());
    }
    Ok(Claim::Replay(row.try_get("result_id")?))
}

/// Remembers `result_id` for a request that ended without a claim of its own
/// (typically a refusal, whose work transaction rolled back), unless a
/// concurrent attempt recorded something first; returns whatever is stored
/// now, so every attempt agrees on one outcome.
pub async fn remember(
    tx: &mut AnyConnection,
    request_id: &str,
    fingerprint: &str,
    result_id: &str,
    now_micros: i64,
) -> Result<String, ClaimError> {
    sqlx::query(
        "INSERT INTO idempotency_keys (request_id, fingerprint, result_id, created_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (request_id) DO NOTHING",
    )
    .bind(request_id)
    .bind(fingerprint)
    .bind(result_id)
    .bind(now_micros)
    .execute(&mut *tx)
    .await?;
    match claim(tx, request_id, fingerprint, now_micros).await? {
        Claim::Replay(stored) => Ok(stored),
        Claim::New => unreachable!("the key was inserted just before"),
    }
}

/// Records what a new request made, in the transaction that claimed it.
pub async fn record_result(
    tx: &mut AnyConnection,
    request_id: &str,
    result_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE idempotency_keys SET result_id = $1 WHERE request_id = $2")
        .bind(result_id)
        .bind(request_id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_stable_and_unambiguous() {
        assert_eq!(
            fingerprint(&["deposit", "acc_1", "100"]),
            fingerprint(&["deposit", "acc_1", "100"])
        );
        assert_ne!(fingerprint(&["ab", "c"]), fingerprint(&["a", "bc"]));
        assert_eq!(fingerprint(&[]).len(), 64);
    }
}
