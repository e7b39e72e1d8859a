//! The payment service's tables, one SQL text for SQLite and PostgreSQL.
//!
//! Every state change is a guarded `UPDATE ... WHERE state = <expected>`
//! written in one transaction with the outbox event that reports it, so
//! concurrent workers (a notification, the sync job, a client's retry)
//! cannot both move a payment, and the audit trail has exactly the changes
//! that happened. Refunds reserve their amount with a guarded update on the
//! payment row, so concurrent refunds never add up to more than was paid.

use meshwork_runtime::claimed::{Begun, Claimed};
use meshwork_runtime::db::Database;
use meshwork_runtime::idempotency;
use meshwork_runtime::outbox::{self, Event, Outbox};
use meshwork_runtime::time::now_micros;
use meshwork_runtime::validate::new_id;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::domain::{
    Channel, NewPayment, Outcome, Payment, PaymentState, Refund, RefundState, Refusal, Report,
    Settlement,
};
use crate::error::PaymentError;

mod clearing;
mod refunds;

use refunds::refund_from_row;

const PAYMENT_COLUMNS: &str = "payment_id, request_id, merchant_account_id, merchant_order_ref, \
     currency, amount_minor, channel, description, state, pay_url, channel_trade_id, failure_reason, \
     refunded_minor, refund_reserved_minor, settlement_state, settlement_transfer_id, traceparent, \
     created_at, updated_at, expires_at";

const REFUND_COLUMNS: &str = "refund_id, payment_id, request_id, amount_minor, reason, state, \
     failure_reason, created_at, updated_at";

/// What applying a channel's report did.
#[derive(Debug, Clone)]
pub enum Applied {
    /// The payment moved (to the state in it).
    Moved(Payment),
    /// Nothing to change (a repeat, or still waiting).
    Unchanged(Payment),
    /// This notification was taken before: delivered again.
    Duplicate(Payment),
}

/// The service's tables.
#[derive(Clone)]
pub struct Store {
    db: Database,
    outbox: Outbox,
}

fn payment_event(action: &str, outcome: &str, payment: &Payment) -> Event {
    Event::new(action, &format!("payments/{}", payment.id), outcome)
        .attr("payment_id", &payment.id)
        .attr("merchant_account_id", &payment.merchant_account_id)
        .attr("merchant_order_ref", &payment.merchant_order_ref)
        .attr("channel", payment.channel.as_str())
        .attr("amount_minor", payment.amount_minor)
        .attr("currency", &payment.currency)
        .attr("state", payment.state.as_str())
}

impl Store {
    /// A store over the service's (migrated) database.
    pub fn new(db: Database, outbox: Outbox) -> Self {
        Self { db, outbox }
    }

    /// Enqueues `event` on its own (for what changes no row: a refused
    /// notification).
    pub async fn record(&self, event: &Event) -> Result<(), PaymentError> {
        let mut tx = self.db.pool().begin().await?;
        outbox::enqueue(&mut tx, event).await?;
        tx.commit().await?;
        self.outbox.wake();
        Ok(())
    }

    /// Whether `request_id` was used before (by any request).
    pub async fn claimed(&self, request_id: &str) -> Result<bool, PaymentError> {
        let row = sqlx::query("SELECT 1 AS found FROM idempotency_keys WHERE request_id = $1")
            .bind(request_id)
            .fetch_optional(self.db.pool())
            .await?;
        Ok(row.is_some())
    }

