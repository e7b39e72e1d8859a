//! The transfers table, one SQL text for SQLite and PostgreSQL, returning
//! domain types.
//!
//! Every state change is a guarded `UPDATE ... WHERE state = <expected>`, so
//! two workers settling the same transfer (a client's retry and the
//! background settler) cannot both move it: the second finds nothing to do
//! and reads what the first wrote.

use meshwork_runtime::claimed::{Begun, Claimed};
use meshwork_runtime::db::Database;
use meshwork_runtime::idempotency;
use meshwork_runtime::outbox::{self, Event, Outbox};
use meshwork_runtime::time::now_micros;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::domain::{
    Currency, NewTransfer, Refusal, Reversal, ReversalState, ReversalStep, Review, Risk,
    RiskDecision, Transfer, TransferState, new_id,
};
use crate::error::TransactionError;

macro_rules! transfer_columns {
    () => {
        "transfer_id, request_id, from_account_id, to_account_id, currency, amount_minor, memo, state, \
         failure_code, failure_reason, failure_subject, failure_message, risk_decision, risk_score, \
         risk_reasons, review_request_id, posting_id, reversal_state, \
         reversal_request_id, reversal_reason, reversal_attempt, reversal_posting_id, created_at, updated_at"
    };
}

/// A filter of [`Store::list`].
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Sent or received by this account; all when empty.
    pub account_id: String,
    /// Created at or after (microseconds); no bound when `None`.
    pub start: Option<i64>,
    /// Created before (microseconds); no bound when `None`.
    pub end: Option<i64>,
}

/// The service's tables.
#[derive(Clone)]
pub struct Store {
    db: Database,
    outbox: Outbox,
}

impl Store {
    /// A store over the service's (migrated) database; state changes are
    /// reported through `outbox`.
    pub fn new(db: Database, outbox: Outbox) -> Self {
        Self { db, outbox }
    }

    /// Applies a guarded update of one transfer and, when it changed the
    /// row, the event that reports the change, in one transaction: the
    /// event exists exactly when the change does.
    async fn change(
        &self,
        update: sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments>,
        transfer_id: &str,
        report: impl FnOnce(&Transfer) -> Option<Event>,
    ) -> Result<Transfer, TransactionError> {
        let mut tx = self.db.pool().begin().await?;
        let changed = update.execute(&mut *tx).await?.rows_affected() == 1;
        let transfer = fetch(&mut tx, transfer_id)
            .await?
            .ok_or_else(|| TransactionError::NotFound(transfer_id.to_owned()))?;
        let event = if changed { report(&transfer) } else { None };
        if let Some(event) = &event {
            outbox::enqueue(&mut tx, event).await?;
        }
        tx.commit().await?;
        if event.is_some() {
            self.outbox.wake();
        }
        Ok(transfer)
    }

    /// Accepts a transfer once per request id: a new one is stored
    /// PROCESSING; a repeated request id gets the transfer it created.
    pub async fn open(
        &self,
        request_id: &str,
        new: &NewTransfer,
    ) -> Result<Transfer, TransactionError> {
        let amount = new.amount_minor.to_string();
        let fingerprint = idempotency::fingerprint(&[
            "transfer",
            &new.from_account_id,
            &new.to_account_id,
            new.currency.as_str(),
            &amount,
            &new.memo,
        ]);
        let now = now_micros();
        let begun = Claimed::begin_or_replay(
            &self.db,
            &self.outbox,
            request_id,
            &fingerprint,
            now,
            read_transfer,
        );
        let mut claimed = match begun.await? {
            Begun::New(claimed) => claimed,
            Begun::Replayed(transfer) => return Ok(transfer),
        };
        let transfer = Transfer {
            id: new_id("trf"),
            request_id: request_id.to_owned(),
            details: new.clone(),
            state: TransferState::Processing,
            refusal: None,
            risk: Risk {
                decision: RiskDecision::Pending,
                score: 0,
                reasons: Vec::new(),
            },
            review_request_id: String::new(),
            posting_id: String::new(),
            reversal: Reversal {
                state: ReversalState::None,
                request_id: String::new(),
                reason: String::new(),
                attempt: 0,
                posting_id: String::new(),
            },
            created_at: now,
            updated_at: now,
        };
        sqlx::query(
            "INSERT INTO transfers (transfer_id, request_id, from_account_id, to_account_id, currency, \
             amount_minor, memo, state, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
        )
        .bind(&transfer.id)
        .bind(request_id)
        .bind(&new.from_account_id)
        .bind(&new.to_account_id)
        .bind(new.currency.as_str())
        .bind(new.amount_minor)
        .bind(&new.memo)
        .bind(transfer.state.as_str())
        .bind(now)
        .execute(claimed.conn())
        .await?;
        claimed.commit(&transfer.id).await?;
        Ok(transfer)
    }

