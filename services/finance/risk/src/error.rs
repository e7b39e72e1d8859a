//! Everything that can go wrong in finance.risk, and the one mapping of it to
//! gRPC statuses.

use meshwork_runtime::counters::CounterError;
use meshwork_runtime::errors::{self, Violation};
use meshwork_runtime::{db, idempotency, validate};
use tonic::Status;

/// A risk service error.
#[derive(Debug, thiserror::Error)]
pub enum RiskError {
    /// The request is malformed.
    #[error("invalid request")]
    Invalid(Vec<Violation>),
    /// No such rule.
    #[error("rule {0} not found")]
    RuleNotFound(String),
    /// UpdateRule quoted an old version.
    #[error("rule {rule_id} is at version {current}, not {quoted}")]
    VersionMismatch {
        rule_id: String,
        current: i64,
        quoted: i64,
    },
    /// The same request_id with another payload.
    #[error(transparent)]
    KeyReused(#[from] idempotency::KeyReused),
    /// Velocity counters cannot be read: no assessment without them.
    #[error(transparent)]
    Counters(#[from] CounterError),
    /// The ledger could not say when the sender's account was opened.
    #[error("account service: {0}")]
    Ledger(String),
    /// The database could not be reached.
    #[error("database unavailable: {0}")]
    Unavailable(sqlx::Error),
    /// Anything else.
    #[error("{0}")]
    Internal(String),
}

impl From<validate::Invalid> for RiskError {
    fn from(invalid: validate::Invalid) -> Self {
        Self::Invalid(invalid.0)
    }
}

impl From<sqlx::Error> for RiskError {
    fn from(error: sqlx::Error) -> Self {
        if db::is_unavailable(&error) {
            Self::Unavailable(error)
        } else {
            Self::Internal(error.to_string())
        }
    }
}

impl From<idempotency::ClaimError> for RiskError {
    fn from(error: idempotency::ClaimError) -> Self {
        match error {
            idempotency::ClaimError::KeyReused(reused) => reused.into(),
            idempotency::ClaimError::Db(error) => error.into(),
        }
    }
}

impl From<RiskError> for Status {
    fn from(error: RiskError) -> Self {
        use RiskError::*;
        match &error {
            Invalid(violations) => errors::invalid_argument(violations),
            RuleNotFound(id) => errors::not_found("rule", &format!("rules/{id}")),
            VersionMismatch { .. } => errors::aborted("VERSION_MISMATCH", &error.to_string()),
            KeyReused(_) => errors::failed_precondition(
                "IDEMPOTENCY_KEY_REUSED",
                "request_id",
                &error.to_string(),
            ),
            Counters(cause) => errors::unavailable("velocity counters", cause),
            Ledger(cause) => errors::unavailable("finance.account", cause),
            Unavailable(cause) => errors::unavailable("database", cause),
            Internal(cause) => errors::internal(cause),
        }
    }
}
