//! Everything that can go wrong in finance.transaction, and the one mapping
//! of it to gRPC statuses. Reasons in `ErrorInfo` are stable.

use meshwork_runtime::errors::{self, Common};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::Refusal;

/// A transaction service error.
#[derive(Debug, thiserror::Error)]
pub enum TransactionError {
    /// No such transfer.
    #[error("transfer {0} not found")]
    NotFound(String),
    /// No such account (the ledger says).
    #[error("account {0} not found")]
    AccountNotFound(String),
    /// The ledger could not answer a read.
    #[error("ledger: {0}")]
    Ledger(String),
    /// The ledger refused the posting; no money moved.
    #[error("{}", .0.message)]
    Refused(Refusal),
    /// Only a POSTED transfer can be reversed.
    #[error("transfer {transfer_id} is {state}, not POSTED")]
    NotPosted {
        transfer_id: String,
        state: &'static str,
    },
    /// Only a PENDING_REVIEW transfer can be approved or declined.
    #[error("transfer {transfer_id} is {state}, not PENDING_REVIEW")]
    NotInReview {
        transfer_id: String,
        state: &'static str,
    },
    /// Reversed before, by another request.
    #[error("transfer {0} is already reversed")]
    AlreadyReversed(String),
    /// Another request's reversal is in flight.
    #[error("transfer {0} is being reversed by another request")]
    ReversalInProgress(String),
    /// The ledger's answer could not be learned in time; the transfer stays
    /// PROCESSING until it is (a retry with the same request id, or the
    /// background settler, finds out).
    #[error(
        "the outcome of transfer {transfer_id} is not known yet; retry with the same request_id"
    )]
    OutcomeUnknown { transfer_id: String },
    /// What every service shares: invalid requests, reused request ids,
    /// the database, anything else.
    #[error(transparent)]
    Common(Common),
}

meshwork_runtime::common_errors!(TransactionError);

impl From<TransactionError> for Status {
    fn from(error: TransactionError) -> Self {
        use TransactionError::*;
        let resource = |id: &str| format!("transfers/{id}");
        match &error {
            Common(common) => common.status(),
            NotFound(id) => errors::not_found("transfer", &resource(id)),
            AccountNotFound(id) => errors::not_found("account", &format!("accounts/{id}")),
            Ledger(cause) => errors::unavailable("finance.account", cause),
            Refused(refusal) => refusal_status(refusal),
            NotPosted { transfer_id, .. } => errors::failed_precondition(
                "TRANSFER_NOT_POSTED",
                &resource(transfer_id),
                &error.to_string(),
            ),
            NotInReview { transfer_id, .. } => errors::failed_precondition(
                "TRANSFER_NOT_IN_REVIEW",
                &resource(transfer_id),
                &error.to_string(),
            ),
            AlreadyReversed(id) => errors::failed_precondition(
                "TRANSFER_ALREADY_REVERSED",
                &resource(id),
                &error.to_string(),
            ),
            ReversalInProgress(_) => errors::aborted("REVERSAL_IN_PROGRESS", &error.to_string()),
            OutcomeUnknown { transfer_id } => {
                let mut details = ErrorDetails::with_error_info(
                    "OUTCOME_UNKNOWN",
                    errors::DOMAIN,
                    [("transfer_id".to_owned(), transfer_id.clone())],
                );
                details.set_retry_info(Some(std::time::Duration::from_millis(500)));
                Status::with_error_details(Code::Unavailable, error.to_string(), details)
            }
        }
    }
}

/// The ledger's refusal as the ledger gave it: same code, reason, subject
/// and message, on the first answer and on every replay.
fn refusal_status(refusal: &Refusal) -> Status {
    match refusal.code.as_str() {
        "NOT_FOUND" => {
            let mut details =
                ErrorDetails::with_resource_info("account", &refusal.subject, "", "not found");
            details.set_error_info(&refusal.reason, errors::DOMAIN, []);
            Status::with_error_details(Code::NotFound, &refusal.message, details)
        }
        "INVALID_ARGUMENT" => {
            let details = ErrorDetails::with_error_info(&refusal.reason, errors::DOMAIN, []);
            Status::with_error_details(Code::InvalidArgument, &refusal.message, details)
        }
        _ => errors::failed_precondition(&refusal.reason, &refusal.subject, &refusal.message),
    }
}