    /// Accepts a payment once per request id (CREATED); a repeated request
    /// id gets the payment it created.
    pub async fn create(
        &self,
        request_id: &str,
        new: &NewPayment,
        traceparent: &str,
    ) -> Result<Payment, PaymentError> {
        let amount = new.amount_minor.to_string();
        let ttl = new.ttl_micros.to_string();
        let fingerprint = idempotency::fingerprint(&[
            "payment",
            &new.merchant_account_id,
            &new.merchant_order_ref,
            &new.currency,
            &amount,
            new.channel.as_str(),
            &new.description,
            &ttl,
        ]);
        let now = now_micros();
        let begun = Claimed::begin_or_replay(
            &self.db,
            &self.outbox,
            request_id,
            &fingerprint,
            now,
            read_payment,
        );
        let mut claimed = match begun.await? {
            Begun::New(claimed) => claimed,
            Begun::Replayed(payment) => return Ok(payment),
        };
        let payment = Payment {
            id: new_id("pay"),
            request_id: request_id.to_owned(),
            merchant_account_id: new.merchant_account_id.clone(),
            merchant_order_ref: new.merchant_order_ref.clone(),
            currency: new.currency.clone(),
            amount_minor: new.amount_minor,
            channel: new.channel,
            description: new.description.clone(),
            state: PaymentState::Created,
            pay_url: String::new(),
            channel_trade_id: String::new(),
            failure_reason: String::new(),
            refunded_minor: 0,
            refund_reserved_minor: 0,
            settlement: Settlement::None,
            settlement_transfer_id: String::new(),
            traceparent: traceparent.to_owned(),
            created_at: now,
            updated_at: now,
            expires_at: now.saturating_add(new.ttl_micros),
        };
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO payments ({PAYMENT_COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)"
        )))
        .bind(&payment.id)
        .bind(&payment.request_id)
        .bind(&payment.merchant_account_id)
        .bind(&payment.merchant_order_ref)
        .bind(&payment.currency)
        .bind(payment.amount_minor)
        .bind(payment.channel.as_str())
        .bind(&payment.description)
        .bind(payment.state.as_str())
        .bind(&payment.pay_url)
        .bind(&payment.channel_trade_id)
        .bind(&payment.failure_reason)
        .bind(payment.refunded_minor)
        .bind(payment.refund_reserved_minor)
        .bind(payment.settlement.as_str())
        .bind(&payment.settlement_transfer_id)
        .bind(&payment.traceparent)
        .bind(payment.created_at)
        .bind(payment.updated_at)
        .bind(payment.expires_at)
        .execute(claimed.conn())
        .await?;
        claimed.event(payment_event("payment.created", "OK", &payment));
        claimed.commit(&payment.id).await?;
        Ok(payment)
    }

    /// Applies a guarded update of one payment and, when it changed the
    /// row, the event reporting it, in one transaction.
    async fn change(
        &self,
        update: sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments>,
        payment_id: &str,
        report: impl FnOnce(&Payment) -> Event,
    ) -> Result<(Payment, bool), PaymentError> {
        let mut tx = self.db.pool().begin().await?;
        let changed = update.execute(&mut *tx).await?.rows_affected() == 1;
        let payment = fetch(&mut tx, payment_id)
            .await?
            .ok_or_else(|| PaymentError::NotFound(payment_id.to_owned()))?;
        if changed {
            outbox::enqueue(&mut tx, &report(&payment)).await?;
        }
        tx.commit().await?;
        if changed {
            self.outbox.wake();
        }
        Ok((payment, changed))
    }

    /// CREATED → PENDING, with what the payer needs.
    pub async fn mark_opened(
        &self,
        payment_id: &str,
        pay_url: &str,
    ) -> Result<Payment, PaymentError> {
        let update = sqlx::query(
            "UPDATE payments SET state = 'PENDING', pay_url = $1, updated_at = $2 \
             WHERE payment_id = $3 AND state = 'CREATED'",
        )
        .bind(pay_url)
        .bind(now_micros())
        .bind(payment_id);
        let (payment, opened) = self
            .change(update, payment_id, |p| {
                payment_event("payment.opened", "OK", p)
            })
            .await?;
        if opened || !payment.pay_url.is_empty() {
            return Ok(payment);
        }
        // The channel's notification came first (the payer was quicker than
        // our bookkeeping): the payment has moved on, and keeps its pay URL.
        sqlx::query("UPDATE payments SET pay_url = $1 WHERE payment_id = $2 AND pay_url = ''")
            .bind(pay_url)
            .bind(payment_id)
            .execute(self.db.pool())
            .await?;
        self.get(payment_id).await
    }

    /// A payment in one of `from` (open states, at most two) → FAILED or
    /// EXPIRED, for `reason` (the channel refused to open it, cancelled,
    /// out of time).
    pub async fn close(
        &self,
        payment_id: &str,
        from: &[PaymentState],
        to: PaymentState,
        reason: &str,
        action: &str,
    ) -> Result<(Payment, bool), PaymentError> {
        debug_assert!(from.iter().all(|s| s.is_open()));
        // Two guards cover the states this may start from.
        let either = |i: usize| from.get(i).or(from.first()).map_or("", |s| s.as_str());
        let update = sqlx::query(
            "UPDATE payments SET state = $1, failure_reason = $2, updated_at = $3 \
             WHERE payment_id = $4 AND state IN ($5, $6)",
        )
        .bind(to.as_str())
        .bind(reason)
        .bind(now_micros())
        .bind(payment_id)
        .bind(either(0))
        .bind(either(1));
        let outcome = if to == PaymentState::Failed {
            "FAILED"
        } else {
            "OK"
        };
        self.change(update, payment_id, |p| {
            payment_event(action, outcome, p).attr("reason", reason)
        })
        .await
    }

    /// Applies what the channel reports. With `replay` (channel, key) the
    /// report comes from a notification, taken at most once per key.
    pub async fn apply(
        &self,
        payment_id: &str,
        report: &Report,
        channel_trade_id: &str,
        replay: Option<(Channel, &str)>,
    ) -> Result<Applied, ApplyError> {
        // A lost race with another worker re-reads and decides again.
        for _ in 0..8 {
            let now = now_micros();
            let mut tx = self.db.pool().begin().await.map_err(PaymentError::from)?;
            // Write first: the row is locked on PostgreSQL (a portable
            // SELECT ... FOR UPDATE) and SQLite takes its write lock now,
            // not on a later upgrade that a concurrent commit would refuse.
            sqlx::query("UPDATE payments SET updated_at = updated_at WHERE payment_id = $1")
                .bind(payment_id)
                .execute(&mut *tx)
                .await
                .map_err(PaymentError::from)?;
            let payment = fetch(&mut tx, payment_id).await?.ok_or_else(|| {
                ApplyError::Payment(PaymentError::NotFound(payment_id.to_owned()))
            })?;
            let outcome = payment.rules().apply(report).map_err(ApplyError::Refused)?;
            if let Some((channel, key)) = replay {
                let taken = sqlx::query(
                    "INSERT INTO notifications (channel, replay_key, payment_id, received_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (channel, replay_key) DO NOTHING",
                )
                .bind(channel.as_str())
                .bind(key)
                .bind(payment_id)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(PaymentError::from)?;
                if taken.rows_affected() == 0 {
                    tx.commit().await.map_err(PaymentError::from)?;
                    return Ok(Applied::Duplicate(payment));
                }
            }
            let next = match outcome {
                Outcome::Unchanged => {
                    tx.commit().await.map_err(PaymentError::from)?;
                    return Ok(Applied::Unchanged(payment));
                }
                Outcome::Move(next) => next,
            };
            let (settlement, reason) = match next {
                PaymentState::Succeeded => (Settlement::Pending, ""),
                _ => (payment.settlement, "CHANNEL_DECLINED"),
            };
            let moved = sqlx::query(
                "UPDATE payments SET state = $1, settlement_state = $2, failure_reason = $3, \
                 channel_trade_id = CASE WHEN $4 = '' THEN channel_trade_id ELSE $4 END, updated_at = $5 \
                 WHERE payment_id = $6 AND state = $7",
            )
            .bind(next.as_str())
            .bind(settlement.as_str())
            .bind(reason)
            .bind(channel_trade_id)
            .bind(now)
            .bind(payment_id)
            .bind(payment.state.as_str())
            .execute(&mut *tx)
            .await
            .map_err(PaymentError::from)?;
            if moved.rows_affected() == 0 {
                tx.rollback().await.map_err(PaymentError::from)?;
                continue;
            }
            let payment = fetch(&mut tx, payment_id)
                .await?
                .ok_or_else(|| missing(payment_id))?;
            let (action, outcome) = match next {
                PaymentState::Succeeded => ("payment.succeeded", "OK"),
                _ => ("payment.failed", "FAILED"),
            };
            let event = payment_event(action, outcome, &payment).attr("reason", reason);
            outbox::enqueue(&mut tx, &event)
                .await
                .map_err(PaymentError::from)?;
            tx.commit().await.map_err(PaymentError::from)?;
            self.outbox.wake();
            return Ok(Applied::Moved(payment));
        }
        Err(ApplyError::Payment(PaymentError::Conflict(
            payment_id.to_owned(),
        )))
    }

    /// Records that the merchant was credited.
    pub async fn mark_settled(
        &self,
        payment_id: &str,
        transfer_id: &str,
    ) -> Result<Payment, PaymentError> {
        let update = sqlx::query(
            "UPDATE payments SET settlement_state = 'SETTLED', settlement_transfer_id = $1, updated_at = $2 \
             WHERE payment_id = $3 AND settlement_state = 'PENDING'",
        )
        .bind(transfer_id)
        .bind(now_micros())
        .bind(payment_id);
        let (payment, _) = self
            .change(update, payment_id, |p| {
                payment_event("payment.settled", "OK", p).attr("transfer_id", transfer_id)
            })
            .await?;
        Ok(payment)
    }

    /// Records that the ledger refused the merchant's credit.
    pub async fn mark_settlement_failed(
        &self,
        payment_id: &str,
        reason: &str,
    ) -> Result<Payment, PaymentError> {
        let update = sqlx::query(
            "UPDATE payments SET settlement_state = 'FAILED', failure_reason = $1, updated_at = $2 \
             WHERE payment_id = $3 AND settlement_state = 'PENDING'",
        )
        .bind(reason)
        .bind(now_micros())
        .bind(payment_id);
        let (payment, _) = self
            .change(update, payment_id, |p| {
                payment_event("payment.settlement_failed", "FAILED", p).attr("reason", reason)
            })
            .await?;
        Ok(payment)
    }

    /// Marks a payment looked at now (the sync job asks again later).
    pub async fn touch(&self, payment_id: &str) -> Result<(), PaymentError> {
        sqlx::query("UPDATE payments SET updated_at = $1 WHERE payment_id = $2")
            .bind(now_micros())
            .bind(payment_id)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// One payment.
    pub async fn get(&self, payment_id: &str) -> Result<Payment, PaymentError> {
        let mut conn = self.db.pool().acquire().await?;
        fetch(&mut conn, payment_id)
            .await?
            .ok_or_else(|| PaymentError::NotFound(payment_id.to_owned()))
    }

    /// Payments (of a merchant account, when given) after `after`, oldest
    /// first, at most `limit`.
    pub async fn list(
        &self,
        merchant_account_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Payment>, PaymentError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments WHERE ($1 = '' OR merchant_account_id = $1) \
             AND payment_id > $2 ORDER BY payment_id LIMIT $3"
        )))
        .bind(merchant_account_id)
        .bind(after.unwrap_or(""))
        .bind(limit as i64)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Work for the sync job: open payments, payments whose credit is
    /// pending, and refunds in progress, each untouched since `before`.
    pub async fn stale(
        &self,
        before: i64,
        limit: usize,
    ) -> Result<(Vec<Payment>, Vec<Refund>), PaymentError> {
        let payments = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments \
             WHERE (state IN ('CREATED', 'PENDING') OR settlement_state = 'PENDING') AND updated_at < $1 \
             ORDER BY updated_at LIMIT $2"
        )))
        .bind(before)
        .bind(limit as i64)
        .fetch_all(self.db.pool())
        .await?;
        let refunds = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {REFUND_COLUMNS} FROM refunds WHERE state = 'PROCESSING' AND updated_at < $1 \
             ORDER BY updated_at LIMIT $2"
        )))
        .bind(before)
        .bind(limit as i64)
        .fetch_all(self.db.pool())
        .await?;
        Ok((
            payments.iter().map(from_row).collect::<Result<_, _>>()?,
            refunds
                .iter()
                .map(refund_from_row)
                .collect::<Result<_, _>>()?,
        ))
    }
}

