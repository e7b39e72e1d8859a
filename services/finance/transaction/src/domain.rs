//! Transfers and the rules of their life: pure, no transport or storage.
//!
//! ```text
//!                ┌─REJECT─▶ REJECTED ◀─declined─┐
//! PROCESSING ─risk─┼─REVIEW─▶ PENDING_REVIEW ────┴─approved─▶ PROCESSING
//!                  └─APPROVE─┐
//!                            ▼
//!            posted by the ledger ─▶ POSTED ──reversed──▶ REVERSED
//!            refused by the ledger ─▶ FAILED
//! ```
//! A transfer in PROCESSING is waiting for risk control's decision or has a
//! posting on its way to the ledger; only their answers move it on, so it is
//! never applied twice, never applied unassessed and never left half-done.

pub use meshwork_runtime::validate::{Currency, new_id};

use crate::error::TransactionError;

/// Where a transfer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferState {
    /// Posting in flight, outcome unknown.
    Processing,
    /// Held for review by risk control.
    PendingReview,
    /// Applied to both accounts.
    Posted,
    /// Stopped by risk control.
    Rejected,
    /// Refused by the ledger.
    Failed,
    /// Posted, then compensated.
    Reversed,
}

impl TransferState {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Processing => "PROCESSING",
            Self::PendingReview => "PENDING_REVIEW",
            Self::Posted => "POSTED",
            Self::Rejected => "REJECTED",
            Self::Failed => "FAILED",
            Self::Reversed => "REVERSED",
        }
    }

    /// The stored form back.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "PROCESSING" => Self::Processing,
            "PENDING_REVIEW" => Self::PendingReview,
            "POSTED" => Self::Posted,
            "REJECTED" => Self::Rejected,
            "FAILED" => Self::Failed,
            "REVERSED" => Self::Reversed,
            _ => return None,
        })
    }
}

/// Where a transfer's reversal is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReversalState {
    /// Not reversed (or the last attempt was refused).
    None,
    /// The compensating posting is in flight.
    Processing,
    /// Compensated.
    Done,
}

impl ReversalState {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "",
            Self::Processing => "PROCESSING",
            Self::Done => "DONE",
        }
    }

    /// The stored form back.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "" => Self::None,
            "PROCESSING" => Self::Processing,
            "DONE" => Self::Done,
            _ => return None,
        })
    }
}

/// What risk control (or a reviewer after it) decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RiskDecision {
    /// Not assessed yet.
    Pending,
    /// Go ahead.
    Approve,
    /// Hold for review.
    Review,
    /// Stop.
    Reject,
    /// Held, then released by a reviewer.
    Approved,
    /// Held, then stopped by a reviewer.
    Declined,
}

impl RiskDecision {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "",
            Self::Approve => "APPROVE",
            Self::Review => "REVIEW",
            Self::Reject => "REJECT",
            Self::Approved => "APPROVED",
            Self::Declined => "DECLINED",
        }
    }

    /// The stored form back.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "" => Self::Pending,
            "APPROVE" => Self::Approve,
            "REVIEW" => Self::Review,
            "REJECT" => Self::Reject,
            "APPROVED" => Self::Approved,
            "DECLINED" => Self::Declined,
            _ => return None,
        })
    }

    /// Whether the money may move.
    pub fn allows_posting(self) -> bool {
        matches!(self, Self::Approve | Self::Approved)
    }
}

/// Risk control's view of a transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Risk {
    /// The decision so far.
    pub decision: RiskDecision,
    /// The score.
    pub score: i32,
    /// Why (the rules that fired).
    pub reasons: Vec<String>,
}

impl Risk {
    /// The refusal a REJECT answers with.
    pub fn rejection(&self, transfer_id: &str) -> Refusal {
        Refusal {
            code: "FAILED_PRECONDITION".to_owned(),
            reason: "TRANSFER_REJECTED".to_owned(),
            subject: format!("transfers/{transfer_id}"),
            message: format!(
                "transfer {transfer_id} rejected by risk control (score {}): {}",
                self.score,
                self.reasons.join("; ")
            ),
        }
    }
}

/// A reviewer's answer to a transfer held for review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Review {
    /// Let it through.
    Approve {
        /// The reviewer's note.
        note: String,
    },
    /// Stop it.
    Decline {
        /// Why.
        reason: String,
    },
}

impl Review {
    /// The reviewer's text.
    pub fn text(&self) -> &str {
        match self {
            Self::Approve { note } => note,
            Self::Decline { reason } => reason,
        }
    }

    /// The refusal a declined transfer answers with.
    pub fn refusal(&self, transfer_id: &str) -> Option<Refusal> {
        match self {
            Self::Approve { .. } => None,
            Self::Decline { reason } => Some(Refusal {
                code: "FAILED_PRECONDITION".to_owned(),
                reason: "TRANSFER_DECLINED".to_owned(),
                subject: format!("transfers/{transfer_id}"),
                message: format!("transfer {transfer_id} declined in review: {reason}"),
            }),
        }
    }
}

