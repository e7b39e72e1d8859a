//! A transfer's life, driven to an outcome: accept it, ask risk control,
//! post it through the ledger, record what each said. Both the RPCs and the background
//! settler go through [`Transfers::settle`], so there is one way a transfer
//! moves on.

use std::time::Duration;

use meshwork_runtime::time::now_micros;

use crate::domain::{
    NewTransfer, Refusal, ReversalState, ReversalStep, Review, RiskDecision, Statement,
    StatementLine, Transfer, TransferState,
};
use crate::error::TransactionError;
use crate::ledger::{Direction, Ledger, Outcome};
use crate::risk::{Assessed, RiskControl};
use crate::store::Store;

/// Transfers, risk control and the ledger.
#[derive(Clone)]
pub struct Transfers {
    store: Store,
    risk: RiskControl,
    ledger: Ledger,
}

impl Transfers {
    /// The workflow over its store, risk control and the ledger.
    pub fn new(store: Store, risk: RiskControl, ledger: Ledger) -> Self {
        Self {
            store,
            risk,
            ledger,
        }
    }

    /// The store, for reads.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Accepts `new` once per request id and drives it to an outcome. A
    /// replay of a finished transfer answers as the first call did; a
    /// replay of one still PROCESSING drives it on.
    pub async fn transfer(
        &self,
        request_id: &str,
        new: &NewTransfer,
    ) -> Result<Transfer, TransactionError> {
        let transfer = self.store.open(request_id, new).await?;
        let (transfer, _) = self.settle(transfer).await?;
        outcome(transfer)
    }

    /// A reviewer's answer to a transfer held for review; an approved one is
    /// then posted.
    pub async fn review(
        &self,
        request_id: &str,
        transfer_id: &str,
        review: &Review,
    ) -> Result<Transfer, TransactionError> {
        let transfer = self.store.review(request_id, transfer_id, review).await?;
        let (transfer, _) = self.settle(transfer).await?;
        outcome(transfer)
    }

    /// Reverses a POSTED transfer at most once.
    pub async fn reverse(
        &self,
        request_id: &str,
        transfer_id: &str,
        reason: &str,
    ) -> Result<Transfer, TransactionError> {
        let (transfer, step) = self
            .store
            .begin_reversal(request_id, transfer_id, reason)
            .await?;
        if step == ReversalStep::Done {
            return Ok(transfer);
        }
        let (transfer, refused) = self.settle(transfer).await?;
        match (transfer.state, transfer.reversal.state, refused) {
            (TransferState::Reversed, _, _) => Ok(transfer),
            (_, _, Some(refusal)) => Err(TransactionError::Refused(refusal)),
            _ => Err(TransactionError::OutcomeUnknown {
                transfer_id: transfer.id,
            }),
        }
    }

    /// Moves a transfer with something in flight on as far as the ledger's
    /// answers allow; returns it as stored afterwards, with the ledger's
    /// refusal when one ended a step.
    pub async fn settle(
        &self,
        transfer: Transfer,
    ) -> Result<(Transfer, Option<Refusal>), TransactionError> {
        let mut transfer = transfer;
        if transfer.state == TransferState::Processing
            && transfer.risk.decision == RiskDecision::Pending
        {
            transfer = match self.risk.assess(&transfer).await {
                Assessed::Decided(risk) => {
                    tracing::info!(transfer = %transfer.id, decision = risk.decision.as_str(), score = risk.score, "risk decision");
                    self.store.record_risk(&transfer.id, &risk).await?
                }
                Assessed::Unknown(why) => {
                    tracing::warn!(transfer = %transfer.id, %why, "risk decision unknown; left PROCESSING");
                    // To the back of the settler's queue, so one that keeps
                    // failing does not hold up the others.
                    self.store.touch(&transfer.id).await?;
                    return Ok((transfer, None));
                }
            };
        }
        if transfer.state == TransferState::Processing && transfer.risk.decision.allows_posting() {
            transfer = match self
                .ledger
                .post(
                    transfer.posting_key(),
                    &transfer.details,
                    Direction::Forward,
                )
                .await
            {
                Outcome::Posted(posting_id) => {
                    tracing::info!(transfer = %transfer.id, "transfer posted");
                    self.store.mark_posted(&transfer.id, &posting_id).await?
                }
                Outcome::Refused(refusal) => {
                    tracing::info!(transfer = %transfer.id, reason = %refusal.reason, "transfer refused by the ledger");
                    self.store.mark_failed(&transfer.id, &refusal).await?
                }
                Outcome::Unknown(why) => {
                    tracing::warn!(transfer = %transfer.id, %why, "transfer outcome unknown; left PROCESSING");
                    // To the back of the settler's queue, so one that keeps
                    // failing does not hold up the others.
                    self.store.touch(&transfer.id).await?;
                    return Ok((transfer, None));
                }
            };
        }
        if transfer.state == TransferState::Posted
            && transfer.reversal.state == ReversalState::Processing
        {
            let attempt = transfer.reversal.attempt;
            transfer = match self
                .ledger
                .post(
                    &transfer.reversal_key(),
                    &transfer.details,
                    Direction::Reverse,
                )
                .await
            {
                Outcome::Posted(posting_id) => {
                    tracing::info!(transfer = %transfer.id, "transfer reversed");
                    self.store
                        .finish_reversal(&transfer.id, attempt, &posting_id)
                        .await?
                }
                Outcome::Refused(refusal) => {
                    tracing::info!(transfer = %transfer.id, reason = %refusal.reason, "reversal refused by the ledger");
                    self.store
                        .abandon_reversal(
                            &transfer.id,
                            attempt,
                            &transfer.reversal.request_id,
                            &refusal,
                        )
                        .await?;
                    return Ok((self.store.get(&transfer.id).await?, Some(refusal)));
                }
                Outcome::Unknown(why) => {
                    tracing::warn!(transfer = %transfer.id, %why, "reversal outcome unknown; left PROCESSING");
                    // To the back of the settler's queue, so one that keeps
                    // failing does not hold up the others.
                    self.store.touch(&transfer.id).await?;
                    return Ok((transfer, None));
                }
            };
        }
        Ok((transfer, None))
    }

