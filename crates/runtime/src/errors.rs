//! `tonic::Status` with `google.rpc` error details, built one way everywhere.
//!
//! Each service has its own error enum and one `From<Error> for Status` that
//! calls these builders, so clients always get the same shapes: field
//! violations for bad input, a precondition failure and a stable `ErrorInfo`
//! reason for refused state changes, resource info for unknown ids. Internal
//! details are logged here and never sent.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The `ErrorInfo.domain` of every Meshwork error.
pub const DOMAIN: &str = meshwork_proto::validate::ERROR_DOMAIN;

pub use meshwork_proto::validate::Violation;

/// The failures every service shares, with one `From` each (see
/// [`common_errors!`]): a service's error enum has one variant
/// `Common(Common)` instead of repeating these and their conversions.
#[derive(Debug, thiserror::Error)]
pub enum Common {
    /// The request is malformed.
    #[error("invalid request")]
    Invalid(Vec<Violation>),
    /// The same request_id with another payload.
    #[error(transparent)]
    KeyReused(#[from] crate::idempotency::KeyReused),
    /// The database could not be reached.
    #[error("database unavailable: {0}")]
    Unavailable(sqlx::Error),
    /// Anything else (details are logged, not sent).
    #[error("{0}")]
    Internal(String),
}

impl Common {
    /// The status a caller gets.
    pub fn status(&self) -> Status {
        match self {
            Self::Invalid(violations) => invalid_argument(violations),
            Self::KeyReused(reused) => {
                failed_precondition("IDEMPOTENCY_KEY_REUSED", "request_id", &reused.to_string())
            }
            Self::Unavailable(cause) => unavailable("database", cause),
            Self::Internal(cause) => internal(cause),
        }
    }

    /// The stable reason of the status.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "INVALID_ARGUMENT",
            Self::KeyReused(_) => "IDEMPOTENCY_KEY_REUSED",
            Self::Unavailable(_) => "DATABASE_UNAVAILABLE",
            Self::Internal(_) => "INTERNAL",
        }
    }
}

impl From<sqlx::Error> for Common {
    fn from(error: sqlx::Error) -> Self {
        if crate::db::is_unavailable(&error) {
            Self::Unavailable(error)
        } else {
            Self::Internal(error.to_string())
        }
    }
}

impl From<crate::validate::Invalid> for Common {
    fn from(invalid: crate::validate::Invalid) -> Self {
        Self::Invalid(invalid.0)
    }
}

impl From<crate::idempotency::ClaimError> for Common {
    fn from(error: crate::idempotency::ClaimError) -> Self {
        match error {
            crate::idempotency::ClaimError::KeyReused(reused) => reused.into(),
            crate::idempotency::ClaimError::Db(error) => error.into(),
        }
    }
}

impl From<Common> for Status {
    fn from(common: Common) -> Self {
        common.status()
    }
}

/// Gives a service's error enum, which has a variant `Common(Common)`, the
/// conversions from what every service's code meets (`sqlx::Error`,
/// `validate::Invalid`, `idempotency::ClaimError`, `KeyReused`) and an
/// `internal(cause)` constructor, so that `?` works and no service writes
/// them again.
#[macro_export]
macro_rules! common_errors {
    ($error:ty) => {
        impl From<$crate::errors::Common> for $error {
            fn from(common: $crate::errors::Common) -> Self {
                Self::Common(common)
            }
        }
        impl From<sqlx::Error> for $error {
            fn from(error: sqlx::Error) -> Self {
                Self::Common(error.into())
            }
        }
        impl From<$crate::validate::Invalid> for $error {
            fn from(invalid: $crate::validate::Invalid) -> Self {
                Self::Common(invalid.into())
            }
        }
        impl From<$crate::idempotency::ClaimError> for $error {
            fn from(error: $crate::idempotency::ClaimError) -> Self {
                Self::Common(error.into())
            }
        }
        impl From<$crate::idempotency::KeyReused> for $error {
            fn from(reused: $crate::idempotency::KeyReused) -> Self {
                Self::Common(reused.into())
            }
        }
        impl $error {
            /// Anything else: `cause` is logged, never sent.
            pub fn internal(cause: impl std::fmt::Display) -> Self {
                Self::Common($crate::errors::Common::Internal(cause.to_string()))
            }
        }
    };
}

