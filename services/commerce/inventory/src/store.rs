//! The tables of commerce.inventory, one SQL text for SQLite and PostgreSQL.
//!
//! Why it cannot oversell: every change of a level is one conditional
//! `UPDATE ... WHERE <available after the change> >= 0 RETURNING ...`. On
//! PostgreSQL a concurrent update of the same row waits for the first and
//! then evaluates the condition again on the row the first left; SQLite has
//! one writer at a time. Two buyers of the last unit both pass a read, but
//! only one passes the update.
//!
//! Why it cannot deadlock: a transaction first writes its reservation's
//! row (its own id, so no two transactions wait on each other there), then
//! the stock rows in (SKU, warehouse) order, the same order in every
//! transaction; the sweeper expires one reservation per transaction.
//! Starting with a write is also what makes SQLite queue writers instead of
//! failing a read that wants to become a write.
//!
//! Every change of a level appends its movement (with the level after it)
//! and a `StockChanged` event in the same transaction.

use std::sync::Arc;

use meshwork_runtime::db::{Database, placeholders};
use meshwork_runtime::events::{self, NewEvent, Publisher};
use meshwork_runtime::idempotency::{self, Claim};
use meshwork_runtime::time::Clock;
use meshwork_runtime::validate::new_id;
use sqlx::{AnyConnection, Row};

use crate::domain::{
    CommitPlan, Level, Line, MovementKind, ReleasePlan, Reservation, ShipPlan, Shortage, State,
    Wanted, commit_plan, release_plan, ship_plan,
};
use crate::error::InventoryError;

type Result<T> = std::result::Result<T, InventoryError>;

/// The event a change of `level` by a movement of `kind` publishes.
pub type EventOf = Arc<dyn Fn(&Level, &'static str, i64) -> NewEvent + Send + Sync>;

/// How often a transition looks again at a reservation whose state moved
/// while it looked, before answering ABORTED.
const ROUNDS: usize = 4;

/// What the tombstone of an id released before it was reserved says.
const TOMBSTONE_REASON: &str = "released before it was reserved";

/// One change of a level, as the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movement {
    pub movement_id: String,
    pub sku: String,
    pub warehouse_id: String,
    pub kind: String,
    pub on_hand_delta: i64,
    pub reserved_delta: i64,
    pub committed_delta: i64,
    pub reservation_id: String,
    pub created_at: i64,
}

/// The inventory's storage.
#[derive(Clone)]
pub struct Store {
    db: Database,
    publisher: Publisher,
    event_of: EventOf,
    clock: Clock,
}

impl Store {
    /// The store over `db`; events go out through `publisher`.
    pub fn new(db: Database, publisher: Publisher, event_of: EventOf, clock: Clock) -> Self {
        Self {
            db,
            publisher,
            event_of,
            clock,
        }
    }

    fn now(&self) -> i64 {
        self.clock.now_micros()
    }

    /// Receives `quantity` units of `sku` into `warehouse_id`, once per
    /// `request_id`; a repeat answers the level the first left.
    pub async fn restock(
        &self,
        request_id: &str,
        sku: &str,
        warehouse_id: &str,
        quantity: i64,
    ) -> Result<Level> {
        let now = self.now();
        let fingerprint =
            idempotency::fingerprint(&["restock", sku, warehouse_id, &quantity.to_string()]);
        let mut tx = self.db.pool().begin().await?;
        if let Claim::Replay(movement_id) =
            idempotency::claim(&mut tx, request_id, &fingerprint, now).await?
        {
            let level = level_after(&mut tx, &movement_id).await?;
            tx.commit().await?;
            return Ok(level);
        }
        let row = sqlx::query(
            "INSERT INTO stock_levels (sku, warehouse_id, on_hand, reserved, committed, version, updated_at) \
             VALUES ($1, $2, $3, 0, 0, 1, $4) \
             ON CONFLICT (sku, warehouse_id) DO UPDATE SET on_hand = stock_levels.on_hand + excluded.on_hand, \
             version = stock_levels.version + 1, updated_at = excluded.updated_at \
             RETURNING on_hand, reserved, committed, version",
        )
        .bind(sku)
        .bind(warehouse_id)
        .bind(quantity)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let level = level_of_row(sku, warehouse_id, &row)?;
        let movement_id = self
            .record(&mut tx, &level, MovementKind::Restock, quantity, "", now)
            .await?;
        idempotency::record_result(&mut tx, request_id, &movement_id).await?;
        tx.commit().await?;
        self.publisher.wake();
        Ok(level)
    }

