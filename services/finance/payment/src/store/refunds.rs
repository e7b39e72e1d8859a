//! Refunds: reserved against the payment row with a guarded update, so
//! that concurrent refunds never add up to more than was paid, then
//! finished (or failed, freeing the amount) with their audit events.

use super::*;

impl Store {
    /// Reserves a refund once per request id: the payment must be paid and
    /// settled, and refunds (done and in progress) stay within its amount.
    /// The refund, the payment after it, and whether it is new.
    pub async fn reserve_refund(
        &self,
        request_id: &str,
        payment_id: &str,
        amount_minor: i64,
        currency: &str,
        reason: &str,
    ) -> Result<(Refund, Payment, bool), PaymentError> {
        let amount = amount_minor.to_string();
        let fingerprint =
            idempotency::fingerprint(&["refund", payment_id, &amount, currency, reason]);
        let now = now_micros();
        let mut claimed =
            Claimed::begin(&self.db, &self.outbox, request_id, &fingerprint, now).await?;
        if let Some(id) = claimed.replayed() {
            let refund = fetch_refund(claimed.conn(), &id)
                .await?
                .ok_or_else(|| missing(&id))?;
            let payment = fetch(claimed.conn(), payment_id)
                .await?
                .ok_or_else(|| missing(payment_id))?;
            claimed.finish().await?;
            return Ok((refund, payment, false));
        }
        let payment = fetch(claimed.conn(), payment_id)
            .await?
            .ok_or_else(|| PaymentError::NotFound(payment_id.to_owned()))?;
        if payment.currency != currency {
            return Err(PaymentError::Refused(Refusal::CurrencyMismatch {
                reported: currency.to_owned(),
                expected: payment.currency,
            }));
        }
        let reserved = sqlx::query(
            "UPDATE payments SET refund_reserved_minor = refund_reserved_minor + $1, updated_at = $2 \
             WHERE payment_id = $3 AND state IN ('SUCCEEDED', 'PARTIALLY_REFUNDED') \
             AND settlement_state = 'SETTLED' \
             AND refunded_minor + refund_reserved_minor + $1 <= amount_minor",
        )
        .bind(amount_minor)
        .bind(now)
        .bind(payment_id)
        .execute(claimed.conn())
        .await?;
        if reserved.rows_affected() == 0 {
            // Why, from a fresh read (the guard saw the latest row).
            let payment = fetch(claimed.conn(), payment_id)
                .await?
                .ok_or_else(|| missing(payment_id))?;
            claimed.rollback().await?;
            return Err(match payment.rules().refund(amount_minor) {
                Err(refusal) => PaymentError::Refused(refusal),
                Ok(_) if payment.settlement != Settlement::Settled => {
                    PaymentError::NotSettled(payment.id)
                }
                Ok(_) => PaymentError::Conflict(payment.id),
            });
        }
        let refund = Refund {
            id: new_id("rfd"),
            payment_id: payment_id.to_owned(),
            request_id: request_id.to_owned(),
            amount_minor,
            reason: reason.to_owned(),
            state: RefundState::Processing,
            failure_reason: String::new(),
            created_at: now,
            updated_at: now,
        };
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO refunds ({REFUND_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        )))
        .bind(&refund.id)
        .bind(&refund.payment_id)
        .bind(&refund.request_id)
        .bind(refund.amount_minor)
        .bind(&refund.reason)
        .bind(refund.state.as_str())
        .bind(&refund.failure_reason)
        .bind(refund.created_at)
        .bind(refund.updated_at)
        .execute(claimed.conn())
        .await?;
        let payment = fetch(claimed.conn(), payment_id)
            .await?
            .ok_or_else(|| missing(payment_id))?;
        let event = payment_event("payment.refund_requested", "OK", &payment)
            .attr("refund_id", &refund.id)
            .attr("refund_minor", amount_minor)
            .attr("reason", reason);
        claimed.event(event);
        claimed.commit(&refund.id).await?;
        Ok((refund, payment, true))
    }

    /// Ends a refund in progress: on success the amount moves from reserved
    /// to refunded (and the payment to PARTIALLY_REFUNDED or REFUNDED), on
    /// failure it is released. Once per refund.
    pub async fn finish_refund(
        &self,
        refund_id: &str,
        succeeded: bool,
        failure_reason: &str,
    ) -> Result<(Refund, Payment), PaymentError> {
        let now = now_micros();
        let mut tx = self.db.pool().begin().await?;
        let state = if succeeded {
            RefundState::Succeeded
        } else {
            RefundState::Failed
        };
        let changed = sqlx::query(
            "UPDATE refunds SET state = $1, failure_reason = $2, updated_at = $3 \
             WHERE refund_id = $4 AND state = 'PROCESSING'",
        )
        .bind(state.as_str())
        .bind(failure_reason)
        .bind(now)
        .bind(refund_id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        let refund = fetch_refund(&mut tx, refund_id)
            .await?
            .ok_or_else(|| missing(refund_id))?;
        if changed {
            let refunded = if succeeded { refund.amount_minor } else { 0 };
            sqlx::query(
                "UPDATE payments SET refund_reserved_minor = refund_reserved_minor - $1, \
                 refunded_minor = refunded_minor + $2, \
                 state = CASE WHEN $2 = 0 THEN state \
                              WHEN refunded_minor + $2 >= amount_minor THEN 'REFUNDED' \
                              ELSE 'PARTIALLY_REFUNDED' END, \
                 updated_at = $3 WHERE payment_id = $4",
            )
            .bind(refund.amount_minor)
            .bind(refunded)
            .bind(now)
            .bind(&refund.payment_id)
            .execute(&mut *tx)
            .await?;
        }
        let payment = fetch(&mut tx, &refund.payment_id)
            .await?
            .ok_or_else(|| missing(&refund.payment_id))?;
        if changed {
            let (action, outcome) = match succeeded {
                true => ("payment.refunded", "OK"),
                false => ("payment.refund_failed", "FAILED"),
            };
            let event = payment_event(action, outcome, &payment)
                .attr("refund_id", &refund.id)
                .attr("refund_minor", refund.amount_minor)
                .attr("reason", failure_reason);
            outbox::enqueue(&mut tx, &event).await?;
        }
        tx.commit().await?;
        if changed {
            self.outbox.wake();
        }
        Ok((refund, payment))
    }

    /// Marks a refund looked at now.
    pub async fn touch_refund(&self, refund_id: &str) -> Result<(), PaymentError> {
        sqlx::query("UPDATE refunds SET updated_at = $1 WHERE refund_id = $2")
            .bind(now_micros())
            .bind(refund_id)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// A payment's refunds, oldest first.
    pub async fn refunds(&self, payment_id: &str) -> Result<Vec<Refund>, PaymentError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {REFUND_COLUMNS} FROM refunds WHERE payment_id = $1 ORDER BY refund_id"
        )))
        .bind(payment_id)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(refund_from_row).collect()
    }
}

pub(super) fn refund_from_row(row: &AnyRow) -> Result<Refund, PaymentError> {
    let state: String = row.try_get("state")?;
    Ok(Refund {
        id: row.try_get("refund_id")?,
        payment_id: row.try_get("payment_id")?,
        request_id: row.try_get("request_id")?,
        amount_minor: row.try_get("amount_minor")?,
        reason: row.try_get("reason")?,
        state: RefundState::parse(&state).ok_or_else(|| corrupt("refunds.state", &state))?,
        failure_reason: row.try_get("failure_reason")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}
