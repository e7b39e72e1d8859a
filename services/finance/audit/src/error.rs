//! Everything that can go wrong in finance.audit, and the one mapping of it
//! to gRPC statuses.

use meshwork_runtime::errors::Common;
use tonic::Status;

/// An audit service error.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// What every service shares: invalid requests, reused request ids,
    /// the database, anything else.
    #[error(transparent)]
    Common(Common),
}

meshwork_runtime::common_errors!(AuditError);

impl From<AuditError> for Status {
    fn from(error: AuditError) -> Self {
        match &error {
            AuditError::Common(common) => common.status(),
        }
    }
}