    /// The levels of `sku`, by warehouse.
    pub async fn stock(&self, sku: &str) -> Result<Vec<Level>> {
        let rows = sqlx::query(
            "SELECT sku, warehouse_id, on_hand, reserved, committed, version FROM stock_levels \
             WHERE sku = $1 ORDER BY warehouse_id",
        )
        .bind(sku)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(level_of).collect()
    }

    /// The levels of every SKU in `skus`, in one query, grouped by SKU in
    /// the order asked (a SKU never stocked has none).
    pub async fn stocks(&self, skus: &[String]) -> Result<Vec<(String, Vec<Level>)>> {
        let sql = format!(
            "SELECT sku, warehouse_id, on_hand, reserved, committed, version FROM stock_levels \
             WHERE sku IN ({}) ORDER BY sku, warehouse_id",
            placeholders(skus.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for sku in skus {
            query = query.bind(sku);
        }
        let rows = query.fetch_all(self.db.pool()).await?;
        let mut levels = std::collections::HashMap::<String, Vec<Level>>::new();
        for row in &rows {
            let level = level_of(row)?;
            levels.entry(level.sku.clone()).or_default().push(level);
        }
        Ok(skus
            .iter()
            .map(|sku| (sku.clone(), levels.remove(sku).unwrap_or_default()))
            .collect())
    }

    /// Holds `wanted` (in lock order) for `order_id` for `ttl` microseconds,
    /// all lines or none; the same id and request again answers the
    /// reservation it made, whatever happened to it since.
    pub async fn reserve(
        &self,
        reservation_id: &str,
        order_id: &str,
        wanted: &[Wanted],
        fingerprint: &str,
        ttl_micros: i64,
    ) -> Result<Reservation> {
        let now = self.now();
        let mut tx = self.db.pool().begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO reservations (reservation_id, order_id, state, fingerprint, expires_at, release_reason, created_at, updated_at) \
             VALUES ($1, $2, 'ACTIVE', $3, $4, '', $5, $5) ON CONFLICT (reservation_id) DO NOTHING",
        )
        .bind(reservation_id)
        .bind(order_id)
        .bind(fingerprint)
        .bind(now.saturating_add(ttl_micros))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            let (stored, existing) = read(&mut tx, reservation_id)
                .await?
                .ok_or_else(|| InventoryError::internal("a conflicting reservation vanished"))?;
            tx.commit().await?;
            return if stored.is_empty() {
                Err(InventoryError::Tombstoned(reservation_id.to_owned()))
            } else if stored != fingerprint {
                Err(idempotency::KeyReused.into())
            } else {
                Ok(existing)
            };
        }

        let mut shortages = Vec::new();
        let mut held = Vec::new();
        for line in wanted {
            if !shortages.is_empty() {
                // Failing already: only find out what else is short, so the
                // caller hears every short SKU at once.
                let available = self.available(&mut tx, line).await?;
                if available < line.quantity {
                    shortages.push(shortage(line, available));
                }
                continue;
            }
            match self.hold(&mut tx, reservation_id, line, now).await? {
                Some(warehouse_id) => held.push(Line {
                    sku: line.sku.clone(),
                    warehouse_id,
                    quantity: line.quantity,
                }),
                None => {
                    let available = self.available(&mut tx, line).await?;
                    shortages.push(shortage(line, available));
                }
            }
        }
        if !shortages.is_empty() {
            // Nothing is held and the id stays free: a retry once stock is
            // back is a new attempt.
            tx.rollback().await?;
            return Err(InventoryError::OutOfStock(shortages));
        }
        for line in &held {
            sqlx::query(
                "INSERT INTO reservation_lines (reservation_id, sku, warehouse_id, quantity) VALUES ($1, $2, $3, $4)",
            )
            .bind(reservation_id)
            .bind(&line.sku)
            .bind(&line.warehouse_id)
            .bind(line.quantity)
            .execute(&mut *tx)
            .await?;
        }
        let (_, reservation) = read(&mut tx, reservation_id)
            .await?
            .ok_or_else(|| InventoryError::internal("the new reservation vanished"))?;
        tx.commit().await?;
        self.publisher.wake();
        Ok(reservation)
    }