    /// One transfer.
    pub async fn get(&self, transfer_id: &str) -> Result<Transfer, TransactionError> {
        let mut conn = self.db.pool().acquire().await?;
        fetch(&mut conn, transfer_id)
            .await?
            .ok_or_else(|| TransactionError::NotFound(transfer_id.to_owned()))
    }

    /// Transfers matching `filter` after `after` (by id, i.e. creation
    /// order), at most `limit`.
    pub async fn list(
        &self,
        filter: &ListFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Transfer>, TransactionError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            transfer_columns!(),
            " FROM transfers WHERE ($1 = '' OR from_account_id = $1 OR to_account_id = $1) \
             AND created_at >= $2 AND created_at < $3 AND transfer_id > $4 ORDER BY transfer_id LIMIT $5"
        ))
        .bind(&filter.account_id)
        .bind(filter.start.unwrap_or(i64::MIN))
        .bind(filter.end.unwrap_or(i64::MAX))
        .bind(after.unwrap_or(""))
        .bind(limit as i64)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Records risk control's decision on a PROCESSING transfer not yet
    /// assessed: REVIEW holds it (PENDING_REVIEW), REJECT stops it
    /// (REJECTED), APPROVE leaves it PROCESSING for the posting. A no-op when
    /// someone else recorded the (same) decision first.
    pub async fn record_risk(
        &self,
        transfer_id: &str,
        risk: &Risk,
    ) -> Result<Transfer, TransactionError> {
        let state = match risk.decision {
            RiskDecision::Review => TransferState::PendingReview,
            RiskDecision::Reject => TransferState::Rejected,
            _ => TransferState::Processing,
        };
        let refusal = (risk.decision == RiskDecision::Reject).then(|| risk.rejection(transfer_id));
        let refusal = refusal.as_ref();
        let update = sqlx::query(
            "UPDATE transfers SET state = $1, risk_decision = $2, risk_score = $3, risk_reasons = $4, \
             failure_code = $5, failure_reason = $6, failure_subject = $7, failure_message = $8, updated_at = $9 \
             WHERE transfer_id = $10 AND state = 'PROCESSING' AND risk_decision = ''",
        )
        .bind(state.as_str())
        .bind(risk.decision.as_str())
        .bind(i64::from(risk.score))
        .bind(risk.reasons.join("\n"))
        .bind(refusal.map_or("", |r| r.code.as_str()))
        .bind(refusal.map_or("", |r| r.reason.as_str()))
        .bind(refusal.map_or("", |r| r.subject.as_str()))
        .bind(refusal.map_or("", |r| r.message.as_str()))
                .bind(now_micros())
        .bind(transfer_id);
        self.change(update, transfer_id, |t| match t.risk.decision {
            RiskDecision::Review => Some(transfer_event("transfer.held_for_review", "REVIEW", t)),
            RiskDecision::Reject => {
                Some(transfer_event("transfer.rejected", "TRANSFER_REJECTED", t))
            }
            _ => None,
        })
        .await
    }

    /// A reviewer's answer to a PENDING_REVIEW transfer, once per request
    /// id: approval puts it back to PROCESSING (to be posted), a decline
    /// makes it REJECTED. A request refused here leaves no claim behind.
    pub async fn review(
        &self,
        request_id: &str,
        transfer_id: &str,
        review: &Review,
    ) -> Result<Transfer, TransactionError> {
        let (verb, state, decision) = match review {
            Review::Approve { .. } => {
                ("approve", TransferState::Processing, RiskDecision::Approved)
            }
            Review::Decline { .. } => ("decline", TransferState::Rejected, RiskDecision::Declined),
        };
        let fingerprint = idempotency::fingerprint(&[verb, transfer_id, review.text()]);
        let now = now_micros();
        // New or replayed, the transfer's own state decides the answer.
        let mut claimed =
            Claimed::begin(&self.db, &self.outbox, request_id, &fingerprint, now).await?;
        let transfer = fetch(claimed.conn(), transfer_id)
            .await?
            .ok_or_else(|| TransactionError::NotFound(transfer_id.to_owned()))?;
        if transfer.review_request_id == request_id {
            // This request reviewed it before: answer with where it is now.
            claimed.finish().await?;
            return Ok(transfer);
        }
        if transfer.state != TransferState::PendingReview {
            return Err(TransactionError::NotInReview {
                transfer_id: transfer_id.to_owned(),
                state: transfer.state.as_str(),
            });
        }
        let refusal = review.refusal(transfer_id);
        let refusal = refusal.as_ref();
        let updated = sqlx::query(
            "UPDATE transfers SET state = $1, risk_decision = $2, review_request_id = $3, review_note = $4, \
             failure_code = $5, failure_reason = $6, failure_subject = $7, failure_message = $8, updated_at = $9 \
             WHERE transfer_id = $10 AND state = 'PENDING_REVIEW'",
        )
        .bind(state.as_str())
        .bind(decision.as_str())
        .bind(request_id)
        .bind(review.text())
        .bind(refusal.map_or("", |r| r.code.as_str()))
        .bind(refusal.map_or("", |r| r.reason.as_str()))
        .bind(refusal.map_or("", |r| r.subject.as_str()))
        .bind(refusal.map_or("", |r| r.message.as_str()))
        .bind(now)
        .bind(transfer_id)
        .execute(claimed.conn())
        .await?;
        if updated.rows_affected() != 1 {
            return Err(TransactionError::NotInReview {
                transfer_id: transfer_id.to_owned(),
                state: "changing",
            });
        }
        let transfer = fetch(claimed.conn(), transfer_id)
            .await?
            .ok_or_else(|| missing(transfer_id))?;
        let event = match review {
            Review::Approve { .. } => transfer_event("transfer.approved", "APPROVED", &transfer),
            Review::Decline { .. } => {
                transfer_event("transfer.declined", "TRANSFER_DECLINED", &transfer)
            }
        }
        .attr("review_note", review.text());
        claimed.event(event);
        claimed.commit(transfer_id).await?;
        Ok(transfer)
    }

    /// PROCESSING → POSTED; a no-op when someone else settled it first.
    pub async fn mark_posted(
        &self,
        transfer_id: &str,
        posting_id: &str,
    ) -> Result<Transfer, TransactionError> {
        let update = sqlx::query(
            "UPDATE transfers SET state = 'POSTED', posting_id = $1, updated_at = $2 \
             WHERE transfer_id = $3 AND state = 'PROCESSING'",
        )
        .bind(posting_id)
        .bind(now_micros())
        .bind(transfer_id);
        self.change(update, transfer_id, |t| {
            Some(transfer_event("transfer.posted", "OK", t).attr("posting_id", &t.posting_id))
        })
        .await
    }

    /// PROCESSING → FAILED with the ledger's refusal; a no-op when someone
    /// else settled it first.
    pub async fn mark_failed(
        &self,
        transfer_id: &str,
        refusal: &Refusal,
    ) -> Result<Transfer, TransactionError> {
        let update = sqlx::query(
            "UPDATE transfers SET state = 'FAILED', failure_code = $1, failure_reason = $2, \
             failure_subject = $3, failure_message = $4, updated_at = $5 \
             WHERE transfer_id = $6 AND state = 'PROCESSING'",
        )
        .bind(&refusal.code)
        .bind(&refusal.reason)
        .bind(&refusal.subject)
        .bind(&refusal.message)
        .bind(now_micros())
        .bind(transfer_id);
        self.change(update, transfer_id, |t| {
            Some(transfer_event("transfer.failed", &refusal.reason, t))
        })
        .await
    }

    /// Claims `request_id` for reversing `transfer_id` and decides the next
    /// step; a new attempt is marked PROCESSING in the same transaction. A
    /// request that is refused here leaves no claim behind.
    pub async fn begin_reversal(
        &self,
        request_id: &str,
        transfer_id: &str,
        reason: &str,
    ) -> Result<(Transfer, ReversalStep), TransactionError> {
        let fingerprint = idempotency::fingerprint(&["reverse", transfer_id, reason]);
        let now = now_micros();
        // New or replayed, the transfer's own state decides what to do.
        let mut claimed =
            Claimed::begin(&self.db, &self.outbox, request_id, &fingerprint, now).await?;
        let transfer = fetch(claimed.conn(), transfer_id)
            .await?
            .ok_or_else(|| TransactionError::NotFound(transfer_id.to_owned()))?;
        let step = transfer.reversal_step(request_id)?;
        if step == ReversalStep::Start {
            let started = sqlx::query(
                "UPDATE transfers SET reversal_state = 'PROCESSING', reversal_request_id = $1, \
                 reversal_reason = $2, reversal_attempt = reversal_attempt + 1, updated_at = $3 \
                 WHERE transfer_id = $4 AND state = 'POSTED' AND reversal_state = ''",
            )
            .bind(request_id)
            .bind(reason)
            .bind(now)
            .bind(transfer_id)
            .execute(claimed.conn())
            .await?;
            if started.rows_affected() != 1 {
                return Err(TransactionError::ReversalInProgress(transfer_id.to_owned()));
            }
        }
        let transfer = fetch(claimed.conn(), transfer_id)
            .await?
            .ok_or_else(|| missing(transfer_id))?;
        claimed.commit(transfer_id).await?;
        Ok((transfer, step))
    }

    /// Reversal attempt `attempt` posted: POSTED → REVERSED.
    pub async fn finish_reversal(
        &self,
        transfer_id: &str,
        attempt: i64,
        posting_id: &str,
    ) -> Result<Transfer, TransactionError> {
        let update = sqlx::query(
            "UPDATE transfers SET state = 'REVERSED', reversal_state = 'DONE', reversal_posting_id = $1, \
             updated_at = $2 WHERE transfer_id = $3 AND reversal_state = 'PROCESSING' AND reversal_attempt = $4",
        )
        .bind(posting_id)
        .bind(now_micros())
        .bind(transfer_id)
        .bind(attempt);
        self.change(update, transfer_id, |t| {
            Some(
                transfer_event("transfer.reversed", "OK", t)
                    .attr("reversal_posting_id", &t.reversal.posting_id)
                    .attr("reason", &t.reversal.reason),
            )
        })
        .await
    }

    /// Reversal attempt `attempt` refused: the transfer stays POSTED and may
    /// be reversed later (under a new attempt number). The refused request's
    /// claim goes too, so that its retry is evaluated afresh.
    pub async fn abandon_reversal(
        &self,
        transfer_id: &str,
        attempt: i64,
        request_id: &str,
        refusal: &Refusal,
    ) -> Result<(), TransactionError> {
        let mut tx = self.db.pool().begin().await?;
        let released = sqlx::query(
            "UPDATE transfers SET reversal_state = '', updated_at = $1 \
             WHERE transfer_id = $2 AND reversal_state = 'PROCESSING' AND reversal_attempt = $3",
        )
        .bind(now_micros())
        .bind(transfer_id)
        .bind(attempt)
        .execute(&mut *tx)
        .await?;
        // Only the call that released this attempt drops its claim and
        // reports it: a stale copy must not touch a newer attempt's.
        if released.rows_affected() == 1 {
            sqlx::query("DELETE FROM idempotency_keys WHERE request_id = $1")
                .bind(request_id)
                .execute(&mut *tx)
                .await?;
            let transfer = fetch(&mut tx, transfer_id)
                .await?
                .ok_or_else(|| missing(transfer_id))?;
            let event = transfer_event("transfer.reversal_refused", &refusal.reason, &transfer)
                .attr("reason", &refusal.message);
            outbox::enqueue(&mut tx, &event).await?;
        }
        tx.commit().await?;
        if released.rows_affected() == 1 {
            self.outbox.wake();
        }
        Ok(())
    }

    /// Moves a transfer to the back of the settler's queue (its outcome is
    /// still unknown).
    pub async fn touch(&self, transfer_id: &str) -> Result<(), TransactionError> {
        sqlx::query("UPDATE transfers SET updated_at = $1 WHERE transfer_id = $2")
            .bind(now_micros())
            .bind(transfer_id)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// The transfers whose posting or reversal posting is among
    /// `posting_ids`, by posting id.
    pub async fn by_postings(
        &self,
        posting_ids: &[String],
    ) -> Result<std::collections::HashMap<String, Transfer>, TransactionError> {
        let mut found = std::collections::HashMap::new();
        for chunk in posting_ids.chunks(500) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let list = placeholders.join(", ");
            let sql = format!(
                concat!(
                    "SELECT ",
                    transfer_columns!(),
                    " FROM transfers WHERE posting_id IN ({0}) OR reversal_posting_id IN ({0})"
                ),
                list
            );
            // Only generated placeholders are formatted into the text.
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                query = query.bind(id);
            }
            for row in query.fetch_all(self.db.pool()).await? {
                let transfer = from_row(&row)?;
                for id in [&transfer.posting_id, &transfer.reversal.posting_id] {
                    if !id.is_empty() {
                        found.insert(id.clone(), transfer.clone());
                    }
                }
            }
        }
        Ok(found)
    }

    /// Transfers or reversals left PROCESSING since before `older_than`
    /// (microseconds), oldest first: the settler's work list.
    pub async fn in_flight(
        &self,
        older_than: i64,
        limit: usize,
    ) -> Result<Vec<Transfer>, TransactionError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            transfer_columns!(),
            " FROM transfers WHERE (state = 'PROCESSING' OR reversal_state = 'PROCESSING') \
             AND updated_at < $1 ORDER BY updated_at LIMIT $2"
        ))
        .bind(older_than)
        .bind(limit as i64)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }
}