    /// The statement of `account_id` for `[start, end)`, from the ledger's
    /// journal, each transfer line annotated from this service's records.
    /// Returns the account's currency with it.
    pub async fn statement(
        &self,
        account_id: &str,
        start: i64,
        end: i64,
    ) -> Result<(String, Statement), TransactionError> {
        let currency = self.ledger.currency(account_id).await?;
        let opening = self.ledger.balance_before(account_id, start).await?;
        let entries = self
            .ledger
            .journal(account_id, Some(start), Some(end))
            .await?;
        let posting_ids: Vec<String> = entries.iter().map(|e| e.posting_id.clone()).collect();
        let transfers = self.store.by_postings(&posting_ids).await?;
        let lines = entries
            .into_iter()
            .map(|entry| {
                let transfer = transfers.get(&entry.posting_id);
                let counterparty = transfer.map(|t| {
                    let d = &t.details;
                    if d.from_account_id == account_id {
                        d.to_account_id.clone()
                    } else {
                        d.from_account_id.clone()
                    }
                });
                StatementLine {
                    occur_at: entry.created_at,
                    kind: entry.kind,
                    amount_minor: entry.amount_minor,
                    balance_after_minor: entry.balance_after_minor,
                    posting_id: entry.posting_id,
                    transfer_id: transfer.map(|t| t.id.clone()).unwrap_or_default(),
                    counterparty_account_id: counterparty.unwrap_or_default(),
                }
            })
            .collect();
        let statement = Statement::new(opening, lines);
        if !statement.adds_up() {
            // The ledger's amounts and running balances disagree: say so
            // rather than hand out a statement that does not add up.
            return Err(TransactionError::internal(format!(
                "statement of {account_id} does not add up"
            )));
        }
        Ok((currency, statement))
    }

    /// Settles what was left in flight (answers lost, callers gone) since
    /// before `min_age`; returns how many were looked at.
    pub async fn settle_in_flight(&self, min_age: Duration) -> Result<usize, TransactionError> {
        let older_than = now_micros() - min_age.as_micros() as i64;
        let stuck = self.store.in_flight(older_than, 100).await?;
        let count = stuck.len();
        for transfer in stuck {
            let id = transfer.id.clone();
            if let Err(error) = self.settle(transfer).await {
                tracing::warn!(transfer = %id, %error, "settling a transfer in flight failed");
            }
        }
        Ok(count)
    }
}

/// A settled transfer as the Transfer RPC answers it.
fn outcome(transfer: Transfer) -> Result<Transfer, TransactionError> {
    match transfer.state {
        TransferState::Processing => Err(TransactionError::OutcomeUnknown {
            transfer_id: transfer.id,
        }),
        TransferState::Failed | TransferState::Rejected => match transfer.refusal {
            Some(refusal) => Err(TransactionError::Refused(refusal)),
            None => Err(TransactionError::internal(format!(
                "transfer {} failed without a reason",
                transfer.id
            ))),
        },
        _ => Ok(transfer),
    }
}
