//! The claimed transaction: the skeleton every idempotent mutation shares,
//! written once.
//!
//! ```ignore
//! let mut claimed = Claimed::begin(&db, &outbox, request_id, &fingerprint, now).await?;
//! if let Some(id) = claimed.replayed() {
//!     // Done before with the same payload: answer what it made, move nothing.
//!     let thing = fetch(claimed.conn(), &id).await?;
//!     claimed.finish().await?;
//!     return Ok((thing, Applied::Earlier));
//! }
//! let thing = insert(claimed.conn(), ...).await?;          // the work
//! claimed.event(Event::new("thing.made", ...));           // reported with it
//! claimed.commit(&thing.id).await?;                       // record + events + commit
//! ```
//!
//! [`Claimed::begin`] opens a transaction and claims the request id first
//! (a write, which is also what SQLite needs to queue writers), so the claim,
//! the work, the recorded result and the events commit or vanish together
//! (see [`crate::idempotency`] and [`crate::outbox`]). An error anywhere
//! before [`Claimed::commit`] drops the transaction: nothing is written, and
//! a retry is evaluated afresh.

use sqlx::{Any, AnyConnection, Transaction};

use crate::db::Database;
use crate::idempotency::{self, Claim, ClaimError};
use crate::outbox::{self, Event, Outbox};

/// Whether a mutation did its work now or answered from an earlier request
/// with the same id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Done by this call.
    Now,
    /// Done before; this call changed nothing.
    Earlier,
}

/// What [`Claimed::begin_or_replay`] found.
#[derive(Debug)]
pub enum Begun<T> {
    /// A new request: do the work in this transaction.
    New(Claimed),
    /// A replay: what the first request made.
    Replayed(T),
}

/// A transaction that holds a request id's claim.
pub struct Claimed {
    tx: Transaction<'static, Any>,
    key: String,
    replayed: Option<String>,
    events: Vec<Event>,
    outbox: Outbox,
}

impl std::fmt::Debug for Claimed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claimed")
            .field("key", &self.key)
            .field("replayed", &self.replayed)
            .finish_non_exhaustive()
    }
}

impl Claimed {
    /// Begins a transaction on `db` and claims `key` for a request whose
    /// meaningful fields hash to `fingerprint` (see
    /// [`idempotency::fingerprint`]); events go out through `outbox` after
    /// the commit. A key used before with another payload is refused
    /// ([`ClaimError::KeyReused`]).
    pub async fn begin(
        db: &Database,
        outbox: &Outbox,
        key: &str,
        fingerprint: &str,
        now_micros: i64,
    ) -> Result<Self, ClaimError> {
        let mut tx = db.pool().begin().await?;
        let replayed = match idempotency::claim(&mut tx, key, fingerprint, now_micros).await? {
            Claim::New => None,
            Claim::Replay(result_id) => Some(result_id),
        };
        Ok(Self {
            tx,
            key: key.to_owned(),
            replayed,
            events: Vec::new(),
            outbox: outbox.clone(),
        })
    }

    /// [`Claimed::begin`], and when the key was used before, the earlier
    /// result read with `read` (from its id) instead of a claim: the one
    /// shape of "replay, or do the work".
    pub async fn begin_or_replay<T, E>(
        db: &Database,
        outbox: &Outbox,
        key: &str,
        fingerprint: &str,
        now_micros: i64,
        read: impl AsyncFnOnce(&mut AnyConnection, &str) -> Result<T, E>,
    ) -> Result<Begun<T>, E>
    where
        E: From<ClaimError> + From<sqlx::Error>,
    {
        let mut claimed = Self::begin(db, outbox, key, fingerprint, now_micros).await?;
        match claimed.replayed() {
            None => Ok(Begun::New(claimed)),
            Some(id) => {
                let earlier = read(claimed.conn(), &id).await?;
                claimed.finish().await?;
                Ok(Begun::Replayed(earlier))
            }
        }
    }

    /// The id of what an earlier request with this key made, when this one
    /// is a replay; `None` when the work is to be done now.
    pub fn replayed(&self) -> Option<String> {
        self.replayed.clone()
    }

    /// The transaction, for the work (or for reading the replayed result).
    pub fn conn(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }

    /// Reports `event` with the change: written in this transaction at
    /// [`Claimed::commit`].
    pub fn event(&mut self, event: Event) -> &mut Self {
        self.events.push(event);
        self
    }

    /// Records `result_id` as what this request made (a replay keeps the
    /// result it has), writes the events, commits, and wakes the relay.
    pub async fn commit(mut self, result_id: &str) -> Result<(), sqlx::Error> {
        if self.replayed.is_none() {
            idempotency::record_result(&mut self.tx, &self.key, result_id).await?;
        }
        self.commit_events().await
    }

    /// Gives up: rolls the claim and the work back (dropping does the same;
    /// this says so, and waits for it).
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }

    /// Commits without recording a result: a replay (which read only), or
    /// a request whose answer is the resource as it is now.
    pub async fn finish(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }

    async fn commit_events(mut self) -> Result<(), sqlx::Error> {
        let written = !self.events.is_empty();
        for event in &self.events {
            outbox::enqueue(&mut self.tx, event).await?;
        }
        self.tx.commit().await?;
        if written {
            self.outbox.wake();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::DbConfig;

    async fn db() -> Database {
        let dir = std::env::temp_dir().join(format!("meshwork-claimed-{}", uuid::Uuid::now_v7()));
        let db = Database::connect(&DbConfig::sqlite_file(&dir.join("c.db")))
            .await
            .unwrap();
        db.migrate(&sqlx::migrate::Migrator::DEFAULT).await.unwrap();
        db
    }

    async fn count(db: &Database, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(db.pool()).await.unwrap()
    }

    #[tokio::test]
    async fn the_claim_the_result_and_the_events_commit_together_and_replay() {
        let db = db().await;
        let outbox = Outbox::detached();
        let mut first = Claimed::begin(&db, &outbox, "r1", "f", 1).await.unwrap();
        assert_eq!(first.replayed(), None);
        first.event(Event::new("thing.made", "things/t1", "OK"));
        first.commit("t1").await.unwrap();
        assert_eq!(count(&db, "SELECT count(*) FROM event_log").await, 1);

        let again = Claimed::begin(&db, &outbox, "r1", "f", 2).await.unwrap();
        assert_eq!(again.replayed().as_deref(), Some("t1"));
        again.finish().await.unwrap();
        let other = Claimed::begin(&db, &outbox, "r1", "g", 3)
            .await
            .unwrap_err();
        assert!(matches!(other, ClaimError::KeyReused(_)));
    }

    #[tokio::test]
    async fn work_that_fails_leaves_no_claim_and_no_event() {
        let db = db().await;
        let outbox = Outbox::detached();
        let mut claimed = Claimed::begin(&db, &outbox, "r2", "f", 1).await.unwrap();
        claimed.event(Event::new("thing.made", "things/t2", "OK"));
        drop(claimed); // the work failed: no commit
        assert_eq!(count(&db, "SELECT count(*) FROM idempotency_keys").await, 0);
        assert_eq!(count(&db, "SELECT count(*) FROM event_log").await, 0);
        let retried = Claimed::begin(&db, &outbox, "r2", "f", 2).await.unwrap();
        assert_eq!(retried.replayed(), None, "a retry is evaluated afresh");
    }
}