    /// Holds one line: in its warehouse, or in the first (by id) that has
    /// enough; the warehouse it got, or `None`.
    async fn hold(
        &self,
        tx: &mut AnyConnection,
        reservation_id: &str,
        line: &Wanted,
        now: i64,
    ) -> Result<Option<String>> {
        let mut candidates: Vec<String> = match &line.warehouse_id {
            Some(warehouse_id) => vec![warehouse_id.clone()],
            None => {
                sqlx::query_scalar(
                    "SELECT warehouse_id FROM stock_levels \
                 WHERE sku = $1 AND on_hand - reserved - committed >= $2 ORDER BY warehouse_id",
                )
                .bind(&line.sku)
                .bind(line.quantity)
                .fetch_all(&mut *tx)
                .await?
            }
        };
        // Lock order is byte order, not the database's collation.
        candidates.sort();
        for warehouse_id in candidates {
            let moved = self
                .change(
                    tx,
                    &line.sku,
                    &warehouse_id,
                    MovementKind::Reserve,
                    line.quantity,
                    reservation_id,
                    now,
                )
                .await?;
            if moved.is_some() {
                return Ok(Some(warehouse_id));
            }
        }
        Ok(None)
    }

    /// What `line` could get now: in its warehouse, or in the best one
    /// (lines are not split across warehouses).
    async fn available(&self, tx: &mut AnyConnection, line: &Wanted) -> Result<i64> {
        let rows = sqlx::query(
            "SELECT warehouse_id, on_hand - reserved - committed AS available FROM stock_levels WHERE sku = $1",
        )
        .bind(&line.sku)
        .fetch_all(&mut *tx)
        .await?;
        let mut best = 0;
        for row in rows {
            let warehouse_id: String = row.try_get("warehouse_id")?;
            if line
                .warehouse_id
                .as_ref()
                .is_none_or(|w| *w == warehouse_id)
            {
                best = best.max(row.try_get::<i64, _>("available")?);
            }
        }
        Ok(best)
    }

    /// The reservation with this id; `None` for an unknown id (a
    /// tombstone is a RELEASED reservation with no lines).
    pub async fn reservation(&self, reservation_id: &str) -> Result<Option<Reservation>> {
        let mut conn = self.db.pool().acquire().await?;
        Ok(read(&mut conn, reservation_id).await?.map(|(_, r)| r))
    }

    /// Commits a reservation (see the contract's CommitReservation).
    pub async fn commit(&self, reservation_id: &str) -> Result<Reservation> {
        let now = self.now();
        let mut tx = self.db.pool().begin().await?;
        // Each round: a compare-and-set from the state last seen, then a
        // read. On PostgreSQL every statement sees the newest committed
        // rows, so a state that moved between the two (a reserve of this id
        // committing, a concurrent commit) is seen by the next round.
        for _ in 0..ROUNDS {
            // First the compare-and-set from ACTIVE: the common case in one
            // statement, and the first statement a write.
            if self
                .transition(
                    &mut tx,
                    reservation_id,
                    State::Active,
                    State::Committed,
                    "",
                    now,
                )
                .await?
            {
                self.move_lines(&mut tx, reservation_id, MovementKind::Commit, now)
                    .await?;
                return self.done(tx, reservation_id, true).await;
            }
            let (_, reservation) = read(&mut tx, reservation_id)
                .await?
                .ok_or_else(|| InventoryError::NotFound(reservation_id.to_owned()))?;
            match commit_plan(reservation.state) {
                CommitPlan::Done => {
                    tx.commit().await?;
                    return Ok(reservation);
                }
                CommitPlan::Refuse => {
                    return Err(InventoryError::Released(reservation_id.to_owned()));
                }
                CommitPlan::Commit => continue,
                CommitPlan::Rereserve => {
                    if !self
                        .transition(
                            &mut tx,
                            reservation_id,
                            State::Expired,
                            State::Committed,
                            "",
                            now,
                        )
                        .await?
                    {
                        continue;
                    }
                    for line in &reservation.lines {
                        let moved = self
                            .change(
                                &mut tx,
                                &line.sku,
                                &line.warehouse_id,
                                MovementKind::Rereserve,
                                line.quantity,
                                reservation_id,
                                now,
                            )
                            .await?;
                        if moved.is_none() {
                            tx.rollback().await?;
                            return Err(InventoryError::Expired(reservation_id.to_owned()));
                        }
                    }
                    return self.done(tx, reservation_id, true).await;
                }
            }
        }
        Err(InventoryError::Contended(reservation_id.to_owned()))
    }