/// Why a report was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The payment rules refuse it.
    #[error(transparent)]
    Refused(Refusal),
    /// Anything else.
    #[error(transparent)]
    Payment(#[from] PaymentError),
}

impl From<sqlx::Error> for ApplyError {
    fn from(error: sqlx::Error) -> Self {
        Self::Payment(error.into())
    }
}

/// The payment a replayed request made.
async fn read_payment(conn: &mut AnyConnection, id: &str) -> Result<Payment, PaymentError> {
    fetch(conn, id).await?.ok_or_else(|| missing(id))
}

async fn fetch(
    conn: &mut AnyConnection,
    payment_id: &str,
) -> Result<Option<Payment>, PaymentError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {PAYMENT_COLUMNS} FROM payments WHERE payment_id = $1"
    )))
    .bind(payment_id)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(from_row).transpose()
}

async fn fetch_refund(
    conn: &mut AnyConnection,
    refund_id: &str,
) -> Result<Option<Refund>, PaymentError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {REFUND_COLUMNS} FROM refunds WHERE refund_id = $1"
    )))
    .bind(refund_id)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(refund_from_row).transpose()
}

fn from_row(row: &AnyRow) -> Result<Payment, PaymentError> {
    let text = |column: &str| -> Result<String, PaymentError> { Ok(row.try_get(column)?) };
    let channel = text("channel")?;
    let state = text("state")?;
    let settlement = text("settlement_state")?;
    Ok(Payment {
        id: text("payment_id")?,
        request_id: text("request_id")?,
        merchant_account_id: text("merchant_account_id")?,
        merchant_order_ref: text("merchant_order_ref")?,
        currency: text("currency")?,
        amount_minor: row.try_get("amount_minor")?,
        channel: Channel::parse(&channel).ok_or_else(|| corrupt("channel", &channel))?,
        description: text("description")?,
        state: PaymentState::parse(&state).ok_or_else(|| corrupt("state", &state))?,
        pay_url: text("pay_url")?,
        channel_trade_id: text("channel_trade_id")?,
        failure_reason: text("failure_reason")?,
        refunded_minor: row.try_get("refunded_minor")?,
        refund_reserved_minor: row.try_get("refund_reserved_minor")?,
        settlement: Settlement::parse(&settlement)
            .ok_or_else(|| corrupt("settlement_state", &settlement))?,
        settlement_transfer_id: text("settlement_transfer_id")?,
        traceparent: text("traceparent")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}

fn corrupt(column: &str, value: &str) -> PaymentError {
    PaymentError::internal(format!("stored {column} {value:?} is not known"))
}

fn missing(id: &str) -> PaymentError {
    PaymentError::internal(format!("{id} is recorded but not stored"))
}
