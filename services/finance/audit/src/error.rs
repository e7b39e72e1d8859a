//! Everything that can go wrong in finance.audit, and the one mapping of it
//! to gRPC statuses.

use meshwork_runtime::errors::{self, Violation};
use meshwork_runtime::{db, validate};
use tonic::Status;

/// An audit service error.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The request is malformed.
    #[error("invalid request")]
    Invalid(Vec<Violation>),
    /// The database could not be reached.
    #[error("database unavailable: {0}")]
    Unavailable(sqlx::Error),
    /// Anything else.
    #[error("{0}")]
    Internal(String),
}

impl From<validate::Invalid> for AuditError {
    fn from(invalid: validate::Invalid) -> Self {
        Self::Invalid(invalid.0)
    }
}

impl From<sqlx::Error> for AuditError {
    fn from(error: sqlx::Error) -> Self {
        if db::is_unavailable(&error) {
            Self::Unavailable(error)
        } else {
            Self::Internal(error.to_string())
        }
    }
}

impl From<AuditError> for Status {
    fn from(error: AuditError) -> Self {
        match &error {
            AuditError::Invalid(violations) => errors::invalid_argument(violations),
            AuditError::Unavailable(cause) => errors::unavailable("database", cause),
            AuditError::Internal(cause) => errors::internal(cause),
        }
    }
}