/// A refusal by the ledger, kept as it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The gRPC code's name: NOT_FOUND, FAILED_PRECONDITION or INVALID_ARGUMENT.
    pub code: String,
    /// The stable reason, e.g. INSUFFICIENT_FUNDS.
    pub reason: String,
    /// What it is about, e.g. "accounts/acc_...".
    pub subject: String,
    /// The ledger's message.
    pub message: String,
}

/// A validated transfer request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTransfer {
    /// Debited.
    pub from_account_id: String,
    /// Credited.
    pub to_account_id: String,
    /// Currency of the amount.
    pub currency: Currency,
    /// Positive, in minor units.
    pub amount_minor: i64,
    /// Caller's text.
    pub memo: String,
}

/// The reversal side of a transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reversal {
    /// Where it is.
    pub state: ReversalState,
    /// The request that asked for it.
    pub request_id: String,
    /// Why.
    pub reason: String,
    /// How many reversals were started (the current one's number).
    pub attempt: i64,
    /// The compensating posting, once done.
    pub posting_id: String,
}

/// A transfer as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// `trf_...`, time-ordered.
    pub id: String,
    /// The request that created it.
    pub request_id: String,
    /// What was asked.
    pub details: NewTransfer,
    /// Where it is.
    pub state: TransferState,
    /// Why the ledger (or risk control, or a reviewer) refused it, when
    /// FAILED or REJECTED.
    pub refusal: Option<Refusal>,
    /// Risk control's view.
    pub risk: Risk,
    /// The review request that released or stopped it, if any.
    pub review_request_id: String,
    /// The ledger posting, once POSTED.
    pub posting_id: String,
    /// Its reversal.
    pub reversal: Reversal,
    /// Microseconds since the epoch.
    pub created_at: i64,
    /// Microseconds since the epoch.
    pub updated_at: i64,
}

impl Transfer {
    /// The ledger key of the transfer's posting: its id.
    pub fn posting_key(&self) -> &str {
        &self.id
    }

    /// The ledger key of the current reversal attempt.
    pub fn reversal_key(&self) -> String {
        format!("{}.reversal.{}", self.id, self.reversal.attempt)
    }

    /// What a reversal request for this transfer should do.
    pub fn reversal_step(&self, request_id: &str) -> Result<ReversalStep, TransactionError> {
        match (self.state, self.reversal.state) {
            (TransferState::Reversed, _) if self.reversal.request_id == request_id => {
                Ok(ReversalStep::Done)
            }
            (TransferState::Reversed, _) => Err(TransactionError::AlreadyReversed(self.id.clone())),
            (TransferState::Posted, ReversalState::Processing)
                if self.reversal.request_id == request_id =>
            {
                Ok(ReversalStep::Resume)
            }
            (TransferState::Posted, ReversalState::Processing) => {
                Err(TransactionError::ReversalInProgress(self.id.clone()))
            }
            (TransferState::Posted, _) => Ok(ReversalStep::Start),
            (state, _) => Err(TransactionError::NotPosted {
                transfer_id: self.id.clone(),
                state: state.as_str(),
            }),
        }
    }
}

/// The next move of a reversal request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReversalStep {
    /// Start a new attempt.
    Start,
    /// This request's attempt is in flight: drive it on.
    Resume,
    /// This request reversed it already.
    Done,
}

/// One movement on a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementLine {
    /// Microseconds since the epoch.
    pub occur_at: i64,
    /// The posting's kind.
    pub kind: String,
    /// Signed: credits positive.
    pub amount_minor: i64,
    /// The running balance.
    pub balance_after_minor: i64,
    /// The ledger posting.
    pub posting_id: String,
    /// The transfer, for transfers and reversals.
    pub transfer_id: String,
    /// The other account of a transfer.
    pub counterparty_account_id: String,
}

/// One entry of an account's journal at the ledger, as this service reads
/// it to build statements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    /// The ledger posting it belongs to.
    pub posting_id: String,
    /// The posting's kind (deposit, transfer, ...).
    pub kind: String,
    /// Signed: credits positive.
    pub amount_minor: i64,
    /// The account's balance after it.
    pub balance_after_minor: i64,
    /// Microseconds since the epoch.
    pub created_at: i64,
}

/// An account's statement for a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// Balance at the start.
    pub opening_minor: i64,
    /// Balance at the end.
    pub closing_minor: i64,
    /// Oldest first.
    pub lines: Vec<StatementLine>,
    /// Sum of credits.
    pub credits_minor: i64,
    /// Sum of debits, positive.
    pub debits_minor: i64,
}

impl Statement {
    /// The statement of `lines` (oldest first) after `opening_minor`.
    pub fn new(opening_minor: i64, lines: Vec<StatementLine>) -> Self {
        let credits_minor = lines.iter().map(|l| l.amount_minor.max(0)).sum();
        let debits_minor = lines.iter().map(|l| (-l.amount_minor).max(0)).sum();
        let closing_minor = lines
            .last()
            .map_or(opening_minor, |l| l.balance_after_minor);
        Self {
            opening_minor,
            closing_minor,
            lines,
            credits_minor,
            debits_minor,
        }
    }

