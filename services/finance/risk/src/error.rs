//! Everything that can go wrong in finance.risk, and the one mapping of it to
//! gRPC statuses.

use meshwork_runtime::counters::CounterError;
use meshwork_runtime::errors::{self, Common};
use tonic::Status;

/// A risk service error.
#[derive(Debug, thiserror::Error)]
pub enum RiskError {
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
    /// Velocity counters cannot be read: no assessment without them.
    #[error(transparent)]
    Counters(#[from] CounterError),
    /// The ledger could not say when the sender's account was opened.
    #[error("account service: {0}")]
    Ledger(String),
    /// What every service shares: invalid requests, reused request ids,
    /// the database, anything else.
    #[error(transparent)]
    Common(Common),
}

meshwork_runtime::common_errors!(RiskError);

impl From<RiskError> for Status {
    fn from(error: RiskError) -> Self {
        use RiskError::*;
        match &error {
            Common(common) => common.status(),
            RuleNotFound(id) => errors::not_found("rule", &format!("rules/{id}")),
            VersionMismatch { .. } => errors::aborted("VERSION_MISMATCH", &error.to_string()),
            Counters(cause) => errors::unavailable("velocity counters", cause),
            Ledger(cause) => errors::unavailable("finance.account", cause),
        }
    }
}