/// INVALID_ARGUMENT with a `BadRequest` listing every violation.
pub fn invalid_argument(violations: &[Violation]) -> Status {
    meshwork_proto::validate::invalid_argument(violations)
}

/// NOT_FOUND with `ResourceInfo`.
pub fn not_found(resource_type: &str, name: &str) -> Status {
    let mut details = ErrorDetails::with_resource_info(resource_type, name, "", "not found");
    details.set_error_info(
        "NOT_FOUND",
        DOMAIN,
        [("resource_type".to_owned(), resource_type.to_owned())],
    );
    Status::with_error_details(
        Code::NotFound,
        format!("{resource_type} {name} not found"),
        details,
    )
}

/// FAILED_PRECONDITION with a `PreconditionFailure` and a stable `reason`.
pub fn failed_precondition(reason: &str, subject: &str, description: &str) -> Status {
    let mut details =
        ErrorDetails::with_precondition_failure_violation(reason, subject, description);
    details.set_error_info(reason, DOMAIN, []);
    Status::with_error_details(Code::FailedPrecondition, description, details)
}

/// ALREADY_EXISTS with a stable `reason`.
pub fn already_exists(reason: &str, description: &str) -> Status {
    let details = ErrorDetails::with_error_info(reason, DOMAIN, []);
    Status::with_error_details(Code::AlreadyExists, description, details)
}

/// ABORTED (a conflict the client may retry) with a stable `reason`.
pub fn aborted(reason: &str, description: &str) -> Status {
    let details = ErrorDetails::with_error_info(reason, DOMAIN, []);
    Status::with_error_details(Code::Aborted, description, details)
}

/// UNAVAILABLE: a dependency is down; the client may retry.
pub fn unavailable(dependency: &str, error: &dyn std::fmt::Display) -> Status {
    tracing::warn!(dependency, %error, "dependency unavailable");
    let mut details = ErrorDetails::with_error_info(
        "DEPENDENCY_UNAVAILABLE",
        DOMAIN,
        [("dependency".to_owned(), dependency.to_owned())],
    );
    details.set_retry_info(Some(std::time::Duration::from_millis(200)));
    Status::with_error_details(
        Code::Unavailable,
        format!("{dependency} is unavailable"),
        details,
    )
}

/// INTERNAL: logs the error with the trace, sends only a generic message.
pub fn internal(error: &dyn std::fmt::Display) -> Status {
    tracing::error!(%error, "internal error");
    Status::with_error_details(
        Code::Internal,
        "internal error",
        ErrorDetails::with_error_info("INTERNAL", DOMAIN, []),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_carries_every_field_violation() {
        let status = invalid_argument(&[
            Violation::new("currency", "must be 3 letters"),
            Violation::new("owner_id", "required"),
        ]);
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let fields: Vec<_> = details
            .bad_request()
            .unwrap()
            .field_violations
            .iter()
            .map(|v| v.field.as_str())
            .collect();
        assert_eq!(fields, ["currency", "owner_id"]);
    }

    #[test]
    fn failed_precondition_has_reason_and_violation() {
        let status = failed_precondition("ACCOUNT_FROZEN", "accounts/acc_1", "account is frozen");
        assert_eq!(status.code(), Code::FailedPrecondition);
        let details = status.get_error_details();
        assert_eq!(details.error_info().unwrap().reason, "ACCOUNT_FROZEN");
        assert_eq!(
            details.precondition_failure().unwrap().violations[0].subject,
            "accounts/acc_1"
        );
    }

    #[test]
    fn internal_hides_the_cause() {
        let status = internal(&"password=hunter2 in connection string");
        assert_eq!(status.message(), "internal error");
    }
}