    /// Whether opening + every line = closing, line by line (the ledger's
    /// running balances agree with its amounts).
    pub fn adds_up(&self) -> bool {
        let mut balance = self.opening_minor;
        self.lines.iter().all(|line| {
            balance += line.amount_minor;
            balance == line.balance_after_minor
        }) && balance == self.closing_minor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_total_their_lines() {
        let line = |amount_minor, balance_after_minor| StatementLine {
            occur_at: 0,
            kind: "TRANSFER".into(),
            amount_minor,
            balance_after_minor,
            posting_id: String::new(),
            transfer_id: String::new(),
            counterparty_account_id: String::new(),
        };
        let statement = Statement::new(100, vec![line(50, 150), line(-30, 120)]);
        assert_eq!(
            (
                statement.closing_minor,
                statement.credits_minor,
                statement.debits_minor
            ),
            (120, 50, 30)
        );
        assert!(statement.adds_up());
        assert!(!Statement::new(100, vec![line(50, 160)]).adds_up());
        assert_eq!(Statement::new(7, Vec::new()).closing_minor, 7);
    }

    fn transfer(state: TransferState, reversal: ReversalState, by: &str) -> Transfer {
        Transfer {
            id: "trf_1".into(),
            request_id: "r1".into(),
            details: NewTransfer {
                from_account_id: "acc_a".into(),
                to_account_id: "acc_b".into(),
                currency: Currency::parse("EUR").unwrap(),
                amount_minor: 10,
                memo: String::new(),
            },
            state,
            refusal: None,
            risk: Risk {
                decision: RiskDecision::Approve,
                score: 0,
                reasons: Vec::new(),
            },
            review_request_id: String::new(),
            posting_id: String::new(),
            reversal: Reversal {
                state: reversal,
                request_id: by.into(),
                reason: String::new(),
                attempt: 1,
                posting_id: String::new(),
            },
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn states_round_trip() {
        for state in [
            TransferState::Processing,
            TransferState::PendingReview,
            TransferState::Posted,
            TransferState::Rejected,
            TransferState::Failed,
            TransferState::Reversed,
        ] {
            assert_eq!(TransferState::parse(state.as_str()), Some(state));
        }
        for state in [
            ReversalState::None,
            ReversalState::Processing,
            ReversalState::Done,
        ] {
            assert_eq!(ReversalState::parse(state.as_str()), Some(state));
        }
        assert_eq!(TransferState::parse("posted"), None);
    }

    #[test]
    fn only_approvals_let_money_move() {
        for decision in [
            RiskDecision::Pending,
            RiskDecision::Approve,
            RiskDecision::Review,
            RiskDecision::Reject,
            RiskDecision::Approved,
            RiskDecision::Declined,
        ] {
            assert_eq!(RiskDecision::parse(decision.as_str()), Some(decision));
            assert_eq!(
                decision.allows_posting(),
                matches!(decision, RiskDecision::Approve | RiskDecision::Approved)
            );
        }
        let risk = Risk {
            decision: RiskDecision::Reject,
            score: 120,
            reasons: vec!["sender acc_a is blacklisted".into()],
        };
        let refusal = risk.rejection("trf_1");
        assert_eq!(refusal.reason, "TRANSFER_REJECTED");
        assert!(refusal.message.contains("blacklisted"));
        assert!(
            Review::Approve {
                note: String::new()
            }
            .refusal("trf_1")
            .is_none()
        );
    }

    #[test]
    fn a_transfer_is_reversed_at_most_once() {
        use ReversalState as R;
        use TransferState as S;
        assert_eq!(
            transfer(S::Posted, R::None, "").reversal_step("x").ok(),
            Some(ReversalStep::Start)
        );
        assert_eq!(
            transfer(S::Posted, R::Processing, "x")
                .reversal_step("x")
                .ok(),
            Some(ReversalStep::Resume)
        );
        assert!(matches!(
            transfer(S::Posted, R::Processing, "x").reversal_step("y"),
            Err(TransactionError::ReversalInProgress(_))
        ));
        assert_eq!(
            transfer(S::Reversed, R::Done, "x").reversal_step("x").ok(),
            Some(ReversalStep::Done)
        );
        assert!(matches!(
            transfer(S::Reversed, R::Done, "x").reversal_step("y"),
            Err(TransactionError::AlreadyReversed(_))
        ));
        for state in [S::Processing, S::Failed, S::PendingReview, S::Rejected] {
            assert!(matches!(
                transfer(state, R::None, "").reversal_step("x"),
                Err(TransactionError::NotPosted { .. })
            ));
        }
        let t = transfer(S::Posted, R::Processing, "x");
        assert_eq!(t.reversal_key(), "trf_1.reversal.1");
        assert_eq!(t.posting_key(), "trf_1");
    }
}