/// The event reporting a change of `transfer`.
fn transfer_event(action: &str, outcome: &str, transfer: &Transfer) -> Event {
    let details = &transfer.details;
    let mut event = Event::new(action, &format!("transfers/{}", transfer.id), outcome)
        .attr("from_account_id", &details.from_account_id)
        .attr("to_account_id", &details.to_account_id)
        .attr("amount_minor", details.amount_minor)
        .attr("currency", &details.currency)
        .attr("memo", &details.memo)
        .attr("risk_score", transfer.risk.score);
    if let Some(refusal) = &transfer.refusal {
        event = event.attr("reason", &refusal.message);
    } else if !transfer.risk.reasons.is_empty() {
        event = event.attr("reason", transfer.risk.reasons.join("; "));
    }
    event
}

/// The transfer a replayed request made.
async fn read_transfer(conn: &mut AnyConnection, id: &str) -> Result<Transfer, TransactionError> {
    fetch(conn, id).await?.ok_or_else(|| missing(id))
}

async fn fetch(
    conn: &mut AnyConnection,
    transfer_id: &str,
) -> Result<Option<Transfer>, TransactionError> {
    let row = sqlx::query(concat!(
        "SELECT ",
        transfer_columns!(),
        " FROM transfers WHERE transfer_id = $1"
    ))
    .bind(transfer_id)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(from_row).transpose()
}