    /// Releases a reservation (see the contract's ReleaseReservation).
    pub async fn release(&self, reservation_id: &str, reason: &str) -> Result<Reservation> {
        let now = self.now();
        let mut tx = self.db.pool().begin().await?;
        // Rounds as in `commit`: a reserve of this id that commits while we
        // look (or write its tombstone) is seen by the next one.
        for _ in 0..ROUNDS {
            for (from, kind) in [
                (State::Active, MovementKind::Release),
                (State::Committed, MovementKind::ReleaseCommitted),
            ] {
                if self
                    .transition(&mut tx, reservation_id, from, State::Released, reason, now)
                    .await?
                {
                    self.move_lines(&mut tx, reservation_id, kind, now).await?;
                    return self.done(tx, reservation_id, true).await;
                }
            }
            match read(&mut tx, reservation_id).await? {
                Some((_, reservation)) => match release_plan(reservation.state) {
                    ReleasePlan::Done => {
                        tx.commit().await?;
                        return Ok(reservation);
                    }
                    ReleasePlan::Refuse => {
                        return Err(InventoryError::Shipped(reservation_id.to_owned()));
                    }
                    // Its units went back when it expired: only the state
                    // changes, so that a late commit is refused.
                    ReleasePlan::Mark => {
                        if self
                            .transition(
                                &mut tx,
                                reservation_id,
                                State::Expired,
                                State::Released,
                                reason,
                                now,
                            )
                            .await?
                        {
                            return self.done(tx, reservation_id, false).await;
                        }
                    }
                    ReleasePlan::Give(_) => {}
                },
                None => {
                    let tombstone = sqlx::query(
                        "INSERT INTO reservations (reservation_id, order_id, state, fingerprint, expires_at, release_reason, created_at, updated_at) \
                         VALUES ($1, '', 'RELEASED', '', $2, $3, $2, $2) ON CONFLICT (reservation_id) DO NOTHING",
                    )
                    .bind(reservation_id)
                    .bind(now)
                    .bind(TOMBSTONE_REASON)
                    .execute(&mut *tx)
                    .await?;
                    if tombstone.rows_affected() == 1 {
                        return self.done(tx, reservation_id, false).await;
                    }
                }
            }
        }
        Err(InventoryError::Contended(reservation_id.to_owned()))
    }

    /// Ships a committed reservation (see the contract's ShipReservation).
    pub async fn ship(&self, reservation_id: &str) -> Result<Reservation> {
        let now = self.now();
        let mut tx = self.db.pool().begin().await?;
        for _ in 0..ROUNDS {
            if self
                .transition(
                    &mut tx,
                    reservation_id,
                    State::Committed,
                    State::Shipped,
                    "",
                    now,
                )
                .await?
            {
                self.move_lines(&mut tx, reservation_id, MovementKind::Ship, now)
                    .await?;
                return self.done(tx, reservation_id, true).await;
            }
            let (_, reservation) = read(&mut tx, reservation_id)
                .await?
                .ok_or_else(|| InventoryError::NotFound(reservation_id.to_owned()))?;
            match ship_plan(reservation.state) {
                ShipPlan::Done => {
                    tx.commit().await?;
                    return Ok(reservation);
                }
                ShipPlan::Refuse => {
                    return Err(InventoryError::NotCommitted {
                        reservation_id: reservation_id.to_owned(),
                        state: reservation.state,
                    });
                }
                ShipPlan::Ship => continue,
            }
        }
        Err(InventoryError::Contended(reservation_id.to_owned()))
    }

    /// Reads the reservation as the transaction left it and commits; wakes
    /// the event sequencer when levels moved.
    async fn done(
        &self,
        mut tx: sqlx::Transaction<'static, sqlx::Any>,
        reservation_id: &str,
        moved: bool,
    ) -> Result<Reservation> {
        let (_, reservation) = read(&mut tx, reservation_id)
            .await?
            .ok_or_else(|| InventoryError::internal("the reservation vanished"))?;
        tx.commit().await?;
        if moved {
            self.publisher.wake();
        }
        Ok(reservation)
    }