fn from_row(row: &AnyRow) -> Result<Transfer, TransactionError> {
    let currency: String = row.try_get("currency")?;
    let state: String = row.try_get("state")?;
    let reversal_state: String = row.try_get("reversal_state")?;
    let failure_code: String = row.try_get("failure_code")?;
    let risk_decision: String = row.try_get("risk_decision")?;
    let risk_reasons: String = row.try_get("risk_reasons")?;
    Ok(Transfer {
        id: row.try_get("transfer_id")?,
        request_id: row.try_get("request_id")?,
        details: NewTransfer {
            from_account_id: row.try_get("from_account_id")?,
            to_account_id: row.try_get("to_account_id")?,
            currency: Currency::parse(&currency).ok_or_else(|| corrupt("currency", &currency))?,
            amount_minor: row.try_get("amount_minor")?,
            memo: row.try_get("memo")?,
        },
        state: TransferState::parse(&state).ok_or_else(|| corrupt("state", &state))?,
        refusal: match failure_code.is_empty() {
            true => None,
            false => Some(Refusal {
                code: failure_code,
                reason: row.try_get("failure_reason")?,
                subject: row.try_get("failure_subject")?,
                message: row.try_get("failure_message")?,
            }),
        },
        risk: Risk {
            decision: RiskDecision::parse(&risk_decision)
                .ok_or_else(|| corrupt("risk_decision", &risk_decision))?,
            score: i32::try_from(row.try_get::<i64, _>("risk_score")?)
                .map_err(|_| corrupt("risk_score", "out of range"))?,
            reasons: risk_reasons
                .lines()
                .filter(|line| !line.is_empty())
                .map(str::to_owned)
                .collect(),
        },
        review_request_id: row.try_get("review_request_id")?,
        posting_id: row.try_get("posting_id")?,
        reversal: Reversal {
            state: ReversalState::parse(&reversal_state)
                .ok_or_else(|| corrupt("reversal_state", &reversal_state))?,
            request_id: row.try_get("reversal_request_id")?,
            reason: row.try_get("reversal_reason")?,
            attempt: row.try_get("reversal_attempt")?,
            posting_id: row.try_get("reversal_posting_id")?,
        },
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn corrupt(column: &str, value: &str) -> TransactionError {
    TransactionError::internal(format!("stored {column} is invalid: {value:?}"))
}

fn missing(id: &str) -> TransactionError {
    TransactionError::internal(format!("idempotency key points at missing transfer {id}"))
}