    /// Expires up to `limit` ACTIVE reservations that are due, one
    /// transaction each; how many it expired.
    pub async fn expire_due(&self, limit: i64) -> Result<usize> {
        let now = self.now();
        let due: Vec<String> = sqlx::query_scalar(
            "SELECT reservation_id FROM reservations WHERE state = 'ACTIVE' AND expires_at <= $1 \
             ORDER BY expires_at LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(self.db.pool())
        .await?;
        let mut expired = 0;
        for reservation_id in due {
            // One bad reservation must not stop the others expiring.
            match self.expire(&reservation_id, now).await {
                Ok(true) => expired += 1,
                Ok(false) => {}
                Err(error) => {
                    tracing::error!(%error, reservation_id, "could not expire a reservation");
                }
            }
        }
        if expired > 0 {
            self.publisher.wake();
        }
        Ok(expired)
    }

    /// Expires one due reservation; whether it did (a commit or release
    /// that got there first wins).
    async fn expire(&self, reservation_id: &str, now: i64) -> Result<bool> {
        let mut tx = self.db.pool().begin().await?;
        let changed = sqlx::query(
            "UPDATE reservations SET state = 'EXPIRED', updated_at = $2 \
             WHERE reservation_id = $1 AND state = 'ACTIVE' AND expires_at <= $2",
        )
        .bind(reservation_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let expired = changed.rows_affected() == 1;
        if expired {
            self.move_lines(&mut tx, reservation_id, MovementKind::Expire, now)
                .await?;
        }
        tx.commit().await?;
        Ok(expired)
    }

    /// Movements of `sku`, newest first, older than `before` when given.
    pub async fn movements(
        &self,
        sku: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Movement>> {
        let rows = sqlx::query(
            "SELECT movement_id, sku, warehouse_id, kind, on_hand_delta, reserved_delta, committed_delta, \
             reservation_id, created_at FROM movements \
             WHERE sku = $1 AND ($2 = '' OR movement_id < $2) ORDER BY movement_id DESC LIMIT $3",
        )
        .bind(sku)
        .bind(before.unwrap_or(""))
        .bind(limit as i64)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Movement {
                    movement_id: row.try_get("movement_id")?,
                    sku: row.try_get("sku")?,
                    warehouse_id: row.try_get("warehouse_id")?,
                    kind: row.try_get("kind")?,
                    on_hand_delta: row.try_get("on_hand_delta")?,
                    reserved_delta: row.try_get("reserved_delta")?,
                    committed_delta: row.try_get("committed_delta")?,
                    reservation_id: row.try_get("reservation_id")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Compare-and-set of a reservation's state; whether it moved.
    async fn transition(
        &self,
        tx: &mut AnyConnection,
        reservation_id: &str,
        from: State,
        to: State,
        reason: &str,
        now: i64,
    ) -> Result<bool> {
        let changed = sqlx::query(
            "UPDATE reservations SET state = $3, release_reason = $4, updated_at = $5 \
             WHERE reservation_id = $1 AND state = $2",
        )
        .bind(reservation_id)
        .bind(from.as_str())
        .bind(to.as_str())
        .bind(reason)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        Ok(changed.rows_affected() == 1)
    }

    /// Applies `kind` to every line of a reservation whose state just
    /// moved; these movements never take available units, so each must
    /// apply.
    async fn move_lines(
        &self,
        tx: &mut AnyConnection,
        reservation_id: &str,
        kind: MovementKind,
        now: i64,
    ) -> Result<()> {
        for line in lines(tx, reservation_id).await? {
            let moved = self
                .change(
                    tx,
                    &line.sku,
                    &line.warehouse_id,
                    kind,
                    line.quantity,
                    reservation_id,
                    now,
                )
                .await?;
            if moved.is_none() {
                return Err(InventoryError::internal(format!(
                    "{} of reservation {reservation_id} does not fit the level of {}/{}",
                    kind.as_str(),
                    line.sku,
                    line.warehouse_id
                )));
            }
        }
        Ok(())
    }

    /// The one statement that changes a level: conditional on the level
    /// keeping `available >= 0`, with its movement and event. `None` when
    /// the condition (or the level) is not there.
    #[allow(clippy::too_many_arguments)]
    async fn change(
        &self,
        tx: &mut AnyConnection,
        sku: &str,
        warehouse_id: &str,
        kind: MovementKind,
        quantity: i64,
        reservation_id: &str,
        now: i64,
    ) -> Result<Option<Level>> {
        let d = kind.deltas(quantity);
        let row = sqlx::query(
            "UPDATE stock_levels SET on_hand = on_hand + $3, reserved = reserved + $4, \
             committed = committed + $5, version = version + 1, updated_at = $6 \
             WHERE sku = $1 AND warehouse_id = $2 \
             AND (on_hand + $3) - (reserved + $4) - (committed + $5) >= 0 \
             RETURNING on_hand, reserved, committed, version",
        )
        .bind(sku)
        .bind(warehouse_id)
        .bind(d.on_hand)
        .bind(d.reserved)
        .bind(d.committed)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let level = level_of_row(sku, warehouse_id, &row)?;
        self.record(tx, &level, kind, quantity, reservation_id, now)
            .await?;
        Ok(Some(level))
    }

    /// Appends the movement that left `level`, and its event; the
    /// movement's id.
    async fn record(
        &self,
        tx: &mut AnyConnection,
        level: &Level,
        kind: MovementKind,
        quantity: i64,
        reservation_id: &str,
        now: i64,
    ) -> Result<String> {
        let d = kind.deltas(quantity);
        let movement_id = new_id("mov");
        sqlx::query(
            "INSERT INTO movements (movement_id, sku, warehouse_id, kind, on_hand_delta, reserved_delta, \
             committed_delta, on_hand_after, reserved_after, committed_after, version_after, reservation_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&movement_id)
        .bind(&level.sku)
        .bind(&level.warehouse_id)
        .bind(kind.as_str())
        .bind(d.on_hand)
        .bind(d.reserved)
        .bind(d.committed)
        .bind(level.on_hand)
        .bind(level.reserved)
        .bind(level.committed)
        .bind(level.version)
        .bind(reservation_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        events::write(tx, &(self.event_of)(level, kind.as_str(), now)).await?;
        Ok(movement_id)
    }
}

fn shortage(line: &Wanted, available: i64) -> Shortage {
    Shortage {
        sku: line.sku.clone(),
        requested: line.quantity,
        available: available.max(0),
    }
}

/// A reservation and its stored fingerprint (empty for a tombstone).
async fn read(
    conn: &mut AnyConnection,
    reservation_id: &str,
) -> Result<Option<(String, Reservation)>> {
    let row = sqlx::query(
        "SELECT order_id, state, fingerprint, expires_at, release_reason, created_at, updated_at \
         FROM reservations WHERE reservation_id = $1",
    )
    .bind(reservation_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let state: String = row.try_get("state")?;
    let reservation = Reservation {
        reservation_id: reservation_id.to_owned(),
        order_id: row.try_get("order_id")?,
        state: State::parse(&state)
            .ok_or_else(|| InventoryError::internal(format!("unknown state {state:?}")))?,
        lines: lines(conn, reservation_id).await?,
        expires_at: row.try_get("expires_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        release_reason: row.try_get("release_reason")?,
    };
    Ok(Some((row.try_get("fingerprint")?, reservation)))
}

async fn lines(conn: &mut AnyConnection, reservation_id: &str) -> Result<Vec<Line>> {
    let rows = sqlx::query(
        "SELECT sku, warehouse_id, quantity FROM reservation_lines WHERE reservation_id = $1",
    )
    .bind(reservation_id)
    .fetch_all(&mut *conn)
    .await?;
    let lines = rows
        .iter()
        .map(|row| {
            Ok(Line {
                sku: row.try_get("sku")?,
                warehouse_id: row.try_get("warehouse_id")?,
                quantity: row.try_get("quantity")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    // Lock order (byte order), whatever the database's collation is.
    Ok(crate::domain::sorted(lines))
}

/// The level a movement left (a replayed restock's answer).
async fn level_after(conn: &mut AnyConnection, movement_id: &str) -> Result<Level> {
    let row = sqlx::query(
        "SELECT sku, warehouse_id, on_hand_after AS on_hand, reserved_after AS reserved, \
         committed_after AS committed, version_after AS version FROM movements WHERE movement_id = $1",
    )
    .bind(movement_id)
    .fetch_one(&mut *conn)
    .await?;
    level_of(&row)
}

fn level_of(row: &sqlx::any::AnyRow) -> Result<Level> {
    let sku: String = row.try_get("sku")?;
    let warehouse_id: String = row.try_get("warehouse_id")?;
    level_of_row(&sku, &warehouse_id, row)
}

fn level_of_row(sku: &str, warehouse_id: &str, row: &sqlx::any::AnyRow) -> Result<Level> {
    Ok(Level {
        sku: sku.to_owned(),
        warehouse_id: warehouse_id.to_owned(),
        on_hand: row.try_get("on_hand")?,
        reserved: row.try_get("reserved")?,
        committed: row.try_get("committed")?,
        version: row.try_get("version")?,
    })
}
